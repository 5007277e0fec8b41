"""API keys at rest: Fernet encryption, and a masked form safe to show or log.

The Fernet key comes from the environment (the app reads it in its config and passes it in;
``generate_key`` makes a dev key to store under ``instance/``). Nothing here reads files or
environment variables itself.
"""
from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken

__all__ = ["InvalidToken", "decrypt_secret", "encrypt_secret", "generate_key", "mask_api_key"]

_MASK = "••••••••"


def generate_key() -> str:
    """A fresh Fernet key (urlsafe base64 text), e.g. for a development ``instance/`` file."""
    return Fernet.generate_key().decode("ascii")


def _fernet(key: str | bytes) -> Fernet:
    return Fernet(key.encode("ascii") if isinstance(key, str) else key)


def encrypt_secret(plaintext: str, key: str | bytes) -> str:
    """Encrypt ``plaintext`` with the Fernet ``key``; returns text to store in the database."""
    return _fernet(key).encrypt(plaintext.encode("utf-8")).decode("ascii")


def decrypt_secret(token: str, key: str | bytes) -> str:
    """Decrypt a value made by :func:`encrypt_secret`.

    Raises :class:`cryptography.fernet.InvalidToken` when the key is wrong or the value was
    tampered with (re-exported here so callers need not import ``cryptography``).
    """
    return _fernet(key).decrypt(token.encode("ascii")).decode("utf-8")


def mask_api_key(api_key: str | None) -> str:
    """A hint that identifies a key without revealing it: ``••••••••1234-us6``.

    Shows at most the last four characters of the secret part plus the datacenter suffix;
    a short or malformed key shows nothing of its secret part.
    """
    if not api_key:
        return ""
    secret, dash, datacenter = api_key.strip().rpartition("-")
    if not dash:
        secret, datacenter = api_key.strip(), ""
    visible = secret[-4:] if len(secret) >= 16 else ""
    return f"{_MASK}{visible}" + (f"-{datacenter}" if datacenter and len(datacenter) <= 8 else "")
