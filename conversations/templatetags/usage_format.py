"""Display filters for usage figures: token counts, exact costs, averages."""

from __future__ import annotations

from decimal import Decimal

from django import template
from django.conf import settings

from conversations.usage_reports import format_cost

register = template.Library()


@register.simple_tag
def currency() -> str:
    """The symbol written before money amounts (`CURRENCY_SYMBOL`); escaped by the tag."""
    return str(settings.CURRENCY_SYMBOL)


@register.filter
def usage_number(value: int | Decimal | None) -> str:
    """1234 -> "1,234"; a Decimal is a cost, shown exactly; None (no average) -> a dash."""
    if value is None:
        return "\u2014"
    if isinstance(value, Decimal):
        return format_cost(value)
    return f"{value:,}"
