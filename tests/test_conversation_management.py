"""Branches (versions), search, rename, archive, delete and export."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conversations import branching, threads
from conversations.models import Conversation, Message
from tests.conftest import add_message, logged_in, make_conversation, make_model, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def model(db):
    return make_model("http://127.0.0.1:9/v1", display_name="Fast model")


def branched(owner, model) -> tuple[Conversation, dict[str, Message]]:
    """q1 -> a1 (regenerated as a1b) ; q1 edited as q1b -> a2."""
    c = make_conversation(owner, model, title="Branches")
    q1 = add_message(c, "user", "first question")
    a1 = add_message(c, "assistant", "first answer", parent=q1)
    a1b = add_message(c, "assistant", "second answer", parent=q1)
    q1b = add_message(c, "user", "edited question")
    a2 = add_message(c, "assistant", "answer to the edit", parent=q1b)
    c.pick_branch(a1b.pk, a2.pk)  # a version switch back to the regenerated answer
    c.save()
    return c, {"q1": q1, "a1": a1, "a1b": a1b, "q1b": q1b, "a2": a2}


def test_the_thread_follows_the_current_leaf_and_counts_versions(alice, model):
    conversation, m = branched(alice, model)
    thread = threads.thread_of(conversation)
    assert [x.pk for x in thread.messages] == [m["q1"].pk, m["a1b"].pk]
    assert thread.versions[m["a1b"].pk] == threads.Version(2, 2, m["a1"].pk, None)
    assert thread.versions[m["q1"].pk] == threads.Version(1, 2, None, m["q1b"].pk)


def test_a_picked_branch_holds_until_a_newer_message_shows_its_own(alice, model):
    conversation, m = branched(alice, model)
    assert threads.current_leaf_id(conversation) == m["a1b"].pk
    follow_up = add_message(conversation, "user", "and then?", parent=m["a1b"])
    assert threads.current_leaf_id(conversation) == follow_up.pk
    fresh = Conversation.objects.get(pk=conversation.pk)
    assert [x.pk for x in threads.thread_of(fresh).messages] == [
        m["q1"].pk,
        m["a1b"].pk,
        follow_up.pk,
    ]


def test_with_nothing_picked_the_newest_message_ends_the_branch_on_screen(alice, model):
    conversation, m = branched(alice, model)
    Conversation.objects.filter(pk=conversation.pk).update(current_leaf_as_of=None)
    conversation.refresh_from_db()
    assert [x.pk for x in threads.thread_of(conversation).messages] == [m["q1b"].pk, m["a2"].pk]


def test_switching_versions_picks_the_branch_until_the_next_message(alice, model):
    conversation, m = branched(alice, model)
    client = logged_in(alice)
    branching._switch_to(alice, conversation, m["q1b"].pk)
    conversation.refresh_from_db()
    assert threads.current_leaf_id(conversation) == m["a2"].pk
    branching._switch_to(alice, conversation, m["a1"].pk)
    page = client.get(f"/c/{conversation.pk}/").content.decode()
    assert "first answer" in page and "answer to the edit" not in page


def test_the_sidebar_lists_the_conversation_with_the_latest_message_first(alice, model):
    older = make_conversation(alice, model, title="Older chat")
    add_message(older, "user", "hello")
    newer = make_conversation(alice, model, title="Newer chat")
    add_message(newer, "user", "hello")
    empty = make_conversation(alice, model, title="Empty chat")  # created last, no messages
    client = logged_in(alice)

    def order() -> list[str]:
        page = client.get("/").content.decode()
        names = ["Older chat", "Newer chat", "Empty chat"]
        return sorted(names, key=page.index)

    assert order() == ["Empty chat", "Newer chat", "Older chat"]
    add_message(older, "user", "back again")
    assert order() == ["Older chat", "Empty chat", "Newer chat"]
    by_recency = Conversation.objects.filter(owner=alice).by_recency()
    assert [c.pk for c in by_recency] == [older.pk, empty.pk, newer.pk]


@pytest.mark.parametrize("path", ["/", "/archived/", "/search/?q=chat"])
def test_conversation_lists_read_only_ids_and_titles_in_a_fixed_number_of_queries(
    alice, model, path
):
    def listed(count: int) -> tuple[int, list[str]]:
        for n in range(count):
            chat = make_conversation(alice, model, title=f"chat {n}")
            chat.system_prompt = "a long prompt " * 300
            chat.archived = path.startswith("/archived")
            chat.save()
            add_message(chat, "user", "hello")
        client = logged_in(alice)
        with CaptureQueriesContext(connection) as queries:
            page = client.get(path).content.decode()
        assert page.count("chat ") >= count
        return len(queries), [q["sql"] for q in queries if "title" in q["sql"]]

    few, _ = listed(2)
    many, selects = listed(20)
    assert many == few
    lists = [sql for sql in selects if "ORDER BY" in sql and "conversations_conversation" in sql]
    assert lists and all("system_prompt" not in sql for sql in lists), lists


def test_the_admin_lists_conversations_by_last_activity_and_sorts_by_it(alice, model):
    quiet = make_conversation(alice, model, title="Quiet chat")
    add_message(quiet, "user", "hello")
    busy = make_conversation(alice, model, title="Busy chat")
    add_message(busy, "user", "hello")
    add_message(quiet, "user", "me again")  # quiet is now the most recent
    staff = logged_in(make_user("root", is_staff=True, is_superuser=True))
    page = staff.get("/admin/conversations/conversation/").content.decode()
    assert "Last active" in page and page.index("Quiet chat") < page.index("Busy chat")
    ascending = staff.get("/admin/conversations/conversation/", {"o": "4"}).content.decode()
    assert ascending.index("Busy chat") < ascending.index("Quiet chat")


def test_each_message_knows_its_version_on_its_own(alice, model):
    _, m = branched(alice, model)
    version = threads.Version
    expected = {
        "q1": version(1, 2, None, m["q1b"].pk),  # the edited first questions have no parent
        "q1b": version(2, 2, m["q1"].pk, None),
        "a1": version(1, 2, None, m["a1b"].pk),
        "a1b": version(2, 2, m["a1"].pk, None),
        "a2": None,
    }
    assert {name: threads.version_of(message) for name, message in m.items()} == expected


def test_the_upstream_sees_only_the_branch_above_a_message(alice, model):
    conversation, m = branched(alice, model)
    later = add_message(conversation, "user", "follow-up", parent=m["a2"])
    assert [x.content for x in threads.ancestors(later)] == [
        "edited question",
        "answer to the edit",
    ]


def test_search_matches_titles_and_message_text_of_my_conversations_only(alice, bob, model):
    mine = make_conversation(alice, model, title="Pelican notes")
    other = make_conversation(alice, model, title="Volcanoes")
    add_message(other, "assistant", "Lava is molten rock")
    theirs = make_conversation(bob, model, title="Pelican secrets")
    client = logged_in(alice)
    by_title = client.get("/search/", {"q": "pelican"}).content.decode()
    assert f"/c/{mine.pk}/" in by_title and f"/c/{theirs.pk}/" not in by_title
    by_text = client.get("/search/", {"q": "molten"}).content.decode()
    assert f"/c/{other.pk}/" in by_text and "Lava is molten rock" in by_text
    assert "No conversation matches" in client.get("/search/", {"q": "zzz"}).content.decode()


def test_rename_stops_automatic_titles_and_rejects_an_empty_title(alice, model):
    conversation = make_conversation(alice, model, title="Old")
    client = logged_in(alice)
    response = client.post(
        f"/c/{conversation.pk}/rename/", {"title": "  New   name "}, HTTP_HX_REQUEST="true"
    )
    assert (
        response.status_code == 200
        and 'data-testid="conversation-title"' in response.content.decode()
    )
    conversation.refresh_from_db()
    assert conversation.title == "New name" and conversation.title_generated
    assert client.post(f"/c/{conversation.pk}/rename/", {"title": "   "}).status_code == 400


def test_archive_hides_from_the_sidebar_and_lists_on_the_archive_page(alice, model):
    conversation = make_conversation(alice, model, title="Old project")
    client = logged_in(alice)
    client.post(f"/c/{conversation.pk}/archive/")
    assert "Old project" not in client.get("/").content.decode()
    assert "Old project" in client.get("/archived/").content.decode()
    client.post(f"/c/{conversation.pk}/archive/")
    assert "Old project" in client.get("/").content.decode()


def test_delete_removes_the_conversation_and_its_messages(alice, model):
    conversation, _ = branched(alice, model)
    response = logged_in(alice).post(f"/c/{conversation.pk}/delete/")
    assert response.status_code == 302
    assert not Conversation.objects.filter(pk=conversation.pk).exists()
    assert not Message.objects.filter(conversation_id=conversation.pk).exists()


def test_exports_hold_the_branch_on_screen_as_markdown_and_json(alice, model):
    conversation, _ = branched(alice, model)
    conversation.system_prompt = "Be brief"
    conversation.save()
    client = logged_in(alice)
    markdown = client.get(f"/c/{conversation.pk}/export.md")
    assert markdown["Content-Disposition"] == 'attachment; filename="branches.md"'
    text = markdown.content.decode()
    assert text.startswith("# Branches") and "> System prompt: Be brief" in text
    assert "second answer" in text and "first answer" not in text
    data = json.loads(client.get(f"/c/{conversation.pk}/export.json").content)
    assert [m["content"] for m in data["messages"]] == ["first question", "second answer"]
    assert data["system_prompt"] == "Be brief"
