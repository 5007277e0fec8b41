"""Which contacts go to Mailchimp, and why the others do not (R2, R14, R17, R19).

A contact is eligible when it is live (not deleted), has an e-mail Mailchimp accepts the
syntax of, its consent is opt-in, its address has not bounced, it is not marked "do not
sync", and it *owns* its e-mail address.

Shared e-mail owner rule: several live contacts of a workspace may share one address, but a
Mailchimp member has one address. Among the contacts sharing it that are otherwise eligible,
the one whose sync row has ``owner_chosen`` (set by the customer, R19) owns it; otherwise the
oldest contact (lowest id) does. The others are "not synced" with the reason
``shared_email`` and the "choose the owner" fix.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, select

from portal.extensions import db
from portal.mailchimp.payload import email_syntax_ok
from portal.models import Consent, Contact, ContactSync, NotSyncedReason, SyncState

# Reasons in the order they are checked; the first that applies is shown (R17).
REASONS = tuple(NotSyncedReason)

@dataclass(frozen=True)
class Verdict:
    """Eligibility of one contact: ``reason`` is empty when it goes to Mailchimp."""

    contact_id: int
    reason: NotSyncedReason | str = ""

    @property
    def eligible(self) -> bool:
        """True when the contact is sent to Mailchimp."""
        return not self.reason


_c = Contact.__table__.c
# Core columns: rows come back without the ORM's per-row loading. The e-mail queries leave
# "deleted_at IS NULL" out so that only the (workspace_id, email_normalized…) index can serve
# them (with it, SQLite once picked a (workspace_id, deleted_at…) index and scanned the whole
# workspace per chunk); own_reason() drops deleted contacts anyway.
_JUDGE_COLUMNS = (_c.id, _c.email_normalized, _c.email, _c.consent, _c.consent_locked, _c.email_bounced,
                  _c.do_not_sync, _c.deleted_at)


def in_workspace(workspace_id: int) -> ColumnElement[bool]:
    """``Contact.workspace_id == workspace_id`` for scans by contact id.

    Written ``workspace_id + 0`` so that no index on workspace_id applies: the database then
    walks the primary key from the cursor. With a plain comparison SQLite picks a
    (workspace_id, …) index and sorts every contact of the workspace for each chunk, which
    makes a copy quadratic.
    """
    return (_c.workspace_id + 0) == workspace_id


def own_reason(contact: Any) -> NotSyncedReason | str:
    """Why this contact cannot be sent whatever the others sharing its e-mail do ("" if it can).

    `contact` is a Contact or a row with the same attribute names. Only opt-in contacts are
    sent (R14); a consent locked by a self-unsubscribe reads as such (R16).
    """
    if getattr(contact, "deleted_at", None) is not None:
        return NotSyncedReason.DELETED
    email = (getattr(contact, "email", None) or "").strip()
    if not email:
        return NotSyncedReason.NO_EMAIL
    if not email_syntax_ok(email):
        return NotSyncedReason.INVALID_EMAIL
    if getattr(contact, "do_not_sync", False):
        return NotSyncedReason.DO_NOT_SYNC
    if getattr(contact, "email_bounced", False):
        return NotSyncedReason.BOUNCED
    consent = getattr(contact, "consent", Consent.UNKNOWN)
    if consent == Consent.OPT_OUT:
        return NotSyncedReason.CONSENT_LOCKED if getattr(contact, "consent_locked", False) else NotSyncedReason.OPT_OUT
    if consent != Consent.OPT_IN:
        return NotSyncedReason.NO_CONSENT
    return ""


def owners_for(workspace_id: int, connector_id: int | None, emails: Iterable[str]) -> dict[str, int]:
    """The owning contact id of each of these (normalised) e-mails, by the owner rule.

    One query over the contacts using these addresses (indexed by workspace and e-mail),
    plus one over the sync rows that carry a chosen owner.
    """
    emails = sorted({e for e in emails if e})
    owners: dict[str, int] = {}
    if not emails:
        return owners
    candidates: dict[str, list[int]] = {}
    for start in range(0, len(emails), 500):
        part = emails[start:start + 500]
        rows = db.session.execute(
            select(*_JUDGE_COLUMNS)
            .where(_c.workspace_id == workspace_id, _c.email_normalized.in_(part), _c.consent == Consent.OPT_IN)
            .order_by(_c.id)
        )
        for row in rows:
            if not own_reason(row):
                candidates.setdefault(row.email_normalized, []).append(row.id)
    shared = [cid for ids in candidates.values() if len(ids) > 1 for cid in ids]
    chosen: set[int] = set()
    if shared and connector_id is not None:
        for start in range(0, len(shared), 500):
            chosen.update(db.session.scalars(
                select(ContactSync.contact_id).where(
                    ContactSync.connector_id == connector_id, ContactSync.owner_chosen.is_(True),
                    ContactSync.contact_id.in_(shared[start:start + 500]))
            ))
    for email, ids in candidates.items():
        picked = [cid for cid in ids if cid in chosen]
        owners[email] = picked[0] if picked else ids[0]
    return owners


def judge(workspace_id: int, connector_id: int | None, contacts: Sequence) -> dict[int, Verdict]:
    """Eligibility of each of these contacts (Contact objects or rows), by contact id.

    Only the *other* contacts sharing these addresses are read from the database (usually
    none), so judging a chunk costs one indexed query.
    """
    verdicts: dict[int, Verdict] = {}
    by_email: dict[str, list[int]] = {}
    for contact in contacts:
        reason = own_reason(contact)
        verdicts[contact.id] = Verdict(contact.id, reason)
        if not reason:
            email = contact.email_normalized or contact.email.strip().lower()
            by_email.setdefault(email, []).append(contact.id)
    if not by_email:
        return verdicts
    mine = list(verdicts)
    emails = list(by_email)
    for start in range(0, len(emails), 500):
        rows = db.session.execute(
            select(*_JUDGE_COLUMNS)
            .where(_c.workspace_id == workspace_id, _c.email_normalized.in_(emails[start:start + 500]),
                   _c.consent == Consent.OPT_IN, _c.id.notin_(mine))
        )
        for row in rows:
            if not own_reason(row):
                by_email[row.email_normalized].append(row.id)
    shared = {email: sorted(ids) for email, ids in by_email.items() if len(ids) > 1}
    if not shared:
        return verdicts
    chosen: set[int] = set()
    if connector_id is not None:
        candidates = [cid for ids in shared.values() for cid in ids]
        for start in range(0, len(candidates), 500):
            chosen.update(db.session.scalars(
                select(ContactSync.contact_id).where(
                    ContactSync.connector_id == connector_id, ContactSync.owner_chosen.is_(True),
                    ContactSync.contact_id.in_(candidates[start:start + 500]))
            ))
    for ids in shared.values():
        picked = [cid for cid in ids if cid in chosen]
        owner = picked[0] if picked else ids[0]
        for cid in ids:
            if cid != owner and cid in verdicts:
                verdicts[cid] = Verdict(cid, NotSyncedReason.SHARED_EMAIL)
    return verdicts


def state_for_reason(reason: str) -> SyncState:
    """The R17 state shown for a contact left out for `reason`."""
    return SyncState.BOUNCED if reason == NotSyncedReason.BOUNCED else SyncState.NOT_SYNCED
