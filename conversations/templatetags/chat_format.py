"""Small display filters for the chat templates."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def seconds(milliseconds: int | None) -> str:
    """1234 -> "1.2 s"; under ten seconds keeps one decimal."""
    if milliseconds is None:
        return ""
    value = milliseconds / 1000
    return f"{value:.1f} s" if value < 10 else f"{value:.0f} s"
