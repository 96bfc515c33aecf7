"""Real daphne servers in subprocesses, on their own database, for browser tests."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_POSTGRES = "postgres://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379"


@dataclass
class LiveServer:
    url: str
    admin_password: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    cleanup: list[Callable[[], Any]] = field(default_factory=list)

    def manage(self, *args: str) -> str:
        return _manage(self.env, *args).stdout

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=180,
    )


def create_postgres_database(base: str) -> tuple[str, Callable[[], None]]:
    """A fresh database on the server of `base`, and a function that drops it."""
    import psycopg

    name = f"teamchat_e2e_{uuid.uuid4().hex[:10]}"
    admin_url = base.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return base.rsplit("/", 1)[0] + f"/{name}", drop


def base_env(data_dir: Path, database_url: str, token_delay: float) -> dict[str, str]:
    env = {
        **os.environ,
        "DATA_DIR": str(data_dir),
        "DATABASE_URL": database_url,
        "DEMO_TOKEN_DELAY": str(token_delay),
        "DEBUG": "0",
        "RATE_LIMIT_PER_MINUTE": "0",  # one admin sends many messages in a few seconds
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return env


def prepare(env: dict[str, str], demo_port: int) -> str:
    """Migrate and bootstrap; returns the admin password printed once."""
    _manage(env, "migrate", "--noinput", "-v0")
    output = _manage(env, "bootstrap", "--port", str(demo_port)).stdout
    return output.split("password:")[1].split()[0]


def serve(env: dict[str, str], port: int, log_path: Path, password: str) -> LiveServer:
    env = {**env, "PORT": str(port)}
    log = open(log_path, "wb")  # noqa: SIM115 - the server owns it until it exits
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "chatsite.asgi:application",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = LiveServer(f"http://127.0.0.1:{port}", password, env, process)
    _wait_until_up(server)
    return server


def start(data_dir: Path, token_delay: float = 0.04) -> LiveServer:
    """One server on SQLite, or on a fresh PostgreSQL database when DATABASE_URL is one."""
    cleanup: list[Callable[[], Any]] = []
    database_url = f"sqlite:///{data_dir / 'db.sqlite3'}"
    if os.environ.get("DATABASE_URL", "").startswith("postgres"):
        database_url, drop = create_postgres_database(os.environ["DATABASE_URL"])
        cleanup.append(drop)
    env = base_env(data_dir, database_url, token_delay)
    port = free_port()
    server = serve(env, port, data_dir / "daphne.log", prepare(env, port))
    server.cleanup += cleanup
    return server


def start_pair(data_dir: Path, token_delay: float, **extra: str) -> tuple[LiveServer, LiveServer]:
    """Two workers of one site on PostgreSQL + Redis; the demo upstream URL points at B."""
    database_url, drop = create_postgres_database(
        os.environ.get("DATABASE_URL") or DEFAULT_POSTGRES
    )
    redis = (os.environ.get("REDIS_URL") or DEFAULT_REDIS).rsplit("/", 1)[0]
    if redis.endswith("redis:/"):  # a URL without a database number
        redis = DEFAULT_REDIS
    env = base_env(data_dir, database_url, token_delay)
    redis_url = f"{redis}/{random.randint(1, 15)}"
    env |= {"REDIS_URL": redis_url, **extra}
    port_a, port_b = free_port(), free_port()
    password = prepare(env, port_b)
    a = serve(env, port_a, data_dir / "worker-a.log", password)
    b = serve(env, port_b, data_dir / "worker-b.log", password)
    b.cleanup += [drop, lambda: _flush_redis(redis_url)]
    return a, b


def _flush_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()


def services_answer() -> bool:
    """PostgreSQL and Redis listening on their usual local ports."""
    for port in (5432, 6379):
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) != 0:
                return False
    return True


def _wait_until_up(server: LiveServer, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError("daphne exited during start-up")
        try:
            with urllib.request.urlopen(server.url + "/healthz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("daphne did not answer within 30 s")
