"""Soak: steady load for minutes; the worker's RSS must not keep growing.

WORKERS client loops, each: open a tab on a new conversation, ask 3 answers of 100 tokens at
50 tokens/s there, close the tab, again, until the time is up. RSS is sampled every 2 s; the
growth compares the mean of the samples just after the warm-up (a quarter of the run, at most
60 s) with the mean of the last samples.
"""

from __future__ import annotations

import asyncio
import time

from bench.context import Context, CpuMeter, Options, Site, sample_rss, served
from bench.core import summary
from bench.streams import Answer, Tab, lags, settle, spec

NAME = "soak"


def minutes(options: Options) -> float:
    # The target is for a 10-minute soak: a shorter one still holds the warm-up's growth
    # (RSS plateaus after about 2 minutes), so it is not the figure to judge.
    return float(options.soak_minutes or options.pick(10.0, 0.2))


def timeout(options: Options) -> float:
    return minutes(options) * 60 + 120


WORKERS = 20
RATE = 50


async def client_loop(site: Site, deadline: float, answers: list[Answer], failures: list[str]) -> None:  # fmt: skip
    while time.monotonic() < deadline:
        try:
            tab = await Tab.open("127.0.0.1", site.port, "/ws/conversations/", site.cookie)
        except Exception as exc:  # a refused socket is a finding, not a crash
            failures.append(f"connect: {exc}")
            await asyncio.sleep(1)
            continue
        try:
            for _ in range(3):
                if time.monotonic() >= deadline:
                    break
                answer = tab.ask(spec(100, delay=1 / RATE), site.model_id)[0]
                _, failed = await settle([answer], timeout=30)
                answers.append(answer)
                if failed:
                    failures.append(answer.error or "unfinished")
                    break
        finally:
            await tab.close()


async def run(ctx: Context) -> None:
    length = minutes(ctx.options)
    seconds = length * 60
    warm = min(60.0, seconds / 4)
    report = ctx.report
    async with served(ctx, NAME) as site:
        rss: list[int] = []
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample_rss(site.server, 2.0, rss, stop))
        answers: list[Answer] = []
        failures: list[str] = []
        meter = CpuMeter(ctx, site)
        deadline = time.monotonic() + seconds
        loops = [client_loop(site, deadline, answers, failures) for _ in range(WORKERS)]
        await asyncio.gather(*loops)
        cpu = meter.read()
        stop.set()
        await sampler
    at_warm = rss[int(warm / 2) : int(warm / 2) + 3]
    at_end = rss[-3:]
    before, after = sum(at_warm) / len(at_warm), sum(at_end) / len(at_end)
    growth = (after - before) / before * 100
    report.check(
        NAME,
        f"RSS growth over a {length:g} min soak after {warm:.0f} s warm-up",
        growth,
        5,
        "%",
        extra=f"({before / 1024:.0f} → {after / 1024:.0f} MiB, peak {max(rss) / 1024:.0f} MiB)",
    )  # fmt: skip
    report.info(NAME, f"answers in {length:g} min ({WORKERS} clients)",
                f"{len(answers)} ({len(failures)} failed)")  # fmt: skip
    report.info(NAME, "delivery lag", summary(lags(answers)))
    report.info(NAME, "CPU used", cpu)
    if failures:
        report.info(NAME, "first failure", failures[0][:120])
