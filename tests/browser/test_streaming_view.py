"""The streaming view built by static/js/chat.js from delta frames, checked against what is
stored: the answer's final frame is held back so the page shows only what the deltas built."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from playwright.sync_api import Page, WebSocketRoute, expect

from conversations import frames
from tests.browser.conftest import log_in
from tests.browser.server import LiveServer

ANSWER = "[data-testid=message][data-role=assistant]"
FINAL = 'data-role="assistant" data-status="complete"'
# What the page shows of an answer: its Markdown HTML (copy buttons aside) and its reasoning.
SHOWN = """
(article) => {
  const text = article.querySelector(".message__text").cloneNode(true);
  text.querySelectorAll("button.copy-code").forEach((button) => button.remove());
  const parts = text.id ? [...text.children].map((part) => part.innerHTML) : [text.innerHTML];
  return [parts.join(""), article.querySelector("[data-testid=reasoning]").textContent];
}
"""


def hold_final_frames(page: Page) -> list[WebSocketRoute]:
    """Pass every socket frame through except an answer's final redraw; returns the sockets."""
    sockets: list[WebSocketRoute] = []

    def route(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()
        server.on_message(lambda message: None if FINAL in str(message) else ws.send(message))
        sockets.append(ws)

    page.route_web_socket(re.compile(r"/ws/"), route)
    return sockets


def wait_for(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def send(page: Page, live: LiveServer, text: str) -> None:
    log_in(page, live)
    page.click("[data-testid=new-conversation]")
    page.select_option("[data-testid=model-select]", label="Demo Reasoning")
    page.fill("[data-testid=composer]", text)
    page.click("[data-testid=send]")


def test_a_streamed_answer_shows_exactly_its_stored_rendering(page: Page, live: LiveServer) -> None:
    sockets = hold_final_frames(page)
    frames_seen: list[str] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda f: frames_seen.append(str(f))))
    send(page, live, "Show *stars*, <b>tags</b> & a `code` span")
    answer = page.locator(ANSWER).last
    expect(answer.locator("[data-testid=message-content]")).to_contain_text("[demo:drop]")
    wait_for(lambda: any(FINAL in frame for frame in frames_seen))
    page.wait_for_timeout(200)  # the deltas before the final frame are all applied
    streamed = answer.evaluate(SHOWN)
    expect(answer).to_have_attribute("data-status", "streaming")  # the final frame never came
    assert sum(frame.startswith('<div data-delta="') for frame in frames_seen) > 10
    assert sockets

    page.reload()
    stored = page.locator(ANSWER).last
    expect(stored).to_have_attribute("data-status", "complete")
    assert streamed == stored.evaluate(SHOWN)
    assert "<table>" in streamed[0] and "<code>" in streamed[0] and streamed[1].strip()


def test_streamed_reasoning_is_text_never_html(page: Page, live: LiveServer) -> None:
    sockets = hold_final_frames(page)
    send(page, live, "Think first, then answer")
    answer = page.locator(ANSWER).last
    reasoning = answer.locator("[data-testid=reasoning]")
    expect(reasoning).not_to_have_text("")
    pk = int((answer.get_attribute("id") or "").removeprefix("message-"))
    tail = answer.locator(".markdown--tail").inner_html()
    payload = '<img src=x data-probe><b data-probe>bold?</b> & "quotes"'
    sockets[-1].send(frames.delta(pk, "", tail, payload))

    expect(reasoning).to_contain_text(payload)
    assert reasoning.locator("[data-probe]").count() == 0
    expect(answer.locator("[data-testid=message-content]")).to_contain_text("[demo:drop]")
    assert page.locator("[data-probe]").count() == 0
