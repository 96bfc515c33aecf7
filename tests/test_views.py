"""Pages over HTTP: login required, ownership, the hooks browser tests rely on."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.conftest import (
    CANARY_KEY,
    PASSWORD,
    add_message,
    logged_in,
    make_conversation,
    make_model,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def model(db):
    return make_model("http://127.0.0.1:9/v1", display_name="Fast model")


@pytest.mark.parametrize("path", ["/", "/c/1/"])
def test_pages_require_login(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_login_form_has_the_promised_fields(client):
    page = client.get("/accounts/login/").content.decode()
    assert 'name="username"' in page and 'name="password"' in page and "csrfmiddlewaretoken" in page


def test_logging_in_with_the_form_reaches_the_chat(alice):
    client = Client(enforce_csrf_checks=False)
    response = client.post(
        "/accounts/login/", {"username": "alice", "password": PASSWORD}, follow=True
    )
    assert response.redirect_chain[-1][0] == "/"
    assert 'data-testid="composer"' in response.content.decode()


def test_home_shows_composer_picker_and_hooks(alice, model):
    page = logged_in(alice).get("/").content.decode()
    for hook in ["new-conversation", "model-select", "composer", "send", "stop"]:
        assert f'data-testid="{hook}"' in page
    assert ">Fast model</option>" in page
    assert 'ws-connect="/ws/conversations/"' in page


def test_a_users_conversation_lists_messages_with_role_and_status(alice, model):
    conversation = make_conversation(alice, model, title="Trip <plans>")
    add_message(conversation, "user", "Where to?")
    add_message(conversation, "assistant", "Paris", status="cancelled", content_html="<p>Paris</p>")
    page = logged_in(alice).get(f"/c/{conversation.pk}/").content.decode()
    assert 'data-testid="message" data-role="user" data-status="complete"' in page
    assert 'data-testid="message" data-role="assistant" data-status="cancelled"' in page
    assert 'data-testid="message-content"' in page
    assert 'data-testid="conversation-link"' in page and "Trip &lt;plans&gt;" in page
    assert "Stopped" in page


def test_another_users_conversation_is_a_404(alice, bob, model):
    theirs = make_conversation(bob, model, title="secret")
    response = logged_in(alice).get(f"/c/{theirs.pk}/")
    assert response.status_code == 404
    assert b"secret" not in response.content


def test_sidebar_lists_only_my_conversations_newest_first(alice, bob, model):
    older = make_conversation(alice, model, title="older")
    newer = make_conversation(alice, model, title="newer")
    make_conversation(bob, model, title="bobs")
    page = logged_in(alice).get(f"/c/{older.pk}/").content.decode()
    assert page.index(">newer<") < page.index(">older<")
    assert "bobs" not in page
    assert newer.pk


def test_a_dead_workers_answer_is_shown_as_interrupted(alice, model):
    conversation = make_conversation(alice, model)
    add_message(conversation, "user", "hi")
    add_message(conversation, "assistant", "half an ans", status="streaming", lease_expires_at=None)
    page = logged_in(alice).get(f"/c/{conversation.pk}/").content.decode()
    assert 'data-status="error"' in page and "interrupted" in page and "half an ans" in page


def test_the_api_key_never_reaches_the_admin_page(model):
    from conversations.models import User

    admin = User.objects.create_superuser("root", password=PASSWORD)
    page = logged_in(admin).get(f"/admin/conversations/provider/{model.provider_id}/change/")
    assert page.status_code == 200
    assert CANARY_KEY not in page.content.decode()
    assert "set (hidden)" in page.content.decode()


def test_health_check_needs_no_login(client):
    assert client.get("/healthz").content == b"ok"
