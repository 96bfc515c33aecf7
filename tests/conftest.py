"""Shared test helpers: named people, providers pointing at real local upstreams."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import SyncToAsync
from django.db import connections
from django.test import Client

from conversations.models import ChatModel, Conversation, Message, Provider, User
from conversations.pacer import pacer
from tests.redis_server import PrivateRedis
from tests.upstream import FakeUpstream

PASSWORD = "correct-horse-battery-9"
CANARY_KEY = "sk-canary-3f9a1c0e7b2d4e68a5"


def make_user(username: str, **extra: Any) -> User:
    return User.objects.create_user(username=username, password=PASSWORD, **extra)


def make_model(
    base_url: str,
    *,
    protocol: str = "openai-chat",
    upstream_id: str = "gpt-test",
    display_name: str = "Test model",
    api_key: str = CANARY_KEY,
    **extra: object,
) -> ChatModel:
    provider = Provider(name=f"{protocol} {base_url}", protocol=protocol, base_url=base_url)
    provider.read_timeout = 5.0
    provider.max_retries = 0
    provider.set_api_key(api_key)
    provider.save()
    return ChatModel.objects.create(
        provider=provider,
        upstream_id=upstream_id,
        display_name=display_name,
        is_default=True,
        **extra,
    )


def make_conversation(owner: User, model: ChatModel | None = None, title: str = "") -> Conversation:
    return Conversation.objects.create(owner=owner, model=model, title=title)


def add_message(conversation: Conversation, role: str, content: str, **extra: object) -> Message:
    return Message.objects.create(conversation=conversation, role=role, content=content, **extra)


@pytest.fixture
def alice(db: None) -> User:
    return make_user("alice")


@pytest.fixture
def bob(db: None) -> User:
    return make_user("bob")


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


@pytest.fixture
def chat_model(db: None, upstream: FakeUpstream) -> ChatModel:
    return make_model(upstream.url)


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    """A redis-server of this test's own (see tests/redis_server.py)."""
    server = PrivateRedis()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fast_streams(settings: object) -> None:
    """Short intervals so checkpoints and coalescing happen within a test's time."""
    settings.STREAM_FRAME_INTERVAL = 0.02  # type: ignore[attr-defined]
    settings.STREAM_CHECKPOINT_INTERVAL = 0.05  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _unstretched_frames() -> Iterator[None]:
    """The frame pacer is one per process: a test that loaded the event loop must not leave
    the next one with stretched frame intervals."""
    pacer.reset()
    yield
    pacer.reset()


@pytest.fixture(autouse=True)
def _test_settings(settings: Any) -> None:
    """Fast password hashing; no title requests (they would consume scripted upstream
    replies; the title tests turn them on)."""
    settings.AUTO_TITLES = False
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def isolated_cache(settings: Any) -> None:
    """A fresh cache namespace per test: throttling counters never leak between tests
    (or between runs, when the cache is a shared Redis)."""
    prefix = f"test-{uuid.uuid4().hex}"
    default = {**settings.CACHES["default"], "KEY_PREFIX": prefix}
    if "locmem" in default["BACKEND"]:
        default["LOCATION"] = prefix  # a separate in-memory store
    settings.CACHES = {"default": default}


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture(autouse=True)
def media_root(settings: Any, tmp_path: Any) -> Any:
    """Uploads go to a temporary folder, never into the repository."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture(scope="session", autouse=True)
def _close_the_database_thread_connection(django_db_setup, django_db_blocker):
    """Async code reaches the database through asgiref's one shared thread; its connection
    (a pooled one on PostgreSQL) stays checked out until closed there, and would keep the
    test database from being dropped."""
    yield
    with django_db_blocker.unblock():
        SyncToAsync.single_thread_executor.submit(connections.close_all).result(timeout=30)
