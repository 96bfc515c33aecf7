"""Scale-out cost: two daphne workers on PostgreSQL + Redis; a tab on worker B watches an answer
that runs on worker A (frames cross Redis). Relay overhead and delivery lag as seen on B, next
to the same figures on A. Skipped, with a line saying so, when PostgreSQL or Redis is not up.

A fresh database per run (dropped after) and an empty Redis database number (flushed after).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import time
import uuid
from collections.abc import AsyncIterator

from bench.context import Context, Site, setup_site
from bench.core import percentile, summary
from bench.relay import report_relay
from bench.server import manage, start_daphne
from bench.streams import Answer, all_streaming, lags, settle, spec

NAME = "scaleout"
TIMEOUT = 240
PG = "postgres://postgres@127.0.0.1:5432"
REDIS = "redis://127.0.0.1:6379"
RATE = 50
IDLE_TABS = 10


def answering(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


@contextlib.contextmanager
def fresh_postgres():
    import psycopg

    name = f"teamchat_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{PG}/postgres", autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG}/{name}"
    finally:
        with psycopg.connect(f"{PG}/postgres", autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def any_empty_redis_db() -> bool:
    import redis

    for number in range(1, 16):
        with redis.Redis.from_url(f"{REDIS}/{number}", socket_timeout=5) as client:
            if client.dbsize() == 0:
                return True
    return False


@contextlib.contextmanager
def empty_redis_db():
    import redis

    for number in random.sample(range(1, 16), 15):
        client = redis.Redis.from_url(f"{REDIS}/{number}", socket_timeout=5)
        if client.dbsize() == 0:
            try:
                yield f"{REDIS}/{number}"
            finally:
                client.flushdb()
                client.close()
            return
        client.close()
    raise RuntimeError("no empty Redis database number (1-15) to use")


@contextlib.asynccontextmanager
async def two_workers(ctx: Context, conversations: int) -> AsyncIterator[tuple[Site, Site]]:
    with fresh_postgres() as database_url, empty_redis_db() as redis_url:
        env = ctx.workspace.env(database_url, REDIS_URL=redis_url)
        await asyncio.to_thread(manage, env, "migrate", "--noinput", "-v0")
        a = await setup_site(ctx, "scale-a", conversations, database_url=database_url,
                             REDIS_URL=redis_url)  # fmt: skip
        b = None
        try:
            log = ctx.workspace.log("scale-b")
            server = await asyncio.to_thread(start_daphne, a.env, log, ctx.options.app)
            b = Site(server, a.cookie, a.model_id, a.conversation_ids, a.env)
            yield a, b
        finally:
            for site in (a, b):
                if site is not None:
                    await site.close_tabs()
                    site.server.stop()


async def sequential(a: Site, b: Site, count: int) -> tuple[list[Answer], list[Answer]]:
    (tab_a,) = await a.tabs_on(a.conversation_ids[:1])
    (tab_b,) = await b.tabs_on(a.conversation_ids[:1])
    on_a, on_b = [], []
    deadline = time.monotonic() + 60
    for i in range(count + 3):
        if time.monotonic() > deadline:
            break
        mine, watched = tab_a.ask(spec(5), a.model_id, watchers=[tab_b])
        await settle([mine, watched], timeout=10)
        if i >= 3:
            on_a.append(mine)
            on_b.append(watched)
    return on_a, on_b


async def concurrent(
    a: Site, b: Site, streams: int, seconds: float, grace: float
) -> tuple[list, list]:
    ids = a.conversation_ids[1 : 1 + streams]
    tabs_a, tabs_b = await a.tabs_on(ids), await b.tabs_on(ids)
    pairs = []
    for i, (ta, tb) in enumerate(zip(tabs_a, tabs_b, strict=True)):
        await asyncio.sleep(max(0.0, 1.0 / streams))  # a 1 s ramp
        tokens = int((seconds - i / streams) * RATE)
        pairs.append(ta.ask(spec(tokens, delay=1 / RATE), a.model_id, watchers=[tb]))
    await settle([x for pair in pairs for x in pair], timeout=seconds + grace)
    return [p[0] for p in pairs], [p[1] for p in pairs]


async def quiet(ctx: Context, b: Site, seconds: float) -> None:
    """Idle tabs must survive a quiet spell (a socket read timeout once killed them after
    5 s); run before any answer, so nothing at all flows meanwhile."""
    tabs = await b.tabs_on(b.conversation_ids[:IDLE_TABS])
    await asyncio.sleep(seconds)
    still = sum(1 for t in tabs if t.ws is not None and t.ws.open)
    ctx.report.check(
        NAME, f"idle websockets on worker B still open after {seconds:g} s without traffic",
        still, len(tabs), "", fmt="d", below=False, extra=f"of {len(tabs)}",
    )  # fmt: skip
    await b.close_tabs(tabs)


async def run(ctx: Context) -> None:
    report = ctx.report
    missing = [name for name, port in (("PostgreSQL", 5432), ("Redis", 6379)) if not answering(port)]  # fmt: skip
    if missing:
        report.skip(NAME, f"{' and '.join(missing)} not answering on 127.0.0.1")
        return
    if not await asyncio.to_thread(any_empty_redis_db):
        report.skip(NAME, "no empty Redis database number (1-15) to run in")
        return
    count = ctx.options.pick(30, 10)
    streams, seconds = ctx.options.pick((50, 6.0), (10, 2.0))
    async with two_workers(ctx, 1 + streams) as (a, b):
        await quiet(ctx, b, ctx.options.pick(12.0, 6.0))
        on_a, on_b = await sequential(a, b, count)
        report_relay(ctx, f"worker B watching A, {len(on_b)} sequential", on_b, 5, 15, NAME)
        found_a = [r[0] for x in on_a if (r := x.relay())]
        report.info(NAME, "same answers on worker A: overhead p50 / p99",
                    f"{percentile(found_a, 50):.1f} / {percentile(found_a, 99):.1f} ms")  # fmt: skip
        mine, watched = await concurrent(a, b, streams, seconds, ctx.options.pick(10, 5))
    for side, answers in (("A", mine), ("B", watched)):
        if unfinished := sum(1 for x in answers if not x.done.done()):
            report.info(NAME, f"answers not finished on {side}", f"{unfinished} of {len(answers)}")
    lag_b = lags(watched)
    report.check(NAME, f"worker B watching {streams} answers x {RATE} tokens/s: delivery lag p99",
                 percentile(lag_b, 99), 100, "ms")  # fmt: skip
    report.info(NAME, "delivery lag on B", summary(lag_b))
    report.info(NAME, "delivery lag on A (same answers)", summary(lags(mine)))
    since, until = all_streaming(watched)
    report.info(NAME, f"delivery lag on B while all {streams} stream (no ramp)",
                summary(lags(watched, since, until)))  # fmt: skip
