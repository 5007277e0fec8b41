"""The Mailchimp adapter: the only code in the portal that imports ``mailchimp3``.

- :mod:`.client` — :class:`MailchimpClient` (pooled, timed, rate-limited, retrying, typed errors);
- :mod:`.errors` — :class:`MailchimpError`, :func:`classify`, :func:`classify_batch_error`;
- :mod:`.payload` — pure member-body building, error prediction, diffs, fingerprints, tag changes;
- :mod:`.ratelimit` — the Redis semaphore (10 connections per API key, all processes);
- :mod:`.crypto` — API keys at rest (Fernet) and their masked form.

No Flask, no models: everything takes plain arguments, so jobs, the CLI and benchmarks use it
alike. Nothing runs at import; the client module (and ``mailchimp3``) loads on first use.
"""
from __future__ import annotations

from typing import Any

from portal.mailchimp.crypto import decrypt_secret, encrypt_secret, mask_api_key
from portal.mailchimp.errors import MailchimpError, classify, classify_batch_error, message_for
from portal.mailchimp.payload import FieldMapping, build_member, subscriber_hash

__all__ = [
    "BATCH_LIMIT", "FieldMapping", "MailchimpClient", "MailchimpError", "RetryPolicy",
    "build_member", "classify", "classify_batch_error", "decrypt_secret", "encrypt_secret",
    "mask_api_key", "message_for", "subscriber_hash",
]

_LAZY = {"MailchimpClient", "RetryPolicy", "BATCH_LIMIT", "CallStats"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from portal.mailchimp import client

        return getattr(client, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
