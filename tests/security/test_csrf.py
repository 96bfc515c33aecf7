"""Cross-site requests: every URL refuses a POST without the CSRF token, and the chat
socket refuses pages from other origins (its CSRF equivalent)."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from chatsite.asgi import application
from tests.conftest import PASSWORD
from tests.security.conftest import World, build_world, fetch
from tests.security.routes import all_routes

pytestmark = pytest.mark.django_db


def refusals(world: World, user: object) -> list[str]:
    client = world.client(user, enforce_csrf_checks=True)  # type: ignore[arg-type]
    client.get("/accounts/login/")  # now it holds a CSRF cookie, just not the token
    problems = []
    for route in all_routes():
        url = route.url(world.value)
        status, _, body = fetch(client, "post", url, data={"title": "x"})
        if status != 403 or b"CSRF" not in body:
            problems.append(f"POST {url}: {status}")
    return problems


def test_every_url_refuses_a_signed_in_post_without_the_token(world):
    problems = refusals(world, world.owner)
    assert not problems, "\n".join(problems)


def test_every_url_refuses_an_anonymous_post_without_the_token(world):
    problems = refusals(world, None)
    assert not problems, "\n".join(problems)


def test_the_same_post_with_the_token_is_accepted(world):
    client = world.client(None, enforce_csrf_checks=True)
    client.get("/accounts/login/")
    token = client.cookies["csrftoken"].value
    data = {"username": "owner", "password": PASSWORD, "csrfmiddlewaretoken": token}
    assert client.post("/accounts/login/", data).status_code == 302


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "origin", [b"https://evil.example", b"http://localhost.evil.example", b"null", None]
)
async def test_the_socket_refuses_other_origins_even_with_a_valid_session(origin):
    world = await sync_to_async(build_world)()
    client = await sync_to_async(world.client)(world.owner)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    headers = [(b"host", b"localhost"), (b"cookie", cookie)]
    if origin is not None:
        headers.append((b"origin", origin))
    socket = WebsocketCommunicator(application, "/ws/conversations/", headers=headers)
    connected, _ = await socket.connect(timeout=5)
    assert not connected
    await socket.disconnect()
