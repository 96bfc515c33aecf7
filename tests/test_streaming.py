"""The generation runner against a real local upstream speaking Chat Completions."""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import datetime
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from chatsite.layers import redis_layer
from conversations.models import Message
from conversations.providers.network import AsyncioStream
from conversations.rendering import render_markdown
from conversations.runs import Runs, publisher
from conversations.streaming import Generation, load_job
from tests.conftest import CANARY_KEY, add_message, make_conversation
from tests.ports import free_port
from tests.upstream import Scripted, chat_completion_stream, openai_usage

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fast_streams")]

PIECES = ["# Title\n\n", "Hello", ", ", "wörld", " 🌍", "!\n\n", "- one\n", "- two\n"]


@sync_to_async
def start_exchange(user: Any, model: Any, question: str = "Say hello") -> Message:
    conversation = make_conversation(user, model)
    add_message(conversation, "user", question)
    return add_message(
        conversation, "assistant", "", status="pending", model=model, model_name=model.display_name
    )


async def run_to_end(message: Message, frames: list[dict[str, Any]]) -> Message:
    async def publish(frame: dict[str, Any]) -> None:
        frames.append(frame)

    runs = Runs()
    job = await load_job(message.pk)
    await Generation(job=job, publish=publish).run(runs.client())
    return await Message.objects.aget(pk=message.pk)


async def test_a_normal_run_saves_text_usage_and_rendered_html(alice, chat_model, upstream):
    upstream.script(Scripted(chunks=chat_completion_stream(PIECES, usage=openai_usage(12, 8))))
    message = await start_exchange(alice, chat_model)
    frames: list[dict[str, Any]] = []

    saved = await run_to_end(message, frames)

    assert saved.status == "complete"
    assert saved.content == "".join(PIECES)
    assert (saved.input_tokens, saved.output_tokens) == (12, 8)
    assert saved.finish_reason == "stop"
    assert "<h1>Title</h1>" in saved.content_html and "<li>one</li>" in saved.content_html
    assert saved.ttft_ms is not None and saved.duration_ms is not None
    deltas = [f for f in frames if f["type"] == "chat.delta"]
    assert "".join(f["text"] for f in deltas) == saved.content
    assert frames[-1] == {"type": "chat.message_updated", "message_id": message.pk}


TRICKY = [
    "Intro with a [ref] link.\n\n```py\nprint(1)\n\n",
    "print(2)\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n1. one\n",
    "2. two\n\n   nested\n\n[ref]: https://example.com\n\ntail **bold",
]


@pytest.mark.parametrize("cut", [1, 7, 64])
async def test_the_stored_html_equals_rendering_the_whole_answer(alice, chat_model, upstream, cut):
    """The stored HTML is assembled from the streamed blocks; it must match a whole render."""
    text = "".join(TRICKY)
    pieces = [text[i : i + cut] for i in range(0, len(text), cut)]
    upstream.script(Scripted(chunks=chat_completion_stream(pieces)))
    message = await start_exchange(alice, chat_model)

    saved = await run_to_end(message, [])

    assert saved.content == text
    assert saved.content_html == render_markdown(text)
    assert '<a href="https://example.com"' in saved.content_html  # the late reference


@pytest.mark.parametrize("lines", [5, 400])
async def test_a_long_last_block_is_rendered_off_the_event_loop(
    alice, chat_model, upstream, monkeypatch, lines
):
    """The last whole render of a long open block (here a code listing) runs on a worker
    thread, so the event loop goes on relaying other answers; a short one stays put."""
    from conversations.rendering import IncrementalRenderer

    threads: list[str] = []
    finish = IncrementalRenderer.finish

    def recording(self: IncrementalRenderer) -> Any:
        threads.append(threading.current_thread().name)
        return finish(self)

    monkeypatch.setattr(IncrementalRenderer, "finish", recording)
    code = "".join(f"    value = step_{n}(value)  # line {n}\n" for n in range(lines))
    text = f"Here:\n\n```python\ndef run(value):\n{code}"  # the fence never closes
    pieces = [text[i : i + 40] for i in range(0, len(text), 40)]
    upstream.script(Scripted(chunks=chat_completion_stream(pieces)))
    message = await start_exchange(alice, chat_model)

    saved = await run_to_end(message, [])

    assert saved.content_html == render_markdown(text)
    assert len(threads) == 1
    assert threads[0].startswith("long-render") == (lines > 10)
    assert (threads[0] == threading.main_thread().name) == (lines < 10)


def listing_then_more(lines: int) -> str:
    """A code listing that ends mid-answer (more text follows it), so it is finished and
    rendered whole while the answer still streams."""
    code = "".join(f"    value = step_{n}(value)  # line {n}\n" for n in range(lines))
    return f"Here:\n\n```python\ndef run(value):\n{code}```\n\nThat was the listing. " * 2


@pytest.mark.parametrize("lines", [5, 400])
async def test_a_long_block_finished_mid_answer_is_rendered_off_the_event_loop(
    alice, chat_model, upstream, monkeypatch, lines
):
    from conversations.rendering import IncrementalRenderer

    threads: list[str] = []  # where each frame that finished blocks was drawn
    draw = IncrementalRenderer.draw

    def recording(self: IncrementalRenderer, cut: int) -> Any:
        if cut:
            threads.append(threading.current_thread().name)
        return draw(self, cut)

    monkeypatch.setattr(IncrementalRenderer, "draw", recording)
    text = listing_then_more(lines)
    pieces = [text[i : i + 40] for i in range(0, len(text), 40)]
    upstream.script(Scripted(chunks=chat_completion_stream(pieces)))
    message = await start_exchange(alice, chat_model)
    frames: list[dict[str, Any]] = []

    saved = await run_to_end(message, frames)

    assert saved.content_html == render_markdown(text)
    long = [name.startswith("long-render") for name in threads]
    # Finished mid-answer: the intro, then the first listing with the paragraph after it,
    # off the loop when long (the second listing is the answer's end: `finish`).
    assert long.count(True) == (1 if lines > 10 else 0)
    assert all(
        name == threading.main_thread().name
        for name, off in zip(threads, long, strict=True)
        if not off
    )
    # Every frame still carries what it finished, in order.
    assert "".join(f["blocks"] for f in frames if f["type"] == "chat.delta") in saved.content_html


async def test_stop_while_a_long_block_renders_off_the_loop_keeps_that_block(
    alice, chat_model, upstream, monkeypatch
):
    """The frame is cancelled while its render runs on the long-render thread; the render
    still lands in the answer, so the stored HTML is the whole render of the text kept."""
    import time

    from conversations.rendering import IncrementalRenderer

    draw = IncrementalRenderer.draw
    started = threading.Event()

    def slow(self: IncrementalRenderer, cut: int) -> Any:
        drawn = draw(self, cut)
        if threading.current_thread().name.startswith("long-render"):
            started.set()
            time.sleep(0.3)  # Stop is pressed before the loop has what was drawn
        return drawn

    monkeypatch.setattr(IncrementalRenderer, "draw", slow)
    text = listing_then_more(400)
    pieces = [text[i : i + 40] for i in range(0, len(text), 40)]
    upstream.script(Scripted(chunks=chat_completion_stream(pieces), delay=0.002))
    message = await start_exchange(alice, chat_model)
    runs = Runs()

    async def publish(frame: dict[str, Any]) -> None:
        pass

    job = await load_job(message.pk)
    task = asyncio.create_task(Generation(job=job, publish=publish).run(runs.client()))
    assert await asyncio.to_thread(started.wait, 20)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    saved = await Message.objects.aget(pk=message.pk)
    assert saved.status == "cancelled"
    assert "```\n\nThat was" in saved.content  # the listing was finished before Stop
    assert saved.content_html == render_markdown(saved.content)
    assert "line 399" in saved.content_html


@pytest.mark.parametrize("items", [3, 300])
async def test_a_json_mode_answer_is_stored_as_highlighted_json(alice, chat_model, upstream, items):
    """Long or short (a long one is rendered on a worker thread), the same HTML."""
    import json

    from conversations.rendering import render_json_answer

    chat_model.supports_json_mode = True
    await chat_model.asave(update_fields=["supports_json_mode"])
    text = json.dumps({"items": [{"n": n, "name": f"item {n}"} for n in range(items)]})
    pieces = [text[i : i + 16] for i in range(0, len(text), 16)]
    upstream.script(Scripted(chunks=chat_completion_stream(pieces)))
    message = await start_exchange(alice, chat_model)
    conversation = await sync_to_async(lambda: message.conversation)()
    conversation.params = {"json_mode": True}
    await conversation.asave(update_fields=["params"])

    saved = await run_to_end(message, [])

    assert upstream.requests[-1].json["response_format"] == {"type": "json_object"}
    assert saved.content == text
    assert saved.content_html == render_json_answer(text)
    assert '<pre class="highlight">' in saved.content_html


async def test_the_users_message_and_history_reach_the_upstream(alice, chat_model, upstream):
    upstream.script(Scripted(chunks=chat_completion_stream(["ok"])))
    message = await start_exchange(alice, chat_model, question="What is 2+2?")

    await run_to_end(message, [])

    body = upstream.requests[0].json
    assert body["messages"][-1] == {"role": "user", "content": "What is 2+2?"}
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert upstream.requests[0].headers["authorization"].startswith("Bearer sk-canary")


async def stream_tokens(
    user: Any, model: Any, upstream: Any, delay: float
) -> tuple[list[dict[str, Any]], Message, list[str]]:
    """200 tokens, `delay` seconds apart: the delta frames, the saved answer, the tokens."""
    pieces = [f"t{i} " for i in range(200)]
    upstream.script(Scripted(chunks=chat_completion_stream(pieces), delay=delay))
    message = await start_exchange(user, model)
    frames: list[dict[str, Any]] = []
    saved = await run_to_end(message, frames)
    return [f for f in frames if f["type"] == "chat.delta"], saved, pieces


async def test_first_delta_is_published_at_once_and_later_ones_are_coalesced(
    alice, chat_model, upstream
):
    deltas, saved, pieces = await stream_tokens(alice, chat_model, upstream, 0.001)

    assert deltas[0]["text"] == "t0 "  # never held back
    assert len(deltas) < len(pieces) / 3
    assert "".join(f["text"] for f in deltas) == saved.content
    offsets = [f["blocks_offset"] for f in deltas]
    assert offsets == sorted(offsets) and offsets[0] == 0
    # Finished blocks are sent once: together with the last tail they are the final HTML.
    streamed = "".join(f["blocks"] for f in deltas) + deltas[-1]["tail"]
    assert streamed.count("t0 ") == 1


async def test_the_upstream_is_read_once_a_frame_not_once_a_token(
    alice, chat_model, upstream, monkeypatch
):
    reads = 0
    read = AsyncioStream.read

    async def counted(self: AsyncioStream, *args: Any, **kwargs: Any) -> bytes:
        nonlocal reads
        reads += 1
        return await read(self, *args, **kwargs)

    monkeypatch.setattr(AsyncioStream, "read", counted)
    deltas, saved, pieces = await stream_tokens(alice, chat_model, upstream, 0.002)

    assert "".join(f["text"] for f in deltas) == saved.content == "".join(pieces)
    assert deltas[0]["text"] == "t0 "  # the first token still goes at once
    # Tokens that came while a frame was not yet due waited in the socket: one read a frame
    # (and one for the headers), where an unpaced reader reads once a token.
    assert reads <= len(deltas) + 3
    assert reads < len(pieces) / 4
    assert len(deltas) <= reads  # and what one read brought goes out in one frame


async def test_stop_cancels_the_upstream_request_and_keeps_the_partial_text(
    alice, chat_model, upstream
):
    pieces = [f"word{i} " for i in range(400)]
    upstream.script(Scripted(chunks=chat_completion_stream(pieces), delay=0.01))
    message = await start_exchange(alice, chat_model)
    frames: list[dict[str, Any]] = []
    runs = Runs()

    async def publish(frame: dict[str, Any]) -> None:
        frames.append(frame)

    job = await load_job(message.pk)
    task = asyncio.create_task(Generation(job=job, publish=publish).run(runs.client()))
    while sum(len(f.get("text", "")) for f in frames) < 30:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    saved = await Message.objects.aget(pk=message.pk)
    assert saved.status == "cancelled"
    assert saved.content.startswith("word0 word1 ")
    assert len(saved.content) < len("".join(pieces))
    assert await asyncio.to_thread(upstream.wait_for_disconnect, 5)


async def test_an_upstream_http_error_becomes_a_plain_error_on_the_answer(
    alice, chat_model, upstream
):
    error = {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}
    upstream.script(Scripted.json(error, status=401))
    message = await start_exchange(alice, chat_model)

    saved = await run_to_end(message, [])

    assert saved.status == "error"
    assert "API key" in saved.error
    assert saved.content == ""


async def test_a_failed_upstream_call_is_logged_once_and_requests_are_not(
    alice, chat_model, upstream, caplog
):
    caplog.set_level(logging.INFO)
    upstream.script(Scripted(chunks=chat_completion_stream(["fine"])))
    await run_to_end(await start_exchange(alice, chat_model), [])
    error = {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}
    upstream.script(Scripted.json(error, status=401))
    message = await start_exchange(alice, chat_model)

    await run_to_end(message, [])

    # httpx's line for every request ("HTTP Request: POST ...") is off at INFO...
    assert [
        r.getMessage() for r in caplog.records if r.name.startswith(("httpx", "httpcore"))
    ] == []
    # ...and the failure has one line of its own, with no key in it.
    (line,) = [r for r in caplog.records if r.name == "conversations.streaming"]
    assert line.levelno == logging.WARNING
    said = line.getMessage()
    assert f"message {message.pk} failed" in said and "401" in said and "API key" in said
    assert chat_model.provider.name in said and chat_model.upstream_id in said
    assert CANARY_KEY not in said


async def test_a_stream_dropped_midway_keeps_the_partial_text_as_an_error(
    alice, chat_model, upstream
):
    chunks = chat_completion_stream(["Partial ", "answer ", "here"], finish=None)
    upstream.script(Scripted(chunks=chunks, then="abort"))
    message = await start_exchange(alice, chat_model)

    saved = await run_to_end(message, [])

    assert saved.status == "error"
    assert saved.content.startswith("Partial ")
    assert saved.error


async def test_progress_is_checkpointed_while_streaming_not_per_token(alice, chat_model, upstream):
    pieces = [f"p{i} " for i in range(60)]
    upstream.script(Scripted(chunks=chat_completion_stream(pieces), delay=0.01))
    message = await start_exchange(alice, chat_model)
    runs = Runs()
    runs.start(message.pk, message.conversation_id)
    seen_streaming = None
    for _ in range(300):
        current = await Message.objects.aget(pk=message.pk)
        if current.status == "streaming" and current.content:
            seen_streaming = current
            break
        await asyncio.sleep(0.01)
    await runs.wait(message.pk)

    assert seen_streaming is not None
    assert seen_streaming.lease_expires_at is not None
    final = await Message.objects.aget(pk=message.pk)
    assert final.status == "complete" and final.lease_expires_at is None


async def test_a_quiet_answer_keeps_renewing_its_lease_and_its_saved_text(
    alice, chat_model, upstream
):
    """An upstream thinking in silence is not a dead worker: the lease moves on while no
    token comes, and the text saved before the silence stays."""
    upstream.script(Scripted(chunks=chat_completion_stream(["Hello "], finish=None), then="hang"))
    message = await start_exchange(alice, chat_model)
    runs = Runs()
    runs.start(message.pk, message.conversation_id)
    leases: list[datetime] = []
    for _ in range(300):
        current = await Message.objects.aget(pk=message.pk)
        lease = current.lease_expires_at
        if current.content and lease is not None and lease not in leases:
            leases.append(lease)
        if len(leases) >= 3:
            break
        await asyncio.sleep(0.02)
    await runs.stop(message.pk)

    assert len(leases) >= 3 and leases == sorted(leases)
    assert current.status == "streaming" and current.content == "Hello "
    stopped = await Message.objects.aget(pk=message.pk)
    assert stopped.status == "cancelled" and stopped.lease_expires_at is None


async def test_a_hung_upstream_ends_with_a_timeout_error_and_the_connection_closed(
    alice, chat_model, upstream
):
    provider = chat_model.provider
    provider.read_timeout = 0.5
    await provider.asave()
    upstream.script(Scripted(chunks=chat_completion_stream(["Hello "], finish=None), then="hang"))
    message = await start_exchange(alice, chat_model)

    saved = await run_to_end(message, [])

    assert saved.status == "error"
    assert "stopped responding" in saved.error
    assert saved.content == "Hello "
    assert await asyncio.to_thread(upstream.wait_for_disconnect, 5)


async def test_an_answer_outlives_a_channel_layer_that_cannot_publish(
    alice, chat_model, upstream, settings, caplog, monkeypatch
):
    """Redis down or restarting: tabs miss frames (they catch up when they reconnect), but
    the answer is still written to its end and saved."""
    settings.CHANNEL_LAYERS = {"default": redis_layer(f"redis://127.0.0.1:{free_port()}/9")}
    monkeypatch.setattr("conversations.runs._warned_at", float("-inf"))  # warned once a minute
    upstream.script(Scripted(chunks=chat_completion_stream(PIECES)))
    message = await start_exchange(alice, chat_model)
    job = await load_job(message.pk)

    await Generation(job=job, publish=publisher(job.conversation_id)).run(Runs().client())

    saved = await Message.objects.aget(pk=message.pk)
    assert (saved.status, saved.content, saved.error) == ("complete", "".join(PIECES), "")
    assert "could not publish frames" in caplog.text
