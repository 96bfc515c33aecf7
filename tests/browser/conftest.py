"""Browser fixtures: one live daphne server per session, Debian's Chromium through Playwright."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.browser.server import LiveServer, start

CHROMIUM = "/usr/bin/chromium"
# CI machines are small and busy: give every assertion room before calling it a failure.
expect.set_options(timeout=12_000)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.browser)


ANSWER = "[data-testid=message][data-role=assistant]"


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start(tmp_path_factory.mktemp("live"))
    yield server
    server.stop()
    for cleanup in server.cleanup:
        cleanup()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Module scope: Playwright's sync API keeps an event loop running while it is open,
    # which would break the asyncio tests that run after the browser modules.
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def log_in(
    page: Page, live: LiveServer, username: str = "admin", password: str | None = None
) -> None:
    page.goto(live.url + "/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password or live.admin_password)
    page.click("button[type=submit]")
    page.wait_for_selector("[data-testid=composer]")


def start_chat(page: Page, live: LiveServer, model: str = "Demo") -> None:
    """Logged in, on a new conversation with `model` picked."""
    log_in(page, live)
    page.click("[data-testid=new-conversation]")
    page.select_option("[data-testid=model-select]", label=model)


def ask(page: Page, text: str) -> None:
    """Send `text` and wait until its answer is complete."""
    answers = page.locator(ANSWER).count()
    page.fill("[data-testid=composer]", text)
    page.click("[data-testid=send]")
    expect(page.locator(ANSWER)).to_have_count(answers + 1)
    expect(page.locator(ANSWER).last).to_have_attribute("data-status", "complete", timeout=30_000)
