"""The demo upstream's ASGI application: routing, request bodies and paced streaming."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import replace
from http import HTTPStatus
from typing import Any

from conversations.demo_upstream import chat, messages, responses
from conversations.demo_upstream.reply import build_plan
from conversations.demo_upstream.request import BadRequest, DemoRequest, Fault, seed_of
from conversations.demo_upstream.wire import (
    JSON_TYPE,
    Endpoint,
    ErrorInfo,
    Frame,
    Reply,
    ident,
    json_reply,
    sse_headers,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY = 20 * 1024 * 1024
ENDPOINTS = {
    "/v1/chat/completions": chat.ENDPOINT,
    "/v1/messages": messages.ENDPOINT,
    "/v1/responses": responses.ENDPOINT,
}
MODELS = (("demo", "Demo"), ("demo-vision", "Demo Vision"), ("demo-reasoning", "Demo Reasoning"))
MODELS_CREATED = 1735689600  # 2025-01-01, a fixed date keeps the listing deterministic
BAD_JSON = (
    "We could not parse the JSON body of your request. The API expects a JSON payload, but"
    " what was sent was not valid JSON."
)
STATUS_MESSAGES = {
    401: "Incorrect API key provided.",
    429: "Rate limit reached for requests. Please try again in 1s.",
    500: "The server had an error while processing your request. Sorry about that!",
    503: "The server is overloaded or not ready yet.",
    529: "Overloaded",
}


class DemoUpstream:
    """The ASGI app. `disconnects` counts clients that left while a reply was streaming."""

    def __init__(
        self,
        *,
        token_delay: float = 0.03,
        prefix: str = "/demo-upstream",
        on_disconnect: Callable[[], None] | None = None,
    ) -> None:
        self.token_delay = token_delay
        self.prefix = prefix.rstrip("/")
        self.on_disconnect = on_disconnect
        self.disconnects = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1000})
        elif scope["type"] == "http":
            body = await _read_body(receive)
            if body is not None:
                await self._deliver(
                    self.answer(scope["method"], scope["path"], body), receive, send
                )

    def answer(self, method: str, path: str, body: bytes) -> Reply:
        """The reply to one request, before any I/O: routing, validation and faults."""
        route = path.removeprefix(self.prefix).rstrip("/")
        if route == "/v1/models":
            return _models() if method == "GET" else _no_route(405, method, path)
        endpoint = ENDPOINTS.get(route)
        if endpoint is None:
            return _no_route(404, method, path)
        if method != "POST":
            return _error(endpoint, ErrorInfo(405, f"Method {method} is not allowed on {route}."))
        if len(body) > MAX_BODY:
            return _error(endpoint, ErrorInfo(413, "Request exceeds the maximum allowed size."))
        return _answer_endpoint(endpoint, body)

    async def _deliver(self, reply: Reply, receive: Receive, send: Send) -> None:
        if reply.frames is None and not reply.hang:
            await _send_whole(reply, send)
            return
        watch = asyncio.ensure_future(_until_disconnect(receive))
        try:
            gone = await self._stream(reply, send, watch)
        finally:
            watch.cancel()
        if gone:
            self.disconnects += 1
            if self.on_disconnect is not None:
                self.on_disconnect()

    async def _stream(self, reply: Reply, send: Send, watch: asyncio.Future[None]) -> bool:
        """Send the frames, pacing the pieces; True when the client left before the end."""
        try:
            await send(
                {"type": "http.response.start", "status": reply.status, "headers": reply.headers}
            )
            await send({"type": "http.response.body", "body": b"", "more_body": True})
            if reply.hang:
                await watch
                return True
            for frame in reply.frames or ():
                if not await self._pace(frame, watch):
                    return True
                await send({"type": "http.response.body", "body": frame.data, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:  # some servers raise on send once the client is gone
            return True
        return False

    async def _pace(self, frame: Frame, watch: asyncio.Future[None]) -> bool:
        """Wait before a piece; False as soon as the client is gone."""
        if frame.paced and self.token_delay > 0:
            done, _ = await asyncio.wait({watch}, timeout=self.token_delay)
            return not done
        if frame.paced:
            await asyncio.sleep(0)  # let the disconnect watcher run between pieces
        return not watch.done()


def make_app(
    *,
    token_delay: float = 0.03,
    prefix: str = "/demo-upstream",
    on_disconnect: Callable[[], None] | None = None,
) -> DemoUpstream:
    """The demo upstream, answering under `{prefix}/v1/` with `token_delay` s between pieces.

    It serves `chat/completions` (OpenAI Chat Completions), `messages` (Anthropic Messages),
    `responses` (OpenAI Responses) and `models`. The last user message steers it: `/tool`
    asks for a tool call; `[demo:error=CODE]`, `[demo:quota]`, `[demo:drop]`,
    `[demo:inband-error]` and `[demo:hang]` inject faults. `on_disconnect` is called each
    time a client leaves while its reply is still streaming.
    """
    return DemoUpstream(token_delay=token_delay, prefix=prefix, on_disconnect=on_disconnect)


def _answer_endpoint(endpoint: Endpoint, raw: bytes) -> Reply:
    try:
        data = json.loads(raw)
    except ValueError:
        return _error(endpoint, ErrorInfo(400, BAD_JSON))
    if not isinstance(data, dict):
        return _error(endpoint, ErrorInfo(400, "The request body must be a JSON object."))
    try:
        request = endpoint.parse(data, raw)
    except BadRequest as exc:
        return _error(endpoint, ErrorInfo(400, exc.message, exc.param))
    fault = request.fault
    if fault is not None and fault.kind in ("error", "quota"):
        return _error(endpoint, _fault_error(endpoint, fault))
    return _success(endpoint, request)


def _success(endpoint: Endpoint, request: DemoRequest) -> Reply:
    plan = build_plan(request)
    headers = [(endpoint.request_id_header, ident(request.seed, "req_", 24, "request").encode())]
    fault = request.fault
    if fault is not None and fault.kind == "hang":
        hang_headers = (
            sse_headers(headers) if request.stream else [(b"content-type", JSON_TYPE), *headers]
        )
        return Reply(200, hang_headers, hang=True)
    if request.stream:
        return Reply(200, sse_headers(headers), frames=endpoint.stream(request, plan))
    if plan.cut:
        return _error(endpoint, ErrorInfo(500, STATUS_MESSAGES[500]))
    return json_reply(200, endpoint.complete(request, plan), headers)


def _fault_error(endpoint: Endpoint, fault: Fault) -> ErrorInfo:
    if fault.kind == "quota":
        return endpoint.quota
    status = fault.status if 400 <= fault.status <= 599 else 500
    return ErrorInfo(
        status, STATUS_MESSAGES.get(status) or f"{_phrase(status)} (asked for by the message)."
    )


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _error(endpoint: Endpoint, error: ErrorInfo) -> Reply:
    error = replace(error, request_id=ident(seed_of(error.message.encode()), "req_011C", 20))
    header = (endpoint.request_id_header, error.request_id.encode())
    return json_reply(error.status, endpoint.error_body(error), [header], retry=not error.quota)


def _no_route(status: int, method: str, path: str) -> Reply:
    """An error both kinds of client can read: OpenAI's fields plus Anthropic's `type`."""
    message = f"Invalid URL ({method} {path})"
    error = {"message": message, "type": "invalid_request_error", "param": None, "code": None}
    return json_reply(status, {"type": "error", "error": error})


def _models() -> Reply:
    data = [
        {"id": model_id, "object": "model", "created": MODELS_CREATED, "owned_by": "demo-upstream",
         "type": "model", "display_name": name, "created_at": "2025-01-01T00:00:00Z"}
        for model_id, name in MODELS
    ]  # fmt: skip
    body = {
        "object": "list",
        "data": data,
        "has_more": False,
        "first_id": "demo",
        "last_id": "demo-reasoning",
    }
    return json_reply(200, body)


async def _send_whole(reply: Reply, send: Send) -> None:
    headers = [*reply.headers, (b"content-length", str(len(reply.body)).encode())]
    try:
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": reply.body, "more_body": False})
    except OSError:
        return


async def _read_body(receive: Receive) -> bytes | None:
    """The request body (cut just past MAX_BODY); None if the client left first."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        if size <= MAX_BODY:
            chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
