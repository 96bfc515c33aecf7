"""Recording upstream calls in the usage ledger: tokens (reported or estimated) and their cost."""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

from conversations.models import ChatModel, UsageRecord
from conversations.providers.base import Usage

MILLION = Decimal(1_000_000)
CHARS_PER_TOKEN = 4  # the usual rule of thumb for English text with GPT-style tokenizers


@dataclass(frozen=True)
class Call:
    """One upstream call, as the runner saw it."""

    user_id: int
    username: str
    model: ChatModel
    outcome: str  # UsageRecord.Outcome
    conversation_id: int | None = None
    message_id: int | None = None
    kind: str = UsageRecord.Kind.CHAT
    attempt: int = 1
    error: str = ""
    usage: Usage | None = None
    prompt_chars: int = 0  # for estimating when the upstream reports no usage
    output_chars: int = 0
    ttft_ms: int | None = None
    duration_ms: int | None = None


def estimate_tokens(chars: int) -> int:
    return math.ceil(chars / CHARS_PER_TOKEN) if chars > 0 else 0


def cost_of(
    input_tokens: int,
    output_tokens: int,
    input_price: Decimal,
    output_price: Decimal,
    cached_tokens: int = 0,
    cached_price: Decimal | None = None,
) -> Decimal:
    """Prices are per million tokens; Decimal all the way, no float rounding. Cached tokens
    are part of the input tokens; at `cached_price` when the model has one."""
    cached = min(max(cached_tokens, 0), input_tokens) if cached_price is not None else 0
    total = (
        Decimal(input_tokens - cached) * input_price
        + Decimal(cached) * (cached_price or Decimal(0))
        + Decimal(output_tokens) * output_price
    )
    return total / MILLION


def _tokens(call: Call) -> tuple[int, int, int, int, bool]:
    usage = call.usage
    reported_in = usage.input_tokens if usage else None
    reported_out = usage.output_tokens if usage else None
    # A call refused before any output used nothing, so there is nothing to estimate.
    worked = call.prompt_chars > 0 or call.output_chars > 0
    estimated = worked and (reported_in is None or reported_out is None)
    input_tokens = reported_in if reported_in is not None else estimate_tokens(call.prompt_chars)
    output_tokens = reported_out if reported_out is not None else estimate_tokens(call.output_chars)
    reasoning = (usage.reasoning_tokens or 0) if usage else 0
    cached = (usage.cached_tokens or 0) if usage else 0
    return input_tokens, output_tokens, reasoning, cached, estimated


def build_record(call: Call) -> UsageRecord:
    input_tokens, output_tokens, reasoning, cached, estimated = _tokens(call)
    model = call.model
    in_price, out_price = model.input_price_per_mtok, model.output_price_per_mtok
    cached_price = model.cached_input_price_per_mtok
    return UsageRecord(
        user_id=call.user_id,
        username=call.username,
        conversation_id=call.conversation_id,
        message_id=call.message_id,
        provider_id=model.provider_id,
        provider_name=model.provider.name,
        model=model,
        model_name=model.display_name,
        upstream_model=model.upstream_id,
        kind=call.kind,
        outcome=call.outcome,
        attempt=call.attempt,
        error=call.error[:2000],
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        reasoning_tokens=reasoning,
        cached_tokens=cached,
        estimated=estimated,
        input_price_per_mtok=in_price,
        output_price_per_mtok=out_price,
        cached_input_price_per_mtok=cached_price,
        cost=cost_of(input_tokens, output_tokens, in_price, out_price, cached, cached_price),
        ttft_ms=call.ttft_ms,
        duration_ms=call.duration_ms,
    )


async def record(call: Call) -> UsageRecord:
    entry = build_record(call)
    await entry.asave()
    return entry
