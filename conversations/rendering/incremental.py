"""Live Markdown for a streaming reply: closed blocks rendered once, the open tail each time.

The promise: for any text and any way of cutting it into deltas, the `new_blocks_html` of
every update, followed by the `tail_html` of `finish()`, is exactly `render_markdown(text)`.

A block is emitted only when nothing later can change it: markdown-it itself must start a
new top-level block on a complete line after a blank line (so no fence, list, table or
paragraph is still open). Reference links are the one way later text reaches back: a
block that looked up an undefined `[label]` is held in the tail, rendered once, and
rendered again only if that label is later defined.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .engine import render_source, top_level_block_lines
from .highlight import LiveFences
from .live_append import appended
from .live_tables import LiveTable

_MISSING: Any = object()


@dataclass(frozen=True)
class RenderUpdate:
    """HTML to append for good (`new_blocks_html`) and to show for now (`tail_html`)."""

    new_blocks_html: str
    tail_html: str


class _References(dict[str, Any]):
    """markdown-it's reference table, remembering the labels it was asked for in vain."""

    def __init__(self, known: dict[str, Any]) -> None:
        super().__init__(known)
        self.missed: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        # Inline link rules look labels up with .get(); definitions use `in` and [].
        value = super().get(key, _MISSING)
        if value is _MISSING:
            self.missed.add(key)
            return default
        return value


@dataclass
class _Held:
    """Committed source that an undefined reference label may still change."""

    src: str
    html: str
    missed: set[str] = field(default_factory=set)


class IncrementalRenderer:
    """Feed deltas as they arrive; call finish() once at the end."""

    def __init__(self) -> None:
        self._tail = ""  # normalised source not yet committed
        self._pending_cr = False  # a "\r" whose "\n" may be in the next delta
        self._scan = 0  # offset in _tail of the first line not yet scanned
        self._after_blank = False  # whether the last scanned line was blank
        self._references: dict[str, Any] = {}  # definitions in committed text
        self._held: list[_Held] = []
        self._held_html = ""  # the held blocks' HTML joined, sent with every tail
        self._finished = False
        self._fences = LiveFences()  # the open tail's code blocks, highlighted piecewise
        self._table = LiveTable()  # the open tail's table, its settled rows rendered once
        self._drawn: tuple[str, str] | None = None  # the tail and its HTML, as last drawn

    def feed(self, delta: str) -> RenderUpdate:
        """Take more text; returns blocks that are now final and the re-rendered tail."""
        return self.draw(self.take(delta))

    def take(self, delta: str) -> int:
        """Take more text without rendering; returns how much of the tail is now final (the
        `cut` to `draw`: 0 for none). Cheap: it scans only the new lines, so the caller can
        see how much `draw` will render whole before it does."""
        if self._finished:
            raise RuntimeError("feed() after finish()")
        self._tail += self._normalise(delta)
        return self._cut() if self._scan_new_lines() else 0

    def draw(self, cut: int) -> RenderUpdate:
        """The blocks before `cut` (from `take`) rendered for good, and the tail drawn."""
        emitted = self._commit(cut)
        return RenderUpdate(emitted, self._held_html + self._render_live_tail())

    @property
    def open_chars(self) -> int:
        """At most how much source finish() renders: the open tail and the held blocks."""
        return len(self._tail) + sum(len(held.src) for held in self._held)

    def finish(self) -> RenderUpdate:
        """Everything not yet emitted, rendered against the complete text."""
        if self._finished:
            raise RuntimeError("finish() called twice")
        self._finished = True
        if self._pending_cr:
            self._tail += "\n"
        tail_html, references = self._render_tail()
        self._rerender_held(references, set(references) - set(self._references))
        return RenderUpdate("", self._held_html + tail_html)

    def _normalise(self, delta: str) -> str:
        # markdown-it turns "\r\n" and "\r" into "\n" and NUL into U+FFFD; we do it here
        # so offsets agree, keeping back a final "\r" until we know what follows it.
        text = ("\r" if self._pending_cr else "") + delta
        self._pending_cr = text.endswith("\r")
        if self._pending_cr:
            text = text[:-1]
        return text.replace("\r\n", "\n").replace("\r", "\n").replace("\0", "\ufffd")

    def _scan_new_lines(self) -> bool:
        """Scan newly completed lines; True if one of them could start a final cut."""
        found = False
        end = self._tail.rfind("\n")
        while self._scan <= end:
            newline = self._tail.index("\n", self._scan)
            blank = self._tail[self._scan : newline].strip(" \t") == ""
            found = found or (self._after_blank and not blank)
            self._after_blank, self._scan = blank, newline + 1
        return found

    def _cut(self) -> int:
        """Offset in the tail before which every block is final (0: none)."""
        complete = self._tail[: self._tail.rfind("\n") + 1]
        lines = complete.split("\n")
        starts = self._table.block_starts(complete, top_level_block_lines)
        for start in reversed(top_level_block_lines(complete) if starts is None else starts):
            # `start` is a complete line, so it can no longer turn into a continuation.
            if start > 0 and lines[start - 1].strip(" \t") == "":
                return sum(len(line) + 1 for line in lines[:start])
        return 0

    def _commit(self, cut: int) -> str:
        if cut == 0:
            return ""
        src, self._tail = self._tail[:cut], self._tail[cut:]
        self._scan -= cut
        references = _References(self._references)
        html = self._render_final(src, references)
        self._fences, self._table = LiveFences(), LiveTable()  # the tail is another one now
        self._drawn = None
        defined = set(references) - set(self._references)
        self._references = dict(references)
        self._rerender_held(self._references, defined)
        self._held.append(_Held(src, html, references.missed))
        self._held_html += html
        return self._release()

    def _rerender_held(self, known: dict[str, Any], defined: set[str]) -> None:
        """Render again the held blocks that asked for a label now `defined`."""
        stale = [held for held in self._held if held.missed & defined] if defined else []
        for held in stale:
            references = _References(known)
            held.html = render_source(held.src, {"references": references})
            held.missed = references.missed
        if stale:
            self._held_html = "".join(held.html for held in self._held)

    def _release(self) -> str:
        """Emit held blocks from the front once no undefined label can change them."""
        released = 0
        while released < len(self._held) and not self._held[released].missed:
            released += 1
        if released == 0:
            return ""
        emitted = "".join(held.html for held in self._held[:released])
        del self._held[:released]
        self._held_html = "".join(held.html for held in self._held)
        return emitted

    def _render_live_tail(self) -> str:
        """The tail while streaming: words added to its last line of text are added to its
        last drawing (live_append); a long table or code block is drawn from pieces that
        were rendered once (LiveTable, LiveFences); finish() renders everything whole."""
        drawn = self._drawn
        html = None
        if drawn is not None and self._tail.startswith(drawn[0]):
            html = appended(drawn[0], drawn[1], self._tail[len(drawn[0]) :])
        if html is None:
            html = self._render_live_blocks()
        self._drawn = (self._tail, html)
        return html

    def _render_live_blocks(self) -> str:
        def render(src: str) -> str:
            env = {"references": dict(self._references), "live_fences": self._fences}
            drawn = self._fences.fill(render_source(src, env))
            if drawn is None:
                return render_source(src, {"references": dict(self._references)})
            return drawn

        return self._table.render(self._tail, render) or render(self._tail)

    def _render_tail(self) -> tuple[str, dict[str, Any]]:
        # A copy of the definitions: the tail's own are provisional until committed.
        references = dict(self._references)
        return self._render_final(self._tail, references), references

    def _render_final(self, src: str, references: dict[str, Any]) -> str:
        """HTML for good: exactly a whole render of `src`, reusing a long table's settled
        rows where that is exact (LiveTable.render_final), never code pieces (a lexer may
        look further ahead than LiveFences checks)."""
        env = {"references": references}
        drawn = self._table.render_final(src, lambda part: render_source(part, env))
        return render_source(src, env) if drawn is None else drawn
