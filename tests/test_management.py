"""The `providers` and `bootstrap` commands."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from conversations import crypto
from conversations.models import ChatModel, Provider, User

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_providers_add_stores_an_encrypted_key_and_models():
    run(
        "providers",
        "add",
        "--name",
        "OpenAI",
        "--protocol",
        "openai-chat",
        "--base-url",
        "https://api.openai.com/v1",
        "--api-key",
        "sk-live-123",
        "--model",
        "gpt-4o=GPT-4o",
        "--model",
        "gpt-4o-mini",
    )
    provider = Provider.objects.get(name="OpenAI")
    assert "sk-live-123" not in provider.api_key_encrypted
    assert crypto.decrypt(provider.api_key_encrypted) == "sk-live-123"
    names = dict(ChatModel.objects.values_list("upstream_id", "display_name"))
    assert names == {"gpt-4o": "GPT-4o", "gpt-4o-mini": "gpt-4o-mini"}


def test_providers_list_never_prints_the_key():
    run(
        "providers",
        "add",
        "--name",
        "Gw",
        "--protocol",
        "anthropic-messages",
        "--base-url",
        "https://gw.example",
        "--api-key",
        "sk-secret-xyz",
        "--model",
        "claude",
    )
    listing = run("providers", "list")
    assert "Gw: anthropic-messages https://gw.example [key set]" in listing
    assert "claude" in listing and "sk-secret-xyz" not in listing
    assert Provider.objects.get(name="Gw").auth_scheme == "x-api-key"


def test_providers_add_rejects_a_bad_url():
    with pytest.raises(CommandError):
        run(
            "providers",
            "add",
            "--name",
            "Bad",
            "--protocol",
            "openai-chat",
            "--base-url",
            "not a url",
        )


def test_bootstrap_creates_one_admin_and_the_demo_models_once():
    first = run("bootstrap", "--port", "8123")
    second = run("bootstrap", "--port", "8123")
    assert "password:" in first and "password:" not in second
    admin = User.objects.get(username="admin")
    password = first.split("password:")[1].split()[0]
    assert admin.is_superuser and admin.check_password(password)
    default = ChatModel.site_default()
    assert default is not None and default.display_name == "Demo"
    assert default.provider.base_url == "http://127.0.0.1:8123/demo-upstream/v1"
    assert ChatModel.objects.filter(provider__protocol="anthropic-messages").exists()
