"""Database connections stay open on the websocket thread but not after a page's request."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.test import Client

from tests.test_consumers import frames_until, open_socket, send_frame
from tests.upstream import Scripted, chat_completion_stream

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fast_streams")]


def test_a_page_closes_its_database_connection_when_its_request_ends(alice, monkeypatch):
    # Persistent by default on SQLite, for the websocket thread; PostgreSQL pools instead.
    assert connection.vendor != "sqlite" or connection.settings_dict["CONN_MAX_AGE"] > 0
    client = Client()
    client.force_login(alice)
    closes: list[bool] = []
    close = connection.close

    def recorded_close() -> None:
        closes.append(True)
        close()

    monkeypatch.setattr(connection, "close", recorded_close)
    response = client.get("/")
    assert response.status_code == 200 and b'data-testid="composer"' in response.content
    assert closes  # the test client itself never closes it
    if connection.vendor != "sqlite":  # closing the test's in-memory SQLite is a no-op
        assert connection.connection is None


async def test_a_submission_checks_for_a_stale_connection_before_its_queries(
    alice, chat_model, upstream
):
    # The consumer skips Channels' separate trip to close stale connections before an event:
    # the submission's own trip must check first (a closed PostgreSQL connection would fail).
    upstream.script(Scripted(chunks=chat_completion_stream(["Hi"])))
    socket, connected, _ = await open_socket(alice)
    assert connected
    seen: list[str] = []

    @sync_to_async
    def watch() -> None:  # the database thread's connection, which the consumer's trips use
        check = connection.close_if_unusable_or_obsolete

        def checked() -> None:
            seen.append("check")
            check()

        def run(execute: Any, sql: str, *args: Any) -> Any:
            seen.append(sql.split()[0].upper())
            return execute(sql, *args)

        connection.close_if_unusable_or_obsolete = checked  # type: ignore[method-assign]
        connection.execute_wrappers.append(run)

    await watch()
    await socket.send_to(text_data=send_frame("Hello", model=chat_model.pk))
    await frames_until(socket, r'data-role="assistant" data-status="complete"')
    await socket.disconnect()
    assert seen and seen[0] == "check", seen[:5]
    assert "INSERT" in seen
