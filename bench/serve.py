"""The real ASGI application, counting the SQL writes it makes (for the database benchmark).

Served as `python -m daphne ... bench.serve:application`. Every new database connection gets
an execute wrapper that counts INSERT / UPDATE / DELETE statements (and SELECTs) per table;
GET /__bench__/writes returns the counts and the streaming settings in force. Nothing else
changes.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

from django.conf import settings
from django.db.backends.signals import connection_created

from chatsite.asgi import application as site  # sets Django up

WRITES: Counter[str] = Counter()
READS: Counter[str] = Counter()
_WRITE = re.compile(r'\s*(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+"?(\w+)"?', re.I)
_READ = re.compile(r'\s*SELECT\b.*?\bFROM\s+"?(\w+)"?', re.I | re.S)


def count_writes(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
    if found := _WRITE.match(sql):
        WRITES[f"{found.group(1).split()[0].upper()} {found.group(2)}"] += 1
    elif found := _READ.match(sql):
        READS[found.group(1)] += 1
    return execute(sql, params, many, context)


def install(sender: Any, connection: Any, **kwargs: Any) -> None:
    if count_writes not in connection.execute_wrappers:
        connection.execute_wrappers.append(count_writes)


connection_created.connect(install)


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http" and scope["path"] == "/__bench__/writes":
        body = json.dumps(
            {
                "writes": dict(WRITES),
                "reads": dict(READS),
                "checkpoint_interval": settings.STREAM_CHECKPOINT_INTERVAL,
                "frame_interval": settings.STREAM_FRAME_INTERVAL,
            }
        ).encode()
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    await site(scope, receive, send)
