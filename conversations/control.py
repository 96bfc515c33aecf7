"""Coordination between worker processes through the channel layer: Stop and snapshot
requests reach the worker that runs a generation, and every worker sweeps the answers
whose worker died (their lease ran out), and hourly the images picked but never sent."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from conversations import leases, uploads
from conversations.runs import publisher, runs

logger = logging.getLogger(__name__)

CONTROL_GROUP = "generation-control"
PURGE_INTERVAL = 3600.0  # seconds between purges of uploads never sent


class Control:
    """One listener task per process, started by the first socket or generation."""

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    def ensure_running(self) -> None:
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._task = asyncio.create_task(self._run(), name="generation-control")

    async def _run(self) -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        channel = await layer.new_channel()
        await layer.group_add(CONTROL_GROUP, channel)
        sweeper = asyncio.create_task(self._sweep_forever(layer, channel))
        try:
            while True:
                await self._handle(layer, await layer.receive(channel))
        finally:
            sweeper.cancel()

    async def _handle(self, layer: Any, message: dict[str, Any]) -> None:
        pk = message.get("message_id")
        if not isinstance(pk, int) or not runs.is_running(pk):
            return  # another worker's, or nobody's: the sweeper settles orphans
        if message.get("type") == "control.stop":
            await runs.stop(pk)
        elif message.get("type") == "control.snapshot":
            state = runs.snapshot(pk)
            if state is not None:
                reply = {"type": "chat.snapshot", "message_id": pk, "blocks": state.blocks}
                reply |= {"tail": state.tail, "reasoning": state.reasoning}
                await layer.send(message["reply_to"], reply)

    async def _sweep_forever(self, layer: Any, channel: str) -> None:
        interval = max(1.0, settings.GENERATION_LEASE_SECONDS / 3)
        next_purge = 0.0
        while True:
            await asyncio.sleep(interval)
            try:
                await sweep_and_announce()
            except Exception:
                logger.exception("sweeping interrupted answers failed")
            if time.monotonic() >= next_purge:
                next_purge = time.monotonic() + PURGE_INTERVAL
                try:
                    # Group membership expires in the in-memory layer (a day): renew it.
                    await layer.group_add(CONTROL_GROUP, channel)
                    await sync_to_async(uploads.purge_unsent)()
                except Exception:
                    logger.exception("hourly upkeep (control group, unsent uploads) failed")


async def sweep_and_announce(conversation_id: int | None = None) -> None:
    for pk, conversation in await leases.asweep(conversation_id):
        await publisher(conversation)({"type": "chat.message_updated", "message_id": pk})


async def request(kind: str, message_id: int, reply_to: str = "") -> None:
    """Ask every worker; the one running the generation acts."""
    layer = get_channel_layer()
    if layer is not None:
        frame = {"type": f"control.{kind}", "message_id": message_id, "reply_to": reply_to}
        await layer.group_send(CONTROL_GROUP, frame)


listener = Control()
