"""An offline upstream speaking all three wire protocols, as a Django-free ASGI app."""

from __future__ import annotations

from conversations.demo_upstream.app import ASGIApp, DemoUpstream, make_app

__all__ = ["ASGIApp", "DemoUpstream", "make_app"]
