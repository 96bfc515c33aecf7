"""A submission is one trip to the database: a fixed set of queries, whatever the length."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conversations import submissions
from conversations.models import Message

pytestmark = pytest.mark.django_db


def submit_and_finish(user, conversation, text: str, model_id: int | None = None):
    accepted = submissions.accept(user, conversation, text, model_id, client_id=text)
    Message.objects.filter(pk=accepted.assistant.pk).update(status="complete", content="ok")
    return accepted


def test_a_submission_costs_the_same_queries_however_long_the_conversation(alice, chat_model):
    conversation = submit_and_finish(alice, None, "first", chat_model.pk).conversation
    counts = []
    for turn in range(12):
        with CaptureQueriesContext(connection) as queries:
            accepted = submit_and_finish(alice, conversation, f"turn {turn}")
        counts.append(len(queries) - 1)  # less the test's own UPDATE that finishes the answer
        conversation = accepted.conversation
    writes = [q["sql"] for q in queries if q["sql"].startswith(("INSERT", "UPDATE", "DELETE"))]
    assert counts[1] == counts[-1], counts
    # 8 small SELECTs (model, provider, its groups, earlier copies, rate, whether a budget
    # applies, branch, images), 3 writes and the transaction's two statements; the
    # question's images are not read back.
    assert counts[-1] <= 13, [q["sql"][:80] for q in queries]
    assert len(writes) == 3 + 1
    assert accepted.images == {accepted.messages[0].pk: []}
