"""`manage.py bootstrap`: first admin account, the offline demo models, orphaned answers settled."""

from __future__ import annotations

import os
import secrets
from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from conversations import leases
from conversations.models import ChatModel, Provider

Fields = dict[str, Any]

# (provider name, protocol, upstream model id, display name, model fields)
VISION: Fields = {"supports_vision": True}
DEMO_MODELS: list[tuple[str, str, str, str, Fields]] = [
    (
        "Demo (offline)",
        "openai-chat",
        "demo",
        "Demo",
        {**VISION, "supports_json_mode": True, "supports_tools": True},
    ),
    (
        "Demo (offline)",
        "openai-chat",
        "demo-reasoning",
        "Demo Reasoning",
        {
            "supports_reasoning": True,
            "supports_json_mode": True,
            "default_params": {"reasoning_effort": "medium"},
        },
    ),
    (
        "Demo Anthropic (offline)",
        "anthropic-messages",
        "demo",
        "Demo Anthropic",
        {**VISION, "supports_reasoning": True, "default_params": {"thinking_budget": 1024}},
    ),
    (
        "Demo Responses (offline)",
        "openai-responses",
        "demo",
        "Demo Responses",
        {
            **VISION,
            "supports_reasoning": True,
            "supports_json_mode": True,
            "default_params": {"reasoning_effort": "low"},
        },
    ),
]


class Command(BaseCommand):
    help = "Prepare a fresh install: admin account, demo models, interrupted answers."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))

    def handle(self, *args: Any, **options: Any) -> None:
        interrupted = leases.sweep()
        if interrupted:
            self.stdout.write(
                f"Marked {len(interrupted)} interrupted answer(s) from a previous run."
            )
        self._first_admin()
        if settings.DEMO_UPSTREAM_ENABLED:
            self._demo_models(options["port"])

    def _first_admin(self) -> None:
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            return
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser(username="admin", email="", password=password)
        bar = "=" * 60
        self.stdout.write(
            f"\n{bar}\n  First admin account created (shown only this once):\n"
            f"    username: admin\n    password: {password}\n{bar}\n"
        )

    @transaction.atomic
    def _demo_models(self, port: int) -> None:
        base = f"http://127.0.0.1:{port}/demo-upstream/v1"
        had_default = ChatModel.objects.filter(is_default=True).exists()
        for order, (name, protocol, upstream_id, display, caps) in enumerate(DEMO_MODELS):
            provider, _ = Provider.objects.update_or_create(
                name=name,
                defaults={
                    "protocol": protocol,
                    "base_url": base.removesuffix("/v1")
                    if protocol == "anthropic-messages"
                    else base,
                },
            )
            ChatModel.objects.get_or_create(
                provider=provider,
                upstream_id=upstream_id,
                defaults={"display_name": display, "sort_order": order, **caps},
            )
        if not had_default:
            ChatModel.objects.filter(provider__name=DEMO_MODELS[0][0], upstream_id="demo").update(
                is_default=True
            )
        self.stdout.write(f"Demo models ready (offline upstream at {base}).")
