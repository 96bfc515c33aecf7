"""Discovers a provider's models from its `GET /models` and records the new ones."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from asgiref.sync import async_to_sync

from conversations.models import ChatModel, Provider
from conversations.providers import get_protocol
from conversations.providers.discovery import DiscoveredModel, discover_models


@dataclass(frozen=True)
class SyncResult:
    added: list[str]
    known: list[str]


async def _fetch(provider: Provider) -> list[DiscoveredModel]:
    async with httpx.AsyncClient() as client:
        return await discover_models(client, get_protocol(provider.protocol), provider.config())


def sync_models(provider: Provider, *, enable: bool = False) -> SyncResult:
    """Add models the upstream lists and we lack; existing ones are left as the admin set them.

    New models start disabled unless `enable`: a gateway may list hundreds.
    Raises ProviderError when the upstream cannot be asked.
    """
    found = async_to_sync(_fetch)(provider)
    existing = set(provider.chat_models.values_list("upstream_id", flat=True))
    added = [m for m in found if m.id not in existing]
    ChatModel.objects.bulk_create(
        ChatModel(
            provider=provider, upstream_id=m.id, display_name=m.display_name[:100], enabled=enable
        )
        for m in added
    )
    return SyncResult(added=[m.id for m in added], known=sorted(existing))
