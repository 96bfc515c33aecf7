"""The delta frame: the shape static/js/chat.js recognises and applies without htmx."""

from __future__ import annotations

import re

from conversations import frames

PART = re.compile(
    r'<div data-delta="(\w+)" data-message="(\d+)" hx-swap-oob="([^"]+)">(.*?)</div>', re.S
)


def test_every_part_names_itself_its_message_and_its_htmx_swap():
    frame = frames.delta(7, "<p>done</p>\n", "<p>open</p>\n", "thinking")
    assert frame.startswith('<div data-delta="')
    assert PART.findall(frame) == [
        ("blocks", "7", "beforeend:#message-7-blocks", "<p>done</p>\n"),
        ("tail", "7", "innerHTML:#message-7-tail", "<p>open</p>\n"),
        ("reasoning", "7", "beforeend:#message-7-reasoning", "thinking"),
    ]
    assert "".join(m.group(0) for m in PART.finditer(frame)) == frame


def test_only_the_tail_is_always_sent():
    frame = frames.delta(7, "", "", "")
    assert frame == (
        '<div data-delta="tail" data-message="7" hx-swap-oob="innerHTML:#message-7-tail"></div>'
    )


def test_reasoning_is_escaped_text():
    frame = frames.delta(7, "", "", '<img src=x onerror=alert(1)> & "q"')
    assert "<img" not in frame
    assert "&lt;img src=x onerror=alert(1)&gt; &amp; &quot;q&quot;</div>" in frame
