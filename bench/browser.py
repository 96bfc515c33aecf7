"""The browser while an answer streams: Debian's Chromium through Playwright.

A logged-in page on a conversation sends a message; the fake upstream streams a Markdown
answer of SIZE bytes at 100 tokens/s (4 characters a token). Long tasks come from a
PerformanceObserver installed before the page's scripts; scripting and task time are the
deltas of CDP Performance.getMetrics (ScriptDuration, TaskDuration) from the send until the
answer is complete. The message is typed and sent with Enter as input events: Playwright's
fill and click would run its own script in the page, counted as the page's. A second answer
of the same size streams one long table, then one long code block (blocks that stay open,
and are redrawn, for hundreds of frames): its figures are information, for the open-tail
work that grows with a block's length.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from bench.context import Context, served
from bench.upstream import PIECE

NAME = "browser"
TIMEOUT = 240
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
RATE = 100
OBSERVE_LONG_TASKS = """
window.__longtasks = [];
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    window.__longtasks.push([entry.startTime, entry.duration]);
  }
}).observe({type: "longtask", buffered: true});
"""
FINAL = 'data-role="assistant" data-status="complete"'


async def metrics(cdp) -> dict[str, float]:
    found = await cdp.send("Performance.getMetrics")
    return {m["name"]: m["value"] for m in found["metrics"]}


async def stream_in_browser(
    url: str,
    cookie: str,
    conversation: int,
    size: int,
    profile: Path | None = None,
    document: str = "mixed",
) -> dict:
    """`profile`: a file for Chrome's own CPU profile of the page (open it in DevTools)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=ARGS
        )
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 860})
            await context.add_cookies([{"name": "sessionid", "value": cookie, "url": url}])
            await context.add_init_script(OBSERVE_LONG_TASKS)
            page = await context.new_page()
            frames: list[int] = []
            complete = asyncio.Event()

            def on_frame(payload: str | bytes) -> None:
                # Watched from Python: a selector wait would run Playwright's polling script
                # in the page and count as the page's scripting.
                frames.append(1)
                if FINAL in (payload if isinstance(payload, str) else payload.decode()):
                    complete.set()

            page.on("websocket", lambda ws: ws.on("framereceived", on_frame))
            await page.goto(f"{url}/c/{conversation}/")
            # Focused before the measure (the click runs Playwright's script in the page).
            await page.click("[data-testid=composer]")
            await page.wait_for_timeout(1000)  # the socket opens; load-time tasks are done
            cdp = await context.new_cdp_session(page)
            await cdp.send("Performance.enable")
            await page.evaluate("window.__longtasks = []")
            before = await metrics(cdp)
            if profile:
                await cdp.send("Profiler.enable")
                await cdp.send("Profiler.setSamplingInterval", {"interval": 200})
                await cdp.send("Profiler.start")
            frames.clear()
            tokens = size // PIECE
            started = time.monotonic()
            ask = f"bench:n={tokens},d={1 / RATE:g},t=0,k=br,m={document}"
            await page.keyboard.insert_text(ask)
            await page.keyboard.press("Enter")
            await asyncio.wait_for(complete.wait(), tokens / RATE + 60)
            await page.wait_for_timeout(300)  # the final swap's layout and paint
            finished_at = await page.evaluate("performance.now()") - 300
            wall = time.monotonic() - started
            after = await metrics(cdp)
            if profile:
                recorded = await cdp.send("Profiler.stop")
                profile.write_text(json.dumps(recorded["profile"]))
                print(f"    profile: {profile}", file=sys.stderr)
            long_tasks = await page.evaluate("window.__longtasks")
        finally:
            await browser.close()
    return {
        "script_ms": (after["ScriptDuration"] - before["ScriptDuration"]) * 1000,
        "task_ms": (after["TaskDuration"] - before["TaskDuration"]) * 1000,
        "layout_ms": (after["LayoutDuration"] - before["LayoutDuration"]) * 1000,
        "long_tasks": [duration for _, duration in long_tasks],
        # Long tasks around the end: the final frame swaps in the whole rendered answer.
        "at_end": [d for start, d in long_tasks if start > finished_at - 1000],
        "frames": len(frames),
        "wall": wall,
    }


async def run(ctx: Context) -> None:
    report = ctx.report
    if not Path(CHROMIUM).exists():
        report.skip(NAME, f"{CHROMIUM} is not installed (make browser)")
        return
    size = ctx.options.pick(20_000, 2_000)
    async with served(ctx, NAME, conversations=2) as site:
        profile = ctx.options.profile
        if profile:
            profile.mkdir(parents=True, exist_ok=True)
        found = await stream_in_browser(
            site.server.url,
            site.cookie,
            site.conversation_ids[0],
            size,
            profile / f"{NAME}.cpuprofile" if profile else None,
        )
        # Blocks that stay open for hundreds of frames: each frame redraws the open tail.
        long = await stream_in_browser(
            site.server.url,
            site.cookie,
            site.conversation_ids[1],
            size,
            profile / f"{NAME}-long.cpuprofile" if profile else None,
            document="long",
        )
    what = f"{size // 1000} KB answer at {RATE} tokens/s"
    longest = max(found["long_tasks"], default=0.0)
    report.check(
        NAME, f"{what}: longest main-thread task over 50 ms", longest, 50, "ms", fmt=".0f",
        extra=f"(long tasks: {len(found['long_tasks'])}, in the last second: {len(found['at_end'])})",
    )  # fmt: skip
    report.check(NAME, f"{what}: scripting in total", found["script_ms"], 300, "ms", fmt=".0f",
                 extra=f"({found['frames']} frames in {found['wall']:.0f} s)")  # fmt: skip
    report.info(
        NAME,
        f"{what}: all main-thread tasks / layout",
        f"{found['task_ms']:.0f} ms / {found['layout_ms']:.0f} ms",
    )
    report.info(
        NAME,
        f"{what}, one long table then one long code block: scripting; longest task",
        f"{long['script_ms']:.0f} ms ({long['frames']} frames); "
        f"{max(long['long_tasks'], default=0.0):.0f} ms",
    )
