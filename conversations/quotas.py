"""Budgets and rate limits, checked before anything is sent upstream.

Periods are calendar days and months in settings.TIME_ZONE. A personal budget and the site
default count the person's own spend (a personal budget replaces the site default of the same
period); a group budget counts the spend of all the group's current members together.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import Group
from django.db.models import F, Q, QuerySet, Sum
from django.utils import timezone

from conversations import sql
from conversations.models import Budget, ChatModel, Message, UsageRecord

WARN_PERCENT = 80
RATE_WINDOW = timedelta(seconds=60)


class QuotaExceeded(Exception):
    """The request is refused; `message` says which limit and when it resets."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Window:
    """The current period: from `start` (local midnight) until `end`, when it resets."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class Limit:
    """One limit of a budget (money or tokens) against what was spent this period."""

    kind: str  # "money" or "tokens"
    limit: Decimal
    spent: Decimal

    @property
    def reached(self) -> bool:
        return self.spent >= self.limit

    @property
    def near(self) -> bool:
        return self.spent * 100 >= self.limit * WARN_PERCENT

    @property
    def percent(self) -> int:
        return 100 if self.limit <= 0 else math.floor(self.spent * 100 / self.limit)


@dataclass(frozen=True)
class BudgetStatus:
    label: str
    period: str  # Budget.Period
    limit_cost: Decimal | None
    limit_tokens: int | None
    spent_cost: Decimal
    spent_tokens: int
    percent: int  # of the nearer limit, rounded down; over 100 when overspent
    resets_at: datetime
    scope: str = Budget.Scope.USER
    group_name: str = ""

    @property
    def limits(self) -> list[Limit]:
        found = []
        if self.limit_cost is not None:
            found.append(Limit("money", self.limit_cost, self.spent_cost))
        if self.limit_tokens is not None:
            found.append(Limit("tokens", Decimal(self.limit_tokens), Decimal(self.spent_tokens)))
        return found

    @property
    def exceeded(self) -> bool:
        return any(limit.reached for limit in self.limits)

    @property
    def warning(self) -> bool:
        return not self.exceeded and any(limit.near for limit in self.limits)


# --- Periods -------------------------------------------------------------------------


def window(period: str, now: datetime) -> Window:
    """The calendar day or month containing `now`, in the site's time zone."""
    tz = timezone.get_default_timezone()
    today = timezone.localtime(now, tz).date()
    if period == Budget.Period.DAY:
        start, end = today, today + timedelta(days=1)
    else:
        start = today.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
    return Window(_midnight(start, tz), _midnight(end, tz))


def _midnight(day: date, tz: tzinfo) -> datetime:
    return datetime.combine(day, time.min, tzinfo=tz)


# --- Queries: a constant few, whatever the number of budgets ---------------------------


def applicable_budgets(user: Any) -> QuerySet[Budget]:
    """Every budget that could bind this user: site defaults, theirs, their groups'."""
    groups = Group.objects.filter(user=user).values("pk")
    mine = Q(scope=Budget.Scope.USER, user=user) | Q(scope=Budget.Scope.GROUP, group__in=groups)
    return Budget.objects.filter(mine | Q(scope=Budget.Scope.SITE)).select_related("group")


def in_force(budgets: list[Budget]) -> list[Budget]:
    """A personal budget replaces the site default of the same period."""
    personal = {b.period for b in budgets if b.scope == Budget.Scope.USER}
    return [b for b in budgets if b.scope != Budget.Scope.SITE or b.period not in personal]


def spend_sums(windows: dict[str, Window], prefix: str = "") -> dict[str, Sum]:
    """Sum(cost) and Sum(input + output tokens) per period, as `<period>_cost/_tokens`."""
    tokens = F(f"{prefix}input_tokens") + F(f"{prefix}output_tokens")
    sums: dict[str, Sum] = {}
    for period, current in windows.items():
        during = Q(**{f"{prefix}created_at__gte": current.start}) & Q(
            **{f"{prefix}created_at__lt": current.end}
        )
        sums[f"{period}_cost"] = Sum(f"{prefix}cost", filter=during, default=Decimal(0))
        sums[f"{period}_tokens"] = Sum(tokens, filter=during, default=0)
    return sums


def _earliest(windows: dict[str, Window]) -> datetime:
    return min(current.start for current in windows.values())


def own_usage(user: Any, windows: dict[str, Window]) -> QuerySet[UsageRecord]:
    return UsageRecord.objects.filter(user=user, created_at__gte=_earliest(windows))


def group_usage(group_ids: set[int], windows: dict[str, Window]) -> QuerySet[Group, dict[str, Any]]:
    """One row per group with its members' spend together (filtered before annotating)."""
    since = _earliest(windows)
    groups = Group.objects.filter(pk__in=group_ids, user__usage__created_at__gte=since)
    sums = spend_sums(windows, "user__usage__")
    rows: QuerySet[Group, dict[str, Any]] = groups.annotate(**sums).values("pk", *sums)
    return rows


def _windows(budgets: list[Budget], now: datetime) -> dict[str, Window]:
    return {period: window(period, now) for period in {b.period for b in budgets}}


def _group_ids(budgets: list[Budget]) -> set[int]:
    return {b.group_id for b in budgets if b.scope == Budget.Scope.GROUP and b.group_id}


# --- Statuses ------------------------------------------------------------------------


def status(budget: Budget, row: Mapping[str, Any], current: Window) -> BudgetStatus:
    """A budget against a row of spend sums (from spend_sums)."""
    spent_cost, spent_tokens = row.get(f"{budget.period}_cost"), row.get(f"{budget.period}_tokens")
    spent = BudgetStatus(
        label=_label(budget),
        period=budget.period,
        limit_cost=budget.max_cost,
        limit_tokens=budget.max_tokens,
        spent_cost=Decimal(spent_cost or 0),
        spent_tokens=int(spent_tokens or 0),
        percent=0,
        resets_at=current.end,
        scope=budget.scope,
        group_name=budget.group.name if budget.group else "",
    )
    return dataclasses.replace(spent, percent=max((x.percent for x in spent.limits), default=0))


def _label(budget: Budget) -> str:
    if budget.scope == Budget.Scope.GROUP and budget.group is not None:
        return f"Team “{budget.group.name}”"
    return "Site default" if budget.scope == Budget.Scope.SITE else "Personal budget"


def _statuses(
    budgets: list[Budget],
    own: dict[str, Any],
    groups: dict[int, dict[str, Any]],
    windows: dict[str, Window],
) -> list[BudgetStatus]:
    found = []
    for budget in budgets:
        row = groups.get(budget.group_id or 0, {}) if budget.scope == Budget.Scope.GROUP else own
        found.append(status(budget, row, windows[budget.period]))
    return found


def _rate_and_budgets(user: Any, now: datetime, limit: int) -> tuple[datetime | None, bool]:
    """In one query, as every submission asks both: the `limit`-th newest answer inside the
    rate window (while there is one, the user is at the limit; 0: no limit), and whether
    any budget applies to the user (most sites set none).

    The rate is counted from saved answers, so it holds across workers: each is one request
    upstream, whether for a new question, an edit or a regenerate. A retry in place redoes
    its answer (dated anew) and so counts as that answer."""
    scope = Budget.Scope
    found = sql.rows(
        "SELECT (SELECT m.created_at FROM {message} m"
        " JOIN {conversation} c ON c.id = m.conversation_id"
        " WHERE %s AND c.owner_id = %s AND m.role = %s AND m.created_at > %s"
        " ORDER BY m.created_at DESC LIMIT 1 OFFSET %s),"
        " EXISTS (SELECT 1 FROM {budget} b WHERE b.scope = %s"
        " OR (b.scope = %s AND b.user_id = %s) OR (b.scope = %s AND b.group_id IN"
        " (SELECT g.group_id FROM {memberships} g WHERE g.user_id = %s)))",
        [
            *(limit > 0, user.pk, Message.Role.ASSISTANT, sql.to_db(now - RATE_WINDOW)),
            max(limit - 1, 0),
            *(scope.SITE, scope.USER, user.pk, scope.GROUP, user.pk),
        ],
    )
    at_limit, budgeted = found[0]
    return (sql.from_db(at_limit) if at_limit is not None else None), bool(budgeted)


def budgets_for(user: Any, now: datetime | None = None) -> list[BudgetStatus]:
    """The budgets binding this user and how much of each is used (for the usage page)."""
    if not getattr(user, "is_authenticated", False):
        return []
    now = now or timezone.now()
    budgets = in_force(list(applicable_budgets(user)))
    if not budgets:
        return []
    windows = _windows(budgets, now)
    own = own_usage(user, windows).aggregate(**spend_sums(windows))
    ids = _group_ids(budgets)
    groups = {row["pk"]: row for row in group_usage(ids, windows)} if ids else {}
    return _statuses(budgets, own, groups, windows)


# --- The check -----------------------------------------------------------------------


def enforce(user: Any, model: ChatModel, *, now: datetime | None = None) -> list[str]:
    """Raise QuotaExceeded at 100% of a budget or over the rate limit; return 80% warnings.

    Money limits do not stop a free model (both prices zero): it adds no cost. Synchronous,
    so a submission checks it in the same database hop that saves the message.
    """
    if not getattr(user, "is_authenticated", False):
        return []
    now = now or timezone.now()
    per_minute = rate_limit_of(user)
    at_limit, budgeted = _rate_and_budgets(user, now, per_minute)
    if at_limit is not None:
        wait = max(1, math.ceil((at_limit + RATE_WINDOW - now).total_seconds()))
        raise QuotaExceeded(
            f"You can send {per_minute} message{'s' if per_minute != 1 else ''} a minute."
            f" Try again in {wait} s."
        )
    free = not model.input_price_per_mtok and not model.output_price_per_mtok
    statuses = budgets_for(user, now) if budgeted else []
    pairs = [(s, lim) for s in statuses for lim in s.limits if not (free and lim.kind == "money")]
    reached = sorted((p for p in pairs if p[1].reached), key=lambda p: p[0].resets_at)
    if reached:
        budget, limit = reached[-1]  # the one that keeps the user waiting longest
        raise QuotaExceeded(exceeded_message(budget, limit, now))
    return [warning_message(s, lim) for s, lim in pairs if lim.near]


async def check(user: Any, model: ChatModel, *, now: datetime | None = None) -> list[str]:
    return await sync_to_async(enforce)(user, model, now=now)


def rate_limit_of(user: Any) -> int:
    """Upstream requests a minute; the person's own setting wins; 0 means unlimited."""
    own = getattr(user, "requests_per_minute", None)
    return int(settings.RATE_LIMIT_PER_MINUTE if own is None else own)


# --- Messages ------------------------------------------------------------------------


def exceeded_message(budget: BudgetStatus, limit: Limit, now: datetime) -> str:
    who, whose = _subject(budget)
    spent = f"spent {money(limit.spent)}" if limit.kind == "money" else f"used {limit.spent:,}"
    return (
        f"{who} used {whose} {_describe(budget, limit)} ({spent}). "
        f"It resets {_reset_phrase(budget, now)}."
    )


def warning_message(budget: BudgetStatus, limit: Limit) -> str:
    who, whose = _subject(budget)
    return f"{who} used {limit.percent}% of {whose} {_describe(budget, limit)}."


def _subject(budget: BudgetStatus) -> tuple[str, str]:
    if budget.scope == Budget.Scope.GROUP:
        return f"Team “{budget.group_name}” has", "its"
    return "You have", "your"


def _describe(budget: BudgetStatus, limit: Limit) -> str:
    adjective = "daily" if budget.period == Budget.Period.DAY else "monthly"
    if limit.kind == "money":
        return f"{adjective} budget of {money(limit.limit)}"
    return f"{adjective} token budget of {limit.limit:,} tokens"


def money(value: Decimal) -> str:
    """The currency symbol, then units and cents; sub-cent amounts under one unit keep up
    to four decimals."""
    symbol = settings.CURRENCY_SYMBOL
    cents = value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    if cents == value or abs(value) >= 1:
        return f"{symbol}{cents:,}"
    return f"{symbol}{value.quantize(Decimal('0.0001'), rounding=ROUND_HALF_UP).normalize():f}"


def _reset_phrase(budget: BudgetStatus, now: datetime) -> str:
    local = timezone.localtime(budget.resets_at, timezone.get_default_timezone())
    at = f"at {local:%H:%M} {local.tzname()}"
    if budget.period == Budget.Period.MONTH:
        at = f"on {local.day} {local:%B} {at}"
    return f"{at} (in {duration(budget.resets_at - now)})"


def duration(delta: timedelta) -> str:
    minutes = max(1, math.ceil(delta.total_seconds() / 60))
    if minutes >= 48 * 60:
        return f"{minutes // (24 * 60)} days"
    hours, minutes = divmod(minutes, 60)
    if not hours:
        return f"{minutes} min"
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"
