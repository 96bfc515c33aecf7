"""Sign-in throttling: per username and per address, 429 with a plain message, then recovery."""

from __future__ import annotations

import time

import pytest
from django.test import Client

from conversations import login_throttle
from tests.conftest import PASSWORD, make_user

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"
ADMIN_LOGIN = "/admin/login/"
REFUSAL = "Too many failed sign-in attempts. Try again in 15 minutes."


def attempt(username: str, password: str, address: str = "10.0.0.1", url: str = LOGIN):
    return Client().post(url, {"username": username, "password": password}, REMOTE_ADDR=address)


def fail(times: int, username: str = "alice", address: str = "10.0.0.1", url: str = LOGIN):
    for _ in range(times):
        assert attempt(username, "wrong password", address, url).status_code == 200


def test_five_failures_lock_the_username_with_a_clear_429(alice):
    fail(5)
    response = attempt("alice", PASSWORD)
    assert response.status_code == 429
    page = response.content.decode()
    assert REFUSAL in page and 'data-testid="login-throttled"' in page
    assert "_auth_user_id" not in response.client.session


def test_the_lock_holds_for_the_username_from_any_address_and_any_letter_case(alice):
    fail(5, address="10.0.0.1")
    assert attempt("alice", PASSWORD, address="10.9.9.9").status_code == 429
    assert attempt("ALICE", PASSWORD, address="10.9.9.8").status_code == 429


def test_failures_spread_over_usernames_lock_the_address(alice, bob):
    for name in ("carol", "dave", "erin", "frank", "grace"):
        fail(1, username=name, address="10.0.0.7")
    assert attempt("bob", PASSWORD, address="10.0.0.7").status_code == 429
    assert attempt("bob", PASSWORD, address="10.0.0.8").status_code == 302


def test_four_failures_still_let_the_right_password_in_and_reset_the_count(alice):
    fail(4)
    assert attempt("alice", PASSWORD, address="10.0.0.2").status_code == 302
    fail(4, address="10.0.0.3")
    assert attempt("alice", PASSWORD, address="10.0.0.4").status_code == 302


def test_the_limit_comes_from_settings(alice, settings):
    settings.LOGIN_FAILURES_LIMIT = 2
    fail(2)
    assert attempt("alice", PASSWORD).status_code == 429


def test_the_lock_ends_with_its_window(alice, settings):
    settings.LOGIN_FAILURES_WINDOW = 1
    fail(5)
    assert attempt("alice", PASSWORD).status_code == 429
    time.sleep(1.2)
    assert attempt("alice", PASSWORD).status_code == 302


def test_the_message_counts_the_minutes_left():
    assert login_throttle.Lockout(899).message == REFUSAL
    assert login_throttle.Lockout(30).message.endswith("Try again in 1 minute.")


def test_the_admin_login_is_throttled_too(settings):
    make_user("root", is_staff=True, is_superuser=True)
    fail(5, username="root", url=ADMIN_LOGIN)
    response = attempt("root", PASSWORD, url=ADMIN_LOGIN)
    assert response.status_code == 429
    assert REFUSAL in response.content.decode()


def test_a_right_password_refused_by_the_admin_is_not_a_failure(alice):
    for _ in range(6):  # alice is not staff: the admin turns her away, without counting
        assert attempt("alice", PASSWORD, url=ADMIN_LOGIN).status_code == 200
    assert attempt("alice", PASSWORD).status_code == 302


def test_a_locked_attempt_never_checks_the_password(alice, django_assert_num_queries):
    fail(5)
    with django_assert_num_queries(0):
        response = Client().post(
            LOGIN, {"username": "alice", "password": PASSWORD}, REMOTE_ADDR="10.0.0.1"
        )
    assert response.status_code == 429


def test_counters_key_on_hashes_never_on_raw_usernames():
    login_throttle.record_failure("alice@example.com", "10.0.0.1")
    keys = login_throttle._subjects("alice@example.com", "10.0.0.1")
    assert all("alice" not in key and "10.0.0.1" not in key for key in keys)
    assert login_throttle.lockout("alice@example.com", "") is None
