"""`python -m bench [--quick] [--only NAME] [--soak-minutes N]`: run, then print one table."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import importlib
import os
import platform
import resource
import subprocess
import sys
import time
import traceback
from pathlib import Path

from bench.context import Context, Options
from bench.core import Line, Report
from bench.server import ROOT, Workspace, start_upstream

BENCHMARKS = [
    "relay",
    "cpu",
    "render",
    "concurrency",
    "database",
    "pages",
    "browser",
    "scaleout",
    "soak",
]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes: about a minute")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help=f"run only these (repeat or comma-separate): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument(
        "--soak-minutes",
        type=float,
        default=None,
        help="length of the soak (default 10, or 0.2 with --quick)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="record profiles into this folder (py-spy for the worker, Chrome's for the page)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (logs, DBs)")
    parser.add_argument(
        "--app",
        default="chatsite.asgi:application",
        help="the ASGI application daphne serves (to measure a change before making it)",
    )
    args = parser.parse_args(argv)
    args.only = [n.strip() for item in args.only for n in item.split(",") if n.strip()]
    unknown = set(args.only) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    return args


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # daphne inherits it
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def revision() -> str:
    """The commit measured, marked when code outside bench/ has uncommitted changes."""

    def git(*args: str) -> str:
        found = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return found.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown commit"
    changed = git("status", "--porcelain").splitlines()
    dirty = [line for line in changed if "bench/" not in line and not line.endswith(".md")]
    return commit + (" + local changes" if dirty else "")


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}"


async def run_all(args: argparse.Namespace) -> Report:
    names = args.only or BENCHMARKS
    options = Options(args.quick, args.soak_minutes, args.profile, args.app)
    report = Report()
    workspace = Workspace(keep=args.keep)
    upstream = start_upstream()
    ctx = Context(options, workspace, upstream, report)
    try:
        for name in names:
            started, load = time.monotonic(), os.getloadavg()[0]
            print(f"[{name}]", file=sys.stderr, flush=True)
            module = importlib.import_module(f"bench.{name}")
            try:
                limit = module.timeout(options) if hasattr(module, "timeout") else module.TIMEOUT
                await asyncio.wait_for(module.run(ctx), timeout=limit)
            except Exception as exc:
                traceback.print_exc()
                report.add(Line(name, "failed to run", f"{type(exc).__name__}: {exc}", "", "MISS"))
            took = time.monotonic() - started
            report.info(name, "took; machine load average (1 min) before → after",
                        f"{took:.0f} s; {load:.1f} → {os.getloadavg()[0]:.1f}")  # fmt: skip
    finally:
        upstream.stop()
        if args.keep:
            print(f"kept {workspace.root}", file=sys.stderr)
        workspace.cleanup()
    return report


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    fds = raise_fd_limit()
    measured = revision()  # before the run: the tree may change while it runs
    started = time.monotonic()
    report = asyncio.run(run_all(args))
    elapsed = time.monotonic() - started
    today = datetime.date.today().isoformat()
    mode = "quick" if args.quick else "full"
    print(f"\nStreaming benchmarks, {today}, {mode} run in {elapsed:.0f} s on {machine()}")
    print(f"commit {measured}; served {args.app}; open files limit {fds}\n")
    print(report.table())
    counts = report.counts()
    print("\n" + ", ".join(f"{counts.get(k, 0)} {k}" for k in ("PASS", "MISS", "SKIP", "INFO")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
