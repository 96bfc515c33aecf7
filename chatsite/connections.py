"""Database connections: kept open on the websocket thread, closed after each page.

Under ASGI every HTTP request runs in a thread of its own, so a persistent connection
opened there would outlive its thread until garbage collection. The websocket consumers,
runners and sweepers share one long-lived thread instead, where reconnecting on every
event cost a submission about 3 ms. So `DATABASE_CONN_MAX_AGE` keeps connections open, and
this middleware closes a page's connection when its request ends.
"""

from __future__ import annotations

from collections.abc import Callable

from django.db import connections
from django.http import HttpRequest
from django.http.response import HttpResponseBase


class CloseConnectionsAfterRequest:
    """First in MIDDLEWARE, so it runs last: after the session and messages are saved."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        try:
            return self.get_response(request)
        finally:
            for connection in connections.all(initialized_only=True):
                if not connection.in_atomic_block:  # a test's transaction, or ATOMIC_REQUESTS
                    connection.close()
