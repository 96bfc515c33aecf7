"""A long table still being written, drawn without parsing all its rows again every frame.

markdown-it renders a table's body rows one by one, each from its own line and the table's
header (column count, alignment). So while the open tail is one table, rows that are
settled (complete lines that rendered as rows of it: nothing later can change them) are
rendered once, in groups, and only the header and the rows after them are rendered again
each frame. The pieces are stitched at the row boundaries; a tail this does
not recognise is rendered whole.

The one way rows of one table affect each other is markdown-it's cap on empty cells it fills
in (65,536 per table): past it, the rendered pieces can differ from a whole render while the
table streams. The finished table is always rendered whole.
"""

from __future__ import annotations

import re
from collections.abc import Callable

SETTLE_ROWS = 10  # complete rows after the settled ones before another group is settled
KEEP_OPEN = 2  # the last complete rows stay unsettled

_HEAD = re.compile(r"\|[^\n]*\n[ \t]*\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*\n")
_OPEN, _BODY, _CLOSE = "<table>\n<thead>\n", "<tbody>\n", "</tbody>\n</table>\n"
_HEAD_END = "</thead>\n"


class LiveTable:
    """The settled rows of the tail's table: their source and their `<tr>` HTML."""

    def __init__(self) -> None:
        self._head = ""  # the header and delimiter lines
        self._rows = ""  # settled row lines
        self._rows_html = ""
        self._thead_html = ""
        self._ended = False  # a line ended the table: nothing after it is a row of it

    def render(self, tail: str, render: Callable[[str], str]) -> str | None:
        """The tail's HTML, or None when it is not a table with settled rows to reuse."""
        head = _HEAD.match(tail)
        if head is None:
            return None
        body = tail[head.end() :]
        if head.group() != self._head or not body.startswith(self._rows):
            self._head, self._rows, self._rows_html, self._thead_html = head.group(), "", "", ""
            self._ended = False
        self._settle(body[len(self._rows) :], render)
        rest = body[len(self._rows) :]
        if not self._rows:
            return None
        drawn = _split(render(self._head + rest))
        if drawn is None or drawn[0] != self._thead_html:
            return None
        _, rows_html, after = drawn
        return self._thead_html + _BODY + self._rows_html + rows_html + _CLOSE + after

    def _settle(self, rest: str, render: Callable[[str], str]) -> None:
        if self._ended:
            return
        lines = rest.split("\n")[:-1]  # complete lines only
        count = 0
        while count < len(lines) - KEEP_OPEN and lines[count].strip(" \t"):
            count += 1  # a blank line ends the table
        if count < SETTLE_ROWS:
            return
        group = "".join(line + "\n" for line in lines[:count])
        drawn = _split(render(self._head + group))
        if drawn is None or drawn[2] or (self._thead_html and drawn[0] != self._thead_html):
            # A line in the group ended the table, and a longer group would hold it too:
            # the rows before it stay unsettled and what follows is rendered with them.
            self._ended = True
            return
        self._thead_html = drawn[0]
        self._rows += group
        self._rows_html += drawn[1]


def _split(html: str) -> tuple[str, str, str] | None:
    """A rendered table as (opening tags through </thead>, its rows' HTML, what follows)."""
    if not html.startswith(_OPEN) or (end := html.find(_HEAD_END)) < 0:
        return None
    thead = html[: end + len(_HEAD_END)]
    rest = html[len(thead) :]
    if rest.startswith("</table>\n"):
        return thead, "", rest[len("</table>\n") :]
    if not rest.startswith(_BODY) or (close := rest.find(_CLOSE)) < 0:
        return None
    return thead, rest[len(_BODY) : close], rest[close + len(_CLOSE) :]
