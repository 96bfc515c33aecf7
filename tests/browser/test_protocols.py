"""Every wire protocol through the demo upstream, in a real browser: text, images, reasoning."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from tests.browser.conftest import start_chat
from tests.browser.server import LiveServer

ANSWER = "[data-testid=message][data-role=assistant]"


def png_file(tmp_path: Path, size: tuple[int, int] = (64, 48)) -> Path:
    path = tmp_path / "photo.png"
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 40, 90)).save(buffer, "PNG")
    path.write_bytes(buffer.getvalue())
    return path


@pytest.mark.parametrize("model", ["Demo", "Demo Anthropic", "Demo Responses"])
def test_an_attached_image_reaches_the_upstream(
    page: Page, live: LiveServer, model: str, tmp_path: Path
) -> None:
    start_chat(page, live, model)
    page.set_input_files("[data-testid=attach]", str(png_file(tmp_path)))
    expect(page.locator("#attachments .attachment-chip")).to_have_count(1)
    page.fill("[data-testid=composer]", "What is in this picture?")
    page.click("[data-testid=send]")

    answer = page.locator(ANSWER).last
    expect(answer).to_have_attribute("data-status", "streaming")
    expect(answer).to_have_attribute("data-status", "complete", timeout=30_000)
    expect(answer.locator("[data-testid=message-content]")).to_contain_text(
        "I received 1 image: PNG, 64×48"
    )
    thumb = page.locator("[data-testid=message][data-role=user] [data-testid=attachment]").last
    expect(thumb).to_be_visible()
    assert page.evaluate("(img) => img.naturalWidth > 0", thumb.element_handle())
    expect(page.locator("#attachments .attachment-chip")).to_have_count(0)


@pytest.mark.parametrize("model", ["Demo Reasoning", "Demo Anthropic", "Demo Responses"])
def test_reasoning_streams_live_then_collapses(page: Page, live: LiveServer, model: str) -> None:
    start_chat(page, live, model)
    page.fill("[data-testid=composer]", "Think first, then answer")
    page.click("[data-testid=send]")

    answer = page.locator(ANSWER).last
    reasoning = answer.locator("[data-testid=reasoning]")
    expect(reasoning).to_be_visible()
    expect(reasoning).not_to_have_text("")
    expect(answer.locator("details.reasoning")).to_have_attribute("open", "")
    expect(answer).to_have_attribute("data-status", "complete", timeout=30_000)
    details = answer.locator("details.reasoning")
    expect(details).not_to_have_attribute("open", "")
    expect(details.locator("summary")).to_contain_text("Thought for")
    expect(reasoning).to_be_hidden()
    details.locator("summary").click()
    expect(reasoning).to_be_visible()
    thought = reasoning.inner_text()
    assert (
        thought.strip()
        and thought.strip() not in answer.locator("[data-testid=message-content]").inner_text()
    )


def test_a_model_without_vision_says_so_before_sending(
    page: Page, live: LiveServer, tmp_path: Path
) -> None:
    start_chat(page, live, "Demo Reasoning")
    page.set_input_files("[data-testid=attach]", str(png_file(tmp_path)))
    expect(page.locator("#vision-warning")).to_be_visible()
    page.fill("[data-testid=composer]", "look")
    page.click("[data-testid=send]")
    expect(page.locator("#notices")).to_contain_text("does not accept images")
    expect(page.locator("[data-testid=composer]")).to_have_value("look")  # nothing lost


def test_a_non_image_upload_is_refused_in_plain_words(
    page: Page, live: LiveServer, tmp_path: Path
) -> None:
    start_chat(page, live, "Demo")
    fake = tmp_path / "notes.png"
    fake.write_text("<html>not an image</html>")
    page.set_input_files("[data-testid=attach]", str(fake))
    expect(page.locator("#notices")).to_contain_text("Only PNG, JPEG, WebP and GIF")
    expect(page.locator("#attachments .attachment-chip")).to_have_count(0)


def test_settings_show_only_what_the_model_supports_and_apply(page: Page, live: LiveServer) -> None:
    start_chat(page, live, "Demo Anthropic")
    page.click("[data-testid=conversation-settings]")
    expect(page.locator("[data-param=thinking_budget]")).to_be_visible()
    expect(page.locator("[data-param=seed]")).to_be_hidden()
    page.select_option("[data-testid=model-select]", label="Demo")
    expect(page.locator("[data-param=seed]")).to_be_visible()
    expect(page.locator("[data-param=thinking_budget]")).to_be_hidden()
    page.fill("[data-testid=system-prompt]", "Answer like a pirate")
    page.fill("[data-param=temperature] input", "5")
    page.click("[data-action=close-settings] >> nth=0")
    page.fill("[data-testid=composer]", "hello")
    page.click("[data-testid=send]")
    expect(page.locator("#notices")).to_contain_text("Temperature must be between 0 and 2")
    expect(page.locator("[data-testid=composer]")).to_have_value("hello")

    page.click("[data-testid=conversation-settings]")
    page.fill("[data-param=temperature] input", "0.4")
    page.click("[data-action=close-settings] >> nth=0")
    page.click("[data-testid=send]")
    expect(page.locator(ANSWER).last).to_have_attribute("data-status", "complete", timeout=30_000)
    page.reload()
    page.click("[data-testid=conversation-settings]")
    expect(page.locator("[data-testid=system-prompt]")).to_have_value("Answer like a pirate")
    expect(page.locator("[data-param=temperature] input")).to_have_value("0.4")
