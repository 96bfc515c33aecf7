"""Small display filters for the chat templates."""

from __future__ import annotations

from django import template
from django.utils.safestring import SafeString, mark_safe

from conversations.rendering import render_markdown

register = template.Library()


@register.filter
def seconds(milliseconds: int | None) -> str:
    """850 -> "850 ms", 1234 -> "1.2 s"; under ten seconds keeps one decimal."""
    if milliseconds is None:
        return ""
    if milliseconds < 1000:
        return f"{milliseconds} ms"
    value = milliseconds / 1000
    return f"{value:.1f} s" if value < 10 else f"{value:.0f} s"


@register.filter
def lookup(mapping: object, key: str) -> object:
    """`params|lookup:name`: a dict value by a variable key ("" when missing)."""
    if isinstance(mapping, dict):
        value = mapping.get(key, "")
        return "\n".join(value) if isinstance(value, list | tuple) else value
    return ""


@register.filter(name="render_markdown")
def render_markdown_filter(text: str) -> SafeString:
    """Sanitised HTML of a checkpointed, still-streaming answer (finished ones store theirs)."""
    return mark_safe(render_markdown(text))  # noqa: S308 - the renderer sanitises with nh3
