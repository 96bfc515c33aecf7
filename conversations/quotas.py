"""Budgets and rate limits, checked before anything is sent upstream."""

from __future__ import annotations

from typing import Any


class QuotaExceeded(Exception):
    """The request is refused; `message` says which limit and when it resets."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


async def check(user: Any, model: Any) -> list[str]:
    """Raise QuotaExceeded at 100% of a budget or over the rate limit; return 80% warnings."""
    return []
