"""`manage.py providers add|list`: register upstream providers and their models from the shell."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from conversations import crypto
from conversations.model_sync import sync_models
from conversations.models import ChatModel, Provider
from conversations.providers.base import ProviderError


def parse_model_spec(spec: str) -> tuple[str, str]:
    """`ID` or `ID=Display name`."""
    upstream_id, _, display = spec.partition("=")
    upstream_id = upstream_id.strip()
    if not upstream_id:
        raise CommandError(f"--model {spec!r}: the model id is empty")
    return upstream_id, display.strip() or upstream_id


class Command(BaseCommand):
    help = "Add or list upstream LLM providers."

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser("add", help="Add a provider (or update one with the same name)")
        add.add_argument("--name", required=True)
        add.add_argument("--protocol", required=True, choices=Provider.Protocol.values)
        add.add_argument("--base-url", required=True)
        add.add_argument("--api-key", default="")
        add.add_argument(
            "--auth-scheme",
            choices=Provider.AuthScheme.values,
            default=None,
            help="How the key is sent (default: x-api-key for anthropic-messages, else bearer)",
        )
        add.add_argument("--model", action="append", default=[], metavar="ID[=Display name]")
        add.add_argument(
            "--default", action="store_true", help="Make the first model the site default"
        )
        sub.add_parser("list", help="List providers and their models")
        sync = sub.add_parser("sync", help="Discover a provider's models from GET /models")
        sync.add_argument("name")
        sync.add_argument("--enable", action="store_true", help="Enable the new models at once")
        sub.add_parser("rekey", help="Re-encrypt every API key with the first ENCRYPTION_KEYS key")

    def handle(self, *args: Any, **options: Any) -> None:
        actions = {"add": self._add, "list": self._list, "sync": self._sync, "rekey": self._rekey}
        actions[options["action"]](options)

    @transaction.atomic
    def _add(self, options: dict[str, Any]) -> None:
        provider = Provider.objects.filter(name=options["name"]).first() or Provider(
            name=options["name"]
        )
        provider.protocol = options["protocol"]
        provider.base_url = options["base_url"].strip()
        provider.auth_scheme = options["auth_scheme"] or (
            "x-api-key" if provider.protocol == "anthropic-messages" else "bearer"
        )
        if options["api_key"]:
            provider.set_api_key(options["api_key"])
        try:
            provider.full_clean()
        except ValidationError as exc:
            raise CommandError(
                "; ".join(f"{k}: {', '.join(v)}" for k, v in exc.message_dict.items())
            ) from None
        provider.save()
        specs = [parse_model_spec(spec) for spec in options["model"]]
        for upstream_id, display in specs:
            ChatModel.objects.update_or_create(
                provider=provider, upstream_id=upstream_id, defaults={"display_name": display}
            )
        if options["default"] and specs:
            ChatModel.objects.update(is_default=False)
            ChatModel.objects.filter(provider=provider, upstream_id=specs[0][0]).update(
                is_default=True
            )
        self.stdout.write(
            self.style.SUCCESS(f"Provider {provider.name!r} saved with {len(specs)} model(s).")
        )

    def _sync(self, options: dict[str, Any]) -> None:
        provider = Provider.objects.filter(name=options["name"]).first()
        if provider is None:
            raise CommandError(f"No provider named {options['name']!r} (see `providers list`).")
        try:
            result = sync_models(provider, enable=options["enable"])
        except ProviderError as exc:
            raise CommandError(f"{provider.name}: {exc.message}") from None
        state = "enabled" if options["enable"] else "disabled; enable them in the admin"
        self.stdout.write(
            f"{provider.name}: {len(result.added)} new model(s) ({state}), {len(result.known)} already known."
        )
        for upstream_id in result.added:
            self.stdout.write(f"  + {upstream_id}")

    @transaction.atomic
    def _rekey(self, options: dict[str, Any]) -> None:
        providers = list(Provider.objects.exclude(api_key_encrypted=""))
        for provider in providers:
            provider.api_key_encrypted = crypto.rotate(provider.api_key_encrypted)
            provider.save(update_fields=["api_key_encrypted"])
        self.stdout.write(f"Re-encrypted {len(providers)} API key(s) with the first key.")

    def _list(self, options: dict[str, Any]) -> None:
        for provider in Provider.objects.prefetch_related("chat_models"):
            key = "key set" if provider.has_api_key else "no key"
            state = "" if provider.enabled else " (disabled)"
            self.stdout.write(
                f"{provider.name}{state}: {provider.protocol} {provider.base_url} [{key}]"
            )
            for model in provider.chat_models.all():
                flags = " default" if model.is_default else ""
                flags += "" if model.enabled else " disabled"
                self.stdout.write(f"  - {model.upstream_id} = {model.display_name}{flags}")
