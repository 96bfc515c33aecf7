"""Log in, send, watch tokens arrive, Stop, reload: the saved state is what was shown."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.browser.conftest import log_in
from tests.browser.server import LiveServer

ANSWER = "[data-testid=message][data-role=assistant]"


def test_send_watch_stream_stop_and_reload(page: Page, live: LiveServer) -> None:
    log_in(page, live)
    page.click("[data-testid=new-conversation]")
    page.select_option("[data-testid=model-select]", label="Demo")
    page.fill("[data-testid=composer]", "Tell me about streaming")
    page.click("[data-testid=send]")

    answer = page.locator(ANSWER).last
    expect(answer).to_have_attribute("data-status", "streaming")
    content = answer.locator("[data-testid=message-content]")
    expect(content).not_to_have_text("")
    first_seen = content.inner_text()
    page.wait_for_function(
        "([sel, n]) => document.querySelector(sel).innerText.length > n",
        arg=[f"{ANSWER} [data-testid=message-content]", len(first_seen) + 20],
    )
    expect(page.locator(ANSWER).last).to_have_attribute("data-status", "streaming")

    page.click("[data-testid=stop]")
    expect(answer).to_have_attribute("data-status", "cancelled", timeout=15_000)
    stopped_text = content.inner_text().strip()
    assert len(stopped_text) > len(first_seen)
    expect(page.locator("[data-testid=send]")).to_be_visible()
    assert "/c/" in page.url

    page.reload()
    reloaded = page.locator(ANSWER).last
    expect(reloaded).to_have_attribute("data-status", "cancelled")
    reloaded_text = reloaded.locator("[data-testid=message-content]").inner_text().strip()
    assert reloaded_text.split()[:5] == stopped_text.split()[:5]
    assert abs(len(reloaded_text) - len(stopped_text)) < 40  # same text, markdown-rendered
    user_message = page.locator("[data-testid=message][data-role=user]").last
    expect(user_message).to_contain_text("Tell me about streaming")
    expect(page.locator("[data-testid=conversation-link]").first).to_contain_text("Tell me about")


def test_enter_sends_and_shift_enter_adds_a_line(page: Page, live: LiveServer) -> None:
    log_in(page, live)
    composer = page.locator("[data-testid=composer]")
    composer.click()
    composer.type("first line")
    composer.press("Shift+Enter")
    composer.type("second line")
    expect(composer).to_have_value("first line\nsecond line")
    composer.press("Enter")
    user = page.locator("[data-testid=message][data-role=user]").last
    expect(user).to_contain_text("second line")
    expect(composer).to_have_value("")
    expect(page.locator(ANSWER).last).to_have_attribute("data-status", "complete", timeout=30_000)
