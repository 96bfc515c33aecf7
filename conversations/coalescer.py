"""Batches streamed deltas into frames: the first at once, then at most one per interval."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

Publish = Callable[[dict[str, Any]], Awaitable[None]]


class DeltaCoalescer:
    """Collects text and reasoning deltas of one message and publishes them in batches.

    The first delta goes out immediately (time to first token is never held back);
    later ones wait until `interval` has passed since the previous frame. Each frame
    carries the character offsets where its text starts, so a client that already
    holds a snapshot can drop what it has (resume without duplicates).
    """

    def __init__(self, message_id: int, publish: Publish, interval: float) -> None:
        self.message_id = message_id
        self._publish = publish
        self._interval = interval
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self.text_offset = 0  # characters of text already published
        self.reasoning_offset = 0
        self._last_flush = float("-inf")
        self._timer: asyncio.Task[None] | None = None
        self._timer_sleeping = False
        self._lock = asyncio.Lock()  # keeps frames in order when the timer and close race

    async def add(self, text: str = "", reasoning: str = "") -> None:
        if text:
            self._text.append(text)
        if reasoning:
            self._reasoning.append(reasoning)
        wait = self._last_flush + self._interval - time.monotonic()
        if wait <= 0:
            await self.flush()
        elif self._timer is None:
            self._timer = asyncio.create_task(self._flush_later(wait))

    async def _flush_later(self, delay: float) -> None:
        self._timer_sleeping = True
        try:
            await asyncio.sleep(delay)
        finally:
            self._timer_sleeping = False
        try:
            await self.flush()
        finally:
            self._timer = None

    async def flush(self) -> None:
        async with self._lock:
            await self._flush_locked()

    async def _flush_locked(self) -> None:
        if not (self._text or self._reasoning):
            return
        text, reasoning = "".join(self._text), "".join(self._reasoning)
        self._text.clear()
        self._reasoning.clear()
        frame = {
            "type": "chat.delta",
            "message_id": self.message_id,
            "text": text,
            "text_offset": self.text_offset,
            "reasoning": reasoning,
            "reasoning_offset": self.reasoning_offset,
        }
        self.text_offset += len(text)
        self.reasoning_offset += len(reasoning)
        self._last_flush = time.monotonic()
        await self._publish(frame)

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
