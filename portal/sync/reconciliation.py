"""The nightly reconciliation (R22): what changed in the audience since the last run, repaired.

Webhooks and live pushes keep Mailchimp and anaba together; this run catches what they missed.
It only *reads* Mailchimp; repairs go through live replication:

1. the members changed since the last run (``since_last_changed``, 1,000 per page, only the
   fields compared) are matched to the connector's contacts by member hash (by e-mail for a
   member anaba never sent). Consent first: a member who unsubscribed, or subscribed again,
   without the webhook telling us, changes the contact's consent exactly as the webhook would
   have (:func:`.mailchimp_events.apply_member`, channel ``mailchimp_reconcile``, R15, R16). A
   member whose fields or anaba tags differ from what anaba would send was edited in Mailchimp:
   anaba wins (R1), so the contact is marked for a push (its last-sent fingerprint forgotten);
   one cleaned marks the address bounced (R6);
2. every member id of the audience, and of its archived members, is read (ids only): a member
   we had that is archived makes its contact "archived in Mailchimp", one that is gone
   "deleted in Mailchimp" (R13).

3. our webhook is checked (registered, right URL, events and sources) and registered again when
   it is missing or wrong (R21).

The run records a drift report (counts per kind, a sample of contacts) that support reads, and
where it read up to, so the next night starts there. A second run with nothing changed writes
nothing to Mailchimp.
"""
from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from portal import background
from portal.crm.contacts import mark_bounced
from portal.extensions import db
from portal.mailchimp.payload import build_member, member_diff, tag_changes
from portal.models import (Channel, Connector, ConnectorStatus, Consent, Contact, ContactSync, NotSyncedReason, RunKind,
                           RunStatus, SyncRun, SyncState, utcnow)
from portal.sync import mailchimp_events, webhooks
from portal.sync.contact_state import ensure_rows
from portal.sync import runs as run_rows
from portal.sync.eligibility import judge
from portal.sync.push import CONTACT_COLUMNS, contact_tags_of, managed_tag_names, mappings_of
from portal.sync.lifecycle import get_connector, pause_connector
from portal.sync.mailchimp_access import client_for
from portal.sync.replication import OUT_OF_REACH, mark_dirty, mark_out_of_reach

log = logging.getLogger(__name__)

PAGE = 1000
SAMPLES = 20
OVERLAP = timedelta(seconds=2)  # Mailchimp's since filters are exclusive, at one-second precision
CHANGED_FIELDS = ["id", "email_address", "status", "merge_fields", "tags", "tags_count", "last_changed",
                  "unsubscribe_reason", "timestamp_opt", "ip_opt", "ip_signup"]


def start(connector_id: int) -> SyncRun:
    """A reconciliation run for an active connector, queued (one at a time per connector)."""
    connector = get_connector(connector_id)
    waiting = db.session.scalar(select(SyncRun).where(
        SyncRun.connector_id == connector.id, SyncRun.kind == RunKind.RECONCILE,
        SyncRun.status.in_((RunStatus.QUEUED, RunStatus.RUNNING))))
    if waiting is not None:
        return waiting
    run = run_rows.create_run(connector, RunKind.RECONCILE)
    db.session.commit()
    return run


def start_all() -> list[SyncRun]:
    """A reconciliation run for every active connector (the nightly schedule)."""
    ids = list(db.session.scalars(select(Connector.id).where(Connector.status == ConnectorStatus.ACTIVE)))
    return [start(cid) for cid in ids]


def run(run_id: int) -> run_rows.RunResult:
    """Reconcile the connector of run `run_id`; a revoked key pauses the connector."""
    result = run_rows.execute(run_id, _reconcile)
    if result.pauses_connector:
        pause_connector(db.session.get(SyncRun, run_id).connector_id, result.error)
    return result


def _previous_read_until(connector: Connector, run_id: int) -> datetime | None:
    last = db.session.scalar(select(SyncRun).where(
        SyncRun.connector_id == connector.id, SyncRun.kind == RunKind.RECONCILE, SyncRun.id != run_id,
        SyncRun.status == RunStatus.FINISHED).order_by(SyncRun.id.desc()).limit(1))
    if last is not None and (last.result or {}).get("read_until"):
        return datetime.fromisoformat(last.result["read_until"])
    return connector.activated_at


class _Report:
    """The drift found, by kind, with a sample of contacts for each."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self.samples: list[dict] = []

    def add(self, kind: str, contact_id: int, **detail: Any) -> None:
        """Count one drifted contact, and keep it as a sample while there is room."""
        self.counts[kind] += 1
        if len(self.samples) < SAMPLES:
            self.samples.append({"kind": kind, "contact_id": contact_id, **detail})


def _reconcile(run: SyncRun, connector: Connector, token: str) -> None:
    started = utcnow()
    since = _previous_read_until(connector, run.id)
    report = _Report()
    read_until = since or started
    members_read = 0
    to_push: set[int] = set()
    with client_for(connector, bulk=True) as client:
        page: list[dict] = []
        changed = client.iter_members(connector.audience_id, fields=CHANGED_FIELDS, page_size=PAGE,
                                      since_last_changed=(since - OVERLAP) if since else None)
        for member in changed:
            page.append(member)
            if len(page) >= PAGE:
                to_push |= _compare_page(connector, page, report)
                members_read += len(page)
                read_until = max(read_until, _latest_change(page, read_until))
                page = []
                _checkpoint(run, token, members_read, report)
        if page:
            to_push |= _compare_page(connector, page, report)
            members_read += len(page)
            read_until = max(read_until, _latest_change(page, read_until))
        seen: set[str] = set()
        for member in client.iter_members(connector.audience_id, fields=["id"], page_size=PAGE):
            seen.add(member.get("id"))
        archived = {m.get("id") for m in client.iter_members(connector.audience_id, status="archived",
                                                              fields=["id"], page_size=PAGE)}
        webhook_problem, webhook_repaired = webhooks.repair(connector, client)
    newly_archived = _rows_with_members(connector, archived)
    for row in newly_archived:
        report.add("archived", row.contact_id, email=row.member_email)
    if newly_archived:
        mark_out_of_reach(connector, [row.member_hash for row in newly_archived], SyncState.ARCHIVED_IN_MC)
    gone = _gone(connector, seen | archived)
    if gone:
        for row in gone:
            report.add("deleted", row.contact_id, email=row.member_email)
        mark_out_of_reach(connector, [row.member_hash for row in gone], SyncState.DELETED_IN_MC)
    if to_push:
        mark_dirty(connector, sorted(to_push), utcnow())
    run.done = members_read
    run.total = max(run.total or 0, members_read)
    run.counts = dict(report.counts)
    run.result = {"read_until": read_until.isoformat(), "members_read": members_read,
                  "audience_members": len(seen), "drift": dict(report.counts), "samples": report.samples,
                  "repushed": len(to_push),
                  "webhook": {"problem": webhook_problem, "repaired": webhook_repaired} if webhook_problem else None}
    connector.last_reconciled_at = utcnow()


def _checkpoint(run: SyncRun, token: str, members_read: int, report: _Report) -> None:
    run.done = members_read
    run.counts = dict(report.counts)
    background.checkpoint(run, token)
    db.session.commit()


def _latest_change(page: list[dict], current: datetime) -> datetime:
    latest = current
    for member in page:
        value = member.get("last_changed")
        if value:
            try:
                moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            except ValueError:
                continue
            latest = max(latest, moment)
    return latest


def _consent_needs_look(contact, member: dict) -> bool:
    """Cheap test on plain values: could this member's status change the contact's consent?"""
    status = member.get("status")
    if status == "subscribed":
        return contact.consent != Consent.OPT_IN or bool(contact.consent_locked)
    if status == "unsubscribed":
        return contact.consent == Consent.OPT_IN or (mailchimp_events.is_self_unsubscribe(member)
                                                    and not contact.consent_locked)
    return False


def _apply_consent(connector: Connector, contact_id: int, row: ContactSync | None, member: dict, mappings,
                   report: _Report) -> bool:
    """What webhooks missed: the member's status becomes the contact's consent (R15, R16). Not committed."""
    full = db.session.get(Contact, contact_id)
    outcome = mailchimp_events.apply_member(full, row, member, mappings=mappings)
    if not outcome:
        return False
    kind = "resubscribed" if outcome == "opt_in" else "unsubscribed"
    report.add(kind, contact_id, email=member.get("email_address"), consent=outcome)
    return True


def _compare_page(connector: Connector, members: list[dict], report: _Report) -> set[int]:
    """Compare one page of changed members with anaba; the contacts to push again (not committed)."""
    by_hash = {m.get("id"): m for m in members if m.get("id")}
    rows = _rows_with_members(connector, set(by_hash))
    mappings = mappings_of(connector)
    to_push = _unknown_members(connector, [m for h, m in by_hash.items() if h not in {r.member_hash for r in rows}],
                               mappings, report)
    if not rows:
        return to_push
    ids = [r.contact_id for r in rows]
    contacts = {c.id: c for c in db.session.execute(select(*CONTACT_COLUMNS).where(Contact.id.in_(ids))).all()}
    consent_moved = set()
    for row in rows:
        member, contact = by_hash[row.member_hash], contacts.get(row.contact_id)
        if contact is not None and contact.deleted_at is None and _consent_needs_look(contact, member):
            if _apply_consent(connector, contact.id, row, member, mappings, report):
                consent_moved.add(contact.id)
    if consent_moved:
        to_push |= consent_moved
        contacts.update({c.id: c for c in db.session.execute(
            select(*CONTACT_COLUMNS).where(Contact.id.in_(sorted(consent_moved)))).all()})
    verdicts = judge(connector.workspace_id, connector.id, list(contacts.values()))
    tags_of = contact_tags_of(ids)
    managed = managed_tag_names(connector.workspace_id)
    for row in rows:
        member = by_hash[row.member_hash]
        contact = contacts.get(row.contact_id)
        if contact is None or contact.id in consent_moved:
            continue
        if member.get("status") == "cleaned":
            full = db.session.get(Contact, contact.id)
            if mark_bounced(full, actor="Mailchimp", channel=Channel.MAILCHIMP_RECONCILE):
                report.add("cleaned", contact.id, email=member.get("email_address"))
                to_push.add(contact.id)
            continue
        if row.state not in (SyncState.SYNCED, SyncState.UNSUBSCRIBED) or verdicts[contact.id].reason:
            continue  # a push is already due for it, or anaba does not send it
        expected = build_member(contact, mappings, status=member.get("status") or "subscribed")
        diff = {k: v for k, v in member_diff(member, expected).items() if k not in ("status", "email_address")}
        current = [t.get("name", "") for t in member.get("tags") or [] if isinstance(t, dict)]
        complete = int(member.get("tags_count") or 0) <= len(current)
        add, remove = tag_changes(current, tags_of.get(contact.id, []), managed) if complete else ([], [])
        if diff:
            report.add("fields", contact.id, email=member.get("email_address"), fields=sorted(diff))
        if add or remove:
            report.add("tags", contact.id, email=member.get("email_address"), added_in_mailchimp=remove,
                       removed_in_mailchimp=add)
        if diff or add or remove:
            row.fingerprint = None  # what Mailchimp holds is no longer what was last sent
            row.synced_tags = sorted(t for t in current if t.casefold() in {m.casefold() for m in managed})
            to_push.add(contact.id)
    return to_push


def _unknown_members(connector: Connector, members: list[dict], mappings, report: _Report) -> set[int]:
    """Members anaba never sent whose address a contact has (someone signed up through the audience's
    form, or unsubscribed there): their status becomes the contact's consent. Not committed."""
    by_email = {(m.get("email_address") or "").strip().lower(): m for m in members
                if m.get("status") in ("subscribed", "unsubscribed") and m.get("email_address")}
    if not by_email:
        return set()
    found = [c for c in db.session.scalars(select(Contact).where(
        Contact.workspace_id == connector.workspace_id, Contact.email_normalized.in_(sorted(by_email))))
        if c.deleted_at is None and _consent_needs_look(c, by_email[c.email_normalized])]
    if not found:
        return set()
    rows = ensure_rows(connector, [c.id for c in found])
    moved = set()
    for contact in found:
        member = by_email[contact.email_normalized]
        row = rows[contact.id]
        if row.member_hash and row.member_hash != member.get("id"):
            continue  # the contact's member is another one
        if _apply_consent(connector, contact.id, row, member, mappings, report):
            moved.add(contact.id)
    return moved


def _still_ours(row: ContactSync) -> bool:
    """A row whose member anaba keeps in line (not out of reach, not archived by anaba itself)."""
    return row.state not in OUT_OF_REACH and not (row.state == SyncState.NOT_SYNCED
                                                  and row.reason == NotSyncedReason.DELETED)


def _rows_with_members(connector: Connector, hashes: set[str]) -> list[ContactSync]:
    """The connector's rows, still ours, whose member is one of these."""
    ordered = sorted(h for h in hashes if h)
    rows: list[ContactSync] = []
    for start in range(0, len(ordered), 500):
        rows.extend(db.session.scalars(select(ContactSync).where(
            ContactSync.connector_id == connector.id, ContactSync.member_hash.in_(ordered[start:start + 500]))))
    return [r for r in rows if _still_ours(r)]


def _gone(connector: Connector, present: set[str]) -> list[ContactSync]:
    """The connector's rows whose member is no longer in the audience at all."""
    gone = []
    last_id = 0
    while True:
        rows = list(db.session.scalars(select(ContactSync).where(
            ContactSync.connector_id == connector.id, ContactSync.id > last_id,
            ContactSync.member_hash.is_not(None)).order_by(ContactSync.id).limit(5000)))
        if not rows:
            return gone
        last_id = rows[-1].id
        gone.extend(r for r in rows if r.member_hash not in present and _still_ours(r)
                    and r.state in (SyncState.SYNCED, SyncState.UNSUBSCRIBED, SyncState.PENDING, SyncState.ERROR))
