"""htmx cannot be turned against the page: safe config, untrusted HTML under hx-disable,
and no template markup that the Content-Security-Policy would have to allow."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from conversations import frames
from conversations.models import Message
from tests.conftest import add_message, make_conversation
from tests.security.conftest import World

pytestmark = pytest.mark.django_db

PAYLOAD = '<img src=x onerror=alert(1) hx-get="/admin/" hx-trigger="load">'
ESCAPED = "&lt;img src=x onerror=alert(1) hx-get=&quot;/admin/&quot;"
# Markup that needs 'unsafe-inline' (or worse) under our policy.
CSP_BREAKERS = {
    "inline script": re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE),
    "style element": re.compile(r"<style\b", re.IGNORECASE),
    "style attribute": re.compile(r"\sstyle\s*=", re.IGNORECASE),
    "event handler attribute": re.compile(r"\son[a-z]+\s*=", re.IGNORECASE),
    "hx-on attribute": re.compile(r"\s(?:hx|data-hx)-on", re.IGNORECASE),
    "javascript: URL": re.compile(r"javascript:", re.IGNORECASE),
}


class Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))


def elements(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Elements()
    parser.feed(html)
    return parser.found


def with_class(html: str, name: str) -> list[dict[str, str | None]]:
    return [attrs for _, attrs in elements(html) if name in (attrs.get("class") or "").split()]


def test_htmx_is_configured_without_eval_script_tags_or_foreign_requests(world: World):
    page = world.client(world.owner).get("/").content.decode()
    meta = next(a for t, a in elements(page) if t == "meta" and a.get("name") == "htmx-config")
    config = json.loads(meta["content"] or "")
    assert config["allowEval"] is False
    assert config["allowScriptTags"] is False
    assert config["selfRequestsOnly"] is True
    assert config["includeIndicatorStyles"] is False  # its <style> would break style-src


def conversation_page(world: World) -> str:
    conversation = make_conversation(world.owner, world.model, title=PAYLOAD)
    add_message(conversation, "user", PAYLOAD)
    add_message(
        conversation,
        "assistant",
        PAYLOAD,
        content_html="<p>rendered</p>",
        reasoning=PAYLOAD,
        tool_calls=[{"id": "c1", "name": PAYLOAD, "arguments": PAYLOAD}],
        model=world.model,
    )
    add_message(conversation, "assistant", PAYLOAD, status=Message.Status.ERROR, error=PAYLOAD)
    return world.client(world.owner).get(f"/c/{conversation.pk}/").content.decode()


def test_message_bodies_reasoning_and_tool_calls_sit_under_hx_disable(world: World):
    page = conversation_page(world)
    for name in ("message__body", "reasoning__text", "tool-calls"):
        containers = with_class(page, name)
        assert containers, name
        assert all("hx-disable" in attrs for attrs in containers), name


def test_titles_texts_and_errors_reach_the_page_only_escaped(world: World):
    page = conversation_page(world)
    assert PAYLOAD not in page
    assert page.count(ESCAPED) >= 6  # title (twice), sidebar, user text, reasoning, error...
    assert not [a for _, a in elements(page) if "onerror" in a]


def test_socket_notices_escape_their_text():
    frame = frames.notice(PAYLOAD)
    assert PAYLOAD not in frame and ESCAPED in frame
    assert not [a for _, a in elements(frame) if "onerror" in a or "hx-get" in a]


def template_files() -> list[Path]:
    engines: list[dict[str, Any]] = settings.TEMPLATES
    roots = [Path(d) for engine in engines for d in engine["DIRS"]]
    roots += [Path(settings.BASE_DIR) / "conversations" / "templates"]
    return sorted(p for root in roots if root.exists() for p in root.rglob("*.html"))


def test_no_template_needs_unsafe_inline_under_the_policy():
    files = template_files()
    assert len(files) > 20
    problems = [
        f"{path.relative_to(settings.BASE_DIR)}: {what}"
        for path in files
        for what, pattern in CSP_BREAKERS.items()
        if pattern.search(path.read_text())
    ]
    assert not problems, "\n".join(problems)


def test_the_template_check_recognises_what_it_forbids():
    samples = [
        "<script>x()</script>",
        "<style>p{}</style>",
        '<p style="color:red">',
        '<a onclick="x()">',
        '<div hx-on:click="x()">',
        '<a href="javascript:x()">',
    ]
    for sample in samples:
        assert any(p.search(sample) for p in CSP_BREAKERS.values()), sample
    assert not any(
        p.search('<script src="/static/js/chat.js" defer></script>') for p in CSP_BREAKERS.values()
    )
