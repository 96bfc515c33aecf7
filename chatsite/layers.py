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
from channels_redis.pubsub import (
    RedisPubSubChannelLayer,
    RedisPubSubLoopLayer,
    RedisSingleShardConnection,
)
from channels_redis.utils import _wrap_close
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
        self._put(channel, _copied(message))

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_group_name(group)
        self._clean_expired()
        members = self.groups.get(group)
        if not members:
            return
        event = _copied(message)
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


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _copied(message: dict[str, Any]) -> dict[str, Any]:
    """The event as sent, kept from the sender's later changes. A frame is a flat dict of
    strings and numbers: a plain copy does, at an eighth of what deepcopy costs (5 µs a
    frame, thousands of frames a second under load)."""
    if all(type(value) in _SCALARS for value in message.values()):
        return dict(message)
    return deepcopy(message)


class BatchedShard(RedisSingleShardConnection):  # type: ignore[misc]
    """A Redis connection of the pub/sub layer that publishes whatever is waiting in one
    pipeline, in order: one round trip for many frames.

    channels_redis publishes one frame at a time under a lock, each waiting for the reply
    to the one before. With 50 answers on a worker (a thousand frames a second), a frame
    waited 30-40 ms for its turn, over 100 ms at times, and every answer's upstream reading
    waited with it. Here a publish still returns once Redis has taken its frame.
    """

    def __init__(self, host: dict[str, Any], channel_layer: Any) -> None:
        super().__init__(host, channel_layer)
        self._outbox: list[tuple[str, bytes, asyncio.Future[None]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def publish(self, channel: str, message: bytes) -> None:
        published = asyncio.get_running_loop().create_future()
        self._outbox.append((channel, message, published))
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_waiting())
        await published

    async def _send_waiting(self) -> None:
        batch: list[tuple[str, bytes, asyncio.Future[None]]] = []
        try:
            while self._outbox:
                batch, self._outbox = self._outbox, []
                try:
                    self._ensure_redis()
                    if len(batch) == 1:  # a pipeline costs more than a lone command
                        await self._redis.publish(*batch[0][:2])
                    else:
                        async with self._redis.pipeline(transaction=False) as pipe:
                            for channel, message, _ in batch:
                                pipe.publish(channel, message)
                            await pipe.execute()
                except Exception as exc:  # each publisher of the batch gets the error
                    for *_, published in batch:
                        if not published.done():
                            published.set_exception(exc)
                else:
                    for *_, published in batch:
                        if not published.done():
                            published.set_result(None)
                batch = []
        finally:
            self._sender = None
            for *_, published in batch + self._outbox:  # cancelled (a flush, the loop closing)
                published.cancel()
            self._outbox = []

    async def flush(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
        await super().flush()


class BatchedLoopLayer(RedisPubSubLoopLayer):  # type: ignore[misc]
    _shards: list[RedisSingleShardConnection]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._shards = [BatchedShard(shard.host, self) for shard in self._shards]


class RedisPubSubLayer(RedisPubSubChannelLayer):  # type: ignore[misc]
    """channels_redis's pub/sub layer, with frames published in batches (BatchedShard)."""

    def _get_layer(self) -> BatchedLoopLayer:
        loop = asyncio.get_running_loop()
        layer: BatchedLoopLayer | None = self._layers.get(loop)
        if layer is None:
            layer = self._layers[loop] = BatchedLoopLayer(
                *self._args, **self._kwargs, channel_layer=self
            )
            _wrap_close(self, loop)
        return layer


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
        "BACKEND": "chatsite.layers.RedisPubSubLayer",
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
