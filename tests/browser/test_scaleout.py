"""Two real daphne workers on PostgreSQL + Redis: live viewing and Stop across workers,
and recovery when a worker is killed mid-answer."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import log_in
from tests.browser.server import LiveServer, services_answer, start_pair

pytestmark = pytest.mark.scaleout
ANSWER = "[data-testid=message][data-role=assistant]"

if not services_answer():  # CI starts both; a laptop without them says so plainly
    pytest.skip("PostgreSQL and Redis are not listening on 127.0.0.1", allow_module_level=True)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[tuple[LiveServer, LiveServer]]:
    a, b = start_pair(tmp_path, token_delay=0.05, GENERATION_LEASE_SECONDS="3")
    yield a, b
    for server in (a, b):
        server.stop()
        for cleanup in server.cleanup:
            cleanup()


def start_answer(browser: Browser, worker: LiveServer) -> tuple[Page, str]:
    page = browser.new_context().new_page()
    page.set_default_timeout(20_000)
    log_in(page, worker)
    page.fill("[data-testid=composer]", "Write something long for two workers")
    page.click("[data-testid=send]")
    expect(page.locator(ANSWER).last).to_have_attribute("data-status", "streaming")
    page.wait_for_url("**/c/*/")
    return page, page.url.replace(worker.url, "")


def text_of(page: Page) -> str:
    return page.locator(f"{ANSWER} [data-testid=message-content]").last.inner_text()


def test_a_browser_on_worker_b_watches_and_stops_an_answer_running_on_worker_a(
    browser: Browser, workers: tuple[LiveServer, LiveServer]
) -> None:
    a, b = workers
    page_a, path = start_answer(browser, a)
    page_b = page_a.context.new_page()  # same session, other worker
    page_b.goto(b.url + path)
    answer_b = page_b.locator(ANSWER).last
    expect(answer_b).to_have_attribute("data-status", "streaming")
    seen = len(text_of(page_b))
    page_b.wait_for_function(
        "([sel, n]) => document.querySelector(sel).innerText.length > n",
        arg=[f"{ANSWER} [data-testid=message-content]", seen + 20],
    )
    assert text_of(page_b).split()[:4] == text_of(page_a).split()[:4]

    page_b.click("[data-testid=stop]")
    expect(answer_b).to_have_attribute("data-status", "cancelled")
    expect(page_a.locator(ANSWER).last).to_have_attribute("data-status", "cancelled")
    stopped = text_of(page_a)
    page_a.wait_for_timeout(1000)
    page_a.reload()
    assert text_of(page_a).split()[:6] == stopped.split()[:6]
    assert "Try `/tool`" not in text_of(page_a)  # the demo's last line never came


def test_an_answer_on_a_killed_worker_is_marked_interrupted_and_retry_works(
    browser: Browser, workers: tuple[LiveServer, LiveServer]
) -> None:
    a, b = workers
    page_a, path = start_answer(browser, a)
    page_a.wait_for_timeout(3500)  # past a checkpoint: what was saved survives the crash
    os.kill(a.process.pid, signal.SIGKILL)
    a.process.wait(timeout=10)

    page_b = page_a.context.new_page()
    page_b.goto(b.url + path)
    answer = page_b.locator(ANSWER).last
    expect(answer).to_have_attribute("data-status", "error", timeout=15_000)
    expect(answer).to_contain_text("interrupted")
    assert len(text_of(page_b)) > 0  # the partial text is kept

    answer.locator("[data-testid=retry]").click()
    expect(page_b.locator(ANSWER).last).to_have_attribute("data-status", "complete", timeout=30_000)
    expect(page_b.locator(ANSWER).last).to_contain_text("Try /tool")
