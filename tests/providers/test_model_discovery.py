"""Listing an upstream's models."""

from __future__ import annotations

import pytest

from conversations.providers import get_protocol
from conversations.providers.base import ProviderConfig, ProviderError
from conversations.providers.discovery import DiscoveredModel, discover_models, parse_models
from tests.ports import free_port

OPENAI_LIST = {
    "object": "list",
    "data": [
        {"id": "gpt-4o-mini", "object": "model", "created": 1721172741, "owned_by": "system"},
        {"id": "gpt-4.1", "object": "model", "created": 1744316542, "owned_by": "system"},
        {"id": "gpt-4o-mini", "object": "model", "created": 1, "owned_by": "dup"},
        {"object": "model"},
        "junk",
    ],
}
ANTHROPIC_LIST = {
    "data": [
        {
            "type": "model",
            "id": "claude-sonnet-4-5-20250929",
            "display_name": "Claude Sonnet 4.5",
            "created_at": "2025-09-29T00:00:00Z",
        },
        {
            "type": "model",
            "id": "claude-3-5-haiku-20241022",
            "display_name": "Claude Haiku 3.5",
            "created_at": "2024-10-22T00:00:00Z",
        },
    ],
    "has_more": False,
    "first_id": "claude-sonnet-4-5-20250929",
    "last_id": "claude-3-5-haiku-20241022",
}


def test_openai_style_lists_are_deduplicated_and_sorted_by_id():
    assert parse_models("openai-chat", OPENAI_LIST) == [
        DiscoveredModel("gpt-4.1", "gpt-4.1"),
        DiscoveredModel("gpt-4o-mini", "gpt-4o-mini"),
    ]


def test_anthropic_lists_keep_display_names_and_their_newest_first_order():
    assert parse_models("anthropic-messages", ANTHROPIC_LIST) == [
        DiscoveredModel("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5"),
        DiscoveredModel("claude-3-5-haiku-20241022", "Claude Haiku 3.5"),
    ]


def test_a_payload_without_a_data_list_has_no_models():
    assert parse_models("openai-chat", {"models": []}) == []
    assert parse_models("openai-chat", {"data": "nope"}) == []


async def test_models_are_fetched_from_the_models_endpoint(upstream, http_client):
    upstream.reply_json(200, ANTHROPIC_LIST)
    config = ProviderConfig("anthropic-messages", upstream.base_url[:-3], api_key="k")
    models = await discover_models(http_client, get_protocol("anthropic-messages"), config)
    assert [m.id for m in models] == ["claude-sonnet-4-5-20250929", "claude-3-5-haiku-20241022"]
    seen = upstream.requests[0]
    assert (seen.method, seen.path) == ("GET", "/v1/models?limit=1000")
    assert seen.headers["authorization"] == "Bearer k"


async def test_a_refused_model_list_is_a_provider_error(upstream, http_client):
    upstream.reply_json(401, {"error": {"message": "Invalid key sk-secret-key-1"}})
    config = ProviderConfig("openai-chat", upstream.base_url, api_key="sk-secret-key-1")
    with pytest.raises(ProviderError) as caught:
        await discover_models(http_client, get_protocol("openai-chat"), config)
    assert "the provider rejected the API key" in caught.value.message
    assert "sk-secret-key-1" not in caught.value.message


async def test_a_model_list_that_is_not_json_is_a_provider_error(upstream, http_client):
    upstream.reply(200, b"<html>hello</html>", headers={"content-type": "text/html"})
    config = ProviderConfig("openai-responses", upstream.base_url)
    with pytest.raises(ProviderError, match="not JSON"):
        await discover_models(http_client, get_protocol("openai-responses"), config)


async def test_an_unreachable_server_is_a_provider_error(http_client):
    config = ProviderConfig(
        "openai-chat", f"http://127.0.0.1:{free_port()}/v1", connect_timeout=1.0
    )
    with pytest.raises(ProviderError, match="could not connect"):
        await discover_models(http_client, get_protocol("openai-chat"), config)
