"""A long conversation page renders from stored HTML: its time, and queries that do not grow.

Time: N sequential GETs of /c/<id>/ over loopback from the worker (client-side time, an upper
bound of server time). Queries: counted in-process (Django test client under
CaptureQueriesContext, same database) for a short and a long conversation.
"""

from __future__ import annotations

import asyncio
import http.client
import time

from bench.context import Context, served
from bench.core import percentile
from bench.server import fixtures

NAME = "pages"
TIMEOUT = 180


def timed_gets(port: int, path: str, cookie: str, count: int) -> tuple[list[float], int]:
    """Milliseconds per GET on one keep-alive connection, after one warm-up request."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Cookie": f"sessionid={cookie}", "Accept": "text/html"}
    times, size = [], 0
    try:
        for n in range(count + 1):
            started = time.perf_counter()
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                raise RuntimeError(f"GET {path} answered {response.status}")
            if n:
                times.append((time.perf_counter() - started) * 1000)
            size = len(body)
    finally:
        conn.close()
    return times, size


async def run(ctx: Context) -> None:
    small, large = 50, 500
    count = ctx.options.pick(30, 10)
    report = ctx.report
    async with served(ctx, NAME) as site:
        request = {"op": "pages", "user": "reader", "sizes": [small, large], "repeat": 3}
        found = await asyncio.to_thread(fixtures, site.env, request)
        big = found["sizes"][str(large)]
        times, size = await asyncio.to_thread(
            timed_gets, site.port, f"/c/{big['id']}/", found["cookie"], count
        )
    report.check(
        NAME,
        f"GET /c/<id>/ of {large} messages ({big['content_bytes'] / 1024:.0f} KiB Markdown), p95",
        percentile(times, 95),
        100,
        "ms",
        extra=f"(p50 {percentile(times, 50):.0f} ms, n={len(times)}, page {size / 1024:.0f} KiB)",
    )
    queries = {n: found["sizes"][str(n)]["queries"] for n in (small, large)}
    same = queries[small] == queries[large]
    report.check(
        NAME,
        f"queries per page: {small} messages {queries[small]}, {large} messages {queries[large]}",
        queries[large],
        8,
        "",
        fmt="d",
        extra="(constant)" if same else "(grows with length)",
    )
    if not same:
        report.info(NAME, "queries are not constant", f"{queries[small]} vs {queries[large]}")
    inproc = [t * 1000 for t in big["inprocess_s"]]
    report.info(NAME, "in-process render (Django test client), median", f"{percentile(inproc, 50):.0f} ms")  # fmt: skip
