"""The chat websocket: authenticates, checks ownership, turns commands into runs, forwards frames."""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.db import aclose_old_connections
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.db import close_old_connections
from django.db.models import prefetch_related_objects
from django.utils import timezone

from conversations import (
    access,
    branching,
    commands,
    control,
    frames,
    group_events,
    sql,
    submissions,
    threads,
)
from conversations.coalescer import LiveState
from conversations.models import Conversation, Message
from conversations.rendering import render_markdown
from conversations.runs import group_name, publisher, runs

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
SNAPSHOT_PATIENCE = 2.0  # seconds to wait for another worker's snapshot before moving on


class ChatConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]  # channels ships no types
    """One browser tab showing one conversation (or a new, still empty one)."""

    conversation: Conversation | None = None

    async def connect(self) -> None:
        self.user = self.scope.get("user")
        self.delivered: dict[int, tuple[int, int]] = {}  # message id -> chars of blocks, reasoning
        self.awaiting: dict[int, float] = {}  # message id -> when its worker was asked for it
        self.pending: dict[int, Message] = {}  # live answers as drawn here, until a frame comes
        # The newest message the page had drawn when it opened this socket (None: not said).
        self.shown_up_to = shown_up_to(self.scope)
        if not getattr(self.user, "is_authenticated", False):
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        pk = self.scope["url_route"]["kwargs"].get("conversation_id")
        if pk is not None:
            self.conversation = await access.aget_conversation(self.user, int(pk))
            if self.conversation is None:
                await self.close(code=CLOSE_NOT_FOUND)
                return
        await self.accept()
        control.listener.ensure_running()
        if self.conversation is not None:
            await self._join(self.conversation)
            await self._catch_up()
            await self._send_live_state()

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels closes stale database connections before every event: a trip to the
        # database thread, queued behind whatever else runs there. Deltas, many a second per
        # answer, need no database, nor does the echo of this tab's own new messages, and
        # the first delta would wait behind that trip. A submission and an answer's final
        # redraw make one trip each, which closes stale connections itself first.
        kind = message.get("type")
        if kind == "chat.delta":
            await self.chat_delta(message)
        elif kind == "chat.messages_added" and message.get("origin") == self.channel_name:
            return  # the tab that sent them has drawn them already
        elif kind == "websocket.receive":
            await self.websocket_receive(message)
        elif kind == "chat.message_updated":
            await self.chat_message_updated(message)
        else:
            await super().dispatch(message)

    async def disconnect(self, code: int) -> None:
        # Leaving never stops a generation: only the Stop command does.
        if self.conversation is not None and self.channel_layer is not None:
            await self.channel_layer.group_discard(self.conversation.group_name, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            command = commands.parse(commands.decode(text_data, bytes_data))
        except commands.BadCommand as exc:
            await self.send(text_data=frames.notice(str(exc)))
            return
        if not isinstance(command, commands.Send):
            await aclose_old_connections()  # Channels' own step, skipped in dispatch
        try:
            await self._handle(command)
        except submissions.Refused as exc:
            await self.send(text_data=frames.notice(exc.message))

    async def _handle(self, command: commands.Command) -> None:
        if isinstance(command, commands.Send):
            await self._submit(command)
        elif isinstance(command, commands.Stop):
            await self._stop(command.message_id)
        elif isinstance(command, commands.Retry):
            await self._retry(command.message_id)
        elif isinstance(command, commands.Regenerate | commands.Edit | commands.Switch):
            await self._branch(command)
        else:
            said = await submissions.save_settings(
                self.user, self.conversation, command.model_id, command.settings
            )
            await self.send(text_data=frames.notice(said, level="info"))

    async def _join(self, conversation: Conversation) -> None:
        self.conversation = conversation
        if self.channel_layer is not None:
            await self.channel_layer.group_add(group_name(conversation.pk), self.channel_name)

    async def _submit(self, command: commands.Send) -> None:
        accepted = await submissions.submit(
            self.user,
            self.conversation,
            command.text,
            command.model_id,
            command.client_id,
            command.settings,
            command.attachment_ids,
        )
        if self.conversation is None or self.conversation.pk != accepted.conversation.pk:
            await self._join(accepted.conversation)
            csrf = self.scope.get("cookies", {}).get(settings.CSRF_COOKIE_NAME, "")
            await self.send(text_data=frames.conversation_started(accepted.conversation, csrf))
        await self.send(text_data=frames.accepted(uuid.uuid4().hex))
        for warning in accepted.warnings:
            await self.send(text_data=frames.notice(warning, level="warning"))
        if accepted.duplicate:
            return
        conversation = accepted.conversation
        runs.start(accepted.assistant.pk, conversation.pk, accepted.job)
        # This tab draws the new messages from what it has; other tabs draw the same frame.
        drawn = frames.messages_added(accepted.messages, generating=True, images=accepted.images)
        await self._show_added(accepted.messages, drawn)
        event = group_events.messages_added(accepted.messages, drawn, self.channel_name)
        await publisher(conversation.pk)(event)

    async def _stop(self, message_id: int | None) -> None:
        """Stop cancels where the generation runs: here, on another worker, or nowhere."""
        live = await self._live_messages()
        for message in live:
            if message_id is not None and message.pk != message_id:
                continue
            if await runs.stop(message.pk):
                continue
            expired = message.lease_expires_at is None or message.lease_expires_at < timezone.now()
            if expired:
                await self._stop_orphan(message)
            else:
                await control.request("stop", message.pk)

    async def _stop_orphan(self, message: Message) -> None:
        """No task here runs it: its worker is gone, so settle it as stopped."""
        updated = await Message.objects.filter(
            pk=message.pk, status__in=Message.LIVE_STATUSES
        ).aupdate(status=Message.Status.CANCELLED, lease_expires_at=None)
        if updated:
            await publisher(message.conversation_id)(
                {"type": "chat.message_updated", "message_id": message.pk}
            )

    async def _retry(self, message_id: int) -> None:
        if self.conversation is None:
            raise submissions.Refused("Nothing to retry here.")
        answer = await branching.retry(self.user, self.conversation, message_id)
        changed = {"type": "chat.message_updated", "message_id": answer.pk}
        if answer.pk != message_id:  # a new version: the thread below it changed
            changed = {"type": "chat.thread_changed"}
        await publisher(self.conversation.pk)(changed)
        runs.start(answer.pk, self.conversation.pk)

    async def _branch(self, command: commands.Regenerate | commands.Edit | commands.Switch) -> None:
        """Regenerate, edit and version switches change the branch on screen for every tab."""
        conversation = self.conversation
        if conversation is None:
            raise submissions.Refused("Nothing to change here.")
        answer = None
        if isinstance(command, commands.Regenerate):
            answer = await branching.regenerate(
                self.user, conversation, command.message_id, command.model_id
            )
        elif isinstance(command, commands.Edit):
            answer = await branching.edit(
                self.user, conversation, command.message_id, command.text, command.model_id
            )
        else:
            await branching.switch(self.user, conversation, command.message_id)
        await publisher(conversation.pk)({"type": "chat.thread_changed"})
        if answer is not None:
            runs.start(answer.pk, conversation.pk)

    async def _live_messages(self) -> list[Message]:
        if self.conversation is None:
            return []
        live = self.conversation.messages.filter(status__in=Message.LIVE_STATUSES)
        return [m async for m in live]

    async def _catch_up(self) -> None:
        """A page is drawn before its socket joins (a load, a reconnect after a dropped
        network): messages sent from another tab in between never reach it as new messages.
        If the thread's newest message is not the page's, the thread is drawn again."""
        if self.conversation is None or self.shown_up_to is None:
            return
        leaf = await sync_to_async(threads.current_leaf_id)(self.conversation)  # as of joining
        if leaf is None or leaf == self.shown_up_to:
            return
        self.shown_up_to = leaf
        await self._send_thread(self.conversation)

    async def _send_live_state(self) -> None:
        """On (re)connect: the answer so far, then live deltas continue from there."""
        assert self.conversation is not None
        await control.sweep_and_announce(self.conversation.pk)
        for message in await self._live_messages():
            await self._send_live_message(message)

    async def _send_live_message(self, message: Message, fallback: LiveState | None = None) -> None:
        state = runs.snapshot(message.pk) or fallback
        if state is None:
            # Running on another worker: show the last checkpoint now, and ask that worker
            # for the exact state; deltas wait until its answer (chat_snapshot) arrives.
            self.awaiting[message.pk] = time.monotonic()
            await self.send(text_data=frames.live_message(message, saved_state(message)))
            await control.request("snapshot", message.pk, reply_to=self.channel_name)
            return
        self.awaiting.pop(message.pk, None)
        self.delivered[message.pk] = (len(state.blocks), len(state.reasoning))
        await self.send(text_data=frames.live_message(message, state))

    # --- group events -------------------------------------------------------------

    async def chat_messages_added(self, event: dict[str, Any]) -> None:
        # Saved before this socket joined and published after: the page has them already.
        new = [pk for pk in event["message_ids"] if pk > (self.shown_up_to or 0)]
        if not new:
            return
        if shipped := group_events.drawn(event, new):
            drawn, live = shipped
            await self._show_added(live, drawn)
        else:
            messages = await self._messages(new)
            await self._show_added(messages, frames.messages_added(messages, generating=True))

    async def _show_added(self, messages: list[Message], drawn: str) -> None:
        """Send `drawn`, the frame of new `messages` (at least the live ones among them)."""
        self._drew(messages)
        await self.send(text_data=drawn)

    def _drew(self, messages: list[Message]) -> None:
        """`messages` are being drawn as they were read (or shipped). A live answer among
        them was drawn as last saved: its next frame redraws it whole from this copy, or,
        drawn waiting for its first text, adds that text to it (chat_delta)."""
        for message in messages:
            if message.is_live:
                self.pending[message.pk] = message
                self.delivered.pop(message.pk, None)  # the drawing starts over
            else:
                self.pending.pop(message.pk, None)

    async def chat_delta(self, event: dict[str, Any]) -> None:
        pk = event["message_id"]
        if pk in self.awaiting:
            if time.monotonic() - self.awaiting[pk] < SNAPSHOT_PATIENCE:
                return
            self.awaiting.pop(pk)  # its worker did not answer: start over from this frame
        if pk not in self.delivered:
            shown = self.pending.pop(pk, None)
            starts = event["blocks_offset"] == 0 and event["reasoning_offset"] == 0
            if starts and shown is not None and _drawn_empty(shown):
                # Drawn waiting in this tab, and this frame has all of it so far: a delta, the
                # page marks the answer as being written (static/js/chat.js, markWriting). A
                # redraw of the whole answer cost half a millisecond on the first token's way.
                self.delivered[pk] = (len(event["blocks"]), len(event["reasoning"]))
                await self.send(
                    text_data=frames.delta(pk, event["blocks"], event["tail"], event["reasoning"])
                )
                return
            # First frame of this answer here: redraw it whole, marked as streaming.
            messages = [shown] if shown is not None else await self._messages([pk])
            fallback = (
                LiveState(event["blocks"], event["tail"], event["reasoning"]) if starts else None
            )
            if messages:
                await self._send_live_message(messages[0], fallback)
            return
        have_blocks, have_reasoning = self.delivered[pk]
        blocks = _unseen(event["blocks"], event["blocks_offset"], have_blocks)
        reasoning = _unseen(event["reasoning"], event["reasoning_offset"], have_reasoning)
        if blocks is None or reasoning is None:  # a gap: redraw from the snapshot instead
            await self._send_live_state()
            return
        self.delivered[pk] = (have_blocks + len(blocks), have_reasoning + len(reasoning))
        await self.send(text_data=frames.delta(pk, blocks, event["tail"], reasoning))

    async def chat_snapshot(self, event: dict[str, Any]) -> None:
        """Another worker's answer to our snapshot request."""
        pk = event["message_id"]
        if self.awaiting.pop(pk, None) is None:
            return
        messages = await self._messages([pk])
        if messages and messages[0].is_live:
            state = LiveState(event["blocks"], event["tail"], event["reasoning"])
            await self._send_live_message(messages[0], state)

    async def chat_message_updated(self, event: dict[str, Any]) -> None:
        if self.conversation is None:
            return
        pk = event["message_id"]
        found = await sync_to_async(updated_frame)(self.conversation, pk)
        if found is None:
            return
        frame, message = found
        self.delivered.pop(pk, None)
        self.awaiting.pop(pk, None)
        self._drew([message])  # a retried answer, drawn waiting again
        await self.send(text_data=frame)

    async def chat_thread_changed(self, event: dict[str, Any]) -> None:
        if self.conversation is None:
            return
        await self.conversation.arefresh_from_db(fields=["current_leaf", "current_leaf_as_of"])
        await self._send_thread(self.conversation)

    async def _send_thread(self, conversation: Conversation) -> None:
        """The branch on screen drawn again whole; live answers redraw at their next frame."""
        thread = await sync_to_async(threads.thread_of)(conversation)
        self.delivered.clear()
        self.pending.clear()
        self._drew(thread.messages)  # a regenerated or edited answer, drawn waiting
        generating = any(m.is_live for m in thread.messages)
        await self.send(text_data=frames.thread(thread, generating))

    async def chat_title_updated(self, event: dict[str, Any]) -> None:
        if self.conversation is None:
            return
        await self.conversation.arefresh_from_db(fields=["title", "title_generated"])
        await self.send(text_data=frames.title_updated(self.conversation))

    async def _messages(self, ids: list[int]) -> list[Message]:
        if self.conversation is None:
            return []
        found = (
            self.conversation.messages.filter(pk__in=ids)
            .prefetch_related("attachments")
            .order_by("id")
        )
        return [m async for m in found]


def updated_frame(conversation: Conversation, message_id: int) -> tuple[str, Message] | None:
    """The frame redrawing one message, and the message as read: read and rendered in one
    trip to the database thread (which first closes stale connections: dispatch skips
    Channels' own trip for that)."""
    close_old_connections()
    found = Message.objects.raw(
        sql.statement("SELECT * FROM {message} WHERE id = %s AND conversation_id = %s"),
        [message_id, conversation.pk],
    )
    message = next(iter(found), None)
    if message is None:
        return None
    if message.role == Message.Role.USER:  # only questions show images
        prefetch_related_objects([message], "attachments")
    generating = threads.generating(conversation.pk)
    return frames.message_updated(message, generating, threads.version_of(message)), message


def shown_up_to(scope: dict[str, Any]) -> int | None:
    """`?after=<id>` of the socket's URL: the last message on the page (0: none)."""
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("after", [])
    return int(values[0]) if values and re.fullmatch(r"[0-9]{1,18}", values[0]) else None


def _drawn_empty(message: Message) -> bool:
    """Whether `message` was drawn waiting for its first text (not from a checkpoint)."""
    return message.status == Message.Status.PENDING and not (message.content or message.reasoning)


def saved_state(message: Message) -> LiveState:
    """A live answer as last checkpointed (its worker is elsewhere or gone)."""
    return LiveState(
        render_markdown(message.content) if message.content else "", "", message.reasoning
    )


def _unseen(chunk: str, offset: int, have: int) -> str | None:
    """The part of a delta this socket has not shown yet; None if text is missing before it."""
    if offset > have:
        return None
    return chunk[have - offset :]
