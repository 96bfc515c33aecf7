"""Benchmark data, created through the ORM in a subprocess on the benchmark's own database.

`python -m bench.fixtures '<json>'` prints one JSON line. Requests:
- {"op": "setup", "user": NAME, "upstream": URL, "conversations": N}: a user, a session
  cookie, a provider + model on the fake upstream, N empty conversations;
- {"op": "pages", "user": NAME, "sizes": [50, 500], "repeat": N}: long stored conversations
  (Markdown with content_html) and the queries one GET of each takes, counted in-process.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")

import django

django.setup()

from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from bench.upstream import markdown_document  # noqa: E402
from conversations.models import ChatModel, Conversation, Message, Provider, User  # noqa: E402
from conversations.rendering import render_markdown  # noqa: E402


def session_cookie(user: User) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def setup(request: dict[str, Any]) -> dict[str, Any]:
    user = User.objects.create_user(username=request["user"], password=None)
    provider = Provider(
        name=f"bench {request['user']}", protocol="openai-chat", base_url=request["upstream"]
    )
    provider.read_timeout = 60.0
    provider.max_retries = 0
    provider.set_api_key("sk-bench-not-a-real-key")
    provider.save()
    model = ChatModel.objects.create(
        provider=provider, upstream_id="bench-model", display_name="Bench", is_default=True
    )
    conversations = Conversation.objects.bulk_create(
        Conversation(owner=user, model=model, title=f"bench {i}")
        for i in range(int(request.get("conversations", 0)))
    )
    return {
        "cookie": session_cookie(user),
        "user_id": user.pk,
        "model_id": model.pk,
        "conversation_ids": [c.pk for c in conversations],
    }


def long_conversation(user: User, size: int) -> Conversation:
    """`size` messages of about 1 KB of Markdown each, answers stored with content_html."""
    conversation = Conversation.objects.create(owner=user, title=f"{size} messages")
    text = markdown_document(1000 * 8)
    html_cache: dict[int, str] = {}
    parent = None
    with transaction.atomic():
        for i in range(size):
            start = (i * 997) % (len(text) - 1000)
            content = text[start : start + 1000]
            if i % 2 == 0:
                parent = Message.objects.create(
                    conversation=conversation, role="user", content=content, parent=parent
                )
            else:
                html = html_cache.get(start) or render_markdown(content)
                html_cache[start] = html
                parent = Message.objects.create(
                    conversation=conversation,
                    role="assistant",
                    content=content,
                    content_html=html,
                    model_name="Bench",
                    parent=parent,
                )
        conversation.current_leaf = parent
        conversation.save(update_fields=["current_leaf"])
    return conversation


def pages(request: dict[str, Any]) -> dict[str, Any]:
    user = User.objects.create_user(username=request["user"], password=None)
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    found: dict[str, Any] = {"cookie": client.cookies["sessionid"].value, "sizes": {}}
    for size in request["sizes"]:
        conversation = long_conversation(user, size)
        url = f"/c/{conversation.pk}/"
        assert client.get(url).status_code == 200  # warm caches
        times = []
        for _ in range(int(request.get("repeat", 5))):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                response = client.get(url)
                times.append(time.perf_counter() - started)
            assert response.status_code == 200
        bytes_ = sum(len(m.content) for m in conversation.messages.all())
        found["sizes"][str(size)] = {
            "id": conversation.pk,
            "queries": len(queries.captured_queries),
            "sql": [q["sql"][:160] for q in queries.captured_queries],
            "inprocess_s": times,
            "content_bytes": bytes_,
            "page_bytes": len(response.content),
        }
    return found


if __name__ == "__main__":
    request = json.loads(sys.argv[1])
    handler = {"setup": setup, "pages": pages}[request["op"]]
    print(json.dumps(handler(request)))
