"""Regenerate, edit-and-resend with versions, search, rename and export, in a real browser."""

from __future__ import annotations

import json

from playwright.sync_api import ConsoleMessage, Page, expect

from tests.browser.conftest import ask, start_chat
from tests.browser.server import LiveServer

ANSWER = "[data-testid=message][data-role=assistant]"
QUESTION = "[data-testid=message][data-role=user]"


def console_errors(page: Page) -> list[str]:
    """The page's console errors from now on (scripts, CSP, htmx's swap errors)."""
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("console", on_console)
    return errors


def test_as_the_conversation_grows_only_its_last_answer_offers_regenerate(
    page: Page, live: LiveServer
) -> None:
    errors = console_errors(page)
    start_chat(page, live)
    ask(page, "First question")
    ask(page, "Second question")
    ask(page, "Third question")

    regenerate = page.locator("[data-testid=regenerate]")
    expect(regenerate).to_have_count(1)  # as the server draws it after a reload
    assert page.locator(ANSWER).last.locator("[data-testid=regenerate]").count() == 1
    assert errors == []  # no swap aimed at something that is not there


def test_regenerate_keeps_the_earlier_answer_as_a_version(page: Page, live: LiveServer) -> None:
    errors = console_errors(page)  # the console stays clean (scripts, CSP)
    start_chat(page, live)
    ask(page, "First question")
    page.reload()  # regenerating works on a page drawn by the server too
    page.locator(ANSWER).last.hover()
    first_id = page.locator(ANSWER).last.get_attribute("id")
    page.click(f"{ANSWER} >> nth=-1 >> [data-testid=regenerate]")
    expect(page.locator(ANSWER).last).not_to_have_id(first_id or "")
    expect(page.locator(ANSWER).last).to_have_attribute("data-status", "complete", timeout=30_000)
    expect(page.locator(ANSWER)).to_have_count(1)
    label = page.locator(f"{ANSWER} [data-testid=version-label]")
    expect(label).to_have_text("2/2")
    page.click(f"{ANSWER} [data-testid=version-previous]")
    expect(label).to_have_text("1/2")
    page.reload()
    expect(page.locator(f"{ANSWER} [data-testid=version-label]")).to_have_text("1/2")
    assert errors == []


def test_editing_a_question_resends_it_and_keeps_the_old_version(
    page: Page, live: LiveServer
) -> None:
    start_chat(page, live)
    ask(page, "What is the capital of France")
    ask(page, "And of Italy")
    first = page.locator(QUESTION).first
    first.hover()
    first.locator("[data-testid=edit-message]").click()
    editor = first.locator("textarea")
    editor.fill("What is the capital of Spain")
    first.locator("[data-action=submit-edit]").click()

    expect(page.locator(QUESTION)).to_have_count(1)  # the later question belongs to the old branch
    expect(page.locator(ANSWER).last).to_have_attribute(
        "data-status", "complete", timeout=30_000
    )  # the later question belongs to the old branch
    expect(page.locator(QUESTION).first).to_contain_text("capital of Spain")
    expect(page.locator(ANSWER).last).to_contain_text("capital of Spain")
    label = page.locator(f"{QUESTION} [data-testid=version-label]")
    expect(label).to_have_text("2/2")
    page.click(f"{QUESTION} [data-testid=version-previous]")
    expect(label).to_have_text("1/2")
    expect(page.locator(QUESTION)).to_have_count(2)
    expect(page.locator(QUESTION).last).to_contain_text("And of Italy")


def test_search_finds_conversations_by_title_and_message_text(page: Page, live: LiveServer) -> None:
    start_chat(page, live)
    ask(page, "Pelicans are remarkable birds")
    page.click("[data-testid=new-conversation]")
    ask(page, "Tell me about volcanoes")
    search = page.locator("[data-testid=conversation-search]")
    search.fill("pelican")
    links = page.locator("[data-testid=conversation-link]")
    expect(links).to_have_count(1)
    expect(links.first).to_contain_text("Pelicans")
    search.fill("offline stand-in")  # only in the answers' text
    expect(links.nth(1)).to_be_visible()
    expect(links.first).to_contain_text("offline stand-in")  # a snippet shows where it matched
    search.fill("zzz-no-such-thing")
    expect(links).to_have_count(0)
    expect(page.locator("#conversation-list")).to_contain_text("No conversation matches")


def test_rename_and_export_as_markdown_and_json(page: Page, live: LiveServer) -> None:
    start_chat(page, live)
    ask(page, "Export me please")
    page.click("[data-testid=conversation-menu]")
    page.click("[data-testid=rename]")
    page.fill("[data-testid=rename-input]", "Exported chat")
    page.click("[data-testid=rename-save]")
    expect(page.locator("[data-testid=conversation-title]")).to_have_text("Exported chat")
    expect(page.locator("[data-testid=conversation-link].is-active")).to_contain_text(
        "Exported chat"
    )

    page.click("[data-testid=conversation-menu]")
    with page.expect_download() as markdown:
        page.click("[data-testid=export-markdown]")
    text = open(markdown.value.path(), encoding="utf-8").read()  # noqa: SIM115
    assert text.startswith("# Exported chat")
    assert "## You" in text and "Export me please" in text and "## Demo" in text

    page.click("[data-testid=conversation-menu]")
    with page.expect_download() as exported:
        page.click("[data-testid=export-json]")
    data = json.loads(open(exported.value.path(), encoding="utf-8").read())  # noqa: SIM115
    assert data["title"] == "Exported chat"
    assert [m["role"] for m in data["messages"]] == ["user", "assistant"]
    assert "offline stand-in" in data["messages"][1]["content"]


def test_delete_asks_first_then_removes_the_conversation(page: Page, live: LiveServer) -> None:
    start_chat(page, live)
    ask(page, "Delete me soon")
    url = page.url
    page.click("[data-testid=conversation-menu]")
    page.click("[data-testid=delete-conversation]")
    expect(page.locator("#delete-dialog")).to_be_visible()
    page.click("[data-testid=confirm-delete]")
    page.wait_for_url(live.url + "/")
    response = page.goto(url)
    assert response is not None and response.status == 404
