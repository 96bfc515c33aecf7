"""CPU per relayed token at full load: many concurrent zero-delay streams of one-token chunks.

The worker's CPU time (utime + stime of all its threads, from /proc) over the run, divided by
the tokens that reached the clients. A first pass of one-token answers gives the fixed cost
of an answer (saving the submission, the call, the final save), so the marginal cost of a
token can be told apart from it.
"""

from __future__ import annotations

import time

from bench.context import Context, Site, profiled, served
from bench.streams import Tab, settle, spec

NAME = "cpu"
TIMEOUT = 240


async def burst(
    site: Site, tabs: list[Tab], tokens: int, delay: float = 0.0, document: str = "mixed"
) -> tuple[float, int, float, int]:
    """All tabs ask at once; returns (worker CPU s, tokens delivered, wall s, failures)."""
    cpu, wall = site.server.cpu_seconds(), time.monotonic()
    answers = [tab.ask(spec(tokens, delay, document=document), site.model_id)[0] for tab in tabs]
    _, failed = await settle(answers, timeout=150)
    delivered = sum(a.tokens for a in answers)
    return site.server.cpu_seconds() - cpu, delivered, time.monotonic() - wall, failed


async def run(ctx: Context) -> None:
    streams, tokens = ctx.options.pick((40, 1000), (20, 300))
    report = ctx.report
    async with served(ctx, NAME, conversations=streams) as site:
        tabs = await site.tabs_on(site.conversation_ids)
        await burst(site, tabs[:5], 20)  # warm-up: imports, caches, connections
        fixed_cpu, _, _, _ = await burst(site, tabs, 1)
        async with profiled(ctx, site.server, "cpu", 10):
            cpu, delivered, wall, failed = await burst(site, tabs, tokens)
    if failed or not delivered:
        report.info(NAME, "answers that failed or did not finish", str(failed))
    if not delivered:
        return
    per_answer_ms = fixed_cpu / streams * 1000
    per_token_us = cpu / delivered * 1e6
    marginal_us = max(0.0, cpu - fixed_cpu) / delivered * 1e6
    report.check(
        NAME,
        f"worker CPU per relayed token ({streams} streams x {tokens} tokens, 0 delay)",
        per_token_us,
        40,
        "µs",
        extra=f"({delivered:,} tokens, {cpu:.1f} s CPU, {delivered / wall:,.0f} tokens/s)",
    )
    report.info(
        NAME,
        "fixed CPU per answer / marginal per token",
        f"{per_answer_ms:.1f} ms / {marginal_us:.0f} µs",
    )
    await long_blocks(ctx, streams // 4)


async def long_blocks(ctx: Context, streams: int) -> None:
    """Answers that are one long table, then one long code block (20 KB), streamed at 500
    tokens/s: re-rendering an open block costs more the longer it is, so this is where the
    render work per token would grow with the answer."""
    tokens, delay = ctx.options.pick((5000, 0.002), (1500, 0.002))
    async with served(ctx, NAME, conversations=streams) as site:
        tabs = await site.tabs_on(site.conversation_ids)
        await burst(site, tabs[:2], 20)
        async with profiled(ctx, site.server, "cpu-long", tokens * delay):
            cpu, delivered, _, failed = await burst(site, tabs, tokens, delay, "long")
    figure = f"{cpu / max(delivered, 1) * 1e6:.0f} µs ({streams} answers x {tokens} tokens at {1 / delay:.0f}/s, {cpu:.1f} s CPU)"
    ctx.report.info(NAME, "worker CPU per token, one long table then one long code block",
                    figure + (f"; {failed} did not finish" if failed else ""))  # fmt: skip
