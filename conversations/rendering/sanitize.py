"""The nh3 allowlist every rendered fragment passes through before it reaches a page."""

from __future__ import annotations

import re

import nh3

from .urls import is_inline_image, is_link_href, is_media_path

_TAGS = {
    *("p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "div"),
    *("strong", "em", "del", "s", "code", "pre", "span", "a", "img"),
    *("ul", "ol", "li", "table", "thead", "tbody", "tr", "th", "td"),
}
# Dropped with everything inside them: their content is not text a reader should see.
_DROP_WITH_CONTENT = {
    *("script", "style", "iframe", "object", "embed", "noscript", "noembed", "noframes"),
    *("template", "svg", "math", "textarea", "title", "xmp", "select", "frameset"),
}
# Classes come only from our own Pygments and table output; elsewhere a class could
# borrow the page's styles (an overlay, a fake button) or a hook in the page's JS.
_CLASSED = ("span", "code", "pre", "div", "td", "th")
_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "ol": {"start"},
    **{tag: {"class"} for tag in _CLASSED},
}
_SAFE_CLASS = re.compile(r"[a-z0-9_ -]{1,200}")
_LIST_START = re.compile(r"[0-9]{1,9}")
LINK_REL = "noopener noreferrer nofollow"


def sanitize(html: str) -> str:
    """Keep only the allowlisted tags, attributes and URLs; running it twice changes nothing."""
    return _CLEANER.clean(html)


def _keep_attribute(tag: str, name: str, value: str) -> str | None:
    if name == "class":
        return value if _SAFE_CLASS.fullmatch(value) else None
    if name == "href":
        return value if is_link_href(value) else None
    if name == "src":
        return value if is_inline_image(value) else None
    if name == "start":
        return value if _LIST_START.fullmatch(value) else None
    return value


def _relative_url(url: str) -> str | None:
    # nh3 calls this for every URL without a scheme, including "//host/...".
    return url if is_media_path(url) else None


_CLEANER = nh3.Cleaner(
    tags=_TAGS,
    clean_content_tags=_DROP_WITH_CONTENT,
    attributes=_ATTRIBUTES,
    attribute_filter=_keep_attribute,
    strip_comments=True,
    link_rel=LINK_REL,
    set_tag_attribute_values={"a": {"target": "_blank"}, "img": {"loading": "lazy"}},
    url_schemes={"http", "https", "mailto", "data"},
    url_relative=_relative_url,
)
