"""The channel layers: Redis pub/sub for several workers, and the embedded (single-process)
layer, Channels' in-memory layer without its per-message costs.

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
from django.core.exceptions import ImproperlyConfigured

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


def redis_layer(url: str) -> dict[str, Any]:
    """The channel layer of several workers: Redis pub/sub.

    A frame is one PUBLISH, pushed to each worker with a tab on the conversation and handed
    to its tabs there. channels_redis's list-based layer costs a worker four round trips to
    Redis per tab per frame: under load a worker fell seconds behind and its tabs lost the
    frames past the capacity. Pub/sub keeps nothing for a worker that is not listening,
    which frames do not need: a tab that (re)connects is sent the answer so far first.
    Pub/sub channels ignore Redis database numbers, so the names carry this site's number:
    sites sharing a server on different numbers stay apart, as their keys do.
    """
    return {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [{"address": url}], "prefix": f"teamchat.db{redis_database(url)}."},
    }


def redis_database(url: str) -> int:
    """The database number a Redis URL selects (its path or `?db=`), read as redis-py does."""
    from redis.connection import parse_url

    try:
        found: dict[str, Any] = parse_url(url)  # type: ignore[no-untyped-call]
        return int(found.get("db") or 0)
    except ValueError as exc:
        raise ImproperlyConfigured(f"REDIS_URL is not a valid Redis URL: {exc}") from None
