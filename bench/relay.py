"""Relay overhead: time to first token seen by the client minus the upstream's own TTFB.

overhead = (client sees token 0 - client sent the frame) - (upstream sent token 0 - request
arrived upstream), split into `before` (frame sent -> request at the upstream: saving the
submission, loading the job, opening the call) and `after` (token 0 leaves the upstream ->
it reaches the client: parsing, coalescing, the channel layer, rendering the frame).
"""

from __future__ import annotations

import asyncio
import time

from bench.context import Context, Site, at_rate, profiled, served
from bench.core import percentile
from bench.streams import Answer, Tab, settle, spec

NAME = "relay"
TIMEOUT = 150


async def sequential(site: Site, tab: Tab, count: int, warmup: int = 3) -> list[Answer]:
    answers = []
    deadline = time.monotonic() + 60
    for i in range(warmup + count):
        if time.monotonic() > deadline:
            break
        answer = tab.ask(spec(5), site.model_id)[0]
        await asyncio.wait({answer.done}, timeout=10)
        if i >= warmup:
            answers.append(answer)
    return answers


async def at_rate_streams(ctx: Context, site: Site, tabs: list[Tab], rate: float) -> list[Answer]:
    """One new stream per tab at `rate` per second; each lasts about a second."""
    answers: list[Answer] = []
    async with profiled(ctx, site.server, "relay", len(tabs) / rate):
        await at_rate(
            len(tabs),
            rate,
            lambda i: answers.extend(tabs[i].ask(spec(20, delay=0.05), site.model_id)[:1]),
        )
    await settle(answers, timeout=15)
    return answers


def report_relay(
    ctx: Context, name: str, answers: list[Answer], p50: float, p99: float, bench: str = NAME
) -> None:
    found = [r for a in answers if (r := a.relay()) is not None]
    report = ctx.report
    if len(found) < len(answers) or not found:
        report.info(bench, f"{name}: answers without a first token", f"{len(answers) - len(found)}")
    if not found:
        return
    overhead = [r[0] for r in found]
    report.check(bench, f"{name}: overhead p50", percentile(overhead, 50), p50, "ms")
    report.check(bench, f"{name}: overhead p99", percentile(overhead, 99), p99, "ms")
    before, after = [r[1] for r in found], [r[2] for r in found]
    report.info(
        bench,
        f"{name}: split p50 / p99",
        f"before upstream {percentile(before, 50):.1f} / {percentile(before, 99):.1f} ms, "
        f"after {percentile(after, 50):.1f} / {percentile(after, 99):.1f} ms (n={len(found)})",
    )


def report_growth(ctx: Context, answers: list[Answer]) -> None:
    """The answers share one conversation, which grows by two messages per answer: does the
    time before the upstream call grow with it?"""
    before = [r[1] for a in answers if (r := a.relay()) is not None]
    if len(before) < 20:
        return
    first, last = before[:10], before[-10:]
    ctx.report.info(
        NAME,
        "before upstream: first 10 vs last 10 answers (p50)",
        f"{percentile(first, 50):.1f} ms at ≤ 26 messages vs {percentile(last, 50):.1f} ms "
        f"at ≥ {2 * (len(before) - 10) + 6} messages",
    )


async def run(ctx: Context) -> None:
    count = ctx.options.pick(50, 20)
    rate, seconds = 20, ctx.options.pick(10, 3)
    async with served(ctx, NAME, conversations=1 + rate * seconds) as site:
        (tab,) = await site.tabs_on(site.conversation_ids[:1])
        answers = await sequential(site, tab, count)
        report_relay(ctx, f"1 stream, {len(answers)} sequential", answers, 5, 15)
        report_growth(ctx, answers)
        tabs = await site.tabs_on(site.conversation_ids[1:])
        answers = await at_rate_streams(ctx, site, tabs, rate)
        report_relay(ctx, f"{rate} new streams/s for {seconds} s", answers, 10, 40)
