"""Response headers Django does not set itself: the Content-Security-Policy and friends."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.utils.deprecation import MiddlewareMixin

# Scripts and styles only from our own static files: no inline code, no eval, no
# style="" attributes. Markdown images are inline data: URLs or our own /media/ paths.
CSP_DIRECTIVES: dict[str, tuple[str, ...]] = {
    "default-src": ("'self'",),
    "script-src": ("'self'",),
    "style-src": ("'self'",),
    "img-src": ("'self'", "data:"),
    "connect-src": ("'self'",),
    "object-src": ("'none'",),
    "base-uri": ("'none'",),
    "frame-ancestors": ("'none'",),
    "form-action": ("'self'",),
}
# Powerful browser features the app never uses, switched off for every frame.
PERMISSIONS_POLICY = ", ".join(
    f"{feature}=()"
    for feature in (
        *("accelerometer", "camera", "geolocation", "gyroscope"),
        *("magnetometer", "microphone", "payment", "usb"),
    )
)


def content_security_policy(host: str = "") -> str:
    """The policy as a header value; `host` adds its ws:// and wss:// origins.

    CSP 3 lets 'self' match same-origin websockets, but Safari before 16 did not:
    naming the host explicitly keeps the chat socket working there too.
    """
    directives = dict(CSP_DIRECTIVES)
    if host and not host.startswith("["):  # CSP has no syntax for IPv6 literals
        directives["connect-src"] = (*directives["connect-src"], f"ws://{host}", f"wss://{host}")
    return "; ".join(f"{name} {' '.join(values)}" for name, values in directives.items())


def _request_host(request: HttpRequest) -> str:
    try:
        return request.get_host()  # validated against ALLOWED_HOSTS: safe in a header
    except DisallowedHost:
        return ""


class SecurityHeadersMiddleware(MiddlewareMixin):
    """Adds CSP, Permissions-Policy and CORP; a header a view set itself is kept."""

    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        # Django's debug error pages are built from inline styles and scripts.
        if not (settings.DEBUG and response.status_code >= 400):
            response.headers.setdefault(
                "Content-Security-Policy", content_security_policy(_request_host(request))
            )
        response.headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        response.headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
        return response
