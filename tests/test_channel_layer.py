"""The embedded channel layer keeps Channels' in-memory semantics at a lower cost."""

from __future__ import annotations

import asyncio

import pytest
from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer

from chatsite import layers
from chatsite.layers import LocalChannelLayer


async def test_a_group_send_reaches_every_member_once_and_in_order():
    layer = LocalChannelLayer()
    members = [await layer.new_channel() for _ in range(3)]
    for channel in members:
        await layer.group_add("talk", channel)
    outsider = await layer.new_channel()

    for n in range(3):
        await layer.group_send("talk", {"type": "chat.delta", "n": n})

    for channel in members:
        assert [(await layer.receive(channel))["n"] for _ in range(3)] == [0, 1, 2]
    assert outsider not in layer.channels


async def test_the_sender_may_change_its_event_after_sending():
    layer = LocalChannelLayer()
    channel = await layer.new_channel()
    await layer.group_add("talk", channel)
    ids = [1]

    await layer.group_send("talk", {"type": "chat.messages_added", "ids": ids})
    ids.append(2)
    frame = {"type": "chat.delta", "message_id": 7, "text": "Hel", "blocks_offset": 0}
    await layer.group_send("talk", frame)  # flat: strings and numbers only
    frame["text"] = "changed"

    assert (await layer.receive(channel))["ids"] == [1]
    assert (await layer.receive(channel))["text"] == "Hel"


async def test_a_full_member_misses_the_event_and_the_others_still_get_it():
    layer = LocalChannelLayer(capacity=1)
    full, fine = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("talk", full)
    await layer.send(full, {"type": "x"})
    await layer.group_add("talk", fine)

    await layer.group_send("talk", {"type": "y"})

    assert (await layer.receive(fine))["type"] == "y"
    assert (await layer.receive(full))["type"] == "x"
    await layer.send(fine, {"type": "a"})
    with pytest.raises(ChannelFull):
        await layer.send(fine, {"type": "b"})


async def test_expired_messages_and_their_channels_are_swept(monkeypatch):
    monkeypatch.setattr(layers, "SWEEP_INTERVAL", 0.0)
    layer = LocalChannelLayer(expiry=0.01)
    gone, alive = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("talk", gone)
    await layer.group_add("talk", alive)
    await layer.send(gone, {"type": "old"})
    await asyncio.sleep(0.05)

    await layer.group_send("talk", {"type": "new"})

    # The unread, expired message removed its channel from the group (as Channels does).
    assert gone not in layer.groups["talk"]
    assert (await layer.receive(alive))["type"] == "new"


async def test_sweeps_run_at_most_once_an_interval(monkeypatch):
    layer = LocalChannelLayer()
    sweeps = []
    monkeypatch.setattr(InMemoryChannelLayer, "_clean_expired", lambda self: sweeps.append(1))
    channel = await layer.new_channel()
    await layer.group_add("talk", channel)

    for _ in range(50):
        await layer.group_send("talk", {"type": "chat.delta"})

    assert len(sweeps) == 1
