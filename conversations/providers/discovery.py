"""Listing the models an upstream offers, through its protocol's models endpoint."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from . import anthropic_messages
from .base import ProviderConfig, ProviderError, WireProtocol
from .sse import get_str, load_object
from .transport import error_for_status, read_head, timeout_for, transport_error

MAX_MODELS_BODY = 4 * 1024 * 1024  # a big gateway lists hundreds of models, not millions


@dataclass(frozen=True)
class DiscoveredModel:
    id: str
    display_name: str


def parse_models(protocol_name: str, payload: dict[str, Any]) -> list[DiscoveredModel]:
    """Models from `{"data": [{"id": ..., "display_name"?: ...}]}`, duplicates dropped.

    Anthropic lists newest first, which is worth keeping; OpenAI-style lists have no
    useful order, so they are sorted by id.
    """
    entries = payload.get("data")
    models: dict[str, DiscoveredModel] = {}
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or not (model_id := get_str(entry, "id").strip()):
            continue
        name = get_str(entry, "display_name").strip() or model_id
        models.setdefault(model_id, DiscoveredModel(model_id, name))
    found = list(models.values())
    if protocol_name == anthropic_messages.NAME:
        return found
    return sorted(found, key=lambda model: model.id)


async def discover_models(
    client: httpx.AsyncClient, protocol: WireProtocol, config: ProviderConfig
) -> list[DiscoveredModel]:
    """Ask the upstream for its models; raises ProviderError with a plain-words message."""
    call = protocol.models_call(config)
    answered = False
    try:
        async with client.stream(
            call.method, call.url, headers=call.headers, timeout=timeout_for(config)
        ) as response:
            answered = True
            body = await read_head(response, MAX_MODELS_BODY)
    except httpx.HTTPError as exc:
        raise transport_error(exc, config, answered=answered) from exc
    except httpx.InvalidURL as exc:
        raise ProviderError("the provider's base URL is not valid", code="invalid_url") from exc
    if not response.is_success:
        raise error_for_status(response.status_code, body, response.headers, config.api_key)
    payload = load_object(body)
    if payload is None:
        text = "the provider's model list is not JSON (check the base URL)"
        raise ProviderError(text, status=response.status_code, code="malformed")
    return parse_models(protocol.name, payload)
