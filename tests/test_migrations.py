"""Data migrations keep what users saw."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from conversations import models, threads

BEFORE = [("conversations", "0002_cached_input_price")]
AFTER = [("conversations", "0003_leaf_and_recency_from_messages")]


def migrate(targets: list[tuple[str, str]]) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor


@pytest.mark.django_db(transaction=True)
def test_the_branch_on_screen_before_the_leaf_migration_stays_on_screen():
    apps = migrate(BEFORE).loader.project_state(BEFORE).apps
    User = apps.get_model("conversations", "User")
    Conversation = apps.get_model("conversations", "Conversation")
    Message = apps.get_model("conversations", "Message")
    owner = User.objects.create(username="carol")
    picked = Conversation.objects.create(owner=owner, title="Picked")
    question = Message.objects.create(conversation=picked, role="user", content="q")
    first = Message.objects.create(conversation=picked, role="assistant", parent=question)
    newest = Message.objects.create(conversation=picked, role="assistant", parent=question)
    picked.current_leaf = first  # an older version on screen
    picked.save()
    plain = Conversation.objects.create(owner=owner, title="Plain")

    apps = migrate(AFTER).loader.project_state(AFTER).apps
    Conversation = apps.get_model("conversations", "Conversation")
    after = Conversation.objects.get(pk=picked.pk)
    assert (after.current_leaf_id, after.current_leaf_as_of) == (first.pk, newest.pk)
    assert Conversation.objects.get(pk=plain.pk).current_leaf_as_of is None

    migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())  # as other tests expect
    assert threads.current_leaf_id(models.Conversation.objects.get(pk=picked.pk)) == first.pk
