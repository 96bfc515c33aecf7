"""The generation runner: streams one assistant answer from its upstream into the database
and out through an async `publish` callback. It knows nothing of Channels or websockets."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx
from asgiref.sync import sync_to_async
from django.conf import settings

from conversations import sql, threads
from conversations import usage as ledger
from conversations.coalescer import DeltaCoalescer, LiveState, Publish, render_whole
from conversations.models import Attachment, ChatModel, Message, UsageRecord
from conversations.providers import get_protocol
from conversations.providers.base import (
    ChatRequest,
    Finish,
    ImagePart,
    ProviderConfig,
    ProviderError,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    Turn,
    Usage,
    WireProtocol,
)
from conversations.providers.transport import stream_events
from conversations.rendering import render_json_answer

logger = logging.getLogger(__name__)

INTERNAL_ERROR = "Something went wrong on our side while generating this answer."
FINISH_NOTES = {
    "length": "The answer reached the maximum length and was cut off.",
    "content_filter": "The provider stopped this answer with its content filter.",
}


class JobError(Exception):
    """The answer cannot be attempted (model removed, provider disabled...)."""


@dataclass(frozen=True)
class Job:
    message_id: int
    conversation_id: int
    protocol: WireProtocol
    config: ProviderConfig
    request: ChatRequest
    model: ChatModel
    user_id: int
    username: str

    @property
    def prompt_chars(self) -> int:
        return len(self.request.system) + sum(len(t.text) for t in self.request.turns)


def history_turns(messages: list[threads.Earlier]) -> tuple[Turn, ...]:
    """Earlier messages as upstream turns: reasoning stays out, empty answers are skipped.

    Runs over the whole conversation on every submission, so the loop does no more than it
    must for a message without images (most of them)."""
    user = Message.Role.USER
    with_images = [m.pk for m in messages if m.has_images and m.role == user]
    attached: dict[int, list[Attachment]] = defaultdict(list)
    if with_images:
        for attachment in Attachment.objects.filter(message__in=with_images).order_by("id"):
            attached[attachment.message_id or 0].append(attachment)
    turns = []
    for message in messages:
        if message.role == user:
            files = attached.get(message.pk)
            images = tuple(image_part(a) for a in files) if files else ()
            turns.append(Turn("user", message.content, images))
        elif message.content:
            turns.append(Turn("assistant", message.content))
    return tuple(turns)


def image_part(attachment: Attachment) -> ImagePart:
    with attachment.file.open("rb") as handle:
        data = handle.read()
    return ImagePart(media_type=attachment.media_type, data_b64=base64.b64encode(data).decode())


def _load_job(message_id: int) -> Job:
    message = Message.objects.select_related("conversation__owner", "model__provider").get(
        pk=message_id
    )
    return job_for(message, message.conversation.owner)


def job_for(answer: Message, owner: Any) -> Job:
    """What the upstream call for `answer` needs; `answer.conversation` and `answer.model`
    (with its provider) are loaded. Reads the history and image files, so off the loop."""
    model = answer.model
    if model is None or not model.enabled or not model.provider.enabled:
        raise JobError("This model is no longer available. Pick another model and retry.")
    conversation = answer.conversation
    request = ChatRequest(
        model=model.upstream_id,
        turns=history_turns(threads.ancestors(answer)),
        system=conversation.system_prompt,
        params=model.generation_params(conversation.params),
    )
    return Job(
        message_id=answer.pk,
        conversation_id=conversation.pk,
        protocol=get_protocol(model.provider.protocol),
        config=model.provider.config(),
        request=request,
        model=model,
        user_id=conversation.owner_id,
        username=owner.get_username(),
    )


async def load_job(message_id: int) -> Job:
    """Everything the upstream call needs, read in one go (files included) off the loop."""
    return await sync_to_async(_load_job)(message_id)


@dataclass
class Generation:
    """The state of one answer while it streams; `snapshot` serves resuming clients."""

    job: Job
    publish: Publish
    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    tool_calls: dict[int, dict[str, str]] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    finish: Finish | None = None
    started: float = field(default_factory=time.monotonic)
    first_token_at: float | None = None
    reasoning_ended_at: float | None = None
    dirty: bool = False
    attempts: int = 1

    def __post_init__(self) -> None:
        self.coalescer = DeltaCoalescer(
            self.job.message_id, self.publish, settings.STREAM_FRAME_INTERVAL
        )

    def snapshot(self) -> LiveState:
        """The answer exactly as far as frames have been published."""
        return self.coalescer.snapshot()

    async def run(self, client: httpx.AsyncClient) -> None:
        checkpoints = asyncio.create_task(self._checkpoint_loop())
        try:
            with self.coalescer.pacing_reads():
                async for event in stream_events(
                    client,
                    self.job.protocol,
                    self.job.config,
                    self.job.request,
                    on_attempt=self._on_attempt,
                ):
                    await self._apply(event)
        except asyncio.CancelledError:
            await self._end(checkpoints, Message.Status.CANCELLED)
            raise
        except ProviderError as exc:
            await self._end(checkpoints, Message.Status.ERROR, exc.message, record=False)
        except Exception:
            logger.exception("generation of message %s failed", self.job.message_id)
            await self._end(checkpoints, Message.Status.ERROR, INTERNAL_ERROR)
        else:
            await self._end(checkpoints, Message.Status.COMPLETE)

    async def _apply(self, event: object) -> None:
        if isinstance(event, TextDelta):
            self._mark_first_token()
            if self.reasoning and self.reasoning_ended_at is None:
                self.reasoning_ended_at = time.monotonic()
            self.text.append(event.text)
            self.dirty = True
            await self.coalescer.add(text=event.text)
        elif isinstance(event, ReasoningDelta):
            self._mark_first_token()
            self.reasoning.append(event.text)
            self.dirty = True
            await self.coalescer.add(reasoning=event.text)
        elif isinstance(event, ToolCallDelta):
            self._mark_first_token()
            self._merge_tool_call(event)
        elif isinstance(event, Usage):
            self.usage = merge_usage(self.usage, event)
        elif isinstance(event, Finish):
            self.finish = event

    async def _on_attempt(self, attempt: int, error: ProviderError | None) -> None:
        """Every failed attempt gets its own ledger row (retries are billed calls too)."""
        self.attempts = attempt + (error is not None)
        if error is not None:
            # The one log line of an upstream call: a failed attempt (httpx's own line for
            # every request is off, see settings.LOGGING). The message holds no key (scrub).
            logger.warning(
                "upstream call for message %s failed (attempt %s, model %s of provider %s): %s [%s]",
                self.job.message_id,
                attempt,
                self.job.model.upstream_id,
                self.job.model.provider.name,
                error.message,
                error.status or error.code or "no status",
            )
            await self._record(UsageRecord.Outcome.ERROR, attempt, error.message)

    async def _record(self, outcome: str, attempt: int, error: str = "") -> None:
        await sync_to_async(_save_record)(self._call(outcome, attempt, error))

    def _call(self, outcome: str, attempt: int, error: str = "") -> ledger.Call:
        text = "".join(self.text) + "".join(self.reasoning)
        produced = bool(text) or self.usage.output_tokens is not None
        return ledger.Call(
            user_id=self.job.user_id,
            username=self.job.username,
            model=self.job.model,
            outcome=outcome,
            conversation_id=self.job.conversation_id,
            message_id=self.job.message_id,
            attempt=attempt,
            error=error,
            usage=self.usage if self.usage != Usage() else None,
            # A call refused before any output used no tokens: nothing to estimate.
            prompt_chars=self.job.prompt_chars if produced or outcome != "error" else 0,
            output_chars=len(text),
            ttft_ms=_ms(self.first_token_at - self.started) if self.first_token_at else None,
            duration_ms=_ms(time.monotonic() - self.started),
        )

    def _mark_first_token(self) -> None:
        if self.first_token_at is None:
            self.first_token_at = time.monotonic()

    def _merge_tool_call(self, event: ToolCallDelta) -> None:
        call = self.tool_calls.setdefault(event.index, {"id": "", "name": "", "arguments": ""})
        call["id"] = call["id"] or event.call_id
        call["name"] = call["name"] or event.name
        call["arguments"] += event.arguments

    async def _checkpoint_loop(self) -> None:
        """Save progress and renew the lease on a timer: writes scale with time, not tokens."""
        interval = settings.STREAM_CHECKPOINT_INTERVAL
        while True:
            await asyncio.sleep(interval)
            progress = None
            if self.dirty:
                self.dirty = False
                progress = ("".join(self.text), "".join(self.reasoning))
            await sync_to_async(_save_checkpoint)(self.job.message_id, progress)

    async def _end(
        self, checkpoints: asyncio.Task[None], status: str, error: str = "", record: bool = True
    ) -> None:
        """Final save; `record=False` when the failed attempt already has its ledger row."""
        checkpoints.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await checkpoints
        await self.coalescer.close()
        outcome = {"complete": "ok", "cancelled": "cancelled"}.get(status, "error")
        call = self._call(outcome, self.attempts, error) if record else None
        fields = self._final_fields(status, error, await self._final_html())
        await sync_to_async(_save_final)(self.job.message_id, fields, call)
        await self.publish({"type": "chat.message_updated", "message_id": self.job.message_id})

    async def _final_html(self) -> str:
        text = "".join(self.text)
        if not text:
            return ""
        if not self.job.request.params.json_mode:
            return await self.coalescer.final_html()
        return await render_whole(len(text), render_json_answer, text)

    def _final_fields(self, status: str, error: str, html: str) -> dict[str, Any]:
        text = "".join(self.text)
        now = time.monotonic()
        finish = self.finish.reason if self.finish else ""
        if status == Message.Status.COMPLETE and not error:
            error = FINISH_NOTES.get(finish, "")
        error = error[:1].upper() + error[1:]
        return {
            "status": status,
            "content": text,
            "content_html": html,
            "reasoning": "".join(self.reasoning),
            "tool_calls": [self.tool_calls[i] for i in sorted(self.tool_calls)],
            "error": error,
            "finish_reason": (self.finish.raw_reason or finish) if self.finish else "",
            "input_tokens": self.usage.input_tokens,
            "output_tokens": self.usage.output_tokens,
            "reasoning_tokens": self.usage.reasoning_tokens,
            "ttft_ms": _ms(self.first_token_at - self.started) if self.first_token_at else None,
            "duration_ms": _ms(now - self.started),
            "reasoning_ms": self._reasoning_ms(now),
            "lease_expires_at": None,
        }

    def _reasoning_ms(self, now: float) -> int | None:
        if not self.reasoning or self.first_token_at is None:
            return None
        return _ms((self.reasoning_ended_at or now) - self.first_token_at)


def _save_checkpoint(message_id: int, progress: tuple[str, str] | None) -> None:
    """The lease renewed and, with `progress` (text, reasoning), the answer so far. Plain SQL:
    with a few hundred answers streaming, the ORM building this UPDATE every two seconds
    each was a twentieth of a worker."""
    lease = sql.to_db(Message.lease_until())
    if progress is None:
        sql.execute("UPDATE {message} SET lease_expires_at = %s WHERE id = %s", [lease, message_id])
        return
    sql.execute(
        "UPDATE {message} SET lease_expires_at = %s, status = %s, content = %s, reasoning = %s"
        " WHERE id = %s",
        [lease, Message.Status.STREAMING.value, *progress, message_id],
    )


def _save_final(message_id: int, fields: dict[str, Any], call: ledger.Call | None) -> None:
    """The answer's final state and its ledger row, in one trip to the database thread."""
    Message.objects.filter(pk=message_id).update(**fields)
    if call is not None:
        _save_record(call)


def _save_record(call: ledger.Call) -> None:
    try:
        ledger.build_record(call).save()
    except Exception:  # the answer matters more than its ledger row
        logger.exception("could not record usage of message %s", call.message_id)


def merge_usage(old: Usage, new: Usage) -> Usage:
    """Usage reports are cumulative; a later report's known fields win."""
    return Usage(
        input_tokens=new.input_tokens if new.input_tokens is not None else old.input_tokens,
        output_tokens=new.output_tokens if new.output_tokens is not None else old.output_tokens,
        reasoning_tokens=(
            new.reasoning_tokens if new.reasoning_tokens is not None else old.reasoning_tokens
        ),
        cached_tokens=new.cached_tokens if new.cached_tokens is not None else old.cached_tokens,
    )


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


async def fail_before_start(message_id: int, error: str, publish: Publish) -> None:
    """Mark an answer that could not even be attempted."""
    await Message.objects.filter(pk=message_id).aupdate(
        status=Message.Status.ERROR, error=error, lease_expires_at=None, duration_ms=0
    )
    await publish({"type": "chat.message_updated", "message_id": message_id})
