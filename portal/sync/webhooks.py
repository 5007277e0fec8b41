"""Our audience webhook (R21): registered on the connector's audience, and every event it receives
stored before anything else happens.

**Registration.** When a connector becomes active (end of its first copy), when it is reconnected,
when someone asks to re-register it, and when a failed registration is 15 minutes old (the
minute sweep), :func:`register` makes the audience hold exactly one
webhook of ours: URL ``PUBLIC_BASE_URL/webhooks/mailchimp/<secret>`` (Mailchimp signs nothing:
the per-connector secret in the URL is the authentication, API-NOTES §6.3), events subscribe,
unsubscribe, profile, upemail and cleaned, sources ``user`` and ``admin`` but never ``api``, so our
own writes do not come back. A webhook of ours that is wrong (old secret, other events or
sources) is replaced. :func:`repair` compares what the audience holds with that and registers it
again (the nightly reconciliation); deleting the connector unregisters it (:func:`unregister`).

**Receiving.** :func:`receive` is all the endpoint does: find the connector by its secret (404 when
unknown), check the body is one of Mailchimp's events in its real format (form-encoded bracket
keys, ``fired_at`` without a zone, API-NOTES §6.4), store it (:class:`~portal.models.WebhookEvent`),
answer. A malformed body (empty, JSON, no or unknown ``type``…) or an event for another audience
is kept as ``rejected`` and answered 400; the same event delivered twice is stored once (its
natural key). Applying the stored events is :mod:`portal.sync.mailchimp_events`, in a job.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import parse_qsl

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, IntegrityError

from portal.extensions import db
from portal.mailchimp import MailchimpError
from portal.models import (Connector, ConnectorStatus, WebhookEvent, WebhookEventStatus, WebhookProblem, utcnow)
from portal.sync.mailchimp_access import client_for

log = logging.getLogger(__name__)

PATH = "/webhooks/mailchimp/"
EVENTS = ("subscribe", "unsubscribe", "profile", "upemail", "cleaned")
"""The events we register (R21). ``campaign`` is left out: nothing in anaba depends on it."""
SOURCES = ("user", "admin")
"""Never ``api``: our own writes must not come back as events."""
KNOWN_TYPES = EVENTS + ("campaign",)
MAX_BODY = 64 * 1024
"""Largest body accepted: a real event is a few hundred bytes (a profile with every merge field, a
few KB)."""
KEEP_REJECTED = 8 * 1024
_EVENT_DEFAULTS = {"natural_key": None, "type": "", "fired_at": None, "list_id": "", "email": "", "body": "",
                   "content_type": "", "remote_addr": "", "status": WebhookEventStatus.RECEIVED, "outcome": "",
                   "contact_id": None, "applied_at": None}
"""How much of a refused body is kept for inspection."""
RETRY_REGISTRATION_SECONDS = 15 * 60
"""How long after a failed registration the minute sweep tries again."""

_REQUIRED = {
    "subscribe": ("data[email]",), "unsubscribe": ("data[email]",), "profile": ("data[email]",),
    "cleaned": ("data[email]",), "upemail": ("data[old_email]", "data[new_email]"), "campaign": (),
}


# --- registration --------------------------------------------------------------------------------

def webhook_url(connector: Connector) -> str:
    """The URL Mailchimp calls for this connector (its secret made on first use)."""
    if not connector.webhook_secret:
        connector.webhook_secret = secrets.token_urlsafe(32)
    return current_app.config["PUBLIC_BASE_URL"] + PATH + connector.webhook_secret


def _ours(url: str) -> bool:
    return str(url or "").startswith(current_app.config["PUBLIC_BASE_URL"] + PATH)


def _secret_in(url: str) -> str:
    return str(url or "").split(PATH, 1)[-1].split("?", 1)[0].strip("/")


def _belongs_to_another(connector: Connector, url: str) -> bool:
    """True when a webhook of ours on this audience is another live connector's (two workspaces may
    share an audience): it must be left alone."""
    secret = _secret_in(url)
    return bool(secret) and db.session.scalar(select(Connector.id).where(
        Connector.webhook_secret == secret, Connector.id != connector.id, Connector.deleted_at.is_(None))) is not None


def problem_with(hook: dict | None, expected_url: str) -> str:
    """What is wrong with the webhook `hook` as Mailchimp lists it ("" when it is as we register it)."""
    if hook is None:
        return WebhookProblem.MISSING
    if hook.get("url") != expected_url:
        return WebhookProblem.WRONG_URL
    events = hook.get("events") or {}
    if {name for name, on in events.items() if on} != set(EVENTS):
        return WebhookProblem.WRONG_EVENTS
    sources = hook.get("sources") or {}
    if {name for name, on in sources.items() if on} != set(SOURCES):
        return WebhookProblem.WRONG_SOURCES
    return ""


def register(connector: Connector, client, *, force: bool = False) -> str:
    """Make the audience hold our webhook as expected, replacing a wrong one (all of them with
    `force`); records the outcome on the connector (not committed). Returns the problem left
    ("" when registered). Never raises for a Mailchimp refusal: it is recorded, and retried later.

    Mailchimp checks the URL with a GET while creating the webhook, and the endpoint finds the
    connector by its secret: a connector without one yet gets it committed first.
    """
    if not connector.webhook_secret:
        webhook_url(connector)
        db.session.commit()
    url = webhook_url(connector)
    now = utcnow()
    try:
        kept = None
        for hook in client.get_webhooks(connector.audience_id):
            if not _ours(hook.get("url", "")) or _belongs_to_another(connector, hook.get("url", "")):
                continue
            if not force and kept is None and not problem_with(hook, url):
                kept = hook
                continue
            try:
                client.delete_webhook(connector.audience_id, hook["id"])
            except MailchimpError as exc:
                if exc.kind != "not_found":
                    raise
        if kept is None:
            kept = client.create_webhook(connector.audience_id, url, EVENTS, SOURCES)
            connector.webhook_registered_at = now
            log.info("connector %s: webhook registered on audience %s", connector.id, connector.audience_id)
        connector.webhook_id = str(kept.get("id") or "") or None
        connector.webhook_url = url
        connector.webhook_problem = ""
    except MailchimpError as exc:
        log.warning("connector %s: webhook not registered (%s: %s)", connector.id, exc.kind, exc.detail)
        connector.webhook_problem = exc.kind or WebhookProblem.MISSING
    connector.webhook_checked_at = now
    return connector.webhook_problem


def register_now(connector_id: int, *, force: bool = False) -> str:
    """Register (or, with `force`, re-register) the webhook of an active connector; commits. The
    problem left ("" when registered)."""
    connector = db.session.get(Connector, connector_id)
    if connector is None or connector.status not in (ConnectorStatus.ACTIVE, ConnectorStatus.COPYING):
        return WebhookProblem.MISSING
    with client_for(connector) as client:
        problem = register(connector, client, force=force)
    db.session.commit()
    return problem


def check(connector: Connector, client) -> str:
    """Compare the audience's webhooks with ours (one GET); the problem found ("" when it is as we
    register it, which is then recorded; a problem is left for :func:`repair` to record)."""
    url = webhook_url(connector)
    hooks = client.get_webhooks(connector.audience_id)
    mine = [h for h in hooks if str(h.get("id")) == str(connector.webhook_id)] or \
           [h for h in hooks if h.get("url") == url]
    problem = problem_with(mine[0] if mine else None, url)
    if not problem:
        connector.webhook_id = str(mine[0].get("id"))
        connector.webhook_problem = ""
        connector.webhook_checked_at = utcnow()
    return problem


def due_for_retry(connector: Connector) -> bool:
    """True unless a registration was tried (and failed) a short while ago: Mailchimp is not asked
    again and again to check a URL it could not reach."""
    checked = connector.webhook_checked_at
    return checked is None or (utcnow() - checked).total_seconds() >= RETRY_REGISTRATION_SECONDS \
        or not connector.webhook_problem


def repair(connector: Connector, client) -> tuple[str, bool]:
    """Check our webhook and register it again when it is missing or wrong (someone deleted it in
    Mailchimp…), unless a registration failed a short while ago. ``(problem found, repaired)``;
    not committed."""
    problem = check(connector, client)
    if not problem:
        return "", False
    if not due_for_retry(connector):
        return problem, False
    return problem, not register(connector, client)


def unregister(connector: Connector, client) -> None:
    """Remove our webhook(s) from the audience (R9), best effort: a failure is logged (not committed)."""
    try:
        for hook in client.get_webhooks(connector.audience_id):
            url = hook.get("url", "")
            if str(hook.get("id")) == str(connector.webhook_id) or (
                    _ours(url) and _secret_in(url) == connector.webhook_secret):
                client.delete_webhook(connector.audience_id, hook["id"])
    except MailchimpError as exc:
        log.warning("connector %s: webhook not unregistered (%s)", connector.id, exc.kind)
    connector.webhook_id = None


def needing_registration() -> list[int]:
    """Active connectors whose webhook is not registered and was last tried a while ago (the sweep)."""
    limit = utcnow().timestamp() - RETRY_REGISTRATION_SECONDS
    rows = db.session.execute(select(Connector.id, Connector.webhook_checked_at).where(
        Connector.status == ConnectorStatus.ACTIVE, Connector.deleted_at.is_(None),
        (Connector.webhook_id.is_(None)) | (Connector.webhook_problem != ""))).all()
    return [cid for cid, checked in rows if checked is None or checked.timestamp() <= limit]


# --- receiving -------------------------------------------------------------------------------------

@dataclass
class ParsedEvent:
    """One Mailchimp event read from its form body (API-NOTES §6.4)."""

    type: str
    fired_at: datetime
    list_id: str
    pairs: list[tuple[str, str]]
    values: dict[str, list[str]] = field(default_factory=dict)

    def get(self, key: str, default: str = "") -> str:
        """The first value of a bracket key (``data[email]``), or `default`."""
        found = self.values.get(key)
        return found[0] if found else default

    def all(self, key: str) -> list[str]:
        """Every value sent for a key (Mailchimp's sample repeats ``data[reason]``)."""
        return list(self.values.get(key) or [])

    def merges(self) -> dict:
        """``data[merges][…]`` as a dict; an address comes as a dict of its parts."""
        merges: dict = {}
        for key, value in self.pairs:
            if not key.startswith("data[merges]["):
                continue
            parts = [p.rstrip("]") for p in key[len("data[merges]["):].split("[")]
            if len(parts) == 1:
                merges.setdefault(parts[0], value)
            elif len(parts) == 2:
                slot = merges.get(parts[0])
                if not isinstance(slot, dict):
                    slot = merges[parts[0]] = {}
                slot.setdefault(parts[1], value)
        return merges

    @property
    def email(self) -> str:
        """The member's address (the old one for an ``upemail``)."""
        return (self.get("data[email]") or self.get("data[old_email]")).strip()

    @property
    def natural_key(self) -> str:
        """Same event, same key: Mailchimp redelivers the same body (same ``fired_at``)."""
        canonical = json.dumps(sorted(self.pairs), ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class Malformed(ValueError):
    """A body that is not one of Mailchimp's events; `.reason` is a short code."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_fired_at(value: str) -> datetime | None:
    """``fired_at`` as Mailchimp sends it (``2009-03-26 21:35:57``, UTC, no zone), or ISO 8601."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def parse_body(text: str) -> ParsedEvent:
    """Read a form-encoded event; :class:`Malformed` when it is not one."""
    if not text.strip():
        raise Malformed("empty")
    try:
        pairs = parse_qsl(text.strip(), keep_blank_values=True, max_num_fields=1000)
    except ValueError:
        raise Malformed("malformed") from None
    values: dict[str, list[str]] = {}
    for key, value in pairs:
        values.setdefault(key, []).append(value)
    kind = (values.get("type") or [""])[0].strip()
    if not kind:
        raise Malformed("no_type")
    if kind not in KNOWN_TYPES:
        raise Malformed("unknown_type")
    fired = parse_fired_at((values.get("fired_at") or [""])[0])
    if fired is None:
        raise Malformed("no_fired_at")
    list_id = (values.get("data[list_id]") or [""])[0].strip()
    if not list_id:
        raise Malformed("no_list_id")
    if any(not (values.get(key) or [""])[0].strip() for key in _REQUIRED[kind]):
        raise Malformed("incomplete")
    return ParsedEvent(type=kind, fired_at=fired, list_id=list_id, pairs=pairs, values=values)


@dataclass(frozen=True)
class Receipt:
    """What the endpoint answers, and what became of the request."""

    status: int
    outcome: str  # accepted, duplicate, or why it was refused
    connector_id: int | None = None
    event_id: int | None = None

    @property
    def accepted(self) -> bool:
        """True when a new event waits to be applied."""
        return self.outcome == "accepted"


class _SecretCache:
    """Connectors by webhook secret, remembered a little while in each web process: Mailchimp's
    bursts (a bulk action in the audience) then cost one query per event less."""

    TTL = 30.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._found: dict[str, tuple[float, tuple[int, int, str]]] = {}

    def get(self, secret: str) -> tuple[int, int, str] | None:
        """``(connector_id, workspace_id, audience_id)`` of the live connector with this secret."""
        if not _SECRET_SHAPE.fullmatch(secret or ""):
            return None  # never a connector's; a NUL would not even reach PostgreSQL
        now = time.monotonic()
        with self._lock:
            hit = self._found.get(secret)
        if hit is not None and now - hit[0] < self.TTL:
            return hit[1]
        with db.engine.connect() as connection:
            row = connection.execute(select(Connector.id, Connector.workspace_id, Connector.audience_id).where(
                Connector.webhook_secret == secret, Connector.deleted_at.is_(None))).first()
        if row is None:
            with self._lock:
                self._found.pop(secret, None)
            return None
        value = (row.id, row.workspace_id, row.audience_id)
        with self._lock:
            if len(self._found) > 10000:
                self._found.clear()
            self._found[secret] = (now, value)
        return value

    def clear(self) -> None:
        """Forget everything (a connector was deleted in this process)."""
        with self._lock:
            self._found.clear()


secret_cache = _SecretCache()
_SECRET_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,64}")  # what secrets.token_urlsafe makes


def knows_secret(secret: str) -> bool:
    """True when a live connector's webhook URL carries this secret (the validator's GET)."""
    return secret_cache.get(secret) is not None


_INSERTS: dict[str, object] = {}


def _insert(values: dict) -> int | None:
    """Insert an event unless its natural key is there already, and commit; its id, or None for a
    duplicate. One prepared statement per dialect on a connection of its own: the endpoint's whole
    work is this insert, so it skips the ORM session."""
    dialect = db.engine.dialect.name
    statement = _INSERTS.get(dialect)
    if statement is None:
        table = WebhookEvent.__table__
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        statement = insert(table).on_conflict_do_nothing(index_elements=["connector_id", "natural_key"]) \
            .returning(table.c.id)
        _INSERTS[dialect] = statement
    # PostgreSQL text cannot hold NUL characters; a body carrying them is kept readable without.
    row = {k: v.replace("\x00", "\ufffd") if isinstance(v, str) else v for k, v in dict(_EVENT_DEFAULTS, **values).items()}
    with db.engine.begin() as connection:
        return connection.execute(statement, row).scalar()


def receive(secret: str, body: bytes, *, content_type: str = "", remote_addr: str = "",
            too_large: bool = False) -> Receipt:
    """Store one request made to a webhook URL and say what to answer (R21); see :func:`_receive`.

    When the database cannot store it, the answer is 503: Mailchimp retries later, and nothing
    was acknowledged that is not stored.
    """
    try:
        try:
            return _receive(secret, body, content_type=content_type, remote_addr=remote_addr, too_large=too_large)
        except IntegrityError:
            secret_cache.clear()  # a connector remembered here is gone: look again
            return _receive(secret, body, content_type=content_type, remote_addr=remote_addr, too_large=too_large)
    except DBAPIError as exc:
        log.error("webhook: the event could not be stored (%s): answered 503, Mailchimp retries", exc.__class__.__name__)
        return Receipt(503, "unavailable")


def _receive(secret: str, body: bytes, *, content_type: str = "", remote_addr: str = "",
             too_large: bool = False) -> Receipt:
    """Store one request made to a webhook URL and say what to answer (R21); commits.

    200 once stored (a duplicate too: Mailchimp must stop sending it); 404 for an unknown secret
    (logged); 400 for a malformed body or another audience's event, 413 for a body too large (both
    kept, ``rejected``). Never 410: that would disable the webhook.
    """
    found = secret_cache.get(secret)
    if found is None:
        log.warning("webhook: unknown secret (sha256 %s…) from %s", hashlib.sha256(secret.encode()).hexdigest()[:12],
                    remote_addr or "?")
        return Receipt(404, "unknown_secret")
    connector_id, workspace_id, audience_id = found
    text = body.decode("utf-8", errors="replace")
    base = {"connector_id": connector_id, "workspace_id": workspace_id, "received_at": utcnow(),
            "content_type": (content_type or "")[:100], "remote_addr": (remote_addr or "")[:45]}

    def refuse(status: int, reason: str, event: ParsedEvent | None = None) -> Receipt:
        log.warning("webhook of connector %s: refused (%s) from %s", connector_id, reason, remote_addr or "?")
        values = dict(base, status=WebhookEventStatus.REJECTED, outcome=reason, body=text[:KEEP_REJECTED],
                      natural_key=None)
        if event is not None:
            values.update(type=event.type, fired_at=event.fired_at, list_id=event.list_id[:40],
                          email=event.email[:254])
        event_id = _insert(values)
        return Receipt(status, reason, connector_id, event_id)

    if too_large:
        return refuse(413, "too_large")
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media and media != "application/x-www-form-urlencoded":
        return refuse(400, "not_form_data")
    try:
        event = parse_body(text)
    except Malformed as exc:
        return refuse(400, exc.reason)
    if event.list_id != audience_id:
        return refuse(400, "other_audience", event)
    event_id = _insert(dict(base, natural_key=event.natural_key, type=event.type, fired_at=event.fired_at,
                            list_id=event.list_id[:40], email=event.email[:254], body=text))
    if event_id is None:
        return Receipt(200, "duplicate", connector_id)
    return Receipt(200, "accepted", connector_id, event_id)


def connectors_with_unapplied(older_than: float = 0.0) -> list[int]:
    """Connectors with events received at least `older_than` seconds ago and not applied yet (the
    minute sweep: their job was lost, or Redis was down when they arrived)."""
    limit = datetime.fromtimestamp(utcnow().timestamp() - older_than, timezone.utc)
    return list(db.session.scalars(select(WebhookEvent.connector_id).where(
        WebhookEvent.status == WebhookEventStatus.RECEIVED, WebhookEvent.received_at <= limit).distinct()))


def recent_events(connector_id: int, status: str = "", limit: int = 100) -> list[WebhookEvent]:
    """The connector's latest webhook events (of one status when given), newest first: what support
    reads to see what Mailchimp sent, what became of it, and the requests refused."""
    query = select(WebhookEvent).where(WebhookEvent.connector_id == connector_id)
    if status in tuple(WebhookEventStatus):
        query = query.where(WebhookEvent.status == status)
    return list(db.session.scalars(query.order_by(WebhookEvent.id.desc()).limit(limit)))


@dataclass(frozen=True)
class WebhookStatus:
    """What the health panel shows about a connector's webhook."""

    registered: bool
    problem: str
    url: str
    events: tuple[str, ...]
    sources: tuple[str, ...]
    checked_at: datetime | None
    registered_at: datetime | None
    last_event_at: datetime | None
    waiting: int
    rejected: int


def status_of(connector: Connector) -> WebhookStatus:
    """The webhook's registration as last checked, when the last event arrived, how many wait."""
    last, = db.session.execute(select(func.max(WebhookEvent.received_at)).where(
        WebhookEvent.connector_id == connector.id)).one()
    counts = dict(db.session.execute(select(WebhookEvent.status, func.count()).where(
        WebhookEvent.connector_id == connector.id,
        WebhookEvent.status.in_((WebhookEventStatus.RECEIVED, WebhookEventStatus.REJECTED)))
        .group_by(WebhookEvent.status)).all())
    registered = bool(connector.webhook_id) and not connector.webhook_problem
    return WebhookStatus(
        registered=registered, problem=connector.webhook_problem or ("" if registered else WebhookProblem.MISSING),
        url=connector.webhook_url or "", events=EVENTS, sources=SOURCES, checked_at=connector.webhook_checked_at,
        registered_at=connector.webhook_registered_at, last_event_at=last,
        waiting=int(counts.get(WebhookEventStatus.RECEIVED, 0)),
        rejected=int(counts.get(WebhookEventStatus.REJECTED, 0)),
    )
