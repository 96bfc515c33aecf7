"""Encryption at rest for provider API keys (Fernet, rotatable keys from the environment)."""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class DecryptionError(Exception):
    """Stored ciphertext could not be read with any configured key."""


@lru_cache(maxsize=1)
def _fernet() -> MultiFernet:
    keys = list(settings.ENCRYPTION_KEYS) or [_derived_key(settings.SECRET_KEY)]
    return MultiFernet([Fernet(key) for key in keys])


def _derived_key(secret: str) -> str:
    # Without ENCRYPTION_KEYS the key comes from SECRET_KEY, so a fresh install works;
    # production sets ENCRYPTION_KEYS so the two secrets can rotate independently.
    digest = hashlib.sha256(b"teamchat-provider-keys:" + secret.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()


def encrypt(plaintext: str) -> str:
    if not plaintext:
        return ""
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    if not ciphertext:
        return ""
    try:
        return _fernet().decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise DecryptionError(
            "the stored API key cannot be decrypted with ENCRYPTION_KEYS"
        ) from None


def rotate(ciphertext: str) -> str:
    """Re-encrypt with the first (newest) key."""
    return _fernet().rotate(ciphertext.encode()).decode() if ciphertext else ""


def reset_cache() -> None:
    _fernet.cache_clear()
