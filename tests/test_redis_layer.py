"""The channel layer of several workers, on a real Redis (a redis-server of the tests' own):
frames reach the site's own members and never another site's that shares the server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.exceptions
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from chatsite.layers import redis_database, redis_layer
from tests.ports import free_port

REDIS = "redis://127.0.0.1:6379"


def test_the_database_number_is_read_as_redis_py_reads_it():
    assert redis_database("redis://127.0.0.1:6379/3") == 3
    assert redis_database("rediss://user:secret@cache.internal:6380/12") == 12
    assert redis_database("unix:///run/redis.sock?db=4") == 4
    assert redis_database("redis://127.0.0.1:6379") == 0
    with pytest.raises(ImproperlyConfigured, match="REDIS_URL"):
        redis_database("http://127.0.0.1:6379/1")


def test_sites_on_different_database_numbers_get_different_channel_names():
    first, second = redis_layer(f"{REDIS}/1")["CONFIG"], redis_layer(f"{REDIS}/2")["CONFIG"]
    assert first["prefix"] != second["prefix"]
    assert redis_layer(f"{REDIS}/1")["CONFIG"] == first  # every worker of a site agrees


@contextlib.asynccontextmanager
async def site_layer(url: str) -> AsyncIterator[Any]:
    config = redis_layer(url)
    layer = import_string(config["BACKEND"])(**config["CONFIG"])
    try:
        yield layer
    finally:
        await layer.flush()


async def joined(layer: Any, group: str) -> str:
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    return channel


async def test_a_frame_reaches_its_own_site_on_every_worker_and_no_other_site(private_redis):
    redis = private_redis.url
    async with (
        site_layer(f"{redis}/7") as worker_a,
        site_layer(f"{redis}/7") as worker_b,
        site_layer(f"{redis}/8") as other_site,
    ):
        on_a, on_b = (
            await joined(worker_a, "conversation-1"),
            await joined(worker_b, "conversation-1"),
        )
        elsewhere = await joined(other_site, "conversation-1")  # the same conversation id
        await asyncio.sleep(0.2)  # SUBSCRIBE is sent, not acknowledged, when group_add returns

        await worker_a.group_send("conversation-1", {"type": "chat.delta", "n": 1})

        assert (await asyncio.wait_for(worker_a.receive(on_a), 2))["n"] == 1
        assert (await asyncio.wait_for(worker_b.receive(on_b), 2))["n"] == 1
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(other_site.receive(elsewhere), 0.5)


async def test_frames_published_at_once_share_round_trips_and_keep_their_order(
    monkeypatch, private_redis
):
    """A thousand frames a second from one worker: published one at a time, each waited for
    every reply before its own (30-40 ms under load)."""
    from redis.asyncio import Redis
    from redis.asyncio.client import Pipeline

    trips = []
    # A lone command or a pipeline: each is one round trip. (Pipeline overrides both.)
    for cls, name in ((Pipeline, "execute"), (Redis, "execute_command")):
        original = getattr(cls, name)

        async def counted(self, *args, _original=original, _name=name, **kwargs):
            trips.append(_name)
            return await _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, name, counted)

    redis = private_redis.url
    async with site_layer(f"{redis}/7") as sender, site_layer(f"{redis}/7") as receiver:
        groups = [f"conversation-{n}" for n in range(20)]
        channels = {group: await joined(receiver, group) for group in groups}
        await asyncio.sleep(0.2)  # SUBSCRIBE is sent, not acknowledged, when group_add returns

        async def answer(group: str) -> None:
            for n in range(10):
                await sender.group_send(group, {"type": "chat.delta", "n": n})

        await asyncio.gather(*(answer(group) for group in groups))

        for group, channel in channels.items():
            got = [(await asyncio.wait_for(receiver.receive(channel), 2))["n"] for _ in range(10)]
            assert got == list(range(10)), group
    assert len(trips) <= 20  # 200 frames; 10 rounds of 20 answers at the most


async def test_a_publish_redis_refuses_raises_instead_of_hanging():
    async with site_layer(f"redis://127.0.0.1:{free_port()}/7") as layer:
        for _ in range(2):  # and the next publish tries again
            with pytest.raises(redis.exceptions.ConnectionError):
                await asyncio.wait_for(layer.group_send("conversation-1", {"type": "x"}), 5)
