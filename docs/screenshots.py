"""Refreshes the README's screenshots: a real server with the demo upstream, headless Chromium.

Run with `make screenshots`; writes docs/*.png.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Browser, Page, ViewportSize, expect, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, log_in  # noqa: E402
from tests.browser.server import LiveServer, start  # noqa: E402

OUT = ROOT / "docs"
ANSWER = "[data-testid=message][data-role=assistant]"
VIEWPORT: ViewportSize = {"width": 1280, "height": 820}


def converse(page: Page, text: str, model: str = "Demo") -> None:
    page.select_option("[data-testid=model-select]", label=model)
    answers = page.locator(ANSWER).count()
    page.fill("[data-testid=composer]", text)
    page.click("[data-testid=send]")
    expect(page.locator(ANSWER)).to_have_count(answers + 1)
    expect(page.locator(ANSWER).last).to_have_attribute("data-status", "complete", timeout=60_000)


def chat(browser: Browser, live: LiveServer, scheme: str) -> str:
    context = browser.new_context(viewport=VIEWPORT, color_scheme=scheme)  # type: ignore[arg-type]
    page = context.new_page()
    log_in(page, live)
    converse(page, "Plan a two-day team offsite: agenda, budget table and a checklist")
    converse(page, "Think it through: which day should hold the workshop?", "Demo Reasoning")
    page.locator(f"{ANSWER} details.reasoning").last.evaluate("d => d.open = true")
    page.screenshot(path=str(OUT / f"chat-{scheme}.png"))
    url = page.url
    context.close()
    return url


def shared_page(browser: Browser, live: LiveServer, chat_url: str) -> None:
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    log_in(page, live)
    page.goto(chat_url)
    page.click("[data-testid=share]")
    page.check("input[name=visibility][value=public]")
    page.click("[data-testid=create-share]")
    link = page.locator("[data-testid=share-url]").input_value()
    context.close()
    anonymous = browser.new_context(viewport=VIEWPORT).new_page()
    anonymous.goto(link)
    anonymous.screenshot(path=str(OUT / "shared-page.png"))


def dashboard(browser: Browser, live: LiveServer) -> None:
    page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
    log_in(page, live)
    page.goto(live.url + "/admin/conversations/usagerecord/dashboard/")
    page.screenshot(path=str(OUT / "usage-dashboard.png"), full_page=False)


def main() -> None:
    live = start(Path(tempfile.mkdtemp()), token_delay=0.0)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            url = chat(browser, live, "light")
            chat(browser, live, "dark")
            shared_page(browser, live, url)
            dashboard(browser, live)
            browser.close()
    finally:
        live.stop()
    print("Screenshots written to", OUT)


if __name__ == "__main__":
    main()
