"""Share a conversation through the UI, open it in a fresh browser, revoke it."""

from __future__ import annotations

from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import ask, start_chat
from tests.browser.server import LiveServer

ANSWER = "[data-testid=message][data-role=assistant]"
QUESTION = "[data-testid=message][data-role=user]"


def test_a_public_link_opens_for_a_stranger_until_the_owner_revokes_it(
    page: Page, live: LiveServer, browser: Browser
) -> None:
    start_chat(page, live)
    ask(page, "Share this with the team")
    page.reload()  # the Share button belongs to a saved conversation's page
    answer = page.locator(f"{ANSWER} [data-testid=message-content]").last.inner_text()

    page.click("[data-testid=share]")
    page.check("[data-testid=share-visibility-public]")
    page.click("[data-testid=create-share]")
    url = page.locator("[data-testid=share-url]").input_value()
    assert url.startswith(live.url + "/s/")

    stranger = browser.new_context()  # no cookies: not signed in
    try:
        visitor = stranger.new_page()
        response = visitor.goto(url)
        assert response is not None and response.status == 200
        expect(visitor.locator(QUESTION)).to_contain_text("Share this with the team")
        expect(visitor.locator(ANSWER)).to_contain_text(" ".join(answer.split()[:6]))
        expect(visitor.locator("[data-testid=composer]")).to_have_count(0)

        page.once("dialog", lambda dialog: dialog.accept())  # "Revoke this link?"
        page.click("[data-testid=revoke-share]")
        expect(page.locator("[data-testid=share-row]").first).to_have_attribute(
            "data-state", "revoked"
        )
        response = visitor.reload()
        assert response is not None and response.status == 404
    finally:
        stranger.close()
