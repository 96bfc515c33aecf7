"""Database writes per answer, counted by the worker itself (bench.serve wraps every statement).

Fixed writes: short answers (done well inside one checkpoint interval) in an existing
conversation, so no checkpoint fires; writes / answers. Checkpoints: answers that stream for
D seconds; (writes / answers - fixed) per 2 s of streaming. When the checkpoint figure misses
at the configured interval, it is measured again with STREAM_CHECKPOINT_INTERVAL=2.0.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter

from bench.context import Context, Site, served
from bench.streams import settle, spec

NAME = "database"
TIMEOUT = 150
RATE = 50


def writes(site: Site) -> tuple[Counter[str], float]:
    """Statements so far: "INSERT table" ... and "SELECT" (all reads); the interval in use."""
    found = json.loads(site.server.get("/__bench__/writes"))
    counts = Counter(found["writes"])
    counts["SELECT"] = sum(found["reads"].values())
    return counts, float(found["checkpoint_interval"])


def split_reads(counts: Counter[str]) -> tuple[Counter[str], int]:
    reads = counts.pop("SELECT", 0)
    return counts, reads


async def fixed_writes(site: Site, count: int) -> tuple[float, Counter[str], float]:
    (tab,) = await site.tabs_on(site.conversation_ids[:1])
    for _ in range(2):  # warm-up, and the conversation is no longer new
        await settle(tab.ask(spec(5), site.model_id)[:1], timeout=10)
    before, _ = writes(site)
    for _ in range(count):
        await settle(tab.ask(spec(5), site.model_id)[:1], timeout=10)
    await asyncio.sleep(0.3)  # the ledger row is written after the last frame
    after, _ = writes(site)
    delta, reads = split_reads(after - before)
    return delta.total() / count, delta, reads / count


async def streaming_writes(site: Site, answers: int, seconds: float) -> float:
    tabs = await site.tabs_on(site.conversation_ids[1 : 1 + answers])
    before, _ = writes(site)
    asked = [t.ask(spec(int(seconds * RATE), delay=1 / RATE), site.model_id)[0] for t in tabs]
    await settle(asked, timeout=seconds + 30)
    await asyncio.sleep(0.3)
    after, _ = writes(site)
    return split_reads(after - before)[0].total() / answers


async def checkpoints(ctx: Context, fixed: float, answers: int, seconds: float, **env: str) -> None:
    async with served(ctx, f"{NAME}-long", answers + 1, app="bench.serve:application", **env) as site:  # fmt: skip
        per_answer = await streaming_writes(site, answers, seconds)
        _, interval = writes(site)
    per_2s = max(0.0, per_answer - fixed) / (seconds / 2)
    ctx.report.check(
        NAME, f"checkpoints per 2 s of streaming (STREAM_CHECKPOINT_INTERVAL={interval:g})",
        per_2s, 1, "", fmt=".2f",
        extra=f"({per_answer:.1f} writes per {seconds:g} s answer)",
    )  # fmt: skip
    if per_2s > 1 and interval < 2 and not env:
        await checkpoints(ctx, fixed, answers, seconds, STREAM_CHECKPOINT_INTERVAL="2.0")


async def run(ctx: Context) -> None:
    count = ctx.options.pick(20, 8)
    answers, seconds = ctx.options.pick((5, 6.0), (3, 3.0))
    async with served(ctx, NAME, 1, app="bench.serve:application") as site:
        fixed, kinds, reads = await fixed_writes(site, count)
    report = ctx.report
    report.check(NAME, "fixed writes per answer", fixed, 3, "", fmt=".1f")
    report.info(
        NAME,
        "fixed writes, by statement",
        ", ".join(f"{k} {v / count:g}" for k, v in sorted(kinds.items())),
    )
    report.info(NAME, "SELECT queries per answer (sending tab, same worker)", f"{reads:.1f}")
    await checkpoints(ctx, fixed, answers, seconds)
