"""Display filters for usage figures: token counts, exact costs, averages."""

from __future__ import annotations

from decimal import Decimal

from django import template

from conversations import quotas
from conversations.usage_reports import format_cost

register = template.Library()


@register.filter
def money(value: Decimal) -> str:
    """A budget amount as refusals write it (`quotas.money`: the currency symbol first)."""
    return quotas.money(value)


@register.filter
def usage_number(value: int | Decimal | None) -> str:
    """1234 -> "1,234"; a Decimal is a cost, shown exactly; None (no average) -> a dash."""
    if value is None:
        return "\u2014"
    if isinstance(value, Decimal):
        return format_cost(value)
    return f"{value:,}"
