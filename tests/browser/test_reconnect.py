"""A tab whose socket drops while another tab sends: when htmx's ws extension reconnects, the
page says what it shows and is brought up to date, nothing missed and nothing twice."""

from __future__ import annotations

import re

from playwright.sync_api import Page, WebSocketRoute, expect

from tests.browser.conftest import ask, start_chat
from tests.browser.server import LiveServer

ANSWER = "[data-testid=message][data-role=assistant]"
QUESTION = "[data-testid=message][data-role=user]"


def test_a_tab_that_lost_its_socket_while_another_sent_shows_the_new_messages(
    page: Page, live: LiveServer
) -> None:
    offline = {"on": False}
    routes: list[WebSocketRoute] = []

    def route(ws: WebSocketRoute) -> None:
        routes.append(ws)
        if offline["on"]:
            ws.close(code=1013)  # "try again later": the extension retries with a backoff
        else:
            ws.connect_to_server()

    page.route_web_socket(re.compile(r"/ws/"), route)
    start_chat(page, live)
    ask(page, "first question")
    first_answer = page.locator(ANSWER).last.get_attribute("id") or ""

    other = page.context.new_page()
    other.goto(page.url)
    offline["on"] = True
    routes[-1].close(code=1006)  # the network dropped: the page sees an abnormal closure
    other.fill("[data-testid=composer]", "second question from another tab")
    other.click("[data-testid=send]")
    expect(other.locator(ANSWER).last).to_have_attribute("data-status", "complete", timeout=30_000)
    offline["on"] = False

    expect(page.locator(QUESTION)).to_have_count(2, timeout=30_000)
    expect(page.locator(QUESTION).last).to_contain_text("second question from another tab")
    expect(page.locator(ANSWER)).to_have_count(2)
    expect(page.locator(ANSWER).last).to_have_attribute("data-status", "complete")
    assert routes[-1].url.endswith(f"?after={first_answer.removeprefix('message-')}")
