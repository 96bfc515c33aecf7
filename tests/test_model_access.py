"""Which models a person may use: open models for everyone, restricted ones for their groups."""

from __future__ import annotations

from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.contrib.auth.models import AnonymousUser, Group
from django.test import Client

from conversations import access, submissions
from conversations.models import ChatModel, Message, Provider
from tests.conftest import make_conversation, make_model, make_user
from tests.test_consumers import frames_until, open_socket, send_frame
from tests.upstream import Scripted, chat_completion_stream


@pytest.fixture(autouse=True)
def _fast_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def models_with_research(base_url: str) -> tuple[ChatModel, ChatModel, Group]:
    """An open default model and one restricted to the Research group."""
    open_model = make_model(base_url, display_name="Open model")
    research = Group.objects.create(name="Research")
    restricted = ChatModel.objects.create(
        provider=open_model.provider, upstream_id="big", display_name="Research model"
    )
    restricted.allowed_groups.add(research)
    return open_model, restricted, research


@pytest.fixture
def catalogue(db):
    return models_with_research("http://127.0.0.1:9/v1")


def names(user) -> list[str]:
    return [m.display_name for m in access.models_for(user)]


def test_a_model_without_groups_is_open_and_a_restricted_one_only_to_members(alice, bob, catalogue):
    _, _, research = catalogue
    research.user_set.add(alice)
    assert names(alice) == ["Open model", "Research model"]
    assert names(bob) == ["Open model"]


def test_membership_of_any_allowed_group_is_enough_and_lists_the_model_once(alice, catalogue):
    _, restricted, research = catalogue
    ops = Group.objects.create(name="Ops")
    restricted.allowed_groups.add(ops)
    research.user_set.add(alice)
    ops.user_set.add(alice)
    assert names(alice) == ["Open model", "Research model"]


def test_superusers_see_every_usable_model(db, catalogue):
    root = make_user("root", is_superuser=True, is_staff=True)
    assert names(root) == ["Open model", "Research model"]


def test_disabled_models_stay_hidden_even_from_members(alice, catalogue):
    _, restricted, research = catalogue
    research.user_set.add(alice)
    ChatModel.objects.filter(pk=restricted.pk).update(enabled=False)
    assert names(alice) == ["Open model"]


def test_get_model_agrees_with_the_list_for_every_person_and_model(alice, bob, catalogue):
    open_model, restricted, research = catalogue
    research.user_set.add(alice)
    ops = Group.objects.create(name="Ops")
    ops.user_set.add(bob)
    only_ops = ChatModel.objects.create(
        provider=open_model.provider, upstream_id="ops", display_name="Ops model"
    )
    only_ops.allowed_groups.add(ops)
    off = ChatModel.objects.create(
        provider=open_model.provider, upstream_id="off", display_name="Off", enabled=False
    )
    # get_model reads the model and its provider in plain SQL: a disabled provider must
    # hide its models there as it does in the list (ChatModel.objects.usable()).
    offline = make_model("http://127.0.0.1:8/v1", display_name="Offline provider's")
    Provider.objects.filter(pk=offline.provider_id).update(enabled=False)
    root = make_user("root", is_superuser=True, is_staff=True)
    checked = 0
    for person in (alice, bob, root, AnonymousUser()):
        listed = set(access.models_for(person))
        for model in (open_model, restricted, only_ops, off, offline):
            assert (access.get_model(person, model.pk) is not None) == (model in listed)
            checked += 1
    assert checked == 20
    assert access.get_model(alice, restricted.pk) == restricted
    assert access.get_model(bob, restricted.pk) is None


def test_get_model_reads_every_field_as_the_orm_does(alice, catalogue):
    """Plain SQL, converted by hand: JSON, booleans, dates, decimals and the encrypted key
    must come out as the ORM's instances have them."""
    open_model, _, _ = catalogue
    provider = open_model.provider
    provider.set_api_key("sk-secret-key-0123456789")
    provider.save()
    open_model.default_params = {"temperature": 0.3, "stop": ["END"]}
    open_model.input_price_per_mtok = Decimal("1.25")
    open_model.save()
    expected = ChatModel.objects.select_related("provider").get(pk=open_model.pk)

    found = access.get_model(alice, open_model.pk)

    assert found is not None
    for field in ChatModel._meta.concrete_fields:
        assert getattr(found, field.attname) == getattr(expected, field.attname), field.name
    for field in Provider._meta.concrete_fields:
        assert getattr(found.provider, field.attname) == getattr(expected.provider, field.attname)
    assert found.default_params == {"temperature": 0.3, "stop": ["END"]}
    assert found.input_price_per_mtok == Decimal("1.25")
    assert found.provider.created_at == expected.provider.created_at
    assert found.provider.config() == expected.provider.config()
    assert found.provider.config().api_key == "sk-secret-key-0123456789"


def test_the_picker_offers_only_the_models_a_person_may_use(alice, bob, catalogue):
    _, restricted, research = catalogue
    research.user_set.add(alice)
    pages = {}
    for person in (alice, bob):
        client = Client()
        client.force_login(person)
        pages[person.username] = client.get("/").content.decode()
    assert f'<option value="{restricted.pk}"' in pages["alice"]
    assert "Research model" in pages["alice"]
    assert f'<option value="{restricted.pk}"' not in pages["bob"]
    assert "Research model" not in pages["bob"]


def test_the_picker_shows_superusers_restricted_models(db, catalogue):
    client = Client()
    client.force_login(make_user("root", is_superuser=True, is_staff=True))
    assert "Research model" in client.get("/").content.decode()


def test_a_conversation_whose_model_was_restricted_falls_back_to_an_allowed_one(alice, catalogue):
    open_model, restricted, research = catalogue
    research.user_set.add(alice)
    conversation = make_conversation(alice, restricted)
    choose = async_to_sync(submissions.choose_model)
    assert choose(alice, None, conversation) == restricted
    research.user_set.remove(alice)
    assert choose(alice, None, conversation) == open_model


def test_the_default_is_skipped_when_it_is_restricted(alice, catalogue):
    open_model, restricted, _ = catalogue
    restricted.is_default = True
    restricted.save()  # the open model is no longer the default
    assert async_to_sync(submissions.choose_model)(alice, None, None) == open_model


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fast_streams")
async def test_a_restricted_model_id_over_the_websocket_is_refused_and_nothing_is_sent(
    alice, upstream
):
    _, restricted, _ = await sync_to_async(models_with_research)(upstream.url)
    socket, _, _ = await open_socket(alice)
    await socket.send_to(text_data=send_frame("hi", model=restricted.pk))
    frame = await socket.receive_from(timeout=5)
    await socket.disconnect()
    assert "not available to you" in frame and 'role="alert"' in frame
    assert upstream.requests == []
    assert not await Message.objects.aexists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fast_streams")
async def test_a_member_may_use_the_restricted_model_over_the_websocket(alice, upstream):
    upstream.script(Scripted(chunks=chat_completion_stream(["ok"])))
    _, restricted, research = await sync_to_async(models_with_research)(upstream.url)
    await sync_to_async(research.user_set.add)(alice)
    socket, _, _ = await open_socket(alice)
    await socket.send_to(text_data=send_frame("hi", model=restricted.pk))
    await frames_until(socket, r'data-role="assistant" data-status="complete"')
    await socket.disconnect()
    answer = await Message.objects.aget(role="assistant")
    assert answer.model_id == restricted.pk
    assert upstream.requests[0].json["model"] == "big"


def test_the_model_admin_lets_staff_choose_the_allowed_groups(db, catalogue):
    _, restricted, _ = catalogue
    client = Client()
    client.force_login(make_user("root", is_superuser=True, is_staff=True))
    page = client.get(f"/admin/conversations/chatmodel/{restricted.pk}/change/").content.decode()
    assert 'name="allowed_groups"' in page and "selectfilter" in page
    assert client.get("/admin/conversations/budget/add/").status_code == 200
