"""The embedded (single-process) channel layer: Channels' in-memory layer without its
per-message costs.

Channels' `InMemoryChannelLayer` sweeps every channel and group for expired entries on each
`receive` and `group_send`, starts a task per group member and copies the event per member.
With hundreds of open sockets and 20-30 frames a second per answer, that sweep alone took a
fifth of the worker's CPU. Here the sweep runs at most once a second (expiry is counted in
tens of seconds anyway), a group send is a loop of `put_nowait`, and an event is copied once
per send: receivers treat events as read-only, as they must with a real (serialising) layer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from copy import deepcopy
from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer

SWEEP_INTERVAL = 1.0  # seconds between sweeps for expired messages and group memberships


class LocalChannelLayer(InMemoryChannelLayer):  # type: ignore[misc]  # channels ships no types
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._next_sweep = 0.0

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + SWEEP_INTERVAL
            super()._clean_expired()

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        assert isinstance(message, dict), "message is not a dict"
        assert "__asgi_channel__" not in message
        self.require_valid_channel_name(channel)
        self._put(channel, deepcopy(message))

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_group_name(group)
        self._clean_expired()
        members = self.groups.get(group)
        if not members:
            return
        event = deepcopy(message)
        for channel in list(members):
            with contextlib.suppress(ChannelFull):  # as Channels: a full socket misses it
                self._put(channel, event)

    def _put(self, channel: str, message: dict[str, Any]) -> None:
        queue = self.channels.get(channel)
        if queue is None:
            queue = self.channels[channel] = asyncio.Queue(maxsize=self.get_capacity(channel))
        try:
            queue.put_nowait((time.time() + self.expiry, message))
        except asyncio.QueueFull:
            raise ChannelFull(channel) from None
