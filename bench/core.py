"""Results and their table: each line is a figure, its target and PASS / MISS (or INFO / SKIP)."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Line:
    bench: str
    name: str
    value: str
    target: str = ""
    status: str = "INFO"  # PASS, MISS, INFO, SKIP

    def cells(self) -> list[str]:
        return [self.bench, self.name, self.value, self.target, self.status]


@dataclass
class Report:
    lines: list[Line] = field(default_factory=list)

    def add(self, line: Line) -> Line:
        self.lines.append(line)
        marker = {"PASS": "ok  ", "MISS": "MISS", "SKIP": "skip"}.get(line.status, "    ")
        target = f"  (target {line.target})" if line.target else ""
        print(f"  {marker} {line.name}: {line.value}{target}", file=sys.stderr, flush=True)
        return line

    def check(self, bench: str, name: str, value: float, limit: float, unit: str, fmt: str = ".1f",
              below: bool = True, extra: str = "") -> Line:  # fmt: skip
        """A figure with an upper (or lower) limit."""
        ok = value <= limit if below else value >= limit
        shown = f"{value:{fmt}} {unit}".strip() + (f" {extra}" if extra else "")
        target = f"{'≤' if below else '≥'} {limit:g} {unit}".strip()
        return self.add(Line(bench, name, shown, target, "PASS" if ok else "MISS"))

    def info(self, bench: str, name: str, value: str) -> Line:
        return self.add(Line(bench, name, value))

    def skip(self, bench: str, why: str) -> Line:
        return self.add(Line(bench, "skipped", why, "", "SKIP"))

    def table(self) -> str:
        rows = [["Benchmark", "Figure", "Measured", "Target", "Result"]]
        rows += [line.cells() for line in self.lines]
        widths = [max(len(row[i]) for row in rows) for i in range(5)]
        out = []
        for n, row in enumerate(rows):
            out.append(
                "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
            )
            if n == 0:
                out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        return "\n".join(out)

    def counts(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for line in self.lines:
            found[line.status] = found.get(line.status, 0) + 1
        return found


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summary(values: Sequence[float], unit: str = "ms") -> str:
    if not values:
        return "no samples"
    p50, p99 = percentile(values, 50), percentile(values, 99)
    return f"p50 {p50:.1f} / p99 {p99:.1f} / max {max(values):.1f} {unit} (n={len(values)})"
