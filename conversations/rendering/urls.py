"""Which URLs a rendered message may link to or load."""

from __future__ import annotations

import re

_LINK_SCHEMES = ("http://", "https://", "mailto:")
_REMOTE_SCHEMES = ("http://", "https://", "//")
# Uploaded images are served from /media/; anything else on our own origin (admin, API
# endpoints) must not be reachable through an <img> or a link a model wrote.
_MEDIA_PATH = re.compile(r"/media/[A-Za-z0-9_\-./%]+")
# Percent-encoded dots and slashes are resolved by browsers too, so they count as traversal.
_TRAVERSAL = ("..", "%2e", "%2f", "%5c", "//")
_INLINE_IMAGE = re.compile(r"data:image/(?:png|jpeg|gif|webp);base64,[A-Za-z0-9+/]+={0,2}")


def is_media_path(url: str) -> bool:
    """A same-site upload path, with no way to climb out of /media/."""
    lowered = url.lower()
    return bool(_MEDIA_PATH.fullmatch(url)) and not any(t in lowered[1:] for t in _TRAVERSAL)


def link_href(url: str) -> str | None:
    """The href to keep for a link to `url`, or None if it must not be a link."""
    if url.startswith("//"):
        # Protocol-relative: on our https pages it means https; spelling it out keeps the
        # scheme check below the only one that matters.
        url = "https:" + url
    if url.lower().startswith(_LINK_SCHEMES) or is_media_path(url):
        return url
    return None


def is_link_href(url: str) -> bool:
    """Whether `url` may stay as an href in the final HTML."""
    return link_href(url) == url


def is_inline_image(url: str) -> bool:
    """Images we load: embedded raster data or our own uploads, never a remote server."""
    return bool(_INLINE_IMAGE.fullmatch(url)) or is_media_path(url)


def is_remote(url: str) -> bool:
    """A URL on another server, which an <img> would fetch (and leak data to)."""
    return url.lower().startswith(_REMOTE_SCHEMES)
