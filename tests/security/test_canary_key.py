"""A provider's API key never leaves the server: not in a page, a header, a socket frame, a
log line or a stored error, even when the upstream echoes it back in every way it can."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from conversations.models import Message, Provider, UsageRecord
from conversations.runs import runs
from tests.conftest import CANARY_KEY, make_model
from tests.security.conftest import World, body_of, build_world
from tests.security.routes import all_routes
from tests.test_consumers import frames_until, open_socket, send_frame
from tests.upstream import Scripted, chat_completion_stream, sse

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fast_streams")]

ECHO = f"Incorrect API key provided: {CANARY_KEY}. Find your key at example.com."
ERROR_BODY = {"error": {"message": ECHO, "type": "invalid_request_error", "code": CANARY_KEY}}


def echoing_replies() -> list[Scripted]:
    """One per attempt, in order; each puts the key somewhere an error message comes from."""
    in_band = [*chat_completion_stream(["Part "], finish=None), sse({"error": {"message": ECHO}})]
    return [
        Scripted.json(ERROR_BODY, status=401),
        Scripted(chunks=in_band),
        Scripted.json(ERROR_BODY, status=200),  # JSON where a stream was expected
        Scripted.json(ERROR_BODY, status=429, headers={"retry-after": "0"}),
        Scripted(chunks=chat_completion_stream(["All ", "good"])),
        Scripted.json(ERROR_BODY, status=500),  # the automatic title call
        Scripted.json(ERROR_BODY, status=403),  # model discovery from the admin
    ]


async def run_exchanges(world: World, upstream: Any) -> list[str]:
    """Send once, retry until the good reply; returns every frame the browser received."""
    socket, connected, _ = await open_socket(world.owner)
    assert connected
    await socket.send_to(text_data=send_frame("Hello", client_id="canary-1"))
    frames = await frames_until(socket, r'data-role="assistant" data-status="error"')
    answer = await Message.objects.aget(client_id="canary-1", role="assistant")
    retry = json.dumps({"action": "retry", "message": str(answer.pk)})
    for expected in ("error", "error", "error", "complete"):
        await socket.send_to(text_data=retry)
        frames += await frames_until(socket, f'data-role="assistant" data-status="{expected}"')
    async for message in Message.objects.filter(client_id="canary-1"):
        await runs.wait(message.pk)
    frames += await drain(socket)
    await socket.disconnect()
    return frames


async def drain(socket: Any) -> list[str]:
    frames = []
    while not await socket.receive_nothing(timeout=0.3):
        frames.append(await socket.receive_from())
    return frames


def everything_rendered(world: World) -> list[str]:
    """Every page of every URL pattern, as each actor sees it, with its headers."""
    clients = [world.client(user) for user in (world.owner, world.staff, None)]
    seen = []
    for route in all_routes():
        url = route.url(world.value)
        for client in clients:
            response = client.get(url)
            body = body_of(response)
            seen.append(f"{url} {response.status_code} {response.headers} {body!r}")
    seen.append(run_model_discovery(world))
    return seen


def run_model_discovery(world: World) -> str:
    provider = world.model.provider
    client: Client = world.client(world.staff)
    data = {"action": "discover_models", "_selected_action": [provider.pk]}
    response = client.post("/admin/conversations/provider/", data, follow=True)
    page = response.content.decode()
    assert "rejected the API key" in page or "refused access" in page  # the error was shown
    return page


def stored_text() -> list[str]:
    return [
        *Message.objects.values_list("error", flat=True),
        *Message.objects.values_list("content", flat=True),
        *UsageRecord.objects.values_list("error", flat=True),
        *Provider.objects.values_list("api_key_encrypted", flat=True),
    ]


async def test_an_echoed_key_appears_nowhere(upstream, caplog, settings):
    settings.AUTO_TITLES = True
    caplog.set_level(logging.DEBUG)
    upstream.script(*echoing_replies())
    world = await sync_to_async(build_world)(await sync_to_async(make_model)(upstream.url))

    frames = await run_exchanges(world, upstream)
    pages = await sync_to_async(everything_rendered)(world)
    stored = await sync_to_async(stored_text)()

    assert len(upstream.requests) == 7  # every echoing reply was served...
    assert all(CANARY_KEY in str(r.headers) for r in upstream.requests)  # ...to the real key
    assert await UsageRecord.objects.filter(outcome="error").acount() >= 5
    for where, texts in {"frame": frames, "page": pages, "stored": stored}.items():
        leaks = [text[:300] for text in texts if CANARY_KEY in text]
        assert not leaks, f"the key leaked into a {where}: {leaks}"
    assert "[redacted key]" in "".join(frames)  # the echoes were there, and were scrubbed
    assert len(caplog.records) > 0
    assert CANARY_KEY not in caplog.text
    assert not [r for r in caplog.records if CANARY_KEY in str(r.args) + str(r.msg)]
