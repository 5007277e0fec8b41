"""Live replication (R10–R13): every change made in anaba reaches Mailchimp within seconds.

1. :func:`note_changes` — the contact base announced committed changes: the contacts (and
   those sharing their old or new address, whose ownership may move) are marked *dirty*
   (``ContactSync.dirty_at``) and shown "pending" (R17). That is all a web request does.
2. :func:`replicate` — a background job pushes the dirty contacts, 500 per round, through
   :mod:`.push` (batch subscribe, renames, archives, tag calls); a bulk change (more than a
   round due) goes as bulk work, ``MAILCHIMP_BULK_CONNECTIONS`` rounds' calls at once (R20).
   A contact is cleared only if it did not change again while it was being sent
   (compare-and-clear on ``dirty_at``): bursts coalesce (ten quick edits cost at most two
   pushes, the last with the final state) and nothing is lost. A contact Mailchimp asks to come back later (a sign-up throttle) gets a
   ``dirty_at`` in the future.

One replication job per connector works at a time (the caller holds a lock), so a contact's
pushes happen in order. Whole-call failures never blame a contact: a revoked key or a deleted
audience pauses the connector, a Mailchimp outage leaves the contacts dirty for a later try.
Before pushing, members archived in Mailchimp since the last look are found (Mailchimp sends
no webhook for an archive) so that a push never silently brings them back (R13).
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from enum import StrEnum

from flask import current_app
from sqlalchemy import bindparam, func, select, update

from portal.extensions import db
from portal.mailchimp import MailchimpError
from portal.models import (Connector, ConnectorStatus, Contact, ContactSync, NotSyncedReason, RunKind, RunStatus,
                           SyncEvent, SyncEventKind, SyncRun, SyncState, utcnow)
from portal.sync import ConnectorError
from portal.sync.contact_state import states_for
from portal.sync.lifecycle import pause_connector
from portal.sync.mailchimp_access import client_for
from portal.sync.push import PushResult, SegmentDirectory, prepare_push, record_push, send_prepared

log = logging.getLogger(__name__)

ROUND = 500
"""Contacts per round: one batch-subscribe call's worth (API-NOTES §2)."""
ARCHIVE_CHECK_SECONDS = 60
"""How often, at most, a replicating connector looks for members archived in Mailchimp."""
OUT_OF_REACH = (SyncState.ARCHIVED_IN_MC, SyncState.DELETED_IN_MC)


class Outcome(StrEnum):
    """How a replication job ended."""

    IDLE = "idle"  # nothing to do (or the connector does not replicate now)
    DONE = "done"  # every due contact pushed
    MORE = "more"  # stopped after its rounds: more is due (give other connectors a turn)
    RETRY_LATER = "retry_later"  # Mailchimp unavailable: the contacts stay dirty
    PAUSED = "paused"  # key revoked or audience gone: the connector is paused


def replicates(connector: Connector | None) -> bool:
    """True when changes are pushed now (R10): the connector is active and no copy is going on.

    During a copy the changes wait (dirty) and the copy's end starts replication: a copy and a
    replication pushing the same contacts at once could send an older state last.
    """
    if connector is None or connector.status != ConnectorStatus.ACTIVE:
        return False
    return db.session.scalar(select(SyncRun.id).where(
        SyncRun.connector_id == connector.id, SyncRun.kind == RunKind.INITIAL_COPY,
        SyncRun.status.in_((RunStatus.QUEUED, RunStatus.RUNNING))).limit(1)) is None


def note_changes(connector: Connector, contact_ids: Iterable[int]) -> bool:
    """Mark these contacts as waiting for a push and show them pending (R10, R17); commits.

    Contacts sharing their current address, or the address their member was last sent as, are
    marked too: when an e-mail moves, which contact owns an address may change. Returns True
    when the connector replicates now (the caller then starts a replication job).
    """
    if connector.status in (ConnectorStatus.DELETED, ConnectorStatus.PENDING_VALIDATION,
                            ConnectorStatus.SENT_BACK):
        return False
    ids = set(int(i) for i in contact_ids)
    if not ids:
        return False
    ids |= _sharing_addresses(connector, ids)
    mark_dirty(connector, sorted(ids), utcnow())
    db.session.commit()
    return replicates(connector)


def _sharing_addresses(connector: Connector, ids: set[int]) -> set[int]:
    emails: set[str] = set()
    ordered = sorted(ids)
    for start in range(0, len(ordered), 500):
        part = ordered[start:start + 500]
        emails.update(e for e in db.session.scalars(
            select(Contact.email_normalized).where(Contact.id.in_(part))) if e)
        emails.update(e.lower() for e in db.session.scalars(
            select(ContactSync.member_email).where(ContactSync.connector_id == connector.id,
                                                   ContactSync.contact_id.in_(part))) if e)
    found: set[int] = set()
    addresses = sorted(emails)
    for start in range(0, len(addresses), 500):
        found.update(db.session.scalars(select(Contact.id).where(
            Contact.workspace_id == connector.workspace_id, Contact.deleted_at.is_(None),
            Contact.email_normalized.in_(addresses[start:start + 500]))))
    return found - ids


def mark_dirty(connector: Connector, ids: Sequence[int], when: datetime, *, erase: bool = False) -> None:
    """Mark these contacts as waiting for a push (shown pending), creating their rows; not committed."""
    table = ContactSync.__table__
    existing: set[int] = set()
    for start in range(0, len(ids), 500):
        part = ids[start:start + 500]
        existing.update(db.session.scalars(select(table.c.contact_id).where(
            table.c.connector_id == connector.id, table.c.contact_id.in_(part))))
        values: dict = {"dirty_at": when, "updated_at": when}
        if erase:
            values["erase_requested"] = True
        db.session.execute(table.update().where(
            table.c.connector_id == connector.id, table.c.contact_id.in_(part)).values(**values))
        db.session.execute(table.update().where(
            table.c.connector_id == connector.id, table.c.contact_id.in_(part),
            table.c.state.notin_(OUT_OF_REACH)).values(state=SyncState.PENDING))
    new = [cid for cid in ids if cid not in existing]
    if new:
        db.session.execute(table.insert(), [
            {"connector_id": connector.id, "workspace_id": connector.workspace_id, "contact_id": cid,
             "state": SyncState.PENDING, "reason": "", "synced_tags": [], "error_kind": "", "error_message": "",
             "error_fix": "", "error_field": "", "attempts": 0, "owner_chosen": False, "dirty_at": when,
             "erase_requested": erase, "updated_at": when}
            for cid in new])


def request_erase(connector: Connector, contact_id: int) -> None:
    """Ask for the contact's member to be deleted permanently (GDPR erasure, R12); commits.

    The next replication round erases it (``delete-permanent``) and records it in the contact's
    history; the contact stays in anaba as "deleted in Mailchimp" and is never pushed again
    until someone acts. The address can then only come back by signing up again.
    """
    if connector.status in (ConnectorStatus.DELETED, ConnectorStatus.PENDING_VALIDATION,
                            ConnectorStatus.SENT_BACK):
        raise ConnectorError("no member to erase")
    mark_dirty(connector, [contact_id], utcnow(), erase=True)
    db.session.commit()


def bring_back(connector: Connector, contact_id: int) -> None:
    """Someone acts on a contact archived or deleted in Mailchimp: push it again (R13); commits.

    A member archived in Mailchimp comes back when the contact is opt-in; one deleted for good
    answers that the person must sign up again, which the error then says.
    """
    rows = states_for(connector.id, [contact_id])
    row = rows.get(contact_id)
    if row is not None and row.state in OUT_OF_REACH:
        row.state = SyncState.PENDING
        row.fingerprint = None
    mark_dirty(connector, [contact_id], utcnow())
    db.session.commit()


def due_connectors(older_than: float = 0.0) -> list[int]:
    """Connectors with contacts due for a push for at least `older_than` seconds (the sweep)."""
    limit = utcnow() - timedelta(seconds=older_than)
    ids = db.session.scalars(select(ContactSync.connector_id).where(
        ContactSync.dirty_at.is_not(None), ContactSync.dirty_at <= limit).distinct())
    return [cid for cid in ids if replicates(db.session.get(Connector, cid))]


def next_due(connector_id: int) -> datetime | None:
    """When the connector's next dirty contact is due (None: none is dirty)."""
    return db.session.scalar(select(func.min(ContactSync.dirty_at)).where(
        ContactSync.connector_id == connector_id, ContactSync.dirty_at.is_not(None)))


def pending_count(connector_id: int) -> int:
    """How many of the connector's contacts wait for a push (the health panel)."""
    return db.session.scalar(select(func.count()).select_from(ContactSync).where(
        ContactSync.connector_id == connector_id, ContactSync.dirty_at.is_not(None))) or 0


def replicate(connector_id: int, *, rounds: int = 10, keep_alive: Callable[[], None] = lambda: None
              ) -> tuple[Outcome, float | None]:
    """Push the connector's due contacts, up to `rounds` rounds of 500; ``(outcome, retry_in_s)``.

    The caller holds the connector's replication lock and renews it with `keep_alive`.
    """
    connector = db.session.get(Connector, connector_id)
    if not replicates(connector):
        return Outcome.IDLE, None
    dirty = select(ContactSync.id, ContactSync.contact_id, ContactSync.dirty_at).where(
        ContactSync.connector_id == connector.id, ContactSync.dirty_at.is_not(None))
    # A bulk change (a tag on 20,000 contacts, a large import) is pushed as bulk work: several batch
    # calls at once within the key's bulk budget, leaving the rest of its connections to single edits.
    bulk = db.session.scalar(select(func.count()).select_from(
        dirty.where(ContactSync.dirty_at <= utcnow()).limit(ROUND + 1).subquery())) > ROUND
    width = int(current_app.config["MAILCHIMP_BULK_CONNECTIONS"]) if bulk else 1
    try:
        with client_for(connector, bulk=bulk) as client:
            _find_archived(connector, client)
            directory = SegmentDirectory(client, connector.audience_id)
            for _ in range(rounds):
                due = db.session.execute(dirty.where(ContactSync.dirty_at <= utcnow())
                                         .order_by(ContactSync.dirty_at).limit(ROUND * width)).all()
                if not due:
                    return Outcome.DONE, None
                result = _push_round(connector, client, due, directory, width)
                keep_alive()
                log.info("connector %s: pushed %d contacts (%d member writes, %d tag changes)", connector.id,
                         result.processed, result.member_writes, result.tag_ops)
            return Outcome.MORE, None
    except MailchimpError as exc:
        db.session.rollback()
        _note_call_failure(connector_id, exc)
        return after_call_failure(connector_id, exc)


def after_call_failure(connector_id: int, error: MailchimpError) -> tuple[Outcome, float | None]:
    """How a live job ends when Mailchimp failed a whole call (the session rolled back): a revoked
    key or a deleted audience pauses the connector; an outage comes back later. Anything else is
    raised again (the job fails and is reported)."""
    if error.pauses_connector:
        pause_connector(connector_id, error)
        return Outcome.PAUSED, None
    if error.transient:
        return Outcome.RETRY_LATER, error.retry_after or 30.0
    raise error


def _push_round(connector: Connector, client, due: Sequence, directory: SegmentDirectory,
                width: int = 1) -> PushResult:
    """One round: push these dirty contacts (up to `width` calls at once), then clear those that
    did not change meanwhile."""
    prepared = prepare_push(connector, [r.contact_id for r in due])
    answers = send_prepared(client, prepared, connector.audience_id, parallel=width)
    result = record_push(prepared, answers, None, client=client, directory=directory, parallel=width)
    now = utcnow()
    later = set(result.deferred_ids)
    delay = timedelta(seconds=result.retry_after or 60.0)
    table = ContactSync.__table__
    settle = table.update().where(table.c.id == bindparam("_id"), table.c.dirty_at == bindparam("_seen"))
    cleared = [{"_id": r.id, "_seen": r.dirty_at} for r in due if r.contact_id not in later]
    postponed = [{"_id": r.id, "_seen": r.dirty_at} for r in due if r.contact_id in later]
    if cleared:
        db.session.execute(settle.values(dirty_at=None), cleared)
    if postponed:
        db.session.execute(settle.values(dirty_at=now + delay), postponed)
    if result.member_writes or result.tag_ops or result.archived or result.erased:
        connector.last_push_at = now
    connector.last_error_kind = ""
    db.session.commit()
    return result


def _note_call_failure(connector_id: int, error: MailchimpError) -> None:
    """Remember on the connector that Mailchimp failed a whole call (health panel, banner)."""
    db.session.execute(update(Connector).where(Connector.id == connector_id)
                       .values(last_error_kind=error.kind, last_error_at=utcnow()))
    db.session.commit()


def _find_archived(connector: Connector, client) -> None:
    """Mark the contacts whose member was archived in Mailchimp since the last look (R13); commits.

    One read of the members archived since then (usually none). A member we archived ourselves
    (its contact was deleted in anaba) is left as it is.
    """
    now = utcnow()
    if connector.archives_checked_at and (now - connector.archives_checked_at).total_seconds() < ARCHIVE_CHECK_SECONDS:
        return
    since = connector.archives_checked_at or connector.activated_at or connector.created_at
    archived = {m.get("id"): m for m in client.iter_members(
        connector.audience_id, status="archived", since_last_changed=since - timedelta(seconds=1),
        fields=["id", "email_address"])}
    if archived:
        mark_out_of_reach(connector, list(archived), SyncState.ARCHIVED_IN_MC)
    connector.archives_checked_at = now
    db.session.commit()


def mark_out_of_reach(connector: Connector, member_hashes: Sequence[str], state: SyncState) -> int:
    """Contacts whose member these are were archived or deleted in Mailchimp (R13): nothing is
    pushed for them until someone acts. Not committed; how many changed."""
    rows = []
    for start in range(0, len(member_hashes), 500):
        rows.extend(db.session.scalars(select(ContactSync).where(
            ContactSync.connector_id == connector.id,
            ContactSync.member_hash.in_(member_hashes[start:start + 500]))))
    changed = 0
    for row in rows:
        ours = row.state == SyncState.NOT_SYNCED and row.reason == NotSyncedReason.DELETED
        if ours or row.state == state or row.state == SyncState.DELETED_IN_MC:
            continue
        row.state, row.reason, row.fingerprint, row.dirty_at = state, "", None, None
        db.session.add(SyncEvent(workspace_id=connector.workspace_id, connector_id=connector.id,
                                 contact_id=row.contact_id, kind=SyncEventKind.MAILCHIMP_STATE, detail=state))
        changed += 1
    return changed
