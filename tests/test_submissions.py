"""A submission is one trip to the database: a fixed set of queries, whatever the length."""

from __future__ import annotations

import base64

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from conversations import branching, sql, streaming, submissions, threads
from conversations.models import Attachment, Message
from tests.conftest import logged_in
from tests.test_attachment_views import png_upload

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
    # Five small SELECTs (the model with its provider and groups, earlier copies, the rate
    # with whether a budget applies, the newest message with ids for two more, the branch's
    # messages with whether each has images), one INSERT of the question and its answer,
    # and a savepoint's two statements (this test runs in a transaction; on PostgreSQL a
    # worker's lone INSERT needs none). The conversation's row is not written.
    assert counts[-1] <= 8, [q["sql"][:80] for q in queries]
    question, answer = accepted.messages
    assert len(writes) == 1 + 1 and writes[0].startswith('INSERT INTO "conversations_message"')
    assert Message.objects.get(pk=answer.pk).parent_id == question.pk
    assert accepted.images == {accepted.messages[0].pk: []}


def test_ids_taken_first_are_new_even_after_the_newest_message_was_deleted(alice, chat_model):
    accepted = submit_and_finish(alice, None, "first", chat_model.pk)
    last = accepted.assistant.pk
    Message.objects.filter(pk=last).delete()  # the largest id is gone, never to be reused
    with transaction.atomic():
        newest, taken = sql.message_ids(accepted.conversation.pk, 3)
    assert newest == accepted.messages[0].pk  # the question, now that its answer is gone
    assert taken is not None and taken[0] > last and taken == sorted(set(taken))
    again = submit_and_finish(alice, accepted.conversation, "second")
    question, answer = again.messages
    assert last < question.pk < answer.pk and answer.parent_id == question.pk


def test_an_edit_writes_its_question_and_answer_in_one_insert(alice, chat_model):
    accepted = submit_and_finish(alice, None, "first", chat_model.pk)
    question = accepted.messages[0]
    with CaptureQueriesContext(connection) as queries:
        answer = branching._edit(alice, accepted.conversation, question.pk, "first, again", None)
    writes = [q["sql"] for q in queries if q["sql"].startswith(("INSERT", "UPDATE", "DELETE"))]
    assert len(writes) == 1 and writes[0].startswith('INSERT INTO "conversations_message"')
    edited = Message.objects.get(children=answer)
    assert (edited.content, edited.parent_id, edited.role) == ("first, again", None, "user")
    assert threads.current_leaf_id(accepted.conversation) == answer.pk


def test_without_ids_taken_first_the_question_and_answer_are_saved_one_by_one(alice, chat_model):
    conversation = submit_and_finish(alice, None, "first", chat_model.pk).conversation
    question = Message(conversation=conversation, role="user", content="again")
    answer = submissions.pending_answer(conversation, chat_model)
    submissions.insert_question_and_answer(question, answer, None)
    saved = Message.objects.get(pk=answer.pk)
    assert saved.parent_id == question.pk and saved.status == "pending"
    assert Message.objects.get(pk=question.pk).content == "again"


def test_the_images_of_earlier_questions_on_the_branch_go_upstream_again(alice, chat_model):
    chat_model.supports_vision = True
    chat_model.save()
    logged_in(alice).post("/attachments/", {"file": png_upload(size=(64, 48))})
    image = Attachment.objects.get()
    first = submissions.accept(alice, None, "what is this?", chat_model.pk, "c1", None, (image.pk,))
    Message.objects.filter(pk=first.assistant.pk).update(status="complete", content="A square.")

    later = submissions.accept(alice, first.conversation, "and its colour?", None, "c2")
    Message.objects.filter(pk=later.assistant.pk).update(status="complete", content="Red.")
    edited = branching._edit(alice, first.conversation, first.messages[0].pk, "no picture", None)

    assert later.job is not None
    turns = later.job.request.turns
    assert [(t.role, len(t.images)) for t in turns] == [("user", 1), ("assistant", 0), ("user", 0)]
    assert turns[0].images[0].data_b64 == base64.b64encode(image.file.read()).decode()
    other_branch = streaming._load_job(edited.pk).request.turns  # the image's question is not on it
    assert [(t.text, t.images) for t in other_branch] == [("no picture", ())]


@pytest.mark.django_db(transaction=True)
def test_a_lone_insert_goes_without_a_transaction_on_postgresql_only(alice, chat_model):
    """Two round trips less (BEGIN, COMMIT) on the way to the first token. SQLite takes its
    ids under a transaction's write lock; a new conversation (two tables) is one transaction."""
    inserts: list[bool] = []  # whether each INSERT ran inside a transaction

    def record(execute, statement, params, many, context):
        if statement.startswith("INSERT"):
            inserts.append(connection.in_atomic_block)
        return execute(statement, params, many, context)

    with connection.execute_wrapper(record):
        conversation = submit_and_finish(alice, None, "first", chat_model.pk).conversation
        submit_and_finish(alice, conversation, "second")
    sqlite = connection.vendor == "sqlite"
    assert inserts == [True, True, sqlite]  # the conversation, its first pair, the second pair
    assert [m.content for m in conversation.messages.order_by("id")][::2] == ["first", "second"]


def prepared_statements() -> list[str]:
    """The statements prepared on this connection (PostgreSQL's view of its own session)."""
    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


def test_the_submission_path_is_prepared_once_a_connection_on_postgresql_only(
    alice, chat_model, settings
):
    """Planned once, not on every submission; the ORM's own queries are never prepared."""
    conversation = submit_and_finish(alice, None, "first", chat_model.pk).conversation
    submit_and_finish(alice, conversation, "second")
    prepared = prepared_statements()
    postgresql = connection.vendor == "postgresql"
    assert any(s.startswith('INSERT INTO "conversations_message"') for s in prepared) is postgresql
    assert any("pg_get_serial_sequence" in s for s in prepared) is postgresql  # the ids
    assert any("m.content" in s for s in prepared) is postgresql  # the history
    assert not any("conversations_conversation" in s and "INSERT" in s for s in prepared)

    settings.DATABASE_PREPARED_STATEMENTS = False  # behind a pooler in transaction mode
    before = len(prepared)
    submit_and_finish(alice, conversation, "third")
    assert len(prepared_statements()) == before
    assert [m.content for m in conversation.messages.order_by("id")][::2] == [
        "first",
        "second",
        "third",
    ]
