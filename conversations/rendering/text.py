"""Messages shown other than as free Markdown: verbatim text, or a JSON answer."""

from __future__ import annotations

import json

from django.utils.html import escape

from .engine import render_markdown


def render_plain(text: str) -> str:
    """`text` escaped, its line breaks kept as <br>."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n")
    return str(escape(lines)).replace("\n", "<br>\n")


def render_json_answer(text: str) -> str:
    """A JSON object or array pretty-printed in a highlighted block; anything else as Markdown."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return render_markdown(text)
    # A bare number or string is an answer to read, not a structure to browse.
    if not isinstance(value, dict | list):
        return render_markdown(text)
    # json.dumps escapes every newline inside strings, so no line of the dump can be
    # a lone run of backticks that would close the fence early.
    pretty = json.dumps(value, indent=2, ensure_ascii=False)
    return render_markdown(f"```json\n{pretty}\n```\n")
