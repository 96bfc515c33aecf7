"""Fenced code to Pygments HTML, coloured by the CSS classes in static/css/highlight.css."""

from __future__ import annotations

import re
import secrets
from functools import lru_cache
from typing import Any

from markdown_it.common.utils import escapeHtml
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import find_lexer_class_by_name
from pygments.util import ClassNotFound

from .sanitize import sanitize

# nowrap: we write the <pre><code> wrapper ourselves so every code block has one shape.
_FORMATTER = HtmlFormatter(nowrap=True)
_CLASS_UNSAFE = re.compile(r"[^a-z0-9_-]")
_LANGUAGE_MAX = 40


def render_fence(code: str, info: str) -> str:
    """A fenced block as <pre class="highlight"><code class="language-x">…</code></pre>."""
    head, lexer_class = _fence_head(info)
    return head + _body(code, lexer_class) + _FENCE_END


class LiveFences:
    """Highlighting for the code blocks of a tail still being written, which is rendered
    again every frame: Pygments and the sanitiser over the whole block each time would make
    a long listing cost quadratic time. So a block's lines are settled in pieces, whose
    sanitised HTML is kept, and only the lines after the last piece are highlighted again.

    A piece is highlighted on its own, from the lexer's first state. It is settled only where
    that is invisible: once SETTLE_LINES complete lines follow the last piece, the lines up to
    KEEP_OPEN before the end are tried as a piece, and kept if highlighting them and the
    lines after them separately gives exactly what highlighting both together gives. (Inside
    a string or comment it does not, so no piece starts there.) Text that comes later could in
    principle still change how the lexer read a settled piece; the finished block is always
    highlighted whole (`render_fence`).

    `render` leaves a marker where a block's body goes and `fill` puts the sanitised body
    there after the tail as a whole was sanitised, so kept pieces are not sanitised again.
    The markers hold a random nonce: model text cannot forge one.
    """

    SETTLE_LINES = 12  # complete lines after the last piece before the next is tried
    KEEP_OPEN = 5  # complete lines left after a piece, and compared to settle it

    def __init__(self) -> None:
        self._settled: dict[tuple[int, str], tuple[str, str]] = {}  # (code, html) per block
        self._tried: dict[tuple[int, str], int] = {}  # lines after the pieces at a failed try
        self._nonce = secrets.token_hex(8)
        self._bodies: dict[str, str] = {}  # marker -> sanitised body, for one render

    def render(self, code: str, info: str, key: int) -> str:
        """`key`: where the block starts in the tail (its first line), stable across frames."""
        head, lexer_class = _fence_head(info)
        if lexer_class is None:
            return head + escapeHtml(code) + _FENCE_END
        block = (key, info)
        settled, html = self._settled.get(block, ("", ""))
        if not code.startswith(settled):
            settled, html = "", ""
            self._tried.pop(block, None)
        rest = code[len(settled) :]
        lines = rest.count("\n")
        if lines > self.SETTLE_LINES and lines >= self._tried.get(block, 0) + self.KEEP_OPEN:
            if piece := _piece(rest, lexer_class, self.KEEP_OPEN):
                settled, rest = settled + rest[: len(piece[0])], rest[len(piece[0]) :]
                html += sanitize(piece[1])
                self._settled[block] = (settled, html)
            else:
                self._tried[block] = lines
        marker = f"\ue000{self._nonce}.{key}\ue001"
        self._bodies[marker] = html + sanitize(_highlighted(rest, lexer_class))
        return head + marker + _FENCE_END

    def fill(self, html: str) -> str | None:
        """The sanitised tail with each block's body in place of its marker; None if a
        marker did not come through (then render without LiveFences)."""
        bodies, self._bodies = self._bodies, {}
        for marker, body in bodies.items():
            if marker not in html:
                return None
            html = html.replace(marker, body, 1)
        return html


_FENCE_END = "</code></pre>\n"


def _piece(code: str, lexer_class: Any, keep_open: int) -> tuple[str, str] | None:
    """(source, HTML) of the lines of `code` before its last `keep_open` complete lines, if
    highlighting them on their own changes nothing in those lines or the ones after."""
    complete = code[: code.rindex("\n") + 1]
    cut = len(complete)
    for _ in range(keep_open):
        cut = complete.rindex("\n", 0, cut - 1) + 1
    if cut == 0:
        return None
    piece, after = (
        _highlighted(complete[:cut], lexer_class),
        _highlighted(complete[cut:], lexer_class),
    )
    if piece + after != _highlighted(complete, lexer_class):
        return None
    return complete[:cut], piece


@lru_cache(maxsize=256)
def _fence_head(info: str) -> tuple[str, Any | None]:
    """The opening tags for a fence's info string, and its lexer (None: not highlighted)."""
    words = info.split(maxsplit=1)
    language = words[0].lower()[:_LANGUAGE_MAX] if words else ""
    lexer_class = _lexer_class(language) if language else None
    name = _language_class(language, lexer_class)
    code_open = f'<code class="language-{name}">' if name else "<code>"
    return f'<pre class="highlight">{code_open}', lexer_class


def _body(code: str, lexer_class: Any | None) -> str:
    return escapeHtml(code) if lexer_class is None else _highlighted(code, lexer_class)


@lru_cache(maxsize=256)
def _lexer_class(language: str) -> Any | None:
    # Only an explicitly named language is highlighted: guessing misfires on prose and
    # costs a pass of every lexer over text a model chose.
    try:
        return find_lexer_class_by_name(language)
    except ClassNotFound:
        return None


def _highlighted(code: str, lexer_class: Any) -> str:
    # A fresh lexer per block (they are cheap) so no state is shared between threads;
    # stripnl/ensurenl off so the code comes out character for character.
    lexer = lexer_class(stripnl=False, ensurenl=False)
    return str(highlight(code, lexer, _FORMATTER))


def _language_class(language: str, lexer_class: Any | None) -> str:
    # Pygments' own first alias is the canonical name ("c++" -> "cpp"); an unknown name is
    # kept only when it is already class-safe, since it came from untrusted text.
    if lexer_class is not None and lexer_class.aliases:
        return _CLASS_UNSAFE.sub("-", str(lexer_class.aliases[0]))
    return language if language and not _CLASS_UNSAFE.search(language) else ""
