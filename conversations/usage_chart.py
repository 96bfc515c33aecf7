"""Geometry of the per-day usage chart (token bars, a cost line), drawn as SVG by a template."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

from conversations.usage_reports import DayRow, format_cost

WIDTH, HEIGHT = 760, 290
LEFT, RIGHT, TOP, BOTTOM = 64, 76, 36, 50  # margins around the plot, for the axes' labels
TICKS = 4  # intervals on each vertical axis
MAX_DAY_LABELS = 10
BAR_SHARE = 0.7  # of a day's slot; the rest is the gap between bars


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True)
class DayLabel:
    x: float
    label: str


@dataclass(frozen=True)
class DayBars:
    """One day's column: stacked input and output tokens, and the cost point above it."""

    slot_x: float
    slot_width: float
    bar_x: float
    bar_width: float
    input_y: float
    input_height: float
    output_y: float
    output_height: float
    cost_x: float
    cost_y: float
    title: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    plot_left: int
    plot_right: int
    plot_top: int
    plot_bottom: int
    days: list[DayBars]
    token_ticks: list[Tick]
    cost_ticks: list[Tick]
    day_labels: list[DayLabel]
    cost_points: str  # the polyline's points attribute
    description: str

    @property
    def plot_height(self) -> int:
        return self.plot_bottom - self.plot_top

    @property
    def center_x(self) -> float:
        return (self.plot_left + self.plot_right) / 2

    @property
    def axis_title_y(self) -> int:
        return self.plot_top - 16

    @property
    def legend_y(self) -> int:
        return self.height - 8


def build_chart(rows: Sequence[DayRow]) -> Chart:
    token_step = nice_step(Decimal(max((r.figures.tokens for r in rows), default=0)) / TICKS)
    token_step = max(token_step.to_integral_value(rounding=ROUND_CEILING), Decimal(1))
    cost_step = nice_step(max((r.figures.cost for r in rows), default=Decimal(0)) / TICKS)
    plot_height = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / max(len(rows), 1)
    days = [
        _day(i, row, slot, token_step * TICKS, cost_step * TICKS, plot_height)
        for i, row in enumerate(rows)
    ]
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        plot_left=LEFT,
        plot_right=WIDTH - RIGHT,
        plot_top=TOP,
        plot_bottom=HEIGHT - BOTTOM,
        days=days,
        token_ticks=_ticks(token_step, plot_height, compact_number),
        cost_ticks=_ticks(cost_step, plot_height, format_cost),
        day_labels=_day_labels(rows, slot),
        cost_points=" ".join(f"{d.cost_x},{d.cost_y}" for d in days),
        description=_description(rows),
    )


def _day(
    index: int, row: DayRow, slot: float, token_max: Decimal, cost_max: Decimal, height: int
) -> DayBars:
    figures = row.figures
    bottom = HEIGHT - BOTTOM
    input_height = _scale(Decimal(figures.input_tokens), token_max, height)
    output_height = _scale(Decimal(figures.output_tokens), token_max, height)
    bar_width = max(slot * BAR_SHARE, 1.0)
    slot_x = LEFT + index * slot
    return DayBars(
        slot_x=_r(slot_x),
        slot_width=_r(slot),
        bar_x=_r(slot_x + (slot - bar_width) / 2),
        bar_width=_r(bar_width),
        input_y=_r(bottom - input_height),
        input_height=_r(input_height),
        output_y=_r(bottom - input_height - output_height),
        output_height=_r(output_height),
        cost_x=_r(slot_x + slot / 2),
        cost_y=_r(bottom - _scale(figures.cost, cost_max, height)),
        title=(
            f"{row.day.isoformat()}: {figures.input_tokens:,} input and "
            f"{figures.output_tokens:,} output tokens, cost {format_cost(figures.cost)}, "
            f"{figures.calls:,} calls"
        ),
    )


def _scale(value: Decimal, maximum: Decimal, height: int) -> float:
    return float(value / maximum) * height if maximum else 0.0


def _r(value: float) -> float:
    return round(value, 1)


def _ticks(step: Decimal, height: int, label: Callable[[Decimal], str]) -> list[Tick]:
    bottom = HEIGHT - BOTTOM
    return [Tick(_r(bottom - height * n / TICKS), label(step * n)) for n in range(TICKS + 1)]


def _day_labels(rows: Sequence[DayRow], slot: float) -> list[DayLabel]:
    every = -(-len(rows) // MAX_DAY_LABELS)  # ceiling division
    return [
        DayLabel(_r(LEFT + (i + 0.5) * slot), f"{row.day:%b} {row.day.day}")
        for i, row in enumerate(rows)
        if i % every == 0
    ]


def _description(rows: Sequence[DayRow]) -> str:
    if not rows:
        return "No days to show."
    tokens = sum(r.figures.tokens for r in rows)
    cost = sum((r.figures.cost for r in rows), Decimal(0))
    used = sum(1 for r in rows if r.figures.calls)
    return (
        f"{len(rows)} days from {rows[0].day.isoformat()} to {rows[-1].day.isoformat()}, "
        f"{used} with usage: {tokens:,} tokens in all, cost {format_cost(cost)}."
    )


def nice_step(raw: Decimal) -> Decimal:
    """The smallest of 1, 2, 2.5 or 5 times a power of ten that is at least `raw`."""
    if raw <= 0:
        return Decimal("0.01")
    power = Decimal(10) ** raw.adjusted()
    for factor in (1, 2, Decimal("2.5"), 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power  # not reached: raw < 10 * power by definition of adjusted()


def compact_number(value: Decimal) -> str:
    """1500 -> "1.5k", 2000000 -> "2M"; axis labels stay short."""
    number = int(value)
    for size, suffix in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")):
        if number >= size:
            return f"{number / size:.3g}{suffix}"
    return str(number)
