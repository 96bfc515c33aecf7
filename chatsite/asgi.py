"""ASGI entry point: HTTP to Django (and the demo upstream), websockets to the chat consumer."""

from __future__ import annotations

import gc
import importlib
import os
from typing import Any

from django.core.asgi import get_asgi_application

from chatsite import socket_writes

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
django_http = get_asgi_application()
socket_writes.install()  # daphne's websocket frames go to the socket at once

# Imported after Django is set up: these load models.
from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

from conversations.demo_upstream import make_app  # noqa: E402
from conversations.routing import websocket_urlpatterns  # noqa: E402

DEMO_PREFIX = "/demo-upstream"


def with_demo_upstream(app: Any) -> Any:
    """Serve the offline demo upstream beside Django, so `make run` needs no network."""
    demo = make_app(token_delay=settings.DEMO_TOKEN_DELAY, prefix=DEMO_PREFIX)

    async def route(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith(DEMO_PREFIX + "/"):
            await demo(scope, receive, send)
        else:
            await app(scope, receive, send)

    return route


application = ProtocolTypeRouter(
    {
        "http": with_demo_upstream(django_http) if settings.DEMO_UPSTREAM_ENABLED else django_http,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)


def freeze_what_is_loaded() -> None:
    """Keep the garbage collector from walking, in every full collection, the objects that
    live as long as the process: modules, settings, URL patterns, the application.

    A full collection walks every tracked object and stops the event loop meanwhile. While
    2,000 sockets opened on one worker (bench/concurrency), six of them paused it 290-360 ms
    at the longest, 1.2-1.4 s in all; with this, 235-245 ms and 0.7-0.8 s."""
    importlib.import_module(settings.ROOT_URLCONF)  # else imported on first use
    gc.collect()
    gc.freeze()


freeze_what_is_loaded()
