"""The chat socket's access rules: who may connect, and what a frame naming someone else's
messages, images or submission keys can do (nothing)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.core.files.base import ContentFile

from conversations.models import Attachment, Conversation, Message
from conversations.runs import runs
from tests.conftest import make_conversation, make_model
from tests.security.conftest import SECRET_TEXT, SECRET_TITLE, World, build_world
from tests.test_consumers import open_socket
from tests.test_images import image_bytes
from tests.upstream import FakeUpstream, Scripted, chat_completion_stream

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fast_streams")]

PROBE = "[1]"  # always answered with a notice: marks the end of what a frame caused


@sync_to_async
def socket_world(upstream: FakeUpstream) -> World:
    world = build_world(make_model(upstream.url, supports_vision=True))
    # Live, so a Stop that reached it would show; retry and regenerate are refused anyway.
    Message.objects.filter(pk=world.answer.pk).update(status=Message.Status.STREAMING)
    Message.objects.filter(conversation=world.conversation).update(client_id="owner-key")
    Attachment.objects.create(  # not yet sent: the kind a Send frame may attach
        owner=world.owner,
        file=ContentFile(image_bytes("PNG"), name="image.png"),
        media_type="image/png",
        width=64,
        height=48,
        size_bytes=100,
    )
    return world


async def frames_caused(socket: WebsocketCommunicator, frame: str) -> list[str]:
    """Everything the socket sent in reply to `frame`, up to the probe's notice."""
    await socket.send_to(text_data=frame)
    await socket.send_to(text_data=PROBE)
    seen: list[str] = []
    while not seen or "could not read that request" not in seen[-1]:
        output = await socket.receive_output(timeout=10)
        assert output["type"] == "websocket.send", output
        seen.append(output["text"])
    return seen[:-1]


@pytest.mark.parametrize("path", ["/ws/conversations/", "/ws/conversations/{pk}/"])
async def test_anonymous_sockets_are_refused_with_4401(upstream, path):
    world = await socket_world(upstream)
    _, connected, code = await open_socket(None, path.format(pk=world.conversation.pk))
    assert (connected, code) == (False, 4401)


@pytest.mark.parametrize("actor", ["other", "staff"])
async def test_someone_elses_conversation_is_refused_with_4404(upstream, actor):
    world = await socket_world(upstream)
    user = getattr(world, actor)
    for pk in (world.conversation.pk, 999_999):
        _, connected, code = await open_socket(user, f"/ws/conversations/{pk}/")
        assert (connected, code) == (False, 4404)


def frames_naming_the_owners_things(world: World, attachment_id: int) -> dict[str, dict[str, Any]]:
    answer, question = str(world.answer.pk), str(world.question.pk)
    return {
        "retry": {"action": "retry", "message": answer},
        "stop": {"action": "stop", "message": answer},
        "regenerate": {"action": "regenerate", "message": answer},
        "edit": {"action": "edit", "message": question, "text": "hijacked"},
        "switch": {"action": "switch", "message": question},
        "settings": {"action": "settings", "system_prompt": "hijacked"},
        "send with the owner's image": {
            "action": "send",
            "text": "look",
            "attachments": [str(attachment_id)],
            "client_id": "mine-1",
        },
        "send with the owner's submission key": {
            "action": "send",
            "text": "hello",
            "client_id": "owner-key",
        },
    }


@sync_to_async
def owner_state(world: World) -> tuple[Any, ...]:
    conversation = Conversation.objects.get(pk=world.conversation.pk)
    messages = list(conversation.messages.values_list("pk", "status", "content").order_by("pk"))
    attachments = list(Attachment.objects.filter(owner=world.owner).values_list("pk", "message_id"))
    return conversation.system_prompt, conversation.current_leaf_id, messages, attachments


@pytest.mark.parametrize("actor", ["other", "staff"])
async def test_frames_naming_the_owners_things_change_nothing_and_reveal_nothing(upstream, actor):
    upstream.script(*[Scripted(chunks=chat_completion_stream(["fine"])) for _ in range(3)])
    world = await socket_world(upstream)
    user = getattr(world, actor)
    own = await sync_to_async(make_conversation)(user, world.model, title="mine")
    spare = await Attachment.objects.filter(owner=world.owner, message=None).afirst()
    assert spare is not None
    before = await owner_state(world)
    socket, connected, _ = await open_socket(user, f"/ws/conversations/{own.pk}/")
    assert connected
    for name, frame in frames_naming_the_owners_things(world, spare.pk).items():
        caused = "".join(await frames_caused(socket, json.dumps(frame)))
        assert SECRET_TEXT not in caused and SECRET_TITLE not in caused, name
        assert await owner_state(world) == before, name
    await socket.disconnect()
    async for message in Message.objects.filter(conversation__owner=user):
        await runs.wait(message.pk)
    assert await owner_state(world) == before
