"""Conversation settings: which sampling parameters each model supports, and their validation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ALL_PROTOCOLS = ("openai-chat", "anthropic-messages", "openai-responses")
MAX_SYSTEM_PROMPT = 20_000
MAX_STOP_SEQUENCES = 4


class InvalidSettings(Exception):
    """A setting is out of range; `message` names it in plain words."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Param:
    name: str
    label: str
    kind: str  # "float", "int", "bool", "choice", "lines"
    protocols: tuple[str, ...] = ALL_PROTOCOLS
    capability: str = ""  # a ChatModel.supports_* flag it needs, e.g. "reasoning"
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    help: str = ""

    def supported_by(self, protocol: str, capabilities: set[str]) -> bool:
        return protocol in self.protocols and (
            not self.capability or self.capability in capabilities
        )


PARAMS = (
    Param(
        "temperature", "Temperature", "float", minimum=0, maximum=2, help="Higher is more varied."
    ),
    Param("top_p", "Top p", "float", minimum=0, maximum=1, help="Nucleus sampling."),
    Param("max_tokens", "Max tokens", "int", minimum=1, maximum=1_000_000, help="Longest answer."),
    Param(
        "stop",
        "Stop sequences",
        "lines",
        ("openai-chat", "anthropic-messages"),
        help="One per line, up to 4.",
    ),
    Param("presence_penalty", "Presence penalty", "float", ("openai-chat",), minimum=-2, maximum=2),
    Param(
        "frequency_penalty", "Frequency penalty", "float", ("openai-chat",), minimum=-2, maximum=2
    ),
    Param(
        "seed",
        "Seed",
        "int",
        ("openai-chat",),
        minimum=0,
        maximum=2**63 - 1,
        help="Best-effort determinism.",
    ),
    Param(
        "json_mode",
        "JSON mode",
        "bool",
        ("openai-chat", "openai-responses"),
        capability="json_mode",
        help="The answer is a JSON object (mention JSON in your message).",
    ),
    Param(
        "reasoning_effort",
        "Reasoning effort",
        "choice",
        ("openai-chat", "openai-responses"),
        capability="reasoning",
        choices=("low", "medium", "high"),
    ),
    Param(
        "thinking_budget",
        "Thinking budget",
        "int",
        ("anthropic-messages",),
        capability="reasoning",
        minimum=1024,
        maximum=1_000_000,
        help="Tokens the model may think for (at least 1024).",
    ),
)
PARAMS_BY_NAME = {p.name: p for p in PARAMS}


def capabilities_of(model: Any) -> set[str]:
    flags = ("vision", "reasoning", "json_mode", "tools")
    return {flag for flag in flags if getattr(model, f"supports_{flag}", False)}


def supported(model: Any) -> list[Param]:
    protocol, caps = model.provider.protocol, capabilities_of(model)
    return [p for p in PARAMS if p.supported_by(protocol, caps)]


def clean(raw: dict[str, Any], model: Any) -> dict[str, Any]:
    """Validated values for the parameters this model supports; empty means "model default"."""
    values: dict[str, Any] = {}
    for param in supported(model):
        if param.name not in raw:
            continue
        value = _convert(param, raw[param.name])
        if value not in (None, (), False):
            values[param.name] = value
    if model.provider.protocol == "anthropic-messages":
        values.update(_anthropic_limits(values))
    _check_budget(values, model)
    return values


def clean_system_prompt(text: Any) -> str:
    prompt: str = text if isinstance(text, str) else ""
    if len(prompt) > MAX_SYSTEM_PROMPT:
        raise InvalidSettings(f"The system prompt is limited to {MAX_SYSTEM_PROMPT:,} characters.")
    return prompt.strip()


def _convert(param: Param, value: Any) -> Any:
    if isinstance(value, list):
        value = value[-1] if value else ""
    if param.kind == "bool":
        return value in (True, "on", "true", "1")
    text = str(value).strip()
    if text == "":
        return None
    if param.kind == "choice":
        if text not in param.choices:
            raise InvalidSettings(f"{param.label} must be one of: {', '.join(param.choices)}.")
        return text
    if param.kind == "lines":
        return _stop_sequences(text)
    return _number(param, text)


def _number(param: Param, text: str) -> int | float:
    try:
        number: int | float = int(text) if param.kind == "int" else float(text)
    except ValueError:
        kind = "a whole number" if param.kind == "int" else "a number"
        raise InvalidSettings(f"{param.label} must be {kind}.") from None
    low, high = param.minimum, param.maximum
    if (
        (low is not None and number < low)
        or (high is not None and number > high)
        or number != number
    ):
        raise InvalidSettings(f"{param.label} must be between {_fmt(low)} and {_fmt(high)}.")
    return number


def _stop_sequences(text: str) -> tuple[str, ...]:
    lines = tuple(line for line in text.splitlines() if line.strip())
    if len(lines) > MAX_STOP_SEQUENCES:
        raise InvalidSettings(f"At most {MAX_STOP_SEQUENCES} stop sequences.")
    if any(len(line) > 200 for line in lines):
        raise InvalidSettings("A stop sequence is limited to 200 characters.")
    return lines


def _anthropic_limits(values: dict[str, Any]) -> dict[str, Any]:
    temperature = values.get("temperature")
    if temperature is not None and temperature > 1:
        raise InvalidSettings("Temperature must be between 0 and 1 for this model.")
    return {}


def _check_budget(values: dict[str, Any], model: Any) -> None:
    budget, max_tokens = values.get("thinking_budget"), values.get("max_tokens")
    if budget is not None and max_tokens is not None and max_tokens <= budget:
        raise InvalidSettings("Max tokens must be larger than the thinking budget.")
    window = getattr(model, "context_window", None)
    if window and max_tokens is not None and max_tokens > window:
        raise InvalidSettings(f"Max tokens cannot exceed this model's context window ({window:,}).")


def _fmt(number: float | None) -> str:
    if number is None:
        return "any"
    return str(int(number)) if float(number).is_integer() else str(number)
