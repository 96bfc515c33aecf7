"""What a browser may ask over the websocket, parsed from htmx's JSON into typed commands."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from conversations.parameters import PARAMS_BY_NAME
from conversations.providers.sse import clean_text

SETTING_FIELDS = frozenset({*PARAMS_BY_NAME, "system_prompt"})

MAX_FRAME_BYTES = 1_000_000  # above MAX_MESSAGE_CHARS of text plus the form's other fields


class BadCommand(Exception):
    """The frame is not something we understand; the text says so plainly."""


@dataclass(frozen=True)
class Send:
    text: str
    model_id: int | None
    client_id: str
    settings: dict[str, Any] | None = None  # None: the frame carried no settings fields
    attachment_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class SaveSettings:
    model_id: int | None
    settings: dict[str, Any]


@dataclass(frozen=True)
class Stop:
    message_id: int | None


@dataclass(frozen=True)
class Retry:
    message_id: int


@dataclass(frozen=True)
class Regenerate:
    message_id: int
    model_id: int | None


@dataclass(frozen=True)
class Edit:
    message_id: int
    text: str
    model_id: int | None


@dataclass(frozen=True)
class Switch:
    message_id: int


Command = Send | Stop | Retry | SaveSettings | Regenerate | Edit | Switch


def decode(text: str | None, data: bytes | None) -> dict[str, Any]:
    if text is None:
        raise BadCommand("Binary frames are not supported.")
    if len(text) > MAX_FRAME_BYTES:
        raise BadCommand("That message is too large to send.")
    try:
        payload = json.loads(text)
    except ValueError:
        raise BadCommand("The app could not read that request. Reload the page.") from None
    if not isinstance(payload, dict):
        raise BadCommand("The app could not read that request. Reload the page.")
    cleaned: dict[str, Any] = _clean(payload)
    return cleaned


def _clean(value: Any) -> Any:
    """JSON escapes can smuggle NUL and lone surrogates, which no database stores."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, list):
        return [_clean(item) for item in value]
    if isinstance(value, dict):
        return {clean_text(str(key)): _clean(item) for key, item in value.items()}
    return value


def parse(payload: dict[str, Any]) -> Command:
    action = payload.get("action", "send")
    if action == "send":
        return Send(
            text=_string(payload.get("text")),
            model_id=_optional_id(payload.get("model")),
            client_id=_string(payload.get("client_id"))[:64],
            settings=_settings(payload),
            attachment_ids=_ids(payload.get("attachments")),
        )
    if action == "settings":
        return SaveSettings(
            model_id=_optional_id(payload.get("model")), settings=_settings(payload) or {}
        )
    if action == "stop":
        return Stop(message_id=_optional_id(payload.get("message")))
    if action in ("retry", "regenerate", "edit", "switch"):
        return _message_command(action, payload)
    raise BadCommand("Unknown action.")


def _message_command(action: str, payload: dict[str, Any]) -> Command:
    message_id = _optional_id(payload.get("message"))
    if message_id is None:
        raise BadCommand("That action needs a message.")
    model_id = _optional_id(payload.get("model"))
    if action == "retry":
        return Retry(message_id=message_id)
    if action == "regenerate":
        return Regenerate(message_id=message_id, model_id=model_id)
    if action == "edit":
        return Edit(message_id=message_id, text=_string(payload.get("text")), model_id=model_id)
    return Switch(message_id=message_id)


def _settings(payload: dict[str, Any]) -> dict[str, Any] | None:
    found = {key: payload[key] for key in SETTING_FIELDS if key in payload}
    return found or None


def _ids(value: Any) -> tuple[int, ...]:
    values = value if isinstance(value, list) else [value]
    ids = tuple(
        i for i in (_optional_id(v) for v in values if v not in (None, "")) if i is not None
    )
    if len(ids) > 20:
        raise BadCommand("Too many attachments.")
    return ids


def _string(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):  # a field sent twice arrives as a list
        value = value[-1] if value else ""
    if not isinstance(value, str):
        raise BadCommand("The app could not read that request. Reload the page.")
    return value


def _optional_id(value: Any) -> int | None:
    text = _string(value) if not isinstance(value, int) else str(value)
    if text == "":
        return None
    if not text.isdigit() or len(text) > 18:
        raise BadCommand("That refers to something that does not exist.")
    return int(text)
