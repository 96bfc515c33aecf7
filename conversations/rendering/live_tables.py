"""A long table still being written, drawn without parsing all its rows again every frame.

markdown-it renders a table's body rows one by one, each from its own line and the table's
header (column count, alignment). So while the open tail is one table, rows that are
settled (complete lines that rendered as rows of it: nothing later can change them) are
rendered once, in groups, and only the header and the rows after them are rendered again
each frame. The pieces are stitched at the row boundaries; a tail this does
not recognise is rendered whole.

Rows of one table affect each other in one way: markdown-it fills in missing cells, at most
65,536 per table, and ends the table there. A table that could reach that cap (columns times
lines) is rendered whole. Text after the table reaches back in one way: a reference
definition can turn a row's `[label]` into a link. While streaming, settled rows keep the
links known when they were settled until the block is committed; `render_final` reuses them
only when they hold no `[` at all, so committed and finished tables are exact.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from markdown_it.rules_block.table import MAX_AUTOCOMPLETED_CELLS

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
        if head is None or _could_reach_cell_cap(head.group(), tail):
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

    def block_starts(self, complete: str, scan: Callable[[str], list[int]]) -> list[int] | None:
        """`scan(complete)` (the lines where top-level blocks start), scanning only the header
        and what follows the settled rows; None when `complete` does not go on from them.

        Settled rows are rows of the table whatever comes after them, so the table still
        starts at line 0 and every later block starts as many lines further down."""
        settled = self._head + self._rows
        if not self._rows or not complete.startswith(settled):
            return None
        if _could_reach_cell_cap(self._head, complete):
            return None
        starts = scan(self._head + complete[len(settled) :])
        if not starts or starts[0] != 0:
            return None
        skipped = self._rows.count("\n")
        return [0] + [start + skipped for start in starts[1:]]

    def render_final(self, src: str, render: Callable[[str], str]) -> str | None:
        """`src` for good (a commit, or the end of the answer): drawn from the settled rows
        when that is exactly a whole render with `render`, else None.

        Exact when no settled row can look a reference up (a lookup needs a `[`): then no
        definition, earlier or later, changes them, and `render` sees every lookup the rows
        after them make. Saves rendering a long table whole when it ends, a stall of tens of
        milliseconds on the event loop for every answer it serves."""
        if "[" in self._rows:
            return None
        return self.render(src, render)

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


def _could_reach_cell_cap(head: str, tail: str) -> bool:
    """Whether markdown-it could fill in its cap of missing cells: at most a column count
    (delimiter pipes + 1 bounds it) for every line."""
    columns = head.rstrip("\n").rsplit("\n", 1)[-1].count("|") + 1
    return columns * (tail.count("\n") + 1) > MAX_AUTOCOMPLETED_CELLS


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
