"""Reports on the usage ledger over a date range, aggregated in the database (one query each)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Avg, Count, F, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from conversations.models import UsageRecord

DEFAULT_DAYS = 30
MAX_DAYS = 366
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class RangeError(ValueError):
    """A date range that cannot be used; `message` says why, in plain words."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class DateRange:
    """Whole days in the current time zone, both ends included."""

    start: date
    end: date

    @classmethod
    def last_days(cls, count: int, today: date) -> DateRange:
        return cls(today - timedelta(days=count - 1), today)

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=n) for n in range((self.end - self.start).days + 1)]

    def bounds(self) -> tuple[datetime, datetime]:
        """[start of the first day, start of the day after the last) as aware datetimes."""
        first = timezone.make_aware(datetime.combine(self.start, time.min))
        after = timezone.make_aware(datetime.combine(self.end + timedelta(days=1), time.min))
        return first, after


def parse_range(start: str | None, end: str | None, today: date) -> DateRange:
    """The range from `YYYY-MM-DD` strings; blanks default to the last DEFAULT_DAYS days."""
    last = _parse_date(end, "end") or today
    first = _parse_date(start, "start") or last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise RangeError("The start date is after the end date.")
    if (last - first).days + 1 > MAX_DAYS:
        raise RangeError(f"Choose a range of at most {MAX_DAYS} days.")
    return DateRange(first, last)


def _parse_date(value: str | None, name: str) -> date | None:
    value = (value or "").strip()
    if not value:
        return None
    try:
        if not _ISO_DATE.fullmatch(value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise RangeError(f"The {name} date must be a date written as YYYY-MM-DD.") from None


# --- Figures: what every row of every table adds up --------------------------------


@dataclass(frozen=True)
class Column:
    key: str  # the `sort` value
    label: str


# The figure columns of every table, in order; `Figures.values()` follows it.
COLUMNS = (
    Column("calls", "Calls"),
    Column("input", "Input tokens"),
    Column("output", "Output tokens"),
    Column("reasoning", "Reasoning tokens"),
    Column("cached", "Cached tokens"),
    Column("cost", "Cost"),
    Column("failures", "Failures"),
    Column("estimated", "Estimated"),
    Column("ttft", "Avg TTFT (ms)"),
    Column("duration", "Avg duration (ms)"),
)
_PREFIX = "u_"  # annotations may not share a name with a model field


def _aggregates() -> dict[str, Any]:
    """The figures of COLUMNS as aggregates, keyed by the prefixed column key."""
    failed = Q(outcome=UsageRecord.Outcome.ERROR)
    aggregates = {
        "calls": Count("pk"),
        "input": Sum("input_tokens"),
        "output": Sum("output_tokens"),
        "reasoning": Sum("reasoning_tokens"),
        "cached": Sum("cached_tokens"),
        "cost": Sum("cost"),
        "failures": Count("pk", filter=failed),
        "estimated": Count("pk", filter=Q(estimated=True)),
        "ttft": Avg("ttft_ms"),
        "duration": Avg("duration_ms"),
    }
    return {_PREFIX + key: aggregate for key, aggregate in aggregates.items()}


@dataclass(frozen=True)
class Figures:
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    cost: Decimal = Decimal(0)
    failures: int = 0
    estimated: int = 0
    avg_ttft_ms: int | None = None
    avg_duration_ms: int | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Figures:
        def get(key: str) -> Any:
            return row.get(_PREFIX + key)

        return cls(
            calls=get("calls") or 0,
            input_tokens=get("input") or 0,
            output_tokens=get("output") or 0,
            reasoning_tokens=get("reasoning") or 0,
            cached_tokens=get("cached") or 0,
            cost=get("cost") or Decimal(0),
            failures=get("failures") or 0,
            estimated=get("estimated") or 0,
            avg_ttft_ms=_rounded(get("ttft")),
            avg_duration_ms=_rounded(get("duration")),
        )

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def values(self) -> tuple[int | Decimal | None, ...]:
        """In the order of COLUMNS."""
        return (
            self.calls,
            self.input_tokens,
            self.output_tokens,
            self.reasoning_tokens,
            self.cached_tokens,
            self.cost,
            self.failures,
            self.estimated,
            self.avg_ttft_ms,
            self.avg_duration_ms,
        )


def _rounded(value: float | Decimal | None) -> int | None:
    return None if value is None else round(value)


def format_cost(cost: Decimal) -> str:
    """Exact: trailing zeros dropped, at least two decimals ("0.008755", "12.50")."""
    text = format(cost.normalize(), "f")
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"


# --- Sorting the breakdowns ------------------------------------------------------------

NAME_KEYS = ("name", "provider")
FIGURE_KEYS = frozenset(column.key for column in COLUMNS)
SORT_KEYS = FIGURE_KEYS | set(NAME_KEYS)
DEFAULT_SORT = "-cost"


@dataclass(frozen=True)
class Sort:
    """One `sort` GET value for both breakdowns: a column key, "-" first for descending."""

    key: str = "cost"
    descending: bool = True

    @classmethod
    def parse(cls, value: str | None) -> Sort:
        value = (value or DEFAULT_SORT).strip()
        key = value.removeprefix("-")
        if key not in SORT_KEYS:
            return cls.parse(DEFAULT_SORT)
        return cls(key, value.startswith("-"))

    @property
    def param(self) -> str:
        return f"-{self.key}" if self.descending else self.key

    def next_param(self, key: str) -> str:
        """What a click on column `key` sorts by: the same column flips, another starts
        ascending for names and descending for figures (the biggest first)."""
        if key == self.key:
            return key if self.descending else f"-{key}"
        return key if key in NAME_KEYS else f"-{key}"

    def order_by(self, names: Mapping[str, str], tiebreak: Iterable[str]) -> list[Any]:
        """Order by this sort where `names` maps name keys to fields; ties go by `tiebreak`.

        A key this table lacks (the users table has no provider) leaves the default order.
        """
        sort = self if self.key in FIGURE_KEYS or self.key in names else Sort.parse(None)
        column = names.get(sort.key) or _PREFIX + sort.key
        first = (
            F(column).desc(nulls_last=True) if sort.descending else F(column).asc(nulls_last=True)
        )
        return [first, *tiebreak]


# --- The reports -------------------------------------------------------------------------


def records(span: DateRange, user_id: int | None = None) -> QuerySet[UsageRecord]:
    """The ledger rows of the range, of one person if `user_id` is given."""
    first, after = span.bounds()
    rows = UsageRecord.objects.filter(created_at__gte=first, created_at__lt=after)
    return rows if user_id is None else rows.filter(user_id=user_id)


def totals(rows: QuerySet[UsageRecord]) -> Figures:
    return Figures.from_row(rows.aggregate(**_aggregates()))


@dataclass(frozen=True)
class DayRow:
    day: date
    figures: Figures = field(default_factory=Figures)


def per_day(rows: QuerySet[UsageRecord], span: DateRange) -> list[DayRow]:
    """One row per day of the range, days without usage included (as zeros)."""
    grouped = (
        rows.annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(**_aggregates())
        .order_by("day")
    )
    found = {row["day"]: Figures.from_row(row) for row in grouped}
    return [DayRow(day, found.get(day, Figures())) for day in span.days]


@dataclass(frozen=True)
class UserRow:
    user_id: int | None  # None once the account is deleted
    username: str
    figures: Figures


def per_user(rows: QuerySet[UsageRecord], sort: Sort) -> list[UserRow]:
    grouped = (
        rows.values("user_id", "username")
        .annotate(**_aggregates())
        .order_by(*sort.order_by({"name": "username"}, ["username", "user_id"]))
    )
    return [UserRow(row["user_id"], row["username"], Figures.from_row(row)) for row in grouped]


@dataclass(frozen=True)
class ModelRow:
    model_id: int | None  # None once the model is deleted
    model_name: str
    provider_name: str
    figures: Figures


def per_model(rows: QuerySet[UsageRecord], sort: Sort) -> list[ModelRow]:
    """Grouped by model and the names it had when called (a renamed model shows twice)."""
    names = {"name": "model_name", "provider": "provider_name"}
    grouped = (
        rows.values("model_id", "model_name", "provider_name")
        .annotate(**_aggregates())
        .order_by(*sort.order_by(names, ["model_name", "provider_name", "model_id"]))
    )
    return [
        ModelRow(row["model_id"], row["model_name"], row["provider_name"], Figures.from_row(row))
        for row in grouped
    ]


@dataclass(frozen=True)
class PersonalReport:
    """What one person sees of their own usage."""

    today: date
    today_totals: Figures
    month: DateRange
    month_totals: Figures
    month_models: list[ModelRow]
    recent: DateRange
    recent_days: list[DayRow]


def personal_report(user_id: int, today: date) -> PersonalReport:
    month = DateRange(today.replace(day=1), today)
    recent = DateRange.last_days(DEFAULT_DAYS, today)
    return PersonalReport(
        today=today,
        today_totals=totals(records(DateRange(today, today), user_id)),
        month=month,
        month_totals=totals(records(month, user_id)),
        month_models=per_model(records(month, user_id), Sort.parse(None)),
        recent=recent,
        recent_days=per_day(records(recent, user_id), recent),
    )
