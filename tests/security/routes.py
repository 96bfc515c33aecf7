"""Every URL pattern of the project, walked from the root resolver and filled with real ids.

Patterns added later are picked up automatically; a parameter nobody taught `fill` about
fails loudly, so a new kind of URL cannot slip past the access tests unchecked.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RegexPattern

_ROUTE_PARAM = re.compile(r"<(?:\w+:)?(\w+)>")
_REGEX_PARAM = re.compile(r"\(\?P<(\w+)>[^)]*\)")


@dataclass(frozen=True)
class Route:
    pattern: str  # the full pattern as written, e.g. "c/<int:pk>/rename/"
    name: str  # namespaced ("admin:index"); "" for unnamed patterns
    segments: tuple[tuple[str, bool], ...]  # (pattern text, is a regex) per level

    @property
    def is_admin(self) -> bool:
        return self.pattern.startswith("admin/")

    @property
    def params(self) -> list[str]:
        found: list[str] = []
        for text, is_regex in self.segments:
            found += (_REGEX_PARAM if is_regex else _ROUTE_PARAM).findall(text)
        return found

    def url(self, value: Callable[[Route, str], str]) -> str:
        """The path with every parameter replaced by `value(route, name)`."""
        parts = []
        for text, is_regex in self.segments:
            if is_regex:
                text = _REGEX_PARAM.sub(lambda m: value(self, m[1]), text.strip("^$"))
            else:
                text = _ROUTE_PARAM.sub(lambda m: value(self, m[1]), text)
            parts.append(text)
        return "/" + "".join(parts)

    def __str__(self) -> str:
        return f"{self.pattern} ({self.name or 'unnamed'})"


def _walk(
    patterns: list[URLPattern | URLResolver],
    segments: tuple[tuple[str, bool], ...] = (),
    namespace: str = "",
) -> Iterator[Route]:
    for entry in patterns:
        here = (*segments, (str(entry.pattern), isinstance(entry.pattern, RegexPattern)))
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from _walk(entry.url_patterns, here, inner)
        else:
            pattern = "".join(text for text, _ in here)
            yield Route(pattern, f"{namespace}{entry.name}" if entry.name else "", here)


def all_routes() -> list[Route]:
    return list(_walk(get_resolver().url_patterns))
