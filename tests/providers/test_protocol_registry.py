"""The protocol registry and URL joining."""

from __future__ import annotations

import pytest

from conversations.providers import PROTOCOL_CHOICES, PROTOCOLS, get_protocol
from conversations.providers.base import join_url


def test_every_protocol_is_registered_under_its_own_name():
    assert sorted(PROTOCOLS) == ["anthropic-messages", "openai-chat", "openai-responses"]
    for name, protocol in PROTOCOLS.items():
        assert protocol.name == name
        assert get_protocol(name) is protocol


def test_choices_cover_exactly_the_registered_protocols():
    assert {value for value, _ in PROTOCOL_CHOICES} == set(PROTOCOLS)
    assert all(label for _, label in PROTOCOL_CHOICES)


def test_an_unknown_protocol_is_named_in_a_clear_error():
    with pytest.raises(KeyError) as caught:
        get_protocol("gemini-native")
    assert str(caught.value) == (
        "unknown wire protocol 'gemini-native' "
        "(known: anthropic-messages, openai-chat, openai-responses)"
    )
    with pytest.raises(ValueError, match="unknown wire protocol"):
        get_protocol("")


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("https://api.openai.com/v1", "https://api.openai.com/v1/chat/completions"),
        ("https://api.openai.com/v1/", "https://api.openai.com/v1/chat/completions"),
        ("https://api.openai.com", "https://api.openai.com/v1/chat/completions"),
        ("https://api.openai.com/", "https://api.openai.com/v1/chat/completions"),
        ("http://localhost:11434/v1", "http://localhost:11434/v1/chat/completions"),
        (
            "https://generativelanguage.googleapis.com/v1beta/openai",
            "https://generativelanguage.googleapis.com/v1beta/openai/chat/completions",
        ),
        (
            "https://generativelanguage.googleapis.com/v1beta/openai/",
            "https://generativelanguage.googleapis.com/v1beta/openai/chat/completions",
        ),
        ("https://gw.example/proxy/v1", "https://gw.example/proxy/v1/chat/completions"),
    ],
)
def test_join_url_adds_v1_only_when_missing(base, expected):
    assert join_url(base, "chat/completions") == expected


def test_join_url_for_anthropic_base_urls_without_v1():
    assert (
        join_url("https://api.anthropic.com", "messages") == "https://api.anthropic.com/v1/messages"
    )
    assert (
        join_url("https://api.anthropic.com/", "/messages")
        == "https://api.anthropic.com/v1/messages"
    )
