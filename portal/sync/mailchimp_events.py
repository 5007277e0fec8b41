"""Changes made on Mailchimp's side, applied to anaba (R13, R15, R16, R21, R22).

The webhook's events (stored by :mod:`.webhooks`) are applied here by a background job, in
Mailchimp's order (``fired_at``, then arrival), a round of up to 100 at a time:

- ``subscribe`` → the contact becomes opt-in, which lifts a lock (R16);
- ``unsubscribe`` → opt-out; *locked* when the person did it themself (a form, an unsubscribe link, a
  spam complaint) rather than an admin of the account. The event does not say which: Mailchimp
  sends ``reason=manual`` for both, so the member is read again (its ``unsubscribe_reason``); when
  it cannot tell, the lock is set (someone who said no must never be mailed again because of us).
  ``action=delete``, or a member found deleted or archived on that read, gives the R13 states;
- ``cleaned`` → the address bounced: the contact is no longer sent;
- ``upemail`` → the contact's e-mail follows (the member is read again by its new address, and
  found by Mailchimp's ``contact_id`` when an older rename has not arrived yet), unless another
  contact of the workspace already has the new address: then an error with its fix (choose the
  owner);
- ``profile`` → nothing is copied (R1): when the values differ from anaba's, the drift is noted and
  the next push restores anaba's.

Every consent change goes through :func:`portal.crm.contacts.record_consent` with the channel
``mailchimp_webhook`` and its evidence (the raw event, Mailchimp's time and IP). Late, repeated
and out-of-order events: a redelivery was stored once (:mod:`.webhooks`); an event older than
the newest one applied to the member (``ContactSync.mc_event_at``) is *superseded*; a subscribe
or an admin unsubscribe older than a consent change made in anaba since does not overwrite it.

No echo: when Mailchimp's member now holds exactly what anaba would send (its merge values, as
the event or the re-read shows them), the contact's sync row is told so, and the replication push
that the change announces finds nothing to send.

The nightly reconciliation (:mod:`.reconciliation`) applies the statuses it reads through
:func:`apply_status`, the same decisions with the channel ``mailchimp_reconcile``.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select

from portal.crm.contacts import ConsentEvidence, mark_bounced, record_consent
from portal.crm.events import announce
from portal.extensions import db
from portal.mailchimp import MailchimpError
from portal.mailchimp.payload import build_member, member_diff, payload_fingerprint, subscriber_hash
from portal.models import (Channel, Connector, ConnectorStatus, Consent, ConsentLockReason, Contact, ContactChange,
                           ContactSync, SyncEvent, SyncEventKind, SyncState, WebhookEvent, WebhookEventStatus, utcnow)
from portal.sync.contact_state import ensure_rows
from portal.sync.mailchimp_access import client_for
from portal.sync.push import mappings_of
from portal.sync.replication import Outcome, after_call_failure, mark_out_of_reach
from portal.sync.webhooks import Malformed, ParsedEvent, parse_body, parse_fired_at

log = logging.getLogger(__name__)

ACTOR = "Mailchimp"
ROUND = 100
"""Events applied per transaction: short, since with SQLite a write transaction locks out the
endpoint storing new events (measured with `python -m bench webhooks`: 100 beats 500 and 50)."""
ONE_BY_ONE = 20
"""Up to this many members to read again, one call each; beyond, pages of the audience's members
changed since the oldest event (a burst after a bulk action in Mailchimp costs a few calls)."""
ADMIN_UNSUBSCRIBE = "N/A (Unsubscribed by admin)"
MEMBER_FIELDS = ["id", "email_address", "contact_id", "status", "unsubscribe_reason", "last_changed",
                 "timestamp_opt", "ip_opt", "ip_signup", "merge_fields"]
_OUT_OF_REACH = (SyncState.ARCHIVED_IN_MC, SyncState.DELETED_IN_MC)
_NOT_READ = object()
# Outcomes that change nothing anaba would send: no need to announce them to replication.
_NOTHING_TO_PUSH = {"", "conflict", SyncState.DELETED_IN_MC, SyncState.ARCHIVED_IN_MC}
_CONSENT_EVENTS = ("subscribe", "unsubscribe")


# --- the decisions, shared with the reconciliation ------------------------------------------------

def _anaba_newer(contact: Contact, at: datetime | None) -> bool:
    """True when the contact's consent changed after `at` (Mailchimp's time, whole seconds)."""
    changed = contact.consent_changed_at
    return changed is not None and at is not None and changed >= at + timedelta(seconds=1)


def is_self_unsubscribe(member: dict | None) -> bool:
    """Did the person unsubscribe themself (not an admin)? Unknown reads as yes (R16: the safe side)."""
    if not member:
        return True
    return (member.get("unsubscribe_reason") or "").strip() != ADMIN_UNSUBSCRIBE


def settle(row: ContactSync, contact: Contact, mappings, status: str, email: str | None,
           merges: dict | None) -> bool:
    """Mailchimp's member now holds `merges` at `email` with `status` (as an event or a read shows it):
    when that is exactly what anaba would send, remember it as sent, so that the push announced by
    this change sends nothing (no echo). Otherwise the last-sent values are forgotten and the push
    restores anaba's (R1). True when settled. Not committed."""
    if merges is None or not email:
        return False
    expected = build_member(contact, mappings, status=status)
    held = {"email_address": email, "merge_fields": merges}
    if any(key != "status" for key in member_diff(held, expected)):
        row.fingerprint = None
        return False
    row.fingerprint = payload_fingerprint(expected)
    row.member_email = (contact.email_normalized or email).lower()
    row.member_hash = subscriber_hash(row.member_email)
    if row.state not in _OUT_OF_REACH:
        row.state = SyncState.SYNCED if status == "subscribed" else SyncState.UNSUBSCRIBED
    return True


def apply_status(contact: Contact, row: ContactSync | None, status: str, *, channel: str,
                 evidence: ConsentEvidence, self_unsubscribe: bool = False, lock_reason: str = "",
                 note: str = "") -> str:
    """Apply a member status Mailchimp reports (R15, R16) to the contact; what changed ("" for nothing).

    ``subscribed`` → opt-in (lifts a lock), unless anaba changed the consent after Mailchimp's time;
    ``unsubscribed`` by the person → opt-out and locked, whatever anaba did meanwhile (Mailchimp
    would refuse to subscribe them anyway); by an admin → opt-out, only for an opt-in contact
    (otherwise it is anaba's own unsubscribe coming back, or nothing changes) and unless anaba
    changed the consent since. Not committed.
    """
    if status == "subscribed":
        if contact.consent == Consent.OPT_IN and not contact.consent_locked:
            return ""
        if _anaba_newer(contact, evidence.at):
            return ""
        record_consent(contact, Consent.OPT_IN, actor=ACTOR, channel=channel, note=note, evidence=evidence)
        return "opt_in"
    if status != "unsubscribed":
        return ""
    if self_unsubscribe:
        reason = lock_reason or ConsentLockReason.SELF_UNSUBSCRIBE
        if contact.consent == Consent.OPT_OUT and contact.consent_locked:
            return ""
        record_consent(contact, Consent.OPT_OUT, actor=ACTOR, channel=channel, locked=True, lock_reason=reason,
                       note=note, evidence=evidence)
        return "opt_out_locked"
    if contact.consent != Consent.OPT_IN or _anaba_newer(contact, evidence.at):
        return ""
    record_consent(contact, Consent.OPT_OUT, actor=ACTOR, channel=channel, locked=False, note=note,
                   evidence=evidence)
    return "opt_out"


# --- the job --------------------------------------------------------------------------------------

def apply_pending(connector_id: int, *, rounds: int = 20, keep_alive: Callable[[], None] = lambda: None
                  ) -> tuple[Outcome, float | None]:
    """Apply the connector's stored events, up to `rounds` rounds of :data:`ROUND`; ``(outcome, retry_in_s)``.

    The caller holds the connector's lock (events are applied in order, by one job at a time).
    Events of a deleted connector are marked ignored; a paused one's wait for the reconnection.
    """
    connector = db.session.get(Connector, connector_id)
    if connector is None or connector.status == ConnectorStatus.DELETED:
        _ignore_all(connector_id, "connector deleted")
        return Outcome.IDLE, None
    if connector.status == ConnectorStatus.PAUSED:
        return Outcome.IDLE, None
    read_cache: dict[str, tuple[datetime, dict | None]] = {}
    try:
        with client_for(connector) as client:
            for _ in range(rounds):
                events = [_Stored(row.id, row.body) for row in db.session.execute(
                    select(WebhookEvent.id, WebhookEvent.body).where(
                        WebhookEvent.connector_id == connector.id, WebhookEvent.status == WebhookEventStatus.RECEIVED)
                    .order_by(WebhookEvent.fired_at, WebhookEvent.id).limit(ROUND))]
                if not events:
                    return Outcome.DONE, None
                try:
                    changed = _Round(connector, client, read_cache=read_cache).apply(events)
                except BadEvent as exc:
                    db.session.rollback()
                    log.exception("connector %s: %s could not be applied; set aside", connector_id, exc)
                    _set_aside(exc.event_id)
                    continue
                db.session.commit()
                announce(connector.workspace_id, sorted(changed), ContactChange.UPDATED)
                keep_alive()
            return Outcome.MORE, None
    except MailchimpError as exc:
        db.session.rollback()
        return after_call_failure(connector_id, exc)


class BadEvent(Exception):
    """Applying one event failed unexpectedly: its round is rolled back and replayed without it."""

    def __init__(self, event_id: int) -> None:
        super().__init__(f"webhook event {event_id}")
        self.event_id = event_id


def _set_aside(event_id: int) -> None:
    """One event cannot be applied (a bug): it stops holding back the others and stays for support."""
    db.session.execute(WebhookEvent.__table__.update().where(WebhookEvent.id == event_id).values(
        status=WebhookEventStatus.IGNORED, outcome="error while applying: see the worker's log", applied_at=utcnow()))
    db.session.commit()


def has_pending(connector_id: int) -> bool:
    """True when events of the connector wait to be applied."""
    db.session.rollback()  # a fresh look, not the snapshot of the last round
    return db.session.scalar(select(WebhookEvent.id).where(
        WebhookEvent.connector_id == connector_id, WebhookEvent.status == WebhookEventStatus.RECEIVED).limit(1)) \
        is not None


def _ignore_all(connector_id: int, why: str) -> None:
    db.session.execute(WebhookEvent.__table__.update().where(
        WebhookEvent.connector_id == connector_id, WebhookEvent.status == WebhookEventStatus.RECEIVED)
        .values(status=WebhookEventStatus.IGNORED, outcome=why, applied_at=utcnow()))
    db.session.commit()


def _hash_of(event: ParsedEvent) -> str:
    """The member's id as the event gives it (the new one for an upemail)."""
    if event.type == "upemail":
        return (event.get("data[new_id]") or subscriber_hash(event.get("data[new_email]"))).lower()
    return (event.get("data[id]") or subscriber_hash(event.email)).lower()


@dataclass
class _Stored:
    """A stored event being applied: its row's id and body, and what became of it."""

    id: int
    body: str
    status: str = WebhookEventStatus.RECEIVED
    outcome: str = ""
    contact_id: int | None = None


@dataclass
class _Target:
    contact: Contact
    row: ContactSync
    renamed_to: dict | None = None  # found through Mailchimp's contact_id: the member, now at another address


@dataclass
class _Round:
    """One round of events: the contacts they concern, the members read again, the changes."""

    connector: Connector
    client: object
    read_cache: dict[str, tuple[datetime, dict | None]] = field(default_factory=dict)
    changed: set[int] = field(default_factory=set)
    rows_by_hash: dict[str, list[ContactSync]] = field(default_factory=lambda: defaultdict(list))
    rows_by_mc_id: dict[str, list[ContactSync]] = field(default_factory=lambda: defaultdict(list))
    contacts: dict[int, Contact] = field(default_factory=dict)
    by_email: dict[str, list[Contact]] = field(default_factory=lambda: defaultdict(list))
    members: dict[str, dict | None] = field(default_factory=dict)
    rows_by_contact: dict[int, ContactSync] = field(default_factory=dict)
    revives: list[tuple[str, datetime]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.mappings = mappings_of(self.connector)
        self.now = utcnow()

    # --- loading ---------------------------------------------------------------------------------

    def apply(self, events: list[_Stored]) -> set[int]:
        """Apply these events in order; the ids of the contacts that changed. Not committed."""
        parsed: list[tuple[_Stored, ParsedEvent]] = []
        for event in events:
            try:
                parsed.append((event, parse_body(event.body)))
            except Malformed as exc:
                self._done(event, WebhookEventStatus.REJECTED, exc.reason)
        # Nothing is written before the end of the round: with SQLite a write transaction locks the
        # database, and the webhook endpoint must keep storing events meanwhile.
        with db.session.no_autoflush:
            self._load(parsed)
            for event, data in parsed:
                try:
                    status, outcome = self._apply_one(event, data)
                except MailchimpError:
                    raise
                except Exception as exc:
                    raise BadEvent(event.id) from exc
                self._done(event, status, outcome)
        table = WebhookEvent.__table__
        db.session.execute(table.update().where(table.c.id == bindparam("_id")), [
            {"_id": e.id, "status": e.status, "outcome": e.outcome, "contact_id": e.contact_id, "applied_at": self.now}
            for e in events])
        for address, since in self.revives:
            self._revive(address, since)
        return self.changed

    def _done(self, event: _Stored, status: WebhookEventStatus, outcome: str) -> None:
        event.status = status
        event.outcome = outcome[:300]

    def _load(self, parsed: list[tuple[_Stored, ParsedEvent]]) -> None:
        hashes: set[str] = set()
        emails: set[str] = set()
        to_read: set[str] = set()
        for _event, data in parsed:
            if data.type == "campaign":
                continue
            member = _hash_of(data)
            hashes.add(member)
            emails.add(data.email.lower())
            if data.type == "upemail":
                hashes.add(subscriber_hash(data.get("data[old_email]")))
                emails.add(data.get("data[new_email]").strip().lower())
                to_read.add(member)
            elif data.type == "unsubscribe" and data.get("data[action]") != "delete" and not (
                    data.get("data[reason]") == "abuse" and data.get("data[action]")):
                to_read.add(member)
        self._load_rows(ContactSync.member_hash, hashes)
        emails.discard("")
        for start in range(0, len(emails), 500):
            part = sorted(emails)[start:start + 500]
            for contact in db.session.scalars(select(Contact).where(
                    Contact.workspace_id == self.connector.workspace_id, Contact.email_normalized.in_(part))):
                if contact.deleted_at is None:
                    self.by_email[contact.email_normalized].append(contact)
                    self.contacts[contact.id] = contact
        same_second: dict[tuple[str, datetime], int] = defaultdict(int)
        for _event, data in parsed:
            if data.type in ("subscribe", "unsubscribe"):
                same_second[(_hash_of(data), data.fired_at)] += 1
        for _event, data in parsed:
            member = _hash_of(data)
            if data.type != "campaign" and not self.rows_by_hash.get(member) and (
                    data.type in ("profile", "upemail") or not self.by_email.get(data.email.lower())):
                # Not known by this address: renamed in Mailchimp (an upemail not applied yet)? Its
                # contact_id, which survives a rename, tells.
                to_read.add(member)
            elif data.type == "subscribe" and (same_second[(member, data.fired_at)] > 1 or any(
                    row.mc_event_at == data.fired_at for row in self.rows_by_hash.get(member) or [])):
                to_read.add(member)  # Mailchimp's time has whole seconds: the member says which came last
        if to_read:
            newest: dict[str, datetime] = {}
            for _event, data in parsed:
                member = _hash_of(data)
                if member in to_read:
                    newest[member] = max(newest.get(member, data.fired_at), data.fired_at)
            self.members = self._read_members(newest)
            mc_ids = {m.get("contact_id") for m in self.members.values() if m and m.get("contact_id")}
            self._load_rows(ContactSync.mc_contact_id, mc_ids)

    def _load_rows(self, column, values: Iterable[str]) -> None:
        ordered = sorted(v for v in values if v)
        ids: set[int] = set()
        for start in range(0, len(ordered), 500):
            for row in db.session.scalars(select(ContactSync).where(
                    ContactSync.connector_id == self.connector.id, column.in_(ordered[start:start + 500]))):
                if row.member_hash and row not in self.rows_by_hash[row.member_hash]:
                    self.rows_by_hash[row.member_hash].append(row)
                if row.mc_contact_id and row not in self.rows_by_mc_id[row.mc_contact_id]:
                    self.rows_by_mc_id[row.mc_contact_id].append(row)
                self.rows_by_contact[row.contact_id] = row
                ids.add(row.contact_id)
        missing = sorted(ids - set(self.contacts))
        for start in range(0, len(missing), 500):
            for contact in db.session.scalars(select(Contact).where(Contact.id.in_(missing[start:start + 500]))):
                self.contacts[contact.id] = contact

    def _read_members(self, newest: dict[str, datetime]) -> dict[str, dict | None]:
        """The members as Mailchimp holds them now (None: not found), by hash; `newest` gives, for each,
        the time of its newest event here. A member read earlier in the same job, after that time,
        is not read again (a burst is read once, not once per round)."""
        list_id = self.connector.audience_id
        found: dict[str, dict | None] = {}
        for member_hash, fired in newest.items():
            cached = self.read_cache.get(member_hash)
            if cached is not None and cached[0] >= fired + timedelta(seconds=1):
                found[member_hash] = cached[1]
        wanted = set(newest) - set(found)
        read_at = utcnow()
        if len(wanted) > ONE_BY_ONE:
            since = min(newest[h] for h in wanted) - timedelta(seconds=2)
            for status in (None, "archived"):
                for member in self.client.iter_members(list_id, fields=MEMBER_FIELDS, status=status,
                                                       since_last_changed=since):
                    self.read_cache[member.get("id")] = (read_at, member)
                    if member.get("id") in wanted:
                        found[member["id"]] = member
        for member_hash in sorted(wanted - set(found)):
            found[member_hash] = self.client.get_member(list_id, member_hash)
            self.read_cache[member_hash] = (read_at, found[member_hash])
        return found

    # --- targets ---------------------------------------------------------------------------------

    def _targets(self, data: ParsedEvent, member_hash: str, *, by_email: bool = True) -> list[_Target]:
        rows = list(self.rows_by_hash.get(member_hash) or [])
        targets = [_Target(self.contacts[r.contact_id], r) for r in rows if r.contact_id in self.contacts]
        member = self.members.get(member_hash)
        if not targets and member and member.get("contact_id"):
            for row in self.rows_by_mc_id.get(member["contact_id"]) or []:
                if row.contact_id in self.contacts:
                    moved = (row.member_email or "").lower() != (member.get("email_address") or "").lower()
                    targets.append(_Target(self.contacts[row.contact_id], row, member if moved else None))
        if targets or not by_email:
            return targets
        contacts = self.by_email.get(data.email.lower()) or self._renamed_from(data.email)
        missing = [c.id for c in contacts if c.id not in self.rows_by_contact]
        if missing:  # (no autoflush: a row made earlier in the round is known only here)
            self.rows_by_contact.update(ensure_rows(self.connector, missing))
        return [_Target(c, self.rows_by_contact[c.id]) for c in contacts]

    def _renamed_from(self, email: str) -> list[Contact]:
        """The contact whose member left this address (an upemail applied before this older event)."""
        contact_id = db.session.scalar(select(WebhookEvent.contact_id).where(
            WebhookEvent.connector_id == self.connector.id, WebhookEvent.type == "upemail",
            WebhookEvent.status == WebhookEventStatus.APPLIED, WebhookEvent.email == email.strip())
            .order_by(WebhookEvent.fired_at.desc()).limit(1))
        contact = db.session.get(Contact, contact_id) if contact_id else None
        if contact is None or contact.deleted_at is not None:
            return []
        self.contacts[contact.id] = contact
        return [contact]

    def _evidence(self, event: _Stored, data: ParsedEvent, **details) -> ConsentEvidence:
        ip = data.get("data[ip_opt]") or data.get("data[ip_signup]") if data.type == "subscribe" else ""
        base = {"type": data.type, "email": data.email, "member_id": data.get("data[id]")}
        base.update({k: v for k, v in details.items() if v not in (None, "")})
        return ConsentEvidence(at=data.fired_at, ip=ip, webhook_event_id=event.id,
                               details={k: v for k, v in base.items() if v not in (None, "")})

    def _history(self, contact: Contact, kind: SyncEventKind, detail: str, data: dict) -> None:
        db.session.add(SyncEvent(workspace_id=contact.workspace_id, connector_id=self.connector.id,
                                 contact_id=contact.id, kind=kind, detail=detail, data=data, created_at=self.now))

    # --- applying --------------------------------------------------------------------------------

    def _apply_one(self, event: _Stored, data: ParsedEvent) -> tuple[WebhookEventStatus, str]:
        if data.type == "campaign":
            return WebhookEventStatus.IGNORED, "campaign event: nothing to do"
        member_hash = _hash_of(data)
        if data.type == "upemail":
            targets = self._targets(data, subscriber_hash(data.get("data[old_email]")), by_email=False) \
                or self._targets(data, member_hash)
        else:
            targets = self._targets(data, member_hash)
        if not targets:
            member = self.members.get(member_hash, _NOT_READ)
            seen = "" if member is _NOT_READ else (
                " (read again: not in the audience)" if member is None
                else f" (read again: Mailchimp contact {member.get('contact_id') or '?'})")
            return WebhookEventStatus.IGNORED, "no contact in anaba has this member" + seen
        fresh = targets
        if data.type in _CONSENT_EVENTS:
            # Consent events in Mailchimp's order: an older one delivered late is superseded.
            fresh = [t for t in targets if t.row.mc_event_at is None or data.fired_at >= t.row.mc_event_at]
            if not fresh:
                return WebhookEventStatus.SUPERSEDED, "a newer consent change of this member was applied already"
            if any(t.row.mc_event_at == data.fired_at for t in fresh) and self._contradicted(data, member_hash):
                return WebhookEventStatus.SUPERSEDED, "a change of the same second is the member's current state"
        event.contact_id = fresh[0].contact.id
        followed = [self._follow(event, data.fired_at, t.contact, t.row, (t.row.member_email or "").lower(),
                                 t.renamed_to["email_address"], t.renamed_to)
                    for t in fresh if t.renamed_to and data.type != "upemail"]
        handler = getattr(self, f"_on_{data.type}")
        outcomes = [handler(event, data, target, member_hash) for target in fresh]
        outcomes = [", ".join(filter(None, (f, o))) for f, o in zip(followed + [""] * len(fresh), outcomes)]
        if data.type in _CONSENT_EVENTS:
            for target in fresh:
                target.row.mc_event_at = max(filter(None, (target.row.mc_event_at, data.fired_at)))
        done = [o for o in outcomes if o]
        for target, outcome in zip(fresh, outcomes):
            if set(outcome.split(", ")) - _NOTHING_TO_PUSH:
                self.changed.add(target.contact.id)
        if not done:
            return WebhookEventStatus.IGNORED, "nothing to change"
        return WebhookEventStatus.APPLIED, ", ".join(sorted(set(done)))

    def _contradicted(self, data: ParsedEvent, member_hash: str) -> bool:
        """Two changes of one member in the same second (Mailchimp's times have no fractions): the one
        the member, read again, does not show came first."""
        member = self.members.get(member_hash)
        if not member or data.get("data[action]") == "delete":
            return False
        status = member.get("status")
        return (data.type == "subscribe" and status != "subscribed") or (
            data.type == "unsubscribe" and status == "subscribed")

    def _on_subscribe(self, event: _Stored, data: ParsedEvent, target: _Target, member_hash: str) -> str:
        contact, row = target.contact, target.row
        if row.state in _OUT_OF_REACH:
            row.state, row.fingerprint = SyncState.PENDING, None  # they signed up again: a member exists
        outcome = apply_status(contact, row, "subscribed", channel=Channel.MAILCHIMP_WEBHOOK,
                               evidence=self._evidence(event, data, ip_signup=data.get("data[ip_signup]")))
        if contact.consent == Consent.OPT_IN:
            settle(row, contact, self.mappings, "subscribed", data.email, data.merges())
        return outcome

    def _on_unsubscribe(self, event: _Stored, data: ParsedEvent, target: _Target, member_hash: str) -> str:
        contact, row = target.contact, target.row
        action = data.get("data[action]")
        member = self.members.get(member_hash, _NOT_READ)
        if action == "delete":
            return self._out_of_reach(row, contact, SyncState.DELETED_IN_MC, event)
        reasons = data.all("data[reason]")
        complaint = "abuse" in reasons
        known = member if member is not _NOT_READ else None
        by_person = complaint or is_self_unsubscribe(known)
        subscribed_since = ours = False
        if known and known.get("status") == "subscribed":
            # Read again, the member is subscribed: either someone signed them up after this event (its
            # own event follows), or a push of ours crossed an admin's unsubscribe (a person's own
            # unsubscribe cannot be undone through the API): then the member's opt-in time is our push's.
            opt_in = parse_fired_at(str(known.get("timestamp_opt") or ""))
            ours = bool(opt_in and row.last_synced_at and opt_in >= data.fired_at
                        and row.last_synced_at >= data.fired_at
                        and abs((opt_in - row.last_synced_at).total_seconds()) <= 2)
            subscribed_since = not ours
            if ours:
                by_person = complaint
        evidence = self._evidence(event, data, action=action or "(none)", reason=",".join(reasons),
                                  campaign_id=data.get("data[campaign_id]"),
                                  unsubscribe_reason=(known or {}).get("unsubscribe_reason"),
                                  by="contact" if by_person else "admin")
        outcome = apply_status(contact, row, "unsubscribed", channel=Channel.MAILCHIMP_WEBHOOK, evidence=evidence,
                               self_unsubscribe=by_person,
                               lock_reason=ConsentLockReason.COMPLAINT if complaint else ConsentLockReason.SELF_UNSUBSCRIBE,
                               note=((known or {}).get("unsubscribe_reason") or "")[:300])
        if subscribed_since:
            # The person is subscribed again now: end as Mailchimp is (its sign-up recorded with the
            # member's own evidence); the later subscribe event then finds nothing to do.
            again = apply_member(contact, row, known, mappings=self.mappings, channel=Channel.MAILCHIMP_WEBHOOK,
                                 webhook_event_id=event.id)
            outcome = ", ".join(filter(None, (outcome, again)))
        elif ours and contact.consent != Consent.OPT_IN:
            row.fingerprint = None  # the push that follows unsubscribes the member again
        elif contact.consent != Consent.OPT_IN:
            settle(row, contact, self.mappings, "unsubscribed", data.email, data.merges())
        # A member not found when read again was renamed since (its upemail follows) or deleted for
        # good: a deletion comes with data[action]=delete, and the reconciliation finds the others.
        if known and known.get("status") == "archived":
            outcome = ", ".join(filter(None, (outcome, self._out_of_reach(row, contact, SyncState.ARCHIVED_IN_MC, event))))
        elif known and known.get("status") == "cleaned":
            outcome = ", ".join(filter(None, (outcome, self._bounced(contact, event, data))))
        return outcome

    def _on_cleaned(self, event: _Stored, data: ParsedEvent, target: _Target, member_hash: str) -> str:
        return self._bounced(target.contact, event, data)

    def _bounced(self, contact: Contact, event: _Stored, data: ParsedEvent) -> str:
        if not mark_bounced(contact, actor=ACTOR, channel=Channel.MAILCHIMP_WEBHOOK):
            return ""
        self._history(contact, SyncEventKind.MAILCHIMP_STATE, SyncState.BOUNCED, {
            "webhook_event_id": event.id, "reason": data.get("data[reason]"),
            "campaign_id": data.get("data[campaign_id]"), "fired_at": data.fired_at.isoformat()})
        return "bounced"

    def _out_of_reach(self, row: ContactSync, contact: Contact, state: SyncState, event: _Stored) -> str:
        if row.state == state or not row.member_hash:
            return ""
        if not mark_out_of_reach(self.connector, [row.member_hash], state):
            return ""
        return state

    def _on_upemail(self, event: _Stored, data: ParsedEvent, target: _Target, member_hash: str) -> str:
        member = self.members.get(member_hash)
        new = ((member or {}).get("email_address") or data.get("data[new_email]")).strip()
        return self._follow(event, data.fired_at, target.contact, target.row,
                            data.get("data[old_email]").strip().lower(), new, member)

    def _follow(self, event: _Stored, fired_at: datetime, contact: Contact, row: ContactSync, old: str, new: str,
                member: dict | None) -> str:
        """The person's address moved from `old` to `new` in Mailchimp (an upemail, or a member found
        at another address through its contact_id): the contact's e-mail follows, unless anaba changed
        it since (anaba's stays, R1) or another contact has the new one (an error to fix, R19)."""
        details = {"webhook_event_id": event.id, "old_email": old, "email": new.lower(),
                   "fired_at": fired_at.isoformat()}
        mine = contact.email_normalized or ""
        known_as = (row.member_email or "").lower()
        held = row.fingerprint is not None and row.fingerprint == self._fingerprint(contact, row)
        row.member_email, row.member_hash = new.lower(), subscriber_hash(new)
        if row not in self.rows_by_hash[row.member_hash]:
            self.rows_by_hash[row.member_hash].append(row)  # later events of this round use the new address
        self.revives.append((new, fired_at))
        if member and member.get("contact_id"):
            row.mc_contact_id = member["contact_id"]
        if mine == new.lower():
            return ""
        if mine not in (old, known_as):
            # anaba changed the address since: anaba's stays (R1) and the push renames the member back
            row.fingerprint = None
            self._history(contact, SyncEventKind.EMAIL_CHANGED_IN_MC, "kept_anaba", details)
            return "anaba's address kept"
        others = [c for c in self.by_email.get(new.lower(), []) if c.id != contact.id]
        if others:
            error = MailchimpError("email_change_conflict", detail=f"{old} → {new}", email=new)
            row.state, row.reason, row.fingerprint = SyncState.ERROR, "", None
            row.error_kind, row.error_fix = error.kind, error.fix
            row.error_message, row.error_field = f"{old} → {new}"[:2000], ""
            self._history(contact, SyncEventKind.ERROR, f"{error.kind}: {old} → {new}"[:500], details)
            return "conflict"
        contact.email = new
        contact.refresh_derived()
        contact.updated_at = utcnow()
        self.by_email[contact.email_normalized].append(contact)
        if held:
            row.fingerprint = self._fingerprint(contact, row)
        self._history(contact, SyncEventKind.EMAIL_CHANGED_IN_MC, "followed", details)
        return "email changed"

    def _revive(self, address: str, since: datetime) -> None:
        """Events at the new address that arrived before their upemail found no contact then: they are
        applied again now that the contact is known there (the round after this one)."""
        db.session.execute(WebhookEvent.__table__.update().where(
            WebhookEvent.connector_id == self.connector.id, WebhookEvent.status == WebhookEventStatus.IGNORED,
            WebhookEvent.email == address.strip(), WebhookEvent.fired_at >= since,
            WebhookEvent.outcome.like("no contact in anaba has this member%"))
            .values(status=WebhookEventStatus.RECEIVED, outcome="", applied_at=None))

    def _fingerprint(self, contact: Contact, row: ContactSync) -> str:
        status = "unsubscribed" if row.state == SyncState.UNSUBSCRIBED else "subscribed"
        return payload_fingerprint(build_member(contact, self.mappings, status=status))

    def _on_profile(self, event: _Stored, data: ParsedEvent, target: _Target, member_hash: str) -> str:
        contact, row = target.contact, target.row
        if row.state not in (SyncState.SYNCED, SyncState.UNSUBSCRIBED, SyncState.PENDING):
            return ""
        expected = build_member(contact, self.mappings)
        held = {"email_address": data.email, "merge_fields": data.merges()}
        drift = sorted(k for k in member_diff(held, expected) if k not in ("status", "email_address"))
        if not drift:
            return ""
        row.fingerprint = None  # R1: anaba wins; the push announced by this change restores its values
        self._history(contact, SyncEventKind.DRIFT_REPAIRED, "profile", {
            "webhook_event_id": event.id, "fields": drift, "fired_at": data.fired_at.isoformat()})
        return "drift noted"


def reread_time(member: dict) -> datetime | None:
    """When Mailchimp last changed this member, as a time (None when it does not say)."""
    return parse_fired_at(str(member.get("last_changed") or ""))


def apply_member(contact: Contact, row: ContactSync | None, member: dict, *, mappings,
                 channel: str = Channel.MAILCHIMP_RECONCILE, webhook_event_id: int | None = None) -> str:
    """Apply the status of a member as read from Mailchimp (the nightly reconciliation, R22): the same
    decisions as for a webhook event, dated by the member's own times. What changed ("" for nothing).
    Not committed."""
    status = member.get("status")
    details = {"member_id": member.get("id"), "email": member.get("email_address"),
               "last_changed": member.get("last_changed"), "status": status}
    if status == "subscribed":
        at = parse_fired_at(str(member.get("timestamp_opt") or "")) or reread_time(member)
        evidence = ConsentEvidence(at=at, ip=member.get("ip_opt") or member.get("ip_signup") or "",
                                   webhook_event_id=webhook_event_id, details={k: v for k, v in details.items() if v})
        outcome = apply_status(contact, row, "subscribed", channel=channel, evidence=evidence)
    elif status == "unsubscribed":
        by_person = is_self_unsubscribe(member)
        reason = (member.get("unsubscribe_reason") or "").strip()
        details.update(unsubscribe_reason=reason, by="contact" if by_person else "admin")
        evidence = ConsentEvidence(at=reread_time(member), webhook_event_id=webhook_event_id,
                                   details={k: v for k, v in details.items() if v})
        outcome = apply_status(contact, row, "unsubscribed", channel=channel, evidence=evidence,
                               self_unsubscribe=by_person, note=reason[:300])
    else:
        return ""
    if outcome and row is not None:
        settle(row, contact, mappings, status, member.get("email_address"), member.get("merge_fields"))
    return outcome
