"""The XSS corpus in a real Chromium through the real app, and the pages under the real CSP.

Every payload of tests/fixtures/xss_payloads.json is shown as a user message, as a rendered
answer (its Markdown HTML), as reasoning, a tool call, an error and a conversation title,
and once more sent through the websocket and echoed by the demo upstream. Traps catch any
script that runs; a CSP violation counts as a failure too, since the sanitiser should have
removed whatever the policy had to block.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import ConsoleMessage, Dialog, Page, expect

from tests.browser.conftest import log_in
from tests.browser.server import LiveServer

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "xss_payloads.json"
# PostgreSQL cannot store NUL; the app drops it from upstream text the same way.
PAYLOADS = [row["payload"].replace("\x00", "") for row in json.loads(CORPUS.read_text())]
ANSWER = "[data-testid=message][data-role=assistant]"

TRAPS = """
window.__xss = [];
for (const name of ["alert", "confirm", "prompt", "print", "open"]) {
  window[name] = (...args) => { window.__xss.push(name + ":" + String(args[0])); };
}
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(e.violatedDirective + " " + e.blockedURI + " " + (e.sample || ""));
});
"""
# Fire the events inline handlers and htmx triggers listen to, on every element shown.
POKE = """
(selector) => {
  const kinds = ["mouseover", "mouseenter", "focus", "animationstart", "load", "error"];
  for (const el of document.querySelectorAll(selector)) {
    for (const kind of kinds) el.dispatchEvent(new Event(kind));
  }
}
"""
# What must never exist inside untrusted content once the browser has parsed it.
DOM_PROBLEMS = """
(selector) => {
  const bad = [];
  const tags = /^(script|iframe|object|embed|svg|math|form|style|link|meta|base|input|button|textarea|select|template|frame|frameset)$/i;
  for (const root of document.querySelectorAll(selector)) {
    for (const el of root.querySelectorAll("*")) {
      if (el.matches("button.copy-code")) continue;  // added by chat.js, not by the content
      if (tags.test(el.tagName)) bad.push("<" + el.tagName + ">");
      for (const attr of el.attributes) {
        const name = attr.name.toLowerCase();
        if (name.startsWith("on") || name.startsWith("hx-") || name.startsWith("data-hx")
            || name === "style" || name === "id" || name === "srcdoc" || name === "formaction") {
          bad.push(el.tagName + "[" + name + "]");
        }
        if (/^\\s*(javascript|vbscript|data:text)/i.test(attr.value) && name !== "alt" && name !== "title") {
          bad.push(el.tagName + "[" + name + "=" + attr.value.slice(0, 40) + "]");
        }
      }
    }
  }
  return bad;
}
"""
UNTRUSTED = (
    ".message__text, .reasoning__text, .tool-call__name, .tool-call__args,"
    " .message__error p, .message__note"
)

SEED = """
import json
from pathlib import Path
from conversations.models import Conversation, Message, User
from conversations.rendering import render_markdown

payloads = [r["payload"].replace("\\x00", "") for r in json.loads(Path("tests/fixtures/xss_payloads.json").read_text())]
owner = User.objects.get(username="admin")
chat = Conversation.objects.create(owner=owner, title=payloads[0][:200])
for p in payloads:
    Message.objects.create(conversation=chat, role="user", content=p)
    Message.objects.create(
        conversation=chat, role="assistant", content=p, content_html=render_markdown(p),
        reasoning=p, tool_calls=[{"id": "t", "name": p[:60], "arguments": p}], model_name=p[:60],
    )
titles, current = [], ""
for p in payloads:
    if current and len(current) + 1 + len(p) > 200:
        titles.append(current)
        current = ""
    current = (current + " " + p).strip()[:200]
titles.append(current)
for title in titles:
    Conversation.objects.create(owner=owner, title=title)
# Written last, so the payload chat is the most recent in the sidebar.
Message.objects.create(conversation=chat, role="assistant", content=payloads[1], status="error", error=payloads[2])
print(json.dumps({"chat": chat.pk, "titles": len(titles)}))
"""


@dataclass
class Watch:
    """Everything a page reported that would mean script ran or the CSP had to step in."""

    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def on_dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def assert_clean(self, page: Page) -> None:
        assert self.dialogs == []
        assert page.evaluate("window.__xss") == []
        assert page.evaluate("window.__csp") == []
        assert self.errors == []


@pytest.fixture
def watched(page: Page) -> tuple[Page, Watch]:
    watch = Watch()
    page.add_init_script(TRAPS)
    page.on("dialog", watch.on_dialog)
    page.on("console", watch.on_console)
    page.on("pageerror", lambda error: watch.errors.append(f"page error: {error}"))
    # Browsers ask for /favicon.ico on pages without an icon link (the admin): not a CSP matter.
    page.route("**/favicon.ico", lambda route: route.fulfill(status=204))
    return page, watch


@pytest.fixture(scope="module")
def seeded(live: LiveServer) -> dict[str, int]:
    return dict(json.loads(live.manage("shell", "-c", SEED).strip().splitlines()[-1]))


def test_every_payload_stays_inert_as_messages_answers_and_titles(
    watched: tuple[Page, Watch], live: LiveServer, seeded: dict[str, int]
) -> None:
    page, watch = watched
    log_in(page, live)
    page.goto(f"{live.url}/c/{seeded['chat']}/")
    expect(page.locator(ANSWER)).to_have_count(len(PAYLOADS) + 1)
    page.evaluate(POKE, "#messages *, #conversation-list *, #chat-title")
    page.wait_for_timeout(300)  # let any timer- or load-driven payload fire

    assert page.evaluate(DOM_PROBLEMS, UNTRUSTED) == []
    assert page.evaluate(DOM_PROBLEMS, ".conversation-link, #chat-title") == []
    user_texts = page.locator("[data-role=user] [data-testid=message-content]").all_inner_texts()
    assert [text.strip() for text in user_texts] == [p.strip() for p in PAYLOADS]
    assert page.locator("[data-testid=conversation-link]").count() >= seeded["titles"]
    watch.assert_clean(page)


def test_payloads_sent_through_the_socket_and_echoed_back_stay_inert(
    watched: tuple[Page, Watch], live: LiveServer
) -> None:
    page, watch = watched
    log_in(page, live)
    page.click("[data-testid=new-conversation]")
    page.select_option("[data-testid=model-select]", label="Demo")
    # The nastiest first: the demo quotes the first 120 characters of the message back.
    text = "\n".join(['<img src=x onerror=alert(1)> "><svg onload=alert(2)>', *PAYLOADS])
    page.fill("[data-testid=composer]", text)
    page.click("[data-testid=send]")

    answer = page.locator(ANSWER).last
    expect(answer).to_have_attribute("data-status", "complete", timeout=30_000)
    expect(answer).to_contain_text("You wrote:")
    expect(page.locator("[data-role=user] [data-testid=message-content]").last).to_contain_text(
        PAYLOADS[-1].strip()[:40]
    )
    page.evaluate(POKE, "#messages *, #conversation-list *, #chat-title")
    page.wait_for_timeout(300)
    assert page.evaluate(DOM_PROBLEMS, UNTRUSTED) == []
    assert page.evaluate(DOM_PROBLEMS, ".conversation-link, #chat-title") == []
    watch.assert_clean(page)


def test_login_chat_and_admin_pages_run_without_a_csp_violation(
    watched: tuple[Page, Watch], live: LiveServer, seeded: dict[str, int]
) -> None:
    page, watch = watched
    log_in(page, live)
    expect(page.locator("#connection")).to_have_attribute("data-state", "open")  # ws: 'self'
    page.click("[data-action=open-settings]")
    page.click("[data-action=close-settings]")
    for path in [
        "/admin/",
        "/admin/conversations/provider/",
        "/admin/conversations/provider/1/change/",
        "/admin/conversations/chatmodel/",
        "/admin/conversations/conversation/",
        f"/admin/conversations/conversation/{seeded['chat']}/change/",
        "/admin/conversations/user/1/change/",
        "/admin/conversations/message/?role__exact=assistant",
    ]:
        response = page.goto(live.url + path)
        assert response is not None and response.status == 200, path
        expect(page.locator("#content")).to_be_visible()
    page.click("#toggle-nav-sidebar")
    page.goto(live.url + "/admin/conversations/user/1/change/")
    page.click("#calendarlink0")  # the date widget's calendar, positioned by script
    expect(page.locator("#calendarbox0")).to_be_visible()
    watch.assert_clean(page)


def test_the_policy_would_report_inline_code_were_it_ever_injected(
    watched: tuple[Page, Watch], live: LiveServer
) -> None:
    page, _ = watched
    page.goto(live.url + "/accounts/login/")
    page.evaluate(
        """() => document.body.insertAdjacentHTML(
            "beforeend", '<img src="/none" onerror="alert(1)"><p style="color:red">x</p>')"""
    )
    page.wait_for_timeout(200)
    assert page.evaluate("window.__xss") == []
    violations = page.evaluate("window.__csp")
    assert any(v.startswith("script-src-attr") for v in violations)
    assert any(v.startswith("style-src-attr") for v in violations)
