"""Redis stopped and started again while an answer streams, on a Redis of the test's own
(the shared one may serve other sites): the answer is written to its end and saved, and
the open tab is back on live frames and sees it finish."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest
from asgiref.sync import sync_to_async

from chatsite.layers import redis_layer
from conversations.models import Message
from tests.conftest import make_conversation
from tests.ports import free_port
from tests.test_consumers import frames_until, open_socket, send_frame, streamed_text
from tests.upstream import Scripted, chat_completion_stream

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("fast_streams"),
    pytest.mark.skipif(not shutil.which("redis-server"), reason="redis-server is not installed"),
]


class PrivateRedis:
    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port)]
        args += ["--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return
            time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture
def private_redis(settings) -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    settings.CHANNEL_LAYERS = {"default": redis_layer(f"redis://127.0.0.1:{server.port}/0")}
    try:
        yield server
    finally:
        server.stop()


async def test_an_answer_and_its_tab_come_through_a_redis_restart(
    alice, chat_model, upstream, private_redis
):
    pieces = [f"word{i} " for i in range(150)]  # about 4.5 s
    upstream.script(Scripted(chunks=chat_completion_stream(pieces), delay=0.03))
    conversation = await sync_to_async(make_conversation)(alice, chat_model)
    tab, connected, _ = await open_socket(alice, f"/ws/conversations/{conversation.pk}/")
    assert connected
    await tab.send_to(text_data=send_frame("a long answer, please"))
    frames = await frames_until(tab, 'data-delta="tail"')

    private_redis.stop()
    await asyncio.sleep(0.5)
    private_redis.start()
    frames += await frames_until(tab, r'data-role="assistant" data-status="complete"', timeout=20)
    await tab.disconnect()

    answer = await Message.objects.aget(role="assistant")
    assert (answer.status, answer.content) == ("complete", "".join(pieces))
    assert streamed_text(frames, answer.pk) == "".join(pieces).strip()
