"""Concurrency and memory on one worker: many idle tabs, then many answers streaming at once.

1. After a warm-up, open N idle websockets (each on its own conversation): RSS delta / N is
   the memory of an idle socket.
2. On the first S of those tabs, start S answers over a ramp, each streaming 50 tokens/s, all
   ending together. Delivery lag = client receive time - upstream send time of each token,
   taken over the window where all S stream at once. (peak RSS - RSS with the idle tabs) / S
   is the memory of a streaming answer.
"""

from __future__ import annotations

import asyncio
import time

from bench.context import Context, CpuMeter, Site, profiled, sample_rss, served
from bench.core import percentile, summary
from bench.streams import Answer, Tab, all_streaming, lags, settle, spec

NAME = "concurrency"
TIMEOUT = 300
RATE = 50  # tokens per second per answer
GRACE = (15.0, 5.0)  # seconds after the last token was due before giving up (full, quick)


async def warm_up(site: Site) -> None:
    tabs = await site.tabs_on(site.conversation_ids[-5:])
    answers = [t.ask(spec(40, delay=0.01), site.model_id)[0] for t in tabs]
    await settle(answers, timeout=30)
    await site.close_tabs(tabs)
    await asyncio.sleep(1)


async def idle_sockets(ctx: Context, site: Site, count: int) -> list[Tab]:
    base = site.server.rss_kib()
    started = time.monotonic()
    tabs = await site.tabs_on(site.conversation_ids[:count])
    opened = time.monotonic() - started
    await asyncio.sleep(2)
    grown = site.server.rss_kib() - base
    report = ctx.report
    report.check(
        NAME, f"idle websockets open on one process (opened in {opened:.0f} s)", len(tabs), count,
        "", fmt="d", below=False,
    )  # fmt: skip
    report.check(NAME, "RSS per idle websocket", grown / count, 50, "KiB",
                 extra=f"(+{grown / 1024:.0f} MiB for {count})")  # fmt: skip
    return tabs


async def streaming(ctx: Context, site: Site, tabs: list[Tab], ramp: float, steady: float) -> None:
    base = site.server.rss_kib()
    rss: list[int] = []
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_rss(site.server, 0.25, rss, stop))
    answers: list[Answer] = []
    meter = CpuMeter(ctx, site)
    first = time.monotonic() + 0.5
    end = first + ramp + steady
    async with profiled(ctx, site.server, "concurrency", ramp + steady):
        for i, tab in enumerate(tabs):
            await asyncio.sleep(max(0.0, first + ramp * i / len(tabs) - time.monotonic()))
            tokens = int((end - time.monotonic()) * RATE)
            answers.append(tab.ask(spec(tokens, delay=1 / RATE), site.model_id)[0])
        grace = ctx.options.pick(*GRACE)
        _, failed = await settle(answers, timeout=ramp + steady + grace)
    stop.set()
    await sampler
    worker_cpu = meter.seconds("worker")
    since, until = all_streaming(answers)
    together = since > 0
    window = lags(answers, since, until)
    report = ctx.report
    count = len(tabs)
    delivered, expected = sum(a.tokens for a in answers), sum(a.expected for a in answers)
    if failed:
        report.info(NAME, "answers not finished",
                    f"{failed} of {count}, {grace:g} s after their last token was due")  # fmt: skip
    report.check(NAME, f"{count} answers x {RATE} tokens/s: delivery lag p99", percentile(window, 99), 100, "ms",
                 extra="" if together else "(never all streaming at once: whole run)")  # fmt: skip
    if together:
        report.info(NAME, f"{count} answers: delivery lag while all stream", summary(window))
    report.info(NAME, f"{count} answers: delivery lag, whole run incl. ramp", summary(lags(answers)))  # fmt: skip
    frames = sum(a.frames for a in answers)
    report.info(NAME, f"{count} answers: tokens delivered / frames / worker CPU per token",
                f"{delivered:,} of {expected:,} / {frames:,} ({delivered / max(frames, 1):.1f} tokens each)"
                f" / {worker_cpu / max(delivered, 1) * 1e6:.0f} µs")  # fmt: skip
    report.info(NAME, f"{count} answers: CPU used", meter.read())
    peak = max(rss, default=base) - base
    if together and failed <= count // 10:
        report.check(NAME, "RSS per streaming answer", peak / count, 200, "KiB",
                     extra=f"(peak +{peak / 1024:.0f} MiB for {count})")  # fmt: skip
    else:
        report.info(NAME, "RSS per streaming answer",
                    f"not measured: the answers did not stream together (peak +{peak / 1024:.0f} MiB)")  # fmt: skip


async def run(ctx: Context) -> None:
    idle, streams = ctx.options.pick((2000, 250), (200, 50))
    ramp, steady = ctx.options.pick((5.0, 10.0), (1.0, 3.0))
    async with served(ctx, NAME, conversations=idle + 5) as site:
        await warm_up(site)
        tabs = await idle_sockets(ctx, site, idle)
        await streaming(ctx, site, tabs[:streams], ramp, steady)
        still_open = sum(1 for t in tabs if t.ws is not None and t.ws.open)
        if still_open < len(tabs):
            ctx.report.info(NAME, "idle websockets still open at the end", f"{still_open} of {len(tabs)}")  # fmt: skip
