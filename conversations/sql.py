"""Plain SQL for the small reads on every submission's path to the first token.

Django spends 0.5 to 1.5 ms building and compiling each of those queries, and a tenth of
that running them: most of a submission's time. The queries that use this module are small
and portable (SQLite and PostgreSQL, both run in CI); they take their tables from the models
and are checked by the same behaviour tests as the ORM forms they replaced.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Model
from django.utils import timezone
from django.utils.dateparse import parse_datetime


def rows(template: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Run a statement; see `statement` for the table names."""
    with _cursor() as cursor:
        cursor.execute(statement(template), params)
        found: list[tuple[Any, ...]] = cursor.fetchall()
        return found


def execute(template: str, params: Sequence[Any]) -> int:
    """Run a statement that returns no rows (an UPDATE); the number of rows it changed."""
    with _cursor() as cursor:
        cursor.execute(statement(template), params)
        changed: int = cursor.rowcount
        return changed


def _cursor() -> Any:
    """Django's cursor (its error types, query logging and execute wrappers included).

    On PostgreSQL, one that sends the parameters apart from the statement and keeps the
    statement prepared on its connection (pooled connections live on), so the server plans
    each of these once, not on every submission: the model's query took 0.79-0.93 ms
    in-process, 0.55-0.68 ms prepared; worker B watching A, before upstream, 7.5-10.2 ms
    against 6.5-8.8 ms. Django's own cursors bind parameters into the text, as connection
    poolers in transaction mode need: `DATABASE_PREPARED_STATEMENTS=0` keeps these that way
    too. Where queries are logged (DEBUG, tests counting them) they go Django's way as well:
    a prepared statement leaves Django no text to log."""
    if (
        connection.vendor != "postgresql"
        or not settings.DATABASE_PREPARED_STATEMENTS
        or connection.queries_logged
    ):
        return connection.cursor()
    # What `connection.cursor()` does, with a cursor of ours.
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    connection.validate_thread_sharing()
    with connection.wrap_database_errors:
        return connection.make_cursor(_prepared_cursor()(connection.connection))


@functools.cache
def _prepared_cursor() -> type[Any]:
    import psycopg

    class PreparedCursor(psycopg.Cursor[Any]):
        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            return super().execute(query, params, prepare=True)

    return PreparedCursor


def message_ids(conversation_id: int, count: int) -> tuple[int | None, list[int] | None]:
    """In one round trip: the conversation's newest message id, and ids for `count` new
    messages in increasing order, so that messages which point at each other (an answer
    at its question) can be written in one INSERT (None on a backend that cannot do that).

    On PostgreSQL the ids come from the column's own sequence (taken, never handed out twice,
    even if a transaction rolls back). On SQLite they come from the table's AUTOINCREMENT
    counter, so only inside a transaction that writes them: it stays ours because the
    transaction holds the write lock from its start (`transaction_mode` IMMEDIATE,
    chatsite/settings.py). `writing` picks the transaction.
    """
    meta = _models()["message"]._meta
    if connection.vendor == "postgresql":
        found = rows(
            "SELECT (SELECT max(id) FROM {message} WHERE conversation_id = %s),"
            " nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [conversation_id, meta.db_table, meta.pk.column, count],
        )
        return found[0][0], sorted(int(row[1]) for row in found)
    if connection.vendor == "sqlite":
        # AUTOINCREMENT gives the larger of the counter and the largest id, plus one.
        found = rows(
            "SELECT (SELECT max(id) FROM {message} WHERE conversation_id = %s),"
            " max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = %s), 0),"
            " coalesce((SELECT max(id) FROM {message}), 0))",
            [conversation_id, meta.db_table],
        )
        last = int(found[0][1])
        return found[0][0], list(range(last + 1, last + 1 + count))
    found = rows("SELECT max(id) FROM {message} WHERE conversation_id = %s", [conversation_id])
    return found[0][0], None


def writing(lone: bool) -> AbstractContextManager[Any]:
    """The transaction around a submission's writes, and around ids taken first.

    A `lone` INSERT on PostgreSQL needs none: one statement is atomic by itself, its ids
    came from a sequence (which no transaction holds back), and BEGIN and COMMIT would be
    two more round trips to the server on the way to the first token. SQLite takes its ids
    from the table's counter, ours only under the write lock a transaction holds. Inside a
    transaction already, a savepoint: a failed INSERT must not spoil the outer one.
    """
    if lone and connection.vendor == "postgresql" and not connection.in_atomic_block:
        return contextlib.nullcontext()
    return transaction.atomic()


def statement(template: str) -> str:
    """The SQL of `template`, where `{message}` and the like name the models' tables."""
    return template.format_map(_tables())


@functools.cache
def _tables() -> dict[str, str]:
    quote = connection.ops.quote_name
    return {name: quote(model._meta.db_table) for name, model in _models().items()}


@functools.cache
def _models() -> dict[str, type[Model]]:
    from conversations.models import (
        Attachment,
        Budget,
        ChatModel,
        Conversation,
        Message,
        Provider,
        User,
    )

    return {
        "chat_model": ChatModel,
        "provider": Provider,
        "message": Message,
        "conversation": Conversation,
        "attachment": Attachment,
        "budget": Budget,
        "memberships": User.groups.through,
        "allowed_groups": ChatModel.allowed_groups.through,
    }


def to_db(value: datetime) -> Any:
    """A datetime as the backend stores it (SQLite: text in UTC)."""
    return connection.ops.adapt_datetimefield_value(value)


def from_db(value: Any) -> datetime:
    """A datetime column read back: SQLite gives text in UTC, PostgreSQL an aware datetime."""
    if isinstance(value, str):
        value = parse_datetime(value)
    if not isinstance(value, datetime):
        raise TypeError(f"not a datetime from the database: {value!r}")
    return timezone.make_aware(value, UTC) if timezone.is_naive(value) else value


def columns(model: type[Model], alias: str) -> str:
    """`alias.column, ...` for every concrete field of `model`, in the order `instance` reads."""
    quote = connection.ops.quote_name
    return ", ".join(f"{alias}.{quote(str(f.column))}" for f in model._meta.concrete_fields)


def instance(model: type[Model], values: Sequence[Any]) -> Any:
    """A model instance from the values of `columns(model, ...)`, converted as the ORM does
    (JSON decoded, SQLite's booleans and datetimes made Python's)."""
    attnames, converters = _reading(model)
    converted = []
    for value, (field, steps) in zip(values, converters, strict=True):
        for step in steps:
            value = step(value, field, connection)
        converted.append(value)
    return model.from_db(connection.alias, list(attnames), converted)


@functools.cache
def _reading(model: type[Model]) -> tuple[tuple[str, ...], tuple[tuple[Any, list[Any]], ...]]:
    fields = model._meta.concrete_fields
    converters = []
    for field in fields:
        column = field.get_col(model._meta.db_table)
        steps = connection.ops.get_db_converters(column) + field.get_db_converters(connection)
        converters.append((column, steps))
    return tuple(f.attname for f in fields), tuple(converters)
