"""Upstream LLM wire protocols: a registry of protocol modules by name."""

from __future__ import annotations

from . import anthropic_messages, openai_chat, openai_responses
from .base import WireProtocol

PROTOCOLS: dict[str, WireProtocol] = {
    openai_chat.NAME: openai_chat.PROTOCOL,
    anthropic_messages.NAME: anthropic_messages.PROTOCOL,
    openai_responses.NAME: openai_responses.PROTOCOL,
}

# For a Django `choices=`; the labels name the API a provider speaks.
PROTOCOL_CHOICES: list[tuple[str, str]] = [
    (openai_chat.NAME, "OpenAI Chat Completions"),
    (anthropic_messages.NAME, "Anthropic Messages"),
    (openai_responses.NAME, "OpenAI Responses"),
]


class UnknownProtocolError(KeyError, ValueError):
    """No protocol by that name; catchable as either KeyError or ValueError."""

    def __str__(self) -> str:  # KeyError's own __str__ would wrap the text in quotes
        return str(self.args[0])


def get_protocol(name: str) -> WireProtocol:
    """The protocol called `name`; `UnknownProtocolError` naming the known ones if none."""
    try:
        return PROTOCOLS[name]
    except KeyError:
        known = ", ".join(sorted(PROTOCOLS))
        raise UnknownProtocolError(f"unknown wire protocol {name!r} (known: {known})") from None
