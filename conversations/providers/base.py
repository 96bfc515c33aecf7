"""The provider contract: what a wire protocol takes, what it yields, and how it fails.

A protocol module turns a `ChatRequest` into an `HttpCall` (`build_call`) and the
upstream's bytes into normalised `Event`s (a `StreamParser`). `stream_events` in
`conversations.providers.transport` drives both over httpx. Providers never render
HTML and never touch the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeAlias

Role = Literal["user", "assistant"]
AuthScheme = Literal["bearer", "x-api-key"]


@dataclass(frozen=True)
class ImagePart:
    """An image attached to a user turn, already validated and downscaled."""

    media_type: str  # image/png, image/jpeg, image/webp or image/gif
    data_b64: str  # base64 of the bytes, without a data: prefix

    @property
    def data_url(self) -> str:
        return f"data:{self.media_type};base64,{self.data_b64}"


@dataclass(frozen=True)
class Turn:
    """One earlier or current message of the conversation, as sent upstream."""

    role: Role
    text: str
    images: tuple[ImagePart, ...] = ()


@dataclass(frozen=True)
class GenerationParams:
    """Sampling parameters; None means "leave it to the upstream's default"."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: int | None = None
    json_mode: bool = False
    reasoning_effort: Literal["low", "medium", "high"] | None = None
    thinking_budget: int | None = None  # Anthropic extended thinking, in tokens


@dataclass(frozen=True)
class ChatRequest:
    model: str  # the upstream's model id
    turns: tuple[Turn, ...]
    system: str = ""
    params: GenerationParams = field(default_factory=GenerationParams)


@dataclass(frozen=True)
class ProviderConfig:
    """How to reach one upstream; `api_key` is the decrypted secret, never logged."""

    protocol: str
    base_url: str
    api_key: str = ""
    auth_scheme: AuthScheme = "bearer"
    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    max_retries: int = 2

    def __repr__(self) -> str:  # keep the key out of tracebacks and logs
        return f"ProviderConfig(protocol={self.protocol!r}, base_url={self.base_url!r})"


@dataclass(frozen=True)
class HttpCall:
    """A fully built upstream request."""

    method: Literal["GET", "POST"]
    url: str
    headers: dict[str, str]
    json: dict[str, Any] | None = None

    def __repr__(self) -> str:  # the headers carry the API key
        return f"HttpCall(method={self.method!r}, url={self.url!r})"


# --- Normalised events -------------------------------------------------------------


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True)
class ToolCallDelta:
    """A piece of a tool call: `name` and `call_id` come first, `arguments` in pieces."""

    index: int
    call_id: str = ""
    name: str = ""
    arguments: str = ""


@dataclass(frozen=True)
class Usage:
    """Token counts as reported by the upstream (cumulative: the last one wins)."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    reasoning_tokens: int | None = None
    cached_tokens: int | None = None


FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "other"]


@dataclass(frozen=True)
class Finish:
    """The upstream said the answer is over. `raw_reason` keeps its own word."""

    reason: FinishReason
    raw_reason: str = ""


@dataclass(frozen=True)
class StreamError:
    """An error reported in-band, after HTTP 200, or a stream that broke its protocol."""

    message: str
    code: str = ""
    retryable: bool = False


Event: TypeAlias = TextDelta | ReasoningDelta | ToolCallDelta | Usage | Finish | StreamError


class StreamParser(Protocol):
    """Sans-IO parser: feed it raw bytes in chunks split anywhere, get events back.

    `feed` never raises: protocol violations come back as `StreamError`. `close` is
    called at end of stream and returns a `StreamError` if the terminal event (e.g.
    `[DONE]`, `message_stop`, `response.completed`) never arrived.
    """

    def feed(self, chunk: bytes) -> list[Event]: ...

    def close(self) -> list[Event]: ...


class WireProtocol(Protocol):
    """What every protocol module provides (see the registry in `__init__`)."""

    name: str

    def build_call(self, config: ProviderConfig, request: ChatRequest) -> HttpCall: ...

    def new_parser(self) -> StreamParser: ...

    def models_call(self, config: ProviderConfig) -> HttpCall: ...


class ProviderError(Exception):
    """An upstream call failed. `retryable` says whether trying again may help.

    `message` is written for the person chatting: plain words, no secrets.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str = "",
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.retryable = retryable
        self.retry_after = retry_after


def join_url(base_url: str, path: str, *, versioned: bool = True) -> str:
    """Join a provider's base URL and an endpoint path, with or without `/v1` given.

    `path` is relative to the versioned root (e.g. "chat/completions"). When the base
    URL already ends in a version segment (`/v1`, `/v1beta/openai`, ...) it is kept;
    otherwise `/v1` is added.
    """
    base = base_url.rstrip("/")
    last = base.rsplit("/", 1)[-1]
    has_version = any(seg.startswith("v") and seg[1:2].isdigit() for seg in base.split("/")[3:])
    if versioned and not has_version and last != "openai":
        base = f"{base}/v1"
    return f"{base}/{path.lstrip('/')}"
