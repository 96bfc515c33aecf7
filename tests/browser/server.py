"""A real daphne server in a subprocess, on its own database, for browser tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    admin_password: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    cleanup: list[object] = field(default_factory=list)

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        return result.stdout

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _database_url(data_dir: Path) -> tuple[str, str | None]:
    """SQLite in a temp folder, or a fresh PostgreSQL database when DATABASE_URL is one."""
    base = os.environ.get("DATABASE_URL", "")
    if not base.startswith("postgres"):
        return f"sqlite:///{data_dir / 'db.sqlite3'}", None
    import psycopg

    name = f"teamchat_e2e_{uuid.uuid4().hex[:10]}"
    admin_url = base.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return base.rsplit("/", 1)[0] + f"/{name}", name


def _drop_database(name: str) -> None:
    import psycopg

    admin_url = os.environ["DATABASE_URL"].rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start(data_dir: Path, token_delay: float = 0.04) -> LiveServer:
    port = free_port()
    database_url, pg_name = _database_url(data_dir)
    env = {
        **os.environ,
        "DATA_DIR": str(data_dir),
        "DATABASE_URL": database_url,
        "DEMO_TOKEN_DELAY": str(token_delay),
        "PORT": str(port),
        "DEBUG": "0",
        "RATE_LIMIT_PER_MINUTE": "0",  # one admin sends many messages in a few seconds
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    run = lambda *a: subprocess.run(  # noqa: E731
        [sys.executable, "manage.py", *a],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=180,
    )
    run("migrate", "--noinput", "-v0")
    output = run("bootstrap", "--port", str(port)).stdout
    password = output.split("password:")[1].split()[0]
    log = open(data_dir / "daphne.log", "wb")  # noqa: SIM115
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
    if pg_name:
        server.cleanup.append(lambda: _drop_database(pg_name))
    _wait_until_up(server)
    return server


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
