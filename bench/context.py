"""What every benchmark gets: options, the workspace, the fake upstream, and a served site."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.core import Report
from bench.server import (
    Daphne,
    FakeUpstreamProcess,
    Workspace,
    fixtures,
    start_daphne,
)
from bench.streams import Tab, open_tabs

HOST = "127.0.0.1"


@dataclass
class Options:
    quick: bool = False
    soak_minutes: float | None = None
    profile: Path | None = None  # py-spy output folder, when asked for
    app: str = "chatsite.asgi:application"  # what daphne serves (try a change without editing)

    def pick(self, full: Any, quick: Any) -> Any:
        return quick if self.quick else full


@dataclass
class Context:
    options: Options
    workspace: Workspace
    upstream: FakeUpstreamProcess
    report: Report


@dataclass
class Site:
    """A daphne worker on its own database, with a user, a model and empty conversations."""

    server: Daphne
    cookie: str
    model_id: int
    conversation_ids: list[int]
    env: dict[str, str]
    tabs: list[Tab] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.server.port

    async def tabs_on(self, ids: Sequence[int | None], parallel: int = 32) -> list[Tab]:
        paths = [f"/ws/conversations/{i}/" if i else "/ws/conversations/" for i in ids]
        opened = await open_tabs(HOST, self.port, paths, self.cookie, parallel)
        self.tabs += opened
        return opened

    async def close_tabs(self, tabs: Sequence[Tab] | None = None) -> None:
        closing = list(self.tabs if tabs is None else tabs)
        await asyncio.gather(*(t.close() for t in closing), return_exceptions=True)
        self.tabs = [t for t in self.tabs if t not in closing]


async def setup_site(
    ctx: Context,
    name: str,
    conversations: int = 0,
    app: str | None = None,
    database_url: str | None = None,
    **env: str,
) -> Site:
    if database_url is None:
        database_url = await asyncio.to_thread(ctx.workspace.sqlite_url, name)
    site_env = ctx.workspace.env(database_url, **env)
    request = {
        "op": "setup",
        "user": name.replace("-", "_"),
        "upstream": ctx.upstream.url,
        "conversations": conversations,
    }
    # Fixtures and the worker's start-up (each a Python process importing Django) overlap.
    found, server = await asyncio.gather(
        asyncio.to_thread(fixtures, site_env, request),
        asyncio.to_thread(start_daphne, site_env, ctx.workspace.log(name), app or ctx.options.app),
    )
    return Site(server, found["cookie"], found["model_id"], found["conversation_ids"], site_env)


@contextlib.asynccontextmanager
async def served(ctx: Context, name: str, conversations: int = 0, **kw: Any) -> AsyncIterator[Site]:
    site = await setup_site(ctx, name, conversations, **kw)
    try:
        yield site
    finally:
        await site.close_tabs()
        site.server.stop()


async def sample_rss(server: Daphne, every: float, into: list[int], stop: asyncio.Event) -> None:
    """Record the worker's RSS (KiB) every `every` seconds until `stop` is set."""
    while not stop.is_set():
        into.append(server.rss_kib())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)


@contextlib.asynccontextmanager
async def profiled(ctx: Context, server: Daphne, name: str, seconds: float) -> AsyncIterator[None]:
    """py-spy records the worker for `seconds` from the start of the block, with --profile."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if ctx.options.profile is None or not Path(spy).exists():
        yield None
        return
    ctx.options.profile.mkdir(parents=True, exist_ok=True)
    out = ctx.options.profile / f"{name}.txt"
    args = [spy, "record", "--pid", str(server.pid), "--duration", str(max(1, int(seconds))),
            "--format", "raw", "--rate", "100", "--output", str(out)]  # fmt: skip
    spy_process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield None
    finally:
        try:
            await asyncio.wait_for(asyncio.to_thread(spy_process.wait), seconds + 20)
        except TimeoutError:
            spy_process.kill()
        print(f"    profile: {out}", file=sys.stderr)


class CpuMeter:
    """CPU shares of the worker, the clients (this process) and the fake upstream since
    creation, with the load average: figures from a shared machine need that context."""

    def __init__(self, ctx: Context, site: Site) -> None:
        self.procs = {"worker": site.server, "fake upstream": ctx.upstream}
        self.start = {k: p.cpu_seconds() for k, p in self.procs.items()}
        self.clients = time.process_time()
        self.wall = time.monotonic()

    def seconds(self, name: str) -> float:
        return self.procs[name].cpu_seconds() - self.start[name]

    def read(self) -> str:
        wall = time.monotonic() - self.wall
        shares = {k: (p.cpu_seconds() - self.start[k]) / wall for k, p in self.procs.items()}
        shares["clients"] = (time.process_time() - self.clients) / wall
        load = os.getloadavg()[0]
        parts = ", ".join(f"{k} {v * 100:.0f}%" for k, v in shares.items())
        return f"{parts} of a core over {wall:.0f} s; load average {load:.1f}"


async def at_rate(count: int, rate: float, action: Callable[[int], None]) -> None:
    """Call `action(i)` for i < count at `rate` per second, on a fixed schedule."""
    start = time.monotonic()
    for i in range(count):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        action(i)
