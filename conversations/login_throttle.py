"""Sign-in throttling: failed attempts counted per username and per address in the cache."""

from __future__ import annotations

import functools
import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import cache
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.http import HttpRequest
from django.http.response import HttpResponseBase

THROTTLED = "throttled"  # the form error code of a refused attempt
TOO_MANY_REQUESTS = 429


@dataclass(frozen=True)
class Lockout:
    seconds_left: float

    @property
    def message(self) -> str:
        minutes = max(1, math.ceil(self.seconds_left / 60))
        unit = "minute" if minutes == 1 else "minutes"
        return f"Too many failed sign-in attempts. Try again in {minutes} {unit}."


def _key(kind: str, value: str) -> str:
    # Hashed: usernames never sit in the cache, and any input makes a valid key.
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"login-failures:{kind}:{digest}"


def _subjects(username: str, address: str) -> list[str]:
    keys = [_key("user", username.strip().casefold())] if username.strip() else []
    return keys + ([_key("addr", address)] if address else [])


def lockout(username: str, address: str) -> Lockout | None:
    """The lockout in force for this username or address, if either has failed too often."""
    keys = _subjects(username, address)
    found = cache.get_many([*keys, *(f"{key}:until" for key in keys)])
    now = time.time()
    ends = [
        float(found.get(f"{key}:until", now))
        for key in keys
        if found.get(key, 0) >= settings.LOGIN_FAILURES_LIMIT
    ]
    return Lockout(max(ends) - now) if ends else None


def record_failure(username: str, address: str) -> None:
    """Count one failed attempt; each count lives one window from its first failure."""
    window = settings.LOGIN_FAILURES_WINDOW
    for key in _subjects(username, address):
        cache.add(f"{key}:until", time.time() + window, window)
        if cache.add(key, 1, window):
            continue
        try:
            cache.incr(key)
        except ValueError:  # expired between the two calls: this failure starts a window
            cache.set(key, 1, window)


def clear(username: str) -> None:
    """A successful sign-in forgets the username's failures (not the address's)."""
    keys = _subjects(username, "")
    cache.delete_many([*keys, *(f"{key}:until" for key in keys)])


def client_address(request: HttpRequest | None) -> str:
    # Behind a proxy, daphne's --proxy-headers puts the client's address here.
    return str(request.META.get("REMOTE_ADDR", "")) if request is not None else ""


class ThrottledLoginMixin:
    """For AuthenticationForm subclasses: refuse while locked out, count failures."""

    request: HttpRequest | None
    data: Any

    def clean(self) -> dict[str, Any]:
        username = str(self.data.get("username", ""))
        address = client_address(self.request)
        refused = lockout(username, address)
        if refused is not None:
            raise ValidationError(refused.message, code=THROTTLED)
        try:
            cleaned: dict[str, Any] = super().clean()  # type: ignore[misc]
        except ValidationError as error:
            # Only a wrong password counts, not a right one refused (inactive, not staff).
            if error.code == "invalid_login" and getattr(self, "user_cache", None) is None:
                record_failure(username, address)
            raise
        clear(username)
        return cleaned


class LoginForm(ThrottledLoginMixin, AuthenticationForm):
    pass


class AdminLoginForm(ThrottledLoginMixin, AdminAuthenticationForm):
    pass


def throttled(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Wrap a login view using one of these forms: a refused attempt answers 429."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        response = view(request, *args, **kwargs)
        context = getattr(response, "context_data", None) or {}
        form = context.get("form")
        if isinstance(form, AuthenticationForm) and form.has_error(NON_FIELD_ERRORS, THROTTLED):
            response.status_code = TOO_MANY_REQUESTS
            context["throttled"] = form.non_field_errors()[0]
        return response

    return wrapper
