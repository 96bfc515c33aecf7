"""Database connections stay open on the websocket thread but not after a page's request."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client

pytestmark = pytest.mark.django_db(transaction=True)


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
