"""Turn untrusted message text into HTML that is safe to swap into a page."""

from __future__ import annotations

from .engine import render_markdown
from .incremental import IncrementalRenderer, RenderUpdate
from .text import render_json_answer, render_plain

__all__ = [
    "IncrementalRenderer",
    "RenderUpdate",
    "render_json_answer",
    "render_markdown",
    "render_plain",
]
