"""This process's running generations: start, stop and snapshot them; publish their frames."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import httpx
from channels.layers import get_channel_layer

from conversations import titles
from conversations.coalescer import LiveState
from conversations.providers.network import upstream_client
from conversations.streaming import Generation, Job, JobError, fail_before_start, load_job

logger = logging.getLogger(__name__)


def group_name(conversation_id: int) -> str:
    return f"conversation-{conversation_id}"


class Runs:
    """Owns every generation task of this process (a strong reference each)."""

    def __init__(self) -> None:
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._live: dict[int, Generation] = {}
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    def client(self) -> httpx.AsyncClient:
        """One pooled client per event loop; timeouts are set per request from the provider."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._client.is_closed or self._client_loop is not loop:
            self._client_loop = loop
            limits = httpx.Limits(max_connections=None, max_keepalive_connections=50)
            self._client = upstream_client(limits)
        return self._client

    def is_running(self, message_id: int) -> bool:
        return message_id in self._tasks

    def start(self, message_id: int, conversation_id: int, job: Job | None = None) -> None:
        """`job`: the upstream call when the caller already prepared it (saves a database trip)."""
        if message_id in self._tasks:
            return
        task = asyncio.create_task(
            self._run(message_id, conversation_id, job), name=f"generation-{message_id}"
        )
        self._tasks[message_id] = task
        task.add_done_callback(lambda _: self._forget(message_id))

    def _forget(self, message_id: int) -> None:
        self._tasks.pop(message_id, None)
        self._live.pop(message_id, None)

    async def _run(self, message_id: int, conversation_id: int, job: Job | None) -> None:
        publish = publisher(conversation_id)
        try:
            job = job or await load_job(message_id)
        except JobError as exc:
            await fail_before_start(message_id, str(exc), publish)
            return
        except Exception:
            logger.exception("could not prepare message %s", message_id)
            await fail_before_start(message_id, "This answer could not be started.", publish)
            return
        generation = Generation(job=job, publish=publish)
        self._live[message_id] = generation
        await generation.run(self.client())
        if generation.finish is not None and titles.enabled():
            self._live.pop(message_id, None)
            await titles.generate_title(conversation_id, self.client(), publish)

    async def stop(self, message_id: int) -> bool:
        """Cancel a local generation and wait until its partial text is saved."""
        task = self._tasks.get(message_id)
        if task is None:
            return False
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return True

    async def wait(self, message_id: int) -> None:
        """Wait until a local generation has ended (for tests and graceful shutdown)."""
        task = self._tasks.get(message_id)
        if task is not None:
            await asyncio.wait({task})

    def snapshot(self, message_id: int) -> LiveState | None:
        generation = self._live.get(message_id)
        return generation.snapshot() if generation else None

    async def stop_all(self) -> None:
        for message_id in list(self._tasks):
            await self.stop(message_id)


def publisher(conversation_id: int) -> Any:
    """Frames to every tab of the conversation, on any worker. A frame the channel layer
    cannot take (Redis down or restarting) is dropped, not raised: the answer goes on and is
    saved. A tab that missed frames sees the gap in the next frame's offsets and is redrawn
    from the answer as it stands (tests/test_redis_outage.py)."""
    layer = get_channel_layer()
    group = group_name(conversation_id)

    async def publish(frame: dict[str, Any]) -> None:
        if layer is None:
            return
        try:
            await layer.group_send(group, frame)
        except Exception as exc:
            _warn_unpublished(exc)

    return publish


_warned_at = float("-inf")


def _warn_unpublished(exc: Exception) -> None:
    """Once a minute at most: a Redis outage fails every frame of every answer."""
    global _warned_at
    now = time.monotonic()
    if now - _warned_at >= 60:
        _warned_at = now
        logger.warning("could not publish frames to the channel layer", exc_info=exc)


runs = Runs()
