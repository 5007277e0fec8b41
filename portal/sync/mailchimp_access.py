"""A connector's way into Mailchimp: its API key, its client, and the key check of the wizard (R5, R20)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from flask import current_app

from portal.extensions import redis_store
from portal.mailchimp import decrypt_secret, mask_api_key
from portal.models import Connector

if TYPE_CHECKING:  # the adapter loads mailchimp3 on first use only
    from portal.mailchimp.client import MailchimpClient


def api_key_of(connector: Connector) -> str:
    """The connector's API key, decrypted (never log or show it)."""
    return decrypt_secret(connector.api_key_encrypted, current_app.config["FERNET_KEY"])


def client_for(connector_or_api_key: Connector | str, *, timeout: float | None = None,
               retries: bool = True, bulk: bool = False) -> MailchimpClient:
    """A Mailchimp client for a connector (or a bare API key), configured from the app.

    Base URL from ``MAILCHIMP_API_BASE`` (None: Mailchimp itself), read timeout
    ``MAILCHIMP_TIMEOUT`` (or `timeout`), and the cross-process limit of
    ``MAILCHIMP_MAX_CONNECTIONS`` connections per key through Redis (R20). ``retries=False``
    gives one attempt per call (for web requests, which must never wait long on Mailchimp).
    ``bulk=True`` (the copy's batch calls) also keeps to ``MAILCHIMP_BULK_CONNECTIONS`` of them, so
    that live replication always finds a connection.
    """
    from portal.mailchimp import MailchimpClient, RetryPolicy

    key = api_key_of(connector_or_api_key) if isinstance(connector_or_api_key, Connector) else connector_or_api_key
    config = current_app.config
    read = float(timeout if timeout is not None else config["MAILCHIMP_TIMEOUT"])
    return MailchimpClient(
        key, base_url=config["MAILCHIMP_API_BASE"], timeout=(min(3.05, read), read),
        redis=redis_store.redis, max_connections=config["MAILCHIMP_MAX_CONNECTIONS"],
        retry=RetryPolicy() if retries else RetryPolicy(max_attempts=1),
        slot_timeout=120.0 if retries else read,
        bulk_limit=config["MAILCHIMP_BULK_CONNECTIONS"] if bulk else None,
    )


def check_api_key(api_key: str) -> dict:
    """Check a key (``/ping``) and list its audiences: ``{"account", "audiences": [...]}``.

    Raises :class:`~portal.mailchimp.MailchimpError` for a bad key.
    """
    with client_for(api_key.strip()) as client:
        client.ping()
        audiences = client.get_lists()
    return {
        "account": mask_api_key(api_key.strip()),
        "audiences": [{"id": a["id"], "name": a["name"], "member_count": a["member_count"]} for a in audiences],
    }
