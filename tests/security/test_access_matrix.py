"""Who may reach what: every URL pattern of the project, for the owner of the objects it names,
another user, a staff member and an anonymous visitor."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from conversations.models import Attachment, Conversation, Message, Share, User
from tests.security.conftest import SECRET_TEXT, SECRET_TITLE, World, fetch
from tests.security.routes import Route, all_routes

pytestmark = pytest.mark.django_db

# Reachable without signing in. Shared links (patterns with a <token>) are decided by the
# share's visibility instead; static files and the demo upstream are not Django URLs.
PUBLIC_NAMES = {"login", "logout", "healthz", "admin:login"}
PUBLIC_PATTERNS = {"admin/login/"}  # the throttled admin login, in front of the admin's own
LOGIN = "/accounts/login/"
ADMIN_LOGIN = "/admin/login/"
ROUTES = all_routes()


def kind(route: Route) -> str:
    if route.name in PUBLIC_NAMES or route.pattern in PUBLIC_PATTERNS:
        return "public"
    if "token" in route.params:
        return "shared-link"
    return "admin" if route.is_admin else "app"


def redirected_to(status: int, location: str, target: str) -> bool:
    return status == 302 and location.startswith(target)


def anonymous_problems(client: Any, route: Route, url: str) -> list[str]:
    found, problems = kind(route), []
    for method in ("get", "post"):
        status, location, _ = fetch(client, method, url)
        if found == "public":
            ok = status < 500
        elif found == "shared-link":  # a team link: no content without signing in
            ok = redirected_to(status, location, LOGIN) or status in (404, 405)
        elif found == "admin":
            ok = method == "post" or to_admin_login(status, location, url)
        else:
            ok = redirected_to(status, location, LOGIN)
        if not ok:
            problems.append(f"{method.upper()} {url}: {status} {location}")
    return problems


def non_owner_problems(client: Any, route: Route, url: str) -> list[str]:
    """Another user, or staff outside the admin: the owner's things look like missing ones."""
    found = kind(route)
    if found in ("public", "admin"):
        return []
    if found == "shared-link":  # a team link is for every signed-in member: no leak to check
        status = fetch(client, "get", url)[0]
        return [f"GET {url}: {status}"] if status >= 500 else []
    answers = {method: fetch(client, method, url) for method in ("get", "post")}
    problems = [
        f"{m.upper()} {url}: {status}" for m, (status, _, _) in answers.items() if status >= 500
    ]
    problems += [
        f"{m.upper()} {url} shows the owner's conversation"
        for m, (_, _, body) in answers.items()
        if SECRET_TITLE.encode() in body or SECRET_TEXT.encode() in body
    ]
    statuses = {status for status, _, _ in answers.values()}
    if route.params and not (statuses <= {404, 405} and 404 in statuses):
        problems.append(f"{url}: GET/POST answered {sorted(statuses)}, expected 404")
    return problems


def to_admin_login(status: int, location: str, url: str) -> bool:
    # The admin's logout sends visitors who are not signed in to its index, then to login.
    target = "/admin/" if url == "/admin/logout/" else ADMIN_LOGIN
    return redirected_to(status, location, target)


def non_staff_admin_problems(client: Any, route: Route, url: str) -> list[str]:
    if kind(route) != "admin":
        return []
    status, location, _ = fetch(client, "get", url)
    return [] if to_admin_login(status, location, url) else [f"GET {url}: {status} {location}"]


def owner_problems(client: Any, route: Route, url: str) -> list[str]:
    found = kind(route)
    if found == "admin":
        return non_staff_admin_problems(client, route, url)
    status, location, _ = fetch(client, "get", url)
    if found == "app" and (status not in (200, 302, 405) or redirected_to(status, location, LOGIN)):
        return [f"GET {url}: {status} {location}"]
    return [f"GET {url}: {status}"] if status >= 500 else []


def staff_admin_problems(client: Any, route: Route, url: str) -> list[str]:
    if kind(route) != "admin":
        return []
    status, location, _ = fetch(client, "get", url)
    if status >= 500 or redirected_to(status, location, ADMIN_LOGIN):
        return [f"GET {url}: {status} {location}"]
    return []


Check = Callable[[Any, Route, str], list[str]]


def run(world: World, user: User | None, *checks: Check) -> None:
    """Every check on every route, with one client signed in as `user`."""
    client = world.client(user)
    problems = [
        p
        for route in ROUTES
        for check in checks
        for p in check(client, route, route.url(world.value))
    ]
    assert not problems, "\n".join(problems)
    conversation = Conversation.objects.get(pk=world.conversation.pk)
    assert (conversation.title, conversation.archived) == (SECRET_TITLE, False)
    assert Message.objects.filter(conversation=conversation).count() == 2
    assert Share.objects.get(pk=world.share.pk).revoked_at is None
    assert Attachment.objects.filter(pk=world.attachment.pk).exists()


def test_the_walk_finds_the_project_and_admin_patterns():
    names = {route.name for route in ROUTES}
    assert {"home", "conversation", "attachment_file", "login", "admin:index"} <= names
    assert len(ROUTES) > 40
    assert {kind(route) for route in ROUTES} == {"public", "shared-link", "admin", "app"}


def test_every_url_can_be_filled_with_the_owners_ids(world):
    urls = [route.url(world.value) for route in ROUTES]
    assert all(url.startswith("/") and "<" not in url and "(?P" not in url for url in urls)


def test_anonymous_visitors_are_sent_to_a_login_page_everywhere_but_the_allowlist(world):
    run(world, None, anonymous_problems)


def test_another_user_gets_404_for_the_owners_things_and_no_admin(world):
    run(world, world.other, non_owner_problems, non_staff_admin_problems)


def test_staff_get_no_bypass_in_the_app_and_every_admin_page_renders(world):
    run(world, world.staff, non_owner_problems, staff_admin_problems)


def test_the_owner_reaches_every_page_of_their_own_and_no_admin_page(world):
    run(world, world.owner, owner_problems)
