"""Redis stopped and started again while an answer streams, on a Redis of the test's own
(the shared one may serve other sites): the answer is written to its end and saved, and
the open tab is back on live frames and sees it finish."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async

from chatsite.layers import redis_layer
from conversations.models import Message
from tests.conftest import make_conversation
from tests.redis_server import PrivateRedis
from tests.test_consumers import frames_until, open_socket, send_frame, streamed_text
from tests.upstream import Scripted, chat_completion_stream

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("fast_streams"),
]


@pytest.fixture
def redis_layer_of_its_own(settings, private_redis: PrivateRedis) -> PrivateRedis:
    settings.CHANNEL_LAYERS = {"default": redis_layer(f"{private_redis.url}/0")}
    return private_redis


async def test_an_answer_and_its_tab_come_through_a_redis_restart(
    alice, chat_model, upstream, redis_layer_of_its_own
):
    pieces = [f"word{i} " for i in range(150)]  # about 4.5 s
    upstream.script(Scripted(chunks=chat_completion_stream(pieces), delay=0.03))
    conversation = await sync_to_async(make_conversation)(alice, chat_model)
    tab, connected, _ = await open_socket(alice, f"/ws/conversations/{conversation.pk}/")
    assert connected
    await tab.send_to(text_data=send_frame("a long answer, please"))
    frames = await frames_until(tab, 'data-delta="tail"')

    redis_layer_of_its_own.stop()
    await asyncio.sleep(0.5)
    redis_layer_of_its_own.start()
    frames += await frames_until(tab, r'data-role="assistant" data-status="complete"', timeout=20)
    await tab.disconnect()

    answer = await Message.objects.aget(role="assistant")
    assert (answer.status, answer.content) == ("complete", "".join(pieces))
    assert streamed_text(frames, answer.pk) == "".join(pieces).strip()
