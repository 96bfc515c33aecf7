"""Names a conversation after its first exchange by asking its own model; the call is billed."""

from __future__ import annotations

import logging
import re
import time

import httpx
from asgiref.sync import sync_to_async
from django.conf import settings

from conversations import usage as ledger
from conversations.coalescer import Publish
from conversations.models import ChatModel, Conversation, Message, UsageRecord
from conversations.providers import get_protocol
from conversations.providers.base import (
    ChatRequest,
    GenerationParams,
    ProviderError,
    TextDelta,
    Turn,
    Usage,
)
from conversations.providers.transport import stream_events
from conversations.streaming import merge_usage

logger = logging.getLogger(__name__)

INSTRUCTION = (
    "Write a short title (at most 6 words) for the conversation below. "
    "Reply with the title only, without quotes or punctuation at the end."
)
EXCERPT_CHARS = 1500
QUOTES = "\"' \u201c\u201d\u2018\u2019"  # straight and curly quotes around a title
MAX_TITLE = 80


def clean_title(text: str) -> str:
    """The first non-empty line, without Markdown marks, quotes or a trailing full stop."""
    line = next((ln for ln in text.splitlines() if ln.strip()), "")
    line = re.sub(r"^[#>*\-\s]+|[*_`]", "", line)
    line = " ".join(line.split()).strip(QUOTES).rstrip(".:;")
    line = re.sub(r"^title:\s*", "", line, flags=re.IGNORECASE)
    return line[:MAX_TITLE].strip()


def title_request(model: ChatModel, question: str, answer: str) -> ChatRequest:
    prompt = (
        f"{INSTRUCTION}\n\nUser: {question[:EXCERPT_CHARS]}\n\nAssistant: {answer[:EXCERPT_CHARS]}"
    )
    return ChatRequest(
        model=model.upstream_id,
        turns=(Turn(role="user", text=prompt),),
        params=GenerationParams(max_tokens=30),
    )


def _first_exchange(conversation_id: int) -> tuple[Conversation, Message, Message] | None:
    conversation = Conversation.objects.select_related("owner").get(pk=conversation_id)
    if conversation.title_generated:
        return None
    messages = conversation.messages.select_related("model__provider").order_by("id")
    question = messages.filter(role=Message.Role.USER).first()
    answer = messages.filter(role=Message.Role.ASSISTANT, status=Message.Status.COMPLETE).first()
    if question is None or answer is None or answer.model is None:
        return None
    return conversation, question, answer


async def generate_title(conversation_id: int, client: httpx.AsyncClient, publish: Publish) -> str:
    """Ask for a title; on any failure the provisional title (first words) simply stays."""
    found = await sync_to_async(_first_exchange)(conversation_id)
    if found is None:
        return ""
    conversation, question, answer = found
    model = answer.model
    assert model is not None
    text, usage, error, started = "", Usage(), "", time.monotonic()
    request = title_request(model, question.content, answer.content)
    config = await sync_to_async(model.provider.config)()
    try:
        async for event in stream_events(
            client, get_protocol(model.provider.protocol), config, request
        ):
            if isinstance(event, TextDelta):
                text += event.text
            elif isinstance(event, Usage):
                usage = merge_usage(usage, event)
    except ProviderError as exc:
        error = exc.message
    await _record(conversation, model, usage, request, text, error, started)
    title = clean_title(text) if not error else ""
    if title and await _save(conversation_id, title):
        await publish({"type": "chat.title_updated", "conversation_id": conversation_id})
    return title


async def _record(
    conversation: Conversation,
    model: ChatModel,
    usage: Usage,
    request: ChatRequest,
    text: str,
    error: str,
    started: float,
) -> None:
    call = ledger.Call(
        user_id=conversation.owner_id,
        username=conversation.owner.get_username(),
        model=model,
        outcome=UsageRecord.Outcome.ERROR if error else UsageRecord.Outcome.OK,
        conversation_id=conversation.pk,
        kind=UsageRecord.Kind.TITLE,
        error=error,
        usage=usage if usage != Usage() else None,
        prompt_chars=sum(len(t.text) for t in request.turns) if text or not error else 0,
        output_chars=len(text),
        duration_ms=round((time.monotonic() - started) * 1000),
    )
    try:
        await ledger.record(call)
    except Exception:
        logger.exception("could not record the title call of conversation %s", conversation.pk)


async def _save(conversation_id: int, title: str) -> bool:
    # A rename by the user meanwhile sets title_generated, and wins.
    updated = await Conversation.objects.filter(pk=conversation_id, title_generated=False).aupdate(
        title=title, title_generated=True
    )
    return updated == 1


def enabled() -> bool:
    return bool(settings.AUTO_TITLES)
