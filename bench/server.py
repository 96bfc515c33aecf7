"""Processes the benchmarks drive: a temp workspace, daphne workers, the fake upstream, fixtures."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def base_env(data_dir: Path, database_url: str, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DATA_DIR": str(data_dir),
        "DATABASE_URL": database_url,
        "DEBUG": "0",
        "DEMO_UPSTREAM": "0",
        "AUTO_TITLES": "0",
        "RATE_LIMIT_PER_MINUTE": "0",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    for name in ("DJANGO_SETTINGS_MODULE", "REDIS_URL"):
        env.pop(name, None)
    env.update(extra)
    return env


class Workspace:
    """One temp folder per run: DATA_DIR, a migrated template SQLite file, logs."""

    def __init__(self, keep: bool = False) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="teamchat-bench-"))
        self.data_dir = self.root / "data"
        self.data_dir.mkdir()
        self.keep = keep
        self.template = self.root / "template.sqlite3"
        self._migrated = False
        self._copies = 0

    def sqlite_url(self, name: str) -> str:
        """A fresh copy of the migrated database for one benchmark."""
        if not self._migrated:
            url = f"sqlite:///{self.template}"
            manage(base_env(self.data_dir, url), "migrate", "--noinput", "-v0")
            with sqlite3.connect(self.template) as db:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._migrated = True
        self._copies += 1
        target = self.root / f"{name}-{self._copies}.sqlite3"
        shutil.copyfile(self.template, target)
        return f"sqlite:///{target}"

    def env(self, database_url: str, **extra: str) -> dict[str, str]:
        return base_env(self.data_dir, database_url, **extra)

    def log(self, name: str) -> Path:
        return self.root / f"{name}-{self._copies}.log"

    def cleanup(self) -> None:
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)


def manage(env: dict[str, str], *args: str, timeout: float = 180) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stderr[-2000:]}")
    return result.stdout


def fixtures(env: dict[str, str], request: dict[str, Any], timeout: float = 180) -> Any:
    """Run `bench.fixtures` against the benchmark's database; returns its JSON answer."""
    result = subprocess.run(
        [sys.executable, "-m", "bench.fixtures", json.dumps(request)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode:
        raise RuntimeError(f"bench.fixtures failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


@dataclass
class Proc:
    """A child process whose CPU time and memory we read from /proc."""

    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime, all threads

    def rss_kib(self) -> int:
        fields = Path(f"/proc/{self.pid}/statm").read_text().split()
        return int(fields[1]) * PAGE_KIB

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


@dataclass
class Daphne(Proc):
    port: int = 0
    log: Path = field(default_factory=Path)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, timeout: float = 10) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=timeout) as response:
            return bytes(response.read())


def start_daphne(
    env: dict[str, str], log: Path, app: str = "chatsite.asgi:application", tries: int = 2
) -> Daphne:
    """A worker on a free port, once /healthz answers; a start-up failure is tried again once
    (another process can take the port between choosing it and binding it)."""
    for attempt in range(tries):
        port = free_port()
        with open(log, "ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), app],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        server = Daphne(process, port, log)
        if _wait_until_up(server):
            return server
        server.stop()
        if attempt + 1 == tries:
            tail = log.read_text(errors="replace")[-1500:]
            raise RuntimeError(f"daphne did not start; {log} ends with:\n{tail}")
    raise AssertionError("unreachable")


def _wait_until_up(server: Daphne, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.process.poll() is None:
        try:
            if server.get("/healthz", timeout=1) == b"ok":
                return True
        except OSError:
            time.sleep(0.1)
    return False


@dataclass
class FakeUpstreamProcess(Proc):
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stats(self) -> dict[str, int]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats", timeout=5) as r:
            return dict(json.loads(r.read()))


def start_upstream() -> FakeUpstreamProcess:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.upstream"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    line = process.stdout.readline().decode()
    if not line.startswith("PORT "):
        process.kill()
        raise RuntimeError(f"fake upstream did not start: {line!r}")
    return FakeUpstreamProcess(process, int(line.split()[1]))
