"""Batches streamed deltas into frames (the first at once, then one per interval, stretched
under load by the pacer) and renders the Markdown incrementally: finished blocks once, only
the open tail again.

While an answer streams, the coalescer also paces its socket reads (`pacing_reads`): a frame
goes out when the read that follows the text finds it due, and no read happens before the
next frame is due. Batching text that way costs nothing in delay (no frame could go out
sooner), and what the upstream sent meanwhile is read, parsed and added in one go.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from conversations.pacer import pacer
from conversations.providers import network
from conversations.rendering import IncrementalRenderer, RenderUpdate

Publish = Callable[[dict[str, Any]], Awaitable[None]]

# The most of an answer's time that re-rendering its open tail may take. A long table or code
# block costs more to render with every frame (its whole block again); spacing its frames by
# that cost keeps the render work of a whole answer linear in its length, and one long
# listing from holding the event loop for everyone else.
TAIL_RENDER_SHARE = 0.25
# Source characters from which an answer's last whole render goes to a worker thread: about
# 5 ms of rendering, what the interpreter lets one thread run before another gets a turn.
OFF_LOOP_CHARS = 2_000
# One thread for those renders: they hold the interpreter while they run, so more threads
# would only take turns; and the loop's default executor stays free for what it does
# (resolving upstream host names when a connection opens).
_LONG_RENDERS = ThreadPoolExecutor(max_workers=1, thread_name_prefix="long-render")

T = TypeVar("T")


def on_render_thread(render: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    """`render(*args)` on the long-render thread, the event loop serving others meanwhile."""
    return asyncio.get_running_loop().run_in_executor(_LONG_RENDERS, render, *args)


async def render_whole(size: int, render: Callable[..., T], *args: Any) -> T:
    """`render(*args)`, a whole render of `size` source characters: at once when that is
    quick, else on the long-render thread."""
    if size < OFF_LOOP_CHARS:
        return render(*args)
    return await on_render_thread(render, *args)


@dataclass(frozen=True)
class LiveState:
    """What a screen shows of a streaming answer: finished blocks, the open tail, reasoning."""

    blocks: str
    tail: str
    reasoning: str


class DeltaCoalescer:
    """Collects the text and reasoning deltas of one answer and publishes them in batches.

    Each frame carries the character offsets where its new block HTML and reasoning start,
    so a client that already holds a snapshot can drop what it has (resume without gaps or
    duplicates). The tail is sent whole each time: it is small and replaces itself.
    """

    def __init__(self, message_id: int, publish: Publish, interval: float) -> None:
        self.message_id = message_id
        self._publish = publish
        self._interval = interval
        self._renderer = IncrementalRenderer()
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._blocks: list[str] = []  # every block published so far, for snapshots
        self._blocks_chars = 0
        self._tail = ""
        self._reasoning_sent: list[str] = []
        self._reasoning_chars = 0
        self._last_flush = float("-inf")
        self._timer: asyncio.Task[None] | None = None
        self._timer_sleeping = False
        self._lock = asyncio.Lock()  # keeps frames in order when the timer and close race
        self._reads_paced = False
        self._render_seconds = 0.0  # what rendering the last frame took
        self._drawing: asyncio.Future[RenderUpdate] | None = None  # on the long-render thread

    def snapshot(self) -> LiveState:
        return LiveState("".join(self._blocks), self._tail, "".join(self._reasoning_sent))

    async def add(self, text: str = "", reasoning: str = "") -> None:
        if text:
            self._text.append(text)
        if reasoning:
            self._reasoning.append(reasoning)
        if self._reads_paced:
            return  # published before the next read, with whatever else this read brought
        wait = self._last_flush + self._frame_interval() - time.monotonic()
        if wait <= 0:
            await self.flush()
        elif self._timer is None:
            self._timer = asyncio.create_task(self._flush_later(wait))

    @contextlib.contextmanager
    def pacing_reads(self) -> Iterator[None]:
        """In this block, in this task, every upstream socket read first awaits
        `_before_read`, and `add` only collects."""
        token = network.before_read.set(self._before_read)
        self._reads_paced = True
        try:
            yield
        finally:
            self._reads_paced = False
            network.before_read.reset(token)

    async def _before_read(self) -> None:
        """Everything read so far has been added: publish it once its frame is due, then
        let the socket gather until the next frame is due (nothing could go out before)."""
        if self._text or self._reasoning:
            await self._until_due()
            await self.flush()
        await self._until_due()

    async def _until_due(self) -> None:
        due = self._last_flush + self._frame_interval()
        if due > time.monotonic():
            await asyncio.sleep(due - time.monotonic())
            pacer.late(time.monotonic() - due)

    def _frame_interval(self) -> float:
        return max(pacer.interval(self._interval), self._render_seconds / TAIL_RENDER_SHARE)

    async def _flush_later(self, delay: float) -> None:
        due = time.monotonic() + delay
        self._timer_sleeping = True
        try:
            await asyncio.sleep(delay)
        finally:
            self._timer_sleeping = False
        pacer.late(time.monotonic() - due)
        try:
            await self.flush()
        finally:
            self._timer = None

    async def flush(self) -> None:
        async with self._lock:
            await self._flush_locked()

    async def _flush_locked(self) -> None:
        await self._renderer_free()
        if not (self._text or self._reasoning):
            return
        text, reasoning = "".join(self._text), "".join(self._reasoning)
        self._text.clear()
        self._reasoning.clear()
        blocks_offset, reasoning_offset = self._blocks_chars, self._reasoning_chars
        if reasoning:
            self._reasoning_sent.append(reasoning)
            self._reasoning_chars += len(reasoning)
        blocks = await self._draw(text) if text else ""
        frame = {
            "type": "chat.delta",
            "message_id": self.message_id,
            "blocks": blocks,
            "blocks_offset": blocks_offset,
            "tail": self._tail,
            "reasoning": reasoning,
            "reasoning_offset": reasoning_offset,
            "text": text,
        }
        self._last_flush = time.monotonic()
        await self._publish(frame)

    async def _draw(self, text: str) -> str:
        """Renders `text` onto the answer so far; returns the HTML of the blocks it finished.

        Finishing a long block renders it whole (a code block is highlighted whole: its
        pieces are exact only while it streams), 25-50 ms for a 20 KB listing. From
        OFF_LOOP_CHARS that runs on the long-render thread. If the frame is cancelled
        meanwhile (Stop), the render still completes and is kept: the stored answer is
        assembled from these blocks."""
        started = time.perf_counter()
        cut = self._renderer.take(text)
        if cut < OFF_LOOP_CHARS:
            return self._drawn(self._renderer.draw(cut), started)
        drawing = self._drawing = on_render_thread(self._renderer.draw, cut)
        kept: list[str] = []

        def keep(done: asyncio.Future[RenderUpdate]) -> None:  # runs before the await returns
            if not done.cancelled() and done.exception() is None:
                kept.append(self._drawn(done.result(), started))

        drawing.add_done_callback(keep)
        await asyncio.shield(drawing)
        return kept[0]

    def _drawn(self, update: RenderUpdate, started: float) -> str:
        self._render_seconds = time.perf_counter() - started
        pacer.spent(self._render_seconds)
        self._tail = update.tail_html
        if update.new_blocks_html:
            self._blocks.append(update.new_blocks_html)
            self._blocks_chars += len(update.new_blocks_html)
        return update.new_blocks_html

    async def _renderer_free(self) -> None:
        """Waits for a render left running on the long-render thread by a cancelled frame:
        the renderer is used by one thread at a time."""
        drawing = self._drawing
        if drawing is not None and not drawing.done():
            await asyncio.wait([drawing])

    async def final_html(self) -> str:
        """The whole answer's HTML, after close(): the blocks already rendered for the frames
        and the tail rendered once more against the complete text (equal to rendering the
        whole answer at once, without doing so).

        That last render is whole, so a long open block costs in proportion: a 20 KB code
        listing is 25-50 ms of highlighting. On the event loop that would hold up every
        other answer's frames; on a worker thread the loop takes its turns meanwhile."""
        await self._renderer_free()
        return await render_whole(self._renderer.open_chars, self._final_html)

    def _final_html(self) -> str:
        return "".join(self._blocks) + self._renderer.finish().tail_html

    async def close(self) -> None:
        """Stop the timer and publish whatever is still pending."""
        timer = self._timer
        if timer is not None:
            if self._timer_sleeping:
                timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer
            self._timer = None
        await self.flush()
