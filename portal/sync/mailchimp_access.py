"""A connector's way into Mailchimp: its API key, its client, and the key check of the wizard (R5, R20)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from flask import current_app, has_request_context
from flask_babel import gettext as _

from portal.extensions import redis_store
from portal.mailchimp import MailchimpError, decrypt_secret, mask_api_key
from portal.models import Connector
from portal.sync import ConnectorError

if TYPE_CHECKING:  # the adapter loads mailchimp3 on first use only
    from portal.mailchimp.client import MailchimpClient


def api_key_of(connector: Connector) -> str:
    """The connector's API key, decrypted (never log or show it)."""
    return decrypt_secret(connector.api_key_encrypted, current_app.config["FERNET_KEY"])


def client_for(connector_or_api_key: Connector | str, *, timeout: float | None = None,
               retries: bool | None = None, bulk: bool = False) -> MailchimpClient:
    """A Mailchimp client for a connector (or a bare API key), configured from the app.

    Base URL from ``MAILCHIMP_API_BASE`` (None: Mailchimp itself) and the cross-process limit
    of ``MAILCHIMP_MAX_CONNECTIONS`` connections per key through Redis (R20).

    Inside a web request the client is short by default (issue 13: no page waits on a slow
    Mailchimp): one attempt per call, read timeout ``MAILCHIMP_WEB_TIMEOUT``, a short wait for
    a connection slot. Elsewhere (workers, commands): read timeout ``MAILCHIMP_TIMEOUT`` and
    retries with backoff. `timeout` and `retries` override either. ``bulk=True`` (bulk work: the
    copy, a bulk change pushed by live replication, reconciliation, the activity import) also
    keeps to ``MAILCHIMP_BULK_CONNECTIONS`` of them, so that single live edits always find a
    connection.
    """
    from portal.mailchimp import MailchimpClient, RetryPolicy

    key = api_key_of(connector_or_api_key) if isinstance(connector_or_api_key, Connector) else connector_or_api_key
    config = current_app.config
    web = has_request_context()
    if retries is None:
        retries = not web
    default = config["MAILCHIMP_WEB_TIMEOUT"] if web else config["MAILCHIMP_TIMEOUT"]
    read = float(timeout if timeout is not None else default)
    return MailchimpClient(
        key, base_url=config["MAILCHIMP_API_BASE"], timeout=(min(3.05, read), read),
        redis=redis_store.redis, max_connections=config["MAILCHIMP_MAX_CONNECTIONS"],
        retry=RetryPolicy() if retries else RetryPolicy(max_attempts=1),
        slot_timeout=120.0 if retries else min(2.0, read),
        bulk_limit=config["MAILCHIMP_BULK_CONNECTIONS"] if bulk else None,
    )


def no_answer() -> ConnectorError:
    """The error a page shows when Mailchimp did not answer a web request in time (or was unreachable)."""
    return ConnectorError(_("Mailchimp does not answer right now. Try again in a few minutes."))


def check_api_key(api_key: str) -> dict:
    """Check a key by listing its audiences (one call, a short timeout, no retry): ``{"account", "audiences": [...]}``.

    Raises :class:`~portal.mailchimp.MailchimpError` for a bad key, and ConnectorError ("Mailchimp
    does not answer") when Mailchimp is slow or unreachable: the wizard's page never waits long.
    """
    config = current_app.config
    try:
        with client_for(api_key.strip(), timeout=config["MAILCHIMP_WEB_TIMEOUT"], retries=False) as client:
            audiences = client.get_lists()
    except MailchimpError as exc:
        if exc.kind in ("timeout", "unavailable", "rate_limited"):
            raise no_answer() from exc
        raise
    return {
        "account": mask_api_key(api_key.strip()),
        "audiences": [{"id": a["id"], "name": a["name"], "member_count": a["member_count"]} for a in audiences],
    }
