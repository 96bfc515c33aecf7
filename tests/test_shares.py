"""Shared links: frozen snapshots, who may open them, revoking, expiry, images, continuing."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from conversations import sharing, threads
from conversations.models import Attachment, Conversation, Message, Share
from tests.conftest import add_message, logged_in, make_conversation, make_user
from tests.test_attachment_views import png_upload

pytestmark = pytest.mark.django_db

USER = Message.Role.USER
ASSISTANT = Message.Role.ASSISTANT


def chat(owner, *turns: tuple[str, str], title: str = "Trip to Lisbon", **extra) -> Conversation:
    """A conversation whose messages form one branch, each the parent of the next."""
    conversation = make_conversation(owner, title=title)
    conversation.system_prompt = extra.get("system_prompt", "")
    parent = None
    for role, text in turns:
        html = f"<p>{text}</p>" if role == ASSISTANT else ""
        parent = add_message(
            conversation, role, text, parent=parent, content_html=html, model_name="Test model"
        )
    conversation.save()
    return conversation


def reply(conversation: Conversation, role: str, text: str, **extra) -> Message:
    message = add_message(
        conversation,
        role,
        text,
        parent_id=threads.current_leaf_id(conversation),
        content_html=f"<p>{text}</p>",
        **extra,
    )
    return message


def share_of(conversation: Conversation, **options) -> Share:
    defaults = {
        "visibility": Share.Visibility.TEAM,
        "expires_at": None,
        "show_owner": False,
        "include_system_prompt": False,
    }
    return sharing.create_share(conversation, **{**defaults, **options})


def view_url(share: Share) -> str:
    return reverse("share_view", args=[share.token])


def contents(share: Share) -> list[str]:
    return [item["content"] for item in share.snapshot["messages"]]


@pytest.fixture
def lisbon(alice) -> Conversation:
    return chat(alice, (USER, "Where should we eat?"), (ASSISTANT, "Try the pastéis de nata."))


@pytest.fixture
def image(alice) -> Attachment:
    logged_in(alice).post("/attachments/", {"file": png_upload(size=(320, 240))})
    return Attachment.objects.get()


def with_image(alice, image: Attachment) -> Conversation:
    conversation = chat(alice, (USER, "What is in this picture?"))
    Attachment.objects.filter(pk=image.pk).update(message=conversation.messages.get())
    reply(conversation, ASSISTANT, "A red square.")
    return conversation


# --- Creating a link ------------------------------------------------------------------


def test_tokens_are_long_random_and_unique(lisbon):
    tokens = {share_of(lisbon).token for _ in range(5)}
    assert len(tokens) == 5
    assert all(len(token) >= 43 and re.fullmatch(r"[A-Za-z0-9_-]+", token) for token in tokens)


def test_owner_creates_a_team_link_by_default_and_sees_its_absolute_url(alice, lisbon):
    response = logged_in(alice).post(
        reverse("share_create", args=[lisbon.pk]), {"visibility": "team"}
    )
    assert response.status_code == 200
    share = Share.objects.get()
    assert (share.owner, share.conversation, share.visibility) == (alice, lisbon, "team")
    assert (share.show_owner, share.include_system_prompt, share.expires_at) == (False, False, None)
    assert share.title == "Trip to Lisbon"
    page = response.content.decode()
    assert f'value="http://testserver/s/{share.token}/" data-testid="share-url"' in page
    assert 'data-testid="revoke-share"' in page


def test_the_panel_offers_the_choices_with_safe_defaults(alice, lisbon):
    page = logged_in(alice).get(reverse("share_panel", args=[lisbon.pk])).content.decode()
    assert re.search(r'value="team" data-testid="share-visibility-team" checked', page)
    assert not re.search(r'value="public"[^>]*checked', page)
    assert not re.search(r'name="show_owner"[^>]*checked', page)
    assert not re.search(r'name="include_system_prompt"[^>]*checked', page)


def test_an_expiry_date_lasts_through_that_day_and_a_past_one_is_refused(alice, lisbon):
    client = logged_in(alice)
    url = reverse("share_create", args=[lisbon.pk])
    yesterday = timezone.localdate() - timedelta(days=1)
    refused = client.post(url, {"visibility": "public", "expires_on": yesterday.isoformat()})
    assert "Pick today or a later day." in refused.content.decode()
    assert not Share.objects.exists()
    tomorrow = timezone.localdate() + timedelta(days=1)
    client.post(url, {"visibility": "public", "expires_on": tomorrow.isoformat()})
    expires = timezone.localtime(Share.objects.get().expires_at)
    assert (expires.date(), expires.hour, expires.minute) == (tomorrow + timedelta(days=1), 0, 0)


def test_an_empty_conversation_has_nothing_to_share(alice):
    empty = make_conversation(alice, title="Empty")
    response = logged_in(alice).post(
        reverse("share_create", args=[empty.pk]), {"visibility": "team"}
    )
    assert "There is no finished message to share yet." in response.content.decode()
    assert not Share.objects.exists()


# --- The snapshot ---------------------------------------------------------------------


def test_snapshot_stops_before_an_answer_still_streaming(alice, lisbon):
    reply(lisbon, USER, "And for dinner?")
    reply(lisbon, ASSISTANT, "Half-written", status=Message.Status.STREAMING)
    share = share_of(lisbon)
    assert contents(share) == [
        "Where should we eat?",
        "Try the pastéis de nata.",
        "And for dinner?",
    ]


def test_snapshot_keeps_stopped_answers_with_text_and_leaves_out_failures(alice, lisbon):
    reply(lisbon, USER, "Museums?")
    reply(lisbon, ASSISTANT, "", status=Message.Status.ERROR, error="Upstream failed")
    reply(lisbon, USER, "Museums, please?")
    reply(lisbon, ASSISTANT, "The tile museum is", status=Message.Status.CANCELLED)
    reply(lisbon, USER, "Bars?")
    reply(lisbon, ASSISTANT, "", status=Message.Status.CANCELLED)
    assert contents(share_of(lisbon))[2:] == [
        "Museums?",
        "Museums, please?",
        "The tile museum is",
        "Bars?",
    ]


def test_messages_added_after_sharing_never_appear(alice, lisbon):
    share = share_of(lisbon, visibility="public")
    reply(lisbon, USER, "A secret follow-up")
    reply(lisbon, ASSISTANT, "A secret answer")
    Message.objects.filter(content="Try the pastéis de nata.").update(content_html="<p>Edited</p>")
    page = Client().get(view_url(share)).content.decode()
    assert "Try the pastéis de nata." in page
    assert "secret" not in page and "Edited" not in page


def test_snapshot_follows_the_branch_on_screen(alice, lisbon):
    question = lisbon.messages.get(role=USER)
    add_message(lisbon, ASSISTANT, "A second version", parent=question, content_html="<p>v2</p>")
    first = lisbon.messages.get(content="Try the pastéis de nata.")
    lisbon.pick_branch(first.pk, lisbon.messages.latest("id").pk)  # a version switch
    lisbon.save()
    assert contents(share_of(lisbon)) == ["Where should we eat?", "Try the pastéis de nata."]


def test_snapshot_records_what_the_page_shows(alice, lisbon):
    answer = lisbon.messages.get(role=ASSISTANT)
    answer.reasoning, answer.reasoning_ms = "Pastry first.", 2300
    answer.save()
    question, shared_answer = share_of(lisbon).snapshot["messages"]
    assert shared_answer["content_html"] == "<p>Try the pastéis de nata.</p>"
    assert (shared_answer["reasoning"], shared_answer["reasoning_ms"]) == ("Pastry first.", 2300)
    assert shared_answer["model_name"] == "Test model"
    assert shared_answer["created_at"] == answer.created_at.isoformat()
    assert question["role"] == "user" and question["attachments"] == []


def test_user_text_is_escaped_and_answers_keep_their_sanitised_html(alice):
    conversation = chat(alice, (USER, "<script>alert(1)</script> & more"), (ASSISTANT, "x"))
    conversation.messages.filter(role=ASSISTANT).update(content_html="<p><strong>Bold</strong></p>")
    share = share_of(conversation, visibility="public")
    assert share.snapshot["messages"][0]["content_html"] == (
        "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more"
    )
    page = Client().get(view_url(share)).content.decode()
    assert "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page
    assert "<p><strong>Bold</strong></p>" in page


# --- Who may open a link --------------------------------------------------------------


def test_team_link_sends_anonymous_viewers_to_login_and_back(bob, lisbon):
    share = share_of(lisbon)
    response = Client().get(view_url(share))
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next=/s/{share.token}/"
    page = logged_in(bob).get(view_url(share))
    assert page.status_code == 200
    assert "Try the pastéis de nata." in page.content.decode()


def test_public_link_opens_without_login(lisbon):
    share = share_of(lisbon, visibility="public")
    response = Client().get(view_url(share))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Where should we eat?" in page and "Try the pastéis de nata." in page
    assert "Trip to Lisbon" in page and "Test model" in page


def test_a_revoked_link_is_not_found_at_once(alice, lisbon):
    share = share_of(lisbon, visibility="public")
    assert Client().get(view_url(share)).status_code == 200
    response = logged_in(alice).post(reverse("share_revoke", args=[share.pk]))
    assert response.status_code == 302
    share.refresh_from_db()
    assert share.revoked_at is not None
    assert Client().get(view_url(share)).status_code == 404
    assert logged_in(alice).get(view_url(share)).status_code == 404


def test_an_expired_link_is_not_found(alice, lisbon):
    share = share_of(lisbon, visibility="public", expires_at=timezone.now() - timedelta(minutes=1))
    assert Client().get(view_url(share)).status_code == 404
    assert logged_in(alice).get(view_url(share)).status_code == 404


def test_an_unknown_token_is_not_found(alice):
    assert logged_in(alice).get("/s/" + "x" * 43 + "/").status_code == 404


def test_revoking_from_the_panel_answers_with_the_revoked_row(alice, lisbon):
    share = share_of(lisbon)
    response = logged_in(alice).post(
        reverse("share_revoke", args=[share.pk]), HTTP_HX_REQUEST="true"
    )
    page = response.content.decode()
    assert f'id="share-{share.pk}"' in page and 'data-state="revoked"' in page
    assert 'data-testid="revoke-share"' not in page


def test_others_cannot_create_see_or_revoke_my_links(alice, bob, lisbon):
    share = share_of(lisbon)
    client = logged_in(bob)
    assert (
        client.post(reverse("share_create", args=[lisbon.pk]), {"visibility": "public"}).status_code
        == 404
    )
    assert client.get(reverse("share_panel", args=[lisbon.pk])).status_code == 404
    assert client.post(reverse("share_revoke", args=[share.pk])).status_code == 404
    assert share.token not in client.get(reverse("my_shares")).content.decode()
    share.refresh_from_db()
    assert share.revoked_at is None and Share.objects.count() == 1


@pytest.mark.parametrize(
    ("method", "name"),
    [
        ("get", "share_panel"),
        ("post", "share_create"),
        ("get", "my_shares"),
        ("post", "share_revoke"),
    ],
)
def test_anonymous_visitors_are_sent_to_login_for_owner_pages(lisbon, method, name):
    share = share_of(lisbon)
    args = [] if name == "my_shares" else [share.pk if name == "share_revoke" else lisbon.pk]
    response = getattr(Client(), method)(reverse(name, args=args))
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    share.refresh_from_db()
    assert share.revoked_at is None and Share.objects.count() == 1


def test_my_shares_lists_my_links_active_first_with_their_views(alice, lisbon):
    old = share_of(lisbon)
    old.view_count = 7
    old.save()
    revoked = share_of(lisbon)
    sharing.revoke(revoked)
    newest = share_of(lisbon)
    page = logged_in(alice).get(reverse("my_shares")).content.decode()
    order = [int(pk) for pk in re.findall(r'id="share-(\d+)"', page)]
    assert order == [newest.pk, old.pk, revoked.pk]
    assert "7 views" in page


# --- Counting and the page itself ------------------------------------------------------


def test_each_view_is_counted(alice, lisbon):
    share = share_of(lisbon, visibility="public")
    before = timezone.now()
    for _ in range(3):
        Client().get(view_url(share))
    share.refresh_from_db()
    assert share.view_count == 3
    assert share.last_viewed_at is not None and share.last_viewed_at >= before
    panel = logged_in(alice).get(reverse("share_panel", args=[lisbon.pk])).content.decode()
    assert "3 views" in panel and "last viewed" in panel


def test_the_shared_page_asks_not_to_be_indexed_or_cached(lisbon):
    response = Client().get(view_url(share_of(lisbon, visibility="public")))
    assert response["X-Robots-Tag"] == "noindex, nofollow"
    assert '<meta name="robots" content="noindex, nofollow">' in response.content.decode()
    assert "no-store" in response["Cache-Control"]


def test_the_system_prompt_is_shared_only_when_chosen(alice):
    turns = ((USER, "Hi"), (ASSISTANT, "Hello"))
    conversation = chat(alice, *turns, system_prompt="You are a pirate named Flint.")
    hidden = share_of(conversation, visibility="public")
    assert hidden.snapshot["system_prompt"] == ""
    assert "pirate named Flint" not in Client().get(view_url(hidden)).content.decode()
    shown = share_of(conversation, visibility="public", include_system_prompt=True)
    assert "You are a pirate named Flint." in Client().get(view_url(shown)).content.decode()


def test_the_owner_name_is_shown_only_when_chosen(lisbon):
    lisbon.owner.first_name, lisbon.owner.last_name = "Alice", "Liddell"
    lisbon.owner.save()
    hidden = Client().get(view_url(share_of(lisbon, visibility="public"))).content.decode()
    assert "Liddell" not in hidden and "alice" not in hidden.lower().replace("alice liddell", "")
    shown = Client().get(view_url(share_of(lisbon, visibility="public", show_owner=True)))
    assert 'data-testid="share-owner">Alice Liddell<' in shown.content.decode()


def test_the_shared_page_is_read_only_and_shows_nothing_else(alice, bob, lisbon):
    make_conversation(alice, title="Salary negotiation")
    make_conversation(bob, title="Bob's private plans")
    answer = lisbon.messages.get(role=ASSISTANT)
    answer.reasoning, answer.reasoning_ms = "Pastry first.", 2300
    answer.save()
    page = logged_in(bob).get(view_url(share_of(lisbon))).content.decode()
    for absent in (
        "Salary negotiation",
        "Bob's private plans",
        'id="sidebar"',
        'data-testid="composer"',
        "ws-connect",
    ):
        assert absent not in page
    assert '<details class="reasoning">' in page and "Thought for 2.3 s" in page
    assert 'data-testid="continue-share"' in page


def test_anonymous_viewers_are_offered_sign_in_rather_than_continue(lisbon):
    page = Client().get(view_url(share_of(lisbon, visibility="public"))).content.decode()
    assert 'data-testid="continue-share"' not in page
    assert "/accounts/login/?next=/s/" in page


def test_deleting_the_conversation_deletes_its_links(lisbon):
    share = share_of(lisbon, visibility="public")
    lisbon.delete()
    assert not Share.objects.exists()
    assert Client().get(view_url(share)).status_code == 404


# --- Images -----------------------------------------------------------------------------


def test_images_are_served_through_the_share_only_while_it_is_active(alice, image):
    share = share_of(with_image(alice, image), visibility="public")
    anonymous = Client()
    page = anonymous.get(view_url(share)).content.decode()
    assert f"/s/{share.token}/images/{image.pk}/thumb/" in page
    assert f"/attachments/{image.pk}/" not in page
    for suffix in ("", "thumb/"):
        response = anonymous.get(f"/s/{share.token}/images/{image.pk}/{suffix}")
        assert response.status_code == 200
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Content-Security-Policy"] == "default-src 'none'; sandbox"
        assert response["X-Robots-Tag"] == "noindex, nofollow"
        drain(response)
    sharing.revoke(share)
    assert anonymous.get(f"/s/{share.token}/images/{image.pk}/").status_code == 404


def test_images_outside_the_snapshot_are_not_served(alice, image):
    conversation = with_image(alice, image)
    share = share_of(conversation, visibility="public")
    logged_in(alice).post("/attachments/", {"file": png_upload(size=(100, 100))})
    later = Attachment.objects.exclude(pk=image.pk).get()
    question = reply(conversation, USER, "And this one?")
    Attachment.objects.filter(pk=later.pk).update(message=question)
    elsewhere = share_of(chat(alice, (USER, "Other"), (ASSISTANT, "Chat")), visibility="public")
    client = Client()
    assert client.get(f"/s/{share.token}/images/{later.pk}/").status_code == 404
    assert client.get(f"/s/{elsewhere.token}/images/{image.pk}/").status_code == 404


def test_images_of_a_team_link_need_a_signed_in_viewer(alice, bob, image):
    share = share_of(with_image(alice, image))
    url = f"/s/{share.token}/images/{image.pk}/"
    assert Client().get(url).status_code == 404
    response = logged_in(bob).get(url)
    assert response.status_code == 200
    drain(response)


# --- Continuing ---------------------------------------------------------------------------


def test_continue_copies_the_snapshot_into_the_viewers_account(alice, bob, lisbon):
    share = share_of(lisbon)
    response = logged_in(bob).post(reverse("share_continue", args=[share.token]))
    copy = Conversation.objects.get(owner=bob)
    assert response.status_code == 302 and response["Location"] == f"/c/{copy.pk}/"
    messages = threads.thread_of(copy).messages
    assert [(m.role, m.content, m.status) for m in messages] == [
        ("user", "Where should we eat?", "complete"),
        ("assistant", "Try the pastéis de nata.", "complete"),
    ]
    assert messages[1].parent_id == messages[0].pk and messages[0].parent_id is None
    assert threads.current_leaf_id(copy) == messages[1].pk
    assert messages[1].content_html == "<p>Try the pastéis de nata.</p>"
    assert copy.title == "Trip to Lisbon" and copy.system_prompt == ""
    assert logged_in(bob).get(f"/c/{copy.pk}/").status_code == 200


def test_later_edits_of_the_original_never_change_the_copy(alice, bob, lisbon):
    share = share_of(lisbon)
    logged_in(bob).post(reverse("share_continue", args=[share.token]))
    lisbon.messages.filter(role=ASSISTANT).update(content="Changed", content_html="<p>Changed</p>")
    reply(lisbon, USER, "Later question")
    copy = Conversation.objects.get(owner=bob)
    assert [m.content for m in copy.messages.all()] == [
        "Where should we eat?",
        "Try the pastéis de nata.",
    ]
    assert lisbon.messages.count() == 3 and copy.messages.count() == 2


def test_continue_copies_the_system_prompt_only_when_shared(alice, bob):
    turns = ((USER, "Hi"), (ASSISTANT, "Hello"))
    conversation = chat(alice, *turns, system_prompt="Be terse.")
    for included in (False, True):
        share = share_of(conversation, include_system_prompt=included)
        logged_in(bob).post(reverse("share_continue", args=[share.token]))
    prompts = list(
        Conversation.objects.filter(owner=bob)
        .order_by("id")
        .values_list("system_prompt", flat=True)
    )
    assert prompts == ["", "Be terse."]


def test_continue_gives_the_copy_its_own_image_files(alice, bob, image):
    share = share_of(with_image(alice, image))
    logged_in(bob).post(reverse("share_continue", args=[share.token]))
    copied = Attachment.objects.get(owner=bob)
    assert copied.message is not None and copied.message.conversation.owner == bob
    assert copied.file.name != image.file.name and copied.thumbnail.name != image.thumbnail.name
    with copied.file.open("rb") as new, image.file.open("rb") as old:
        assert new.read() == old.read()
    image.file.storage.delete(image.file.name)  # the original's file going away...
    response = logged_in(bob).get(reverse("attachment_file", args=[copied.pk]))
    assert response.status_code == 200  # ...leaves the copy whole
    drain(response)


def test_continue_needs_a_signed_in_viewer_and_a_live_link(alice, bob, lisbon):
    share = share_of(lisbon, visibility="public")
    anonymous = Client().post(reverse("share_continue", args=[share.token]))
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/accounts/login/")
    sharing.revoke(share)
    assert logged_in(bob).post(reverse("share_continue", args=[share.token])).status_code == 404
    assert not Conversation.objects.filter(owner=bob).exists()


def test_continue_refuses_a_get(bob, lisbon):
    share = share_of(lisbon)
    assert logged_in(bob).get(reverse("share_continue", args=[share.token])).status_code == 405


# --- Admin ---------------------------------------------------------------------------------


def test_admin_lists_every_link_and_revokes_the_selected_ones(alice, lisbon):
    staff = make_user("root", is_staff=True, is_superuser=True)
    first, second = share_of(lisbon), share_of(lisbon, visibility="public")
    client = logged_in(staff)
    changelist = client.get("/admin/conversations/share/")
    assert changelist.status_code == 200
    assert f"/s/{first.token}/" in changelist.content.decode()
    client.post(
        "/admin/conversations/share/",
        {"action": "revoke_selected", "_selected_action": [first.pk]},
    )
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.revoked_at is not None and second.revoked_at is None
    detail = client.get(f"/admin/conversations/share/{first.pk}/change/")
    assert detail.status_code == 200 and "pastéis de nata" in detail.content.decode()


def drain(response: Any) -> bytes:
    """Read a file response without `close()`: that fires request_finished, which closes
    the test's database connection on PostgreSQL."""
    return b"".join(response.streaming_content)
