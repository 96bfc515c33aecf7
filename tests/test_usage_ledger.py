"""The usage ledger: the real runner against a real local upstream, for every wire protocol."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from conversations.models import ChatModel, Message, UsageRecord
from conversations.streaming import Generation, load_job
from conversations.usage import cost_of, estimate_tokens
from conversations.usage_reports import DateRange, records, totals
from tests.conftest import add_message, make_conversation, make_model
from tests.upstream import (
    FakeUpstream,
    Scripted,
    chat_completion_stream,
    messages_stream,
    openai_usage,
    sse,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fast_streams")]

PRICES: dict[str, Any] = {
    "input_price_per_mtok": Decimal("2.50"),
    "output_price_per_mtok": Decimal("10.00"),
}
QUESTION = "How many tokens is this question?"
SYSTEM = "You are terse."


@pytest.fixture(autouse=True)
def fast_passwords(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@sync_to_async
def start_exchange(user: Any, model: ChatModel) -> Message:
    conversation = make_conversation(user, model)
    conversation.system_prompt = SYSTEM
    conversation.save(update_fields=["system_prompt"])
    add_message(conversation, "user", QUESTION)
    return add_message(
        conversation, "assistant", "", status="pending", model=model, model_name=model.display_name
    )


async def run_answer(message: Message) -> Message:
    async def publish(frame: dict[str, Any]) -> None:
        pass

    job = await load_job(message.pk)
    async with httpx.AsyncClient() as client:
        await Generation(job=job, publish=publish).run(client)
    return await Message.objects.aget(pk=message.pk)


@sync_to_async
def ledger_rows(message: Message) -> list[UsageRecord]:
    return list(UsageRecord.objects.filter(message=message).order_by("attempt", "pk"))


@sync_to_async
def model_for(upstream: FakeUpstream, protocol: str, **extra: Any) -> ChatModel:
    # Anthropic base URLs have no /v1; the others do.
    base_url = upstream.origin if protocol == "anthropic-messages" else upstream.url
    return make_model(base_url, protocol=protocol, **PRICES, **extra)


def responses_stream(pieces: list[str], usage: dict[str, Any]) -> list[bytes]:
    """A Responses stream as OpenAI sends it: created, text deltas, completed with usage."""
    response: dict[str, Any] = {
        "id": "resp_usage_ledger_test", "object": "response", "status": "in_progress",
        "model": "gpt-4.1-2025-04-14", "output": [], "usage": None,
    }  # fmt: skip
    chunks = [sse({"type": "response.created", "response": response}, "response.created")]
    for number, piece in enumerate(pieces):
        delta = {
            "type": "response.output_text.delta", "sequence_number": number + 1,
            "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": piece,
        }  # fmt: skip
        chunks.append(sse(delta, "response.output_text.delta"))
    done = {**response, "status": "completed", "usage": usage}
    chunks.append(sse({"type": "response.completed", "response": done}, "response.completed"))
    return chunks


# Each case: protocol, the upstream's chunks, and the usage they report
# (input, output, reasoning, cached).
CASES = {
    "openai-chat": (
        chat_completion_stream(
            ["Twelve ", "tokens."],
            usage={
                **openai_usage(1234, 567, reasoning_tokens=100),
                "prompt_tokens_details": {"cached_tokens": 200, "audio_tokens": 0},
            },
        ),
        (1234, 567, 100, 200),
    ),
    "anthropic-messages": (
        messages_stream(["Three ", "little ", "pieces."], input_tokens=321),
        (321, 3, 0, 0),  # messages_stream reports one output token per piece
    ),
    "openai-responses": (
        responses_stream(
            ["Hello ", "from ", "Responses."],
            {
                "input_tokens": 40,
                "input_tokens_details": {"cached_tokens": 8},
                "output_tokens": 25,
                "output_tokens_details": {"reasoning_tokens": 10},
                "total_tokens": 65,
            },
        ),
        (40, 25, 10, 8),
    ),
}


@pytest.mark.parametrize("protocol", list(CASES))
async def test_the_ledger_row_holds_the_usage_the_upstream_reported(alice, upstream, protocol):
    chunks, (input_tokens, output_tokens, reasoning, cached) = CASES[protocol]
    upstream.script(Scripted(chunks=chunks))
    model = await model_for(upstream, protocol)
    message = await start_exchange(alice, model)

    saved = await run_answer(message)

    assert saved.status == "complete"
    [row] = await ledger_rows(message)
    assert (row.input_tokens, row.output_tokens) == (input_tokens, output_tokens)
    assert (row.reasoning_tokens, row.cached_tokens) == (reasoning, cached)
    assert row.estimated is False
    assert (row.outcome, row.attempt, row.kind) == ("ok", 1, "chat")
    assert (row.user_id, row.username, row.conversation_id) == (
        alice.pk,
        "alice",
        saved.conversation_id,
    )
    assert (row.model_id, row.model_name, row.provider_id) == (
        model.pk,
        model.display_name,
        model.provider_id,
    )
    assert row.cost == cost_of(input_tokens, output_tokens, Decimal("2.50"), Decimal("10.00"))
    assert row.ttft_ms is not None and row.duration_ms is not None
    assert row.duration_ms >= row.ttft_ms


async def test_ledger_totals_equal_the_sum_of_what_every_protocol_reported(alice, upstream):
    for protocol, (chunks, _) in CASES.items():
        upstream.script(Scripted(chunks=chunks))
        message = await start_exchange(alice, await model_for(upstream, protocol))
        await run_answer(message)

    today = DateRange.last_days(1, timezone.localdate())
    figures = await sync_to_async(lambda: totals(records(today, alice.pk)))()

    reported = [expected for _, expected in CASES.values()]
    assert figures.calls == 3
    assert figures.input_tokens == sum(r[0] for r in reported)
    assert figures.output_tokens == sum(r[1] for r in reported)
    assert figures.reasoning_tokens == sum(r[2] for r in reported)
    assert figures.cached_tokens == sum(r[3] for r in reported)
    assert figures.cost == sum(
        (cost_of(r[0], r[1], Decimal("2.50"), Decimal("10.00")) for r in reported), Decimal(0)
    )
    assert figures.estimated == 0 and figures.failures == 0


async def test_a_retried_rate_limit_gives_an_error_row_then_an_ok_row(alice, upstream):
    model = await model_for(upstream, "openai-chat")
    model.provider.max_retries = 1
    await model.provider.asave(update_fields=["max_retries"])
    limited = {"error": {"message": "Rate limit reached", "type": "rate_limit_exceeded"}}
    upstream.script(
        Scripted.json(limited, status=429, headers={"retry-after": "0"}),
        Scripted(chunks=chat_completion_stream(["Fine."], usage=openai_usage(50, 2))),
    )
    message = await start_exchange(alice, model)

    saved = await run_answer(message)

    assert saved.status == "complete" and len(upstream.requests) == 2
    failed, succeeded = await ledger_rows(message)
    assert (failed.outcome, failed.attempt) == ("error", 1)
    assert "rate limited" in failed.error
    assert (failed.input_tokens, failed.output_tokens, failed.cost) == (0, 0, Decimal(0))
    assert (succeeded.outcome, succeeded.attempt) == ("ok", 2)
    assert (succeeded.input_tokens, succeeded.output_tokens) == (50, 2)
    assert succeeded.estimated is False


async def test_a_stream_without_usage_is_estimated_from_characters_and_flagged(alice, upstream):
    pieces = ["An answer ", "of some ", "length, without usage."]
    upstream.script(Scripted(chunks=chat_completion_stream(pieces)))  # no usage chunk
    model = await model_for(upstream, "openai-chat")
    message = await start_exchange(alice, model)

    await run_answer(message)

    [row] = await ledger_rows(message)
    assert row.estimated is True and row.outcome == "ok"
    prompt_chars = len(SYSTEM) + len(QUESTION)
    assert row.input_tokens == math.ceil(prompt_chars / 4) == estimate_tokens(prompt_chars)
    assert row.output_tokens == math.ceil(len("".join(pieces)) / 4)
    assert row.cost == cost_of(row.input_tokens, row.output_tokens, *PRICES.values())
    assert row.cost > 0


async def test_a_call_refused_before_any_output_counts_no_tokens(alice, upstream):
    refused = {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}
    upstream.script(Scripted.json(refused, status=401))
    model = await model_for(upstream, "openai-chat")
    message = await start_exchange(alice, model)

    saved = await run_answer(message)

    assert saved.status == "error"
    [row] = await ledger_rows(message)
    assert (row.outcome, row.attempt) == ("error", 1)
    assert (row.input_tokens, row.output_tokens, row.cost) == (0, 0, Decimal(0))
    assert row.estimated is False  # refused before any output: zero tokens, nothing estimated


def test_cost_is_decimal_arithmetic_on_prices_per_million_tokens():
    cost = cost_of(1234, 567, Decimal("2.50"), Decimal("10.00"))

    assert cost == Decimal("0.008755")
    assert isinstance(cost, Decimal)
    assert cost_of(1, 1, Decimal("0.10"), Decimal("0.40")) == Decimal("0.0000005")
    assert cost_of(1_000_000, 0, Decimal("3"), Decimal("15")) == Decimal(3)


def test_the_saved_cost_survives_the_database_exactly(alice, upstream):
    model = make_model(upstream.url, **PRICES)
    row = UsageRecord.objects.create(
        user=alice,
        username="alice",
        model=model,
        model_name=model.display_name,
        provider_name=model.provider.name,
        upstream_model=model.upstream_id,
        outcome="ok",
        input_tokens=1234,
        output_tokens=567,
        cost=cost_of(1234, 567, Decimal("2.50"), Decimal("10.00")),
    )

    row.refresh_from_db()

    assert row.cost == Decimal("0.008755")


def test_cached_input_tokens_are_priced_at_the_cached_price_when_the_model_has_one():
    full = cost_of(1000, 100, Decimal("2.50"), Decimal("10.00"), cached_tokens=400)
    cheaper = cost_of(1000, 100, Decimal("2.50"), Decimal("10.00"), 400, Decimal("1.25"))

    assert full == Decimal("0.0035")  # no cached price: every input token at the input price
    assert cheaper == Decimal("0.003")  # (600 * 2.50 + 400 * 1.25 + 100 * 10) / 1,000,000
    # A report of more cached tokens than input tokens prices the input tokens only.
    assert cost_of(1000, 0, Decimal("2.50"), Decimal(0), 5000, Decimal("1.25")) == Decimal(
        "0.00125"
    )


@pytest.mark.parametrize("protocol", ["openai-chat", "openai-responses"])
async def test_the_ledger_prices_cached_tokens_at_the_models_cached_price(
    alice, upstream, protocol
):
    chunks, (input_tokens, output_tokens, _, cached) = CASES[protocol]
    upstream.script(Scripted(chunks=chunks))
    model = await model_for(upstream, protocol, cached_input_price_per_mtok=Decimal("0.25"))
    message = await start_exchange(alice, model)

    await run_answer(message)

    [row] = await ledger_rows(message)
    assert cached > 0
    assert row.cached_input_price_per_mtok == Decimal("0.25")  # the price of the day, kept
    prices = (Decimal("2.50"), Decimal("10.00"))
    assert row.cost == cost_of(input_tokens, output_tokens, *prices, cached, Decimal("0.25"))
    assert row.cost < cost_of(input_tokens, output_tokens, *prices)
