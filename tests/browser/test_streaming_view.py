"""The streaming view built by static/js/chat.js from delta frames, checked against what is
stored: the answer's final frame is held back so the page shows only what the deltas built."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest
from playwright.sync_api import Locator, Page, WebSocketRoute, expect

from conversations import frames
from tests.browser.conftest import log_in
from tests.browser.server import LiveServer

ANSWER = "[data-testid=message][data-role=assistant]"
FINAL = 'data-role="assistant" data-status="complete"'
# What the page shows of an answer: its Markdown HTML (copy buttons aside) and its reasoning.
SHOWN = """
(article) => {
  const body = article.querySelector(".message__body").cloneNode(true);
  body.querySelectorAll("button.copy-code").forEach((button) => button.remove());
  // Streaming: the finished blocks and the open one; settled: one text.
  const parts = [...body.querySelectorAll(":scope > .markdown")].map((part) => part.innerHTML);
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


def wait_for(page: Page, condition: Callable[[], bool], timeout: float = 30) -> None:
    """Waits inside Playwright: its sync API records events (socket frames) only while the
    test is in one of its calls, so a plain sleep would never see the frame it waits for."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        page.wait_for_timeout(100)


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
    wait_for(page, lambda: any(FINAL in frame for frame in frames_seen))
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


class HeldDeltas:
    """Delta frames held back from the page until `release()`; other frames pass."""

    def __init__(self, page: Page) -> None:
        self.frames: list[str] = []
        self.holding = False
        self.sockets: list[WebSocketRoute] = []
        page.route_web_socket(re.compile(r"/ws/"), self._route)

    def _route(self, ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()

        def relay(message: str | bytes) -> None:
            if self.holding and str(message).startswith('<div data-delta="'):
                self.frames.append(str(message))
            else:
                ws.send(message)

        server.on_message(relay)
        self.sockets.append(ws)

    def release(self) -> None:
        self.holding = False
        for frame in self.frames:
            self.sockets[-1].send(frame)


@pytest.mark.parametrize("asked", ["new question", "regenerate"])
def test_the_first_text_marks_the_waiting_answer_as_being_written(
    page: Page, live: LiveServer, asked: str
) -> None:
    """The first text comes as a delta, not a redraw: the answer drawn waiting (with the new
    messages, or with the thread after Regenerate) stays the same node, and the page marks
    it as being written."""
    deltas = HeldDeltas(page)
    deltas.holding = asked == "new question"
    send(page, live, "Mark me as written")
    if asked == "regenerate":
        expect(page.locator(ANSWER).last).to_have_attribute("data-status", "complete")
        deltas.holding = True
        page.click(f"{ANSWER} >> nth=-1 >> [data-testid=regenerate]")
    answer = page.locator(ANSWER).last  # after Regenerate: the new version, once drawn
    expect(answer).to_have_attribute("data-status", "pending")
    expect(answer.locator(".badge--live")).to_have_text("Waiting for the model")
    wait_for(page, lambda: len(deltas.frames) > 2)
    answer.evaluate("(article) => { article.drawnWaiting = true; }")  # an expando, not markup

    deltas.release()
    expect(answer).to_have_attribute("data-status", "streaming")
    expect(answer).to_have_class(re.compile(r"\bis-streaming\b"))
    expect(answer.locator(".badge--live")).to_have_text("Writing")
    assert answer.evaluate("(article) => article.drawnWaiting") is True
    expect(answer.locator("[data-testid=reasoning]")).not_to_be_empty()
    expect(answer).to_have_attribute("data-status", "complete", timeout=30_000)
    if asked == "regenerate":
        expect(answer.locator("[data-testid=version-label]")).to_have_text("2/2")


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


def test_a_finished_answer_keeps_the_streamed_nodes(page: Page, live: LiveServer) -> None:
    """The final frame morphs the answer in place: what streamed stays (and is not laid out
    again), and the result is the stored rendering with its footer."""
    send(page, live, "Keep what streamed: *stars* and a `code` span")
    answer = page.locator(ANSWER).last
    first_block = answer.locator("[id$=-blocks] > *").first
    first_block.wait_for()
    first_block.evaluate("(node) => { node.streamedMark = true; }")  # an expando, not markup
    expect(answer).to_have_attribute("data-status", "complete", timeout=30_000)

    kept = answer.evaluate(
        "(article) => article.querySelector('.message__text').firstElementChild.streamedMark"
    )
    assert kept is True
    assert answer.locator("[id$=-blocks], [id$=-tail]").count() == 0
    expect(answer.locator(".badge--live")).to_have_count(0)
    expect(answer.locator("[data-testid=regenerate]")).to_be_visible()
    expect(answer.locator("pre .copy-code")).not_to_have_count(0)
    page.wait_for_timeout(100)  # htmx's settle classes on the composer are gone
    settled = answer.evaluate("(article) => article.outerHTML")

    page.reload()
    stored = page.locator(ANSWER).last
    expect(stored).to_have_attribute("data-status", "complete")
    assert settled == stored.evaluate("(article) => article.outerHTML")


PANE = """
(pane) => ({top: pane.scrollTop, bottom: pane.scrollHeight - pane.clientHeight})
"""


def test_the_view_follows_a_streaming_answer_unless_the_reader_scrolled_up(
    page: Page, live: LiveServer
) -> None:
    page.set_viewport_size({"width": 1100, "height": 460})  # the answer outgrows the pane
    send(page, live, "A long one to read while it streams")
    answer = page.locator(ANSWER).last
    pane = page.locator("#thread")
    wait_for(page, lambda: pane.evaluate(PANE)["bottom"] > 150)  # it overflows, still streaming
    expect(answer).to_have_attribute("data-status", "streaming")
    page.wait_for_timeout(150)  # past a frame and its layout
    at = pane.evaluate(PANE)
    assert at["bottom"] - at["top"] < 5, at  # followed to the end

    pane.evaluate("(pane) => { pane.scrollTop = 0; }")  # the reader goes back up
    grown = at["bottom"]
    wait_for(page, lambda: pane.evaluate(PANE)["bottom"] > grown + 60)  # more text came
    assert pane.evaluate(PANE)["top"] == 0  # and did not pull the reader down

    pane.evaluate("(pane) => { pane.scrollTop = pane.scrollHeight; }")  # back to the end
    back = pane.evaluate(PANE)["bottom"]
    wait_for(page, lambda: pane.evaluate(PANE)["bottom"] > back + 60)  # more text came
    page.wait_for_timeout(150)
    at = pane.evaluate(PANE)
    assert at["bottom"] - at["top"] < 5, at  # followed again
    expect(answer).to_have_attribute("data-status", "streaming")

    pane.evaluate("(pane) => { pane.scrollTop = 0; }")  # up once more, to the very top
    expect(answer).to_have_attribute("data-status", "complete", timeout=30_000)
    assert pane.evaluate(PANE)["top"] == 0  # nor did the finished answer


def followed_when_it_outgrows_the_pane(page: Page, answer: Locator) -> None:
    """The streaming `answer`, in a thread that fits its pane, outgrows it and is followed."""
    pane = page.locator("#thread")
    wait_for(page, lambda: pane.evaluate(PANE)["bottom"] > 100)
    page.wait_for_timeout(150)
    at = pane.evaluate(PANE)
    assert at["bottom"] - at["top"] < 5, at
    expect(answer).to_have_attribute("data-status", "streaming")


def test_an_answer_is_followed_again_once_the_thread_stopped_overflowing(
    page: Page, live: LiveServer
) -> None:
    """Scrolled, the page leaves following to the browser's scroll anchoring, which does
    nothing at the very top: a thread that no longer overflows (the window grew, a box of
    reasoning closed) must be followed by the page again when the answer outgrows it."""
    page.set_viewport_size({"width": 1100, "height": 460})
    send(page, live, "A long one for a window that grows")
    answer = page.locator(ANSWER).last
    pane = page.locator("#thread")
    wait_for(page, lambda: pane.evaluate(PANE)["bottom"] > 40)  # it overflows, still streaming
    page.wait_for_timeout(150)
    at = pane.evaluate(PANE)
    assert at["top"] > 0 and at["bottom"] - at["top"] < 5, at  # followed, scrolled

    over = pane.evaluate(PANE)["bottom"]  # the window grows past the thread's end
    page.set_viewport_size({"width": 1100, "height": 460 + over + 60})
    page.wait_for_timeout(50)
    assert pane.evaluate(PANE)["top"] == 0
    expect(answer).to_have_attribute("data-status", "streaming")

    followed_when_it_outgrows_the_pane(page, answer)


def test_an_answer_is_followed_again_once_its_reasoning_box_was_closed(
    page: Page, live: LiveServer
) -> None:
    """Closing a box changes no size the page observes once the answer is anchored."""
    page.set_viewport_size({"width": 1100, "height": 700})
    send(page, live, "A long one whose reasoning is closed")
    answer = page.locator(ANSWER).last
    pane = page.locator("#thread")
    reasoning = answer.locator("[data-testid=reasoning]")
    expect(reasoning).not_to_be_empty()
    reasoning.evaluate("(box) => { box.style.height = '1200px'; }")  # a long line of thought
    wait_for(page, lambda: pane.evaluate(PANE)["top"] > 0)  # followed down to its end

    answer.locator("details.reasoning").evaluate("(box) => { box.open = false; }")
    page.wait_for_timeout(50)
    assert pane.evaluate(PANE) == {"top": 0, "bottom": 0}  # the thread fits again
    expect(answer).to_have_attribute("data-status", "streaming")

    followed_when_it_outgrows_the_pane(page, answer)


def test_a_reader_at_the_end_stays_there_when_the_thread_pane_shrinks(
    page: Page, live: LiveServer
) -> None:
    """The composer grows with a long draft, and on a narrow screen it takes its height after
    the page first went to the end: the thread's pane shrinks from below."""
    send(page, live, "A long one for a phone")
    answer = page.locator(ANSWER).last
    expect(answer).to_have_attribute("data-status", "complete", timeout=30_000)
    pane = page.locator("#thread")
    page.set_viewport_size({"width": 390, "height": 700})

    page.reload()
    page.wait_for_timeout(300)  # the composer sized, the socket's first frames in
    at = pane.evaluate(PANE)
    assert at["bottom"] > 150 and at["bottom"] - at["top"] < 2, at

    page.fill("[data-testid=composer]", "\n".join(f"line {n}" for n in range(6)))
    page.wait_for_timeout(150)
    grown = pane.evaluate(PANE)
    assert grown["bottom"] > at["bottom"] + 40, grown  # the pane did shrink
    assert grown["bottom"] - grown["top"] < 2, grown
