"""Fenced code to Pygments HTML, coloured by the CSS classes in static/css/highlight.css."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from markdown_it.common.utils import escapeHtml
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import find_lexer_class_by_name
from pygments.util import ClassNotFound

# nowrap: we write the <pre><code> wrapper ourselves so every code block has one shape.
_FORMATTER = HtmlFormatter(nowrap=True)
_CLASS_UNSAFE = re.compile(r"[^a-z0-9_-]")
_LANGUAGE_MAX = 40


def render_fence(code: str, info: str) -> str:
    """A fenced block as <pre class="highlight"><code class="language-x">…</code></pre>."""
    words = info.split(maxsplit=1)
    language = words[0].lower()[:_LANGUAGE_MAX] if words else ""
    lexer_class = _lexer_class(language) if language else None
    body = escapeHtml(code) if lexer_class is None else _highlighted(code, lexer_class)
    name = _language_class(language, lexer_class)
    code_open = f'<code class="language-{name}">' if name else "<code>"
    return f'<pre class="highlight">{code_open}{body}</code></pre>\n'


@lru_cache(maxsize=256)
def _lexer_class(language: str) -> Any | None:
    # Only an explicitly named language is highlighted: guessing misfires on prose and
    # costs a pass of every lexer over text a model chose.
    try:
        return find_lexer_class_by_name(language)
    except ClassNotFound:
        return None


def _highlighted(code: str, lexer_class: Any) -> str:
    # A fresh lexer per block (they are cheap) so no state is shared between threads;
    # stripnl/ensurenl off so the code comes out character for character.
    lexer = lexer_class(stripnl=False, ensurenl=False)
    return str(highlight(code, lexer, _FORMATTER))


def _language_class(language: str, lexer_class: Any | None) -> str:
    # Pygments' own first alias is the canonical name ("c++" -> "cpp"); an unknown name is
    # kept only when it is already class-safe, since it came from untrusted text.
    if lexer_class is not None and lexer_class.aliases:
        return _CLASS_UNSAFE.sub("-", str(lexer_class.aliases[0]))
    return language if language and not _CLASS_UNSAFE.search(language) else ""
