"""Import each contact's consent from the audience when a connector is submitted (R6, R16).

The audience is read page by page (only ``email_address``, ``status`` and
``unsubscribe_reason``), contacts are matched by normalised e-mail a page at a time, and:

- ``subscribed`` → opt-in (this also lifts a lock: the person subscribed again);
- ``unsubscribed`` → opt-out, *locked* when the member unsubscribed themself (any reason
  other than Mailchimp's admin one, ``N/A (Unsubscribed by admin)``): only the person can
  subscribe again, through Mailchimp (R16);
- ``cleaned`` → the address is marked bounced.

Every consent change goes through :func:`portal.crm.contacts.record_consent` with the
channel ``mailchimp_import`` (an audit event each). Contacts absent from the audience keep
their consent. Running it twice changes nothing the second time.
"""
from __future__ import annotations

import logging

from sqlalchemy import select

from portal import background
from portal.crm.contacts import ConsentEvidence, mark_bounced, record_consent
from portal.crm.events import announce
from portal.extensions import db
from portal.models import Channel, Connector, Consent, ConsentLockReason, Contact, ContactChange, SyncRun
from portal.sync.webhooks import parse_fired_at
from portal.sync import runs as run_rows
from portal.sync.counts import match_members
from portal.sync.mailchimp_access import client_for

log = logging.getLogger(__name__)

ADMIN_UNSUBSCRIBE = "N/A (Unsubscribed by admin)"
ACTOR = "Mailchimp"
CHANNEL = Channel.MAILCHIMP_IMPORT
PAGE = 1000
MEMBER_FIELDS = ["id", "email_address", "status", "unsubscribe_reason", "last_changed", "timestamp_opt", "ip_opt",
                 "ip_signup"]


def run(run_id: int) -> run_rows.RunResult:
    """Run (or re-run) the consent import `run_id`. Mailchimp refusing it fails the run (the
    copy runs it again before sending anything)."""
    return run_rows.execute(run_id, _import, pause_on_refusal=False)


def _import(run: SyncRun, connector: Connector, token: str) -> None:
    counts = {"members": 0, "matched": 0, "contacts_matched": 0, "opt_in": 0, "opt_out": 0, "locked": 0,
              "bounced": 0, "unchanged": 0}
    with client_for(connector) as client:
        stats = client.get_list(connector.audience_id).get("stats") or {}
        run.total = sum(int(stats.get(k) or 0) for k in ("member_count", "unsubscribe_count", "cleaned_count"))
        background.checkpoint(run, token)
        db.session.commit()
        page: list[dict] = []
        members = client.iter_members(connector.audience_id, fields=MEMBER_FIELDS, page_size=PAGE)
        for member in members:
            page.append(member)
            if len(page) >= PAGE:
                _apply(run, connector, page, counts, token)
                page = []
        if page:
            _apply(run, connector, page, counts, token)
    run.total = max(run.total, counts["members"])
    run.done = counts["members"]
    run.counts = counts
    run.result = dict(counts)


def _apply(run: SyncRun, connector: Connector, members: list[dict], counts: dict, token: str) -> None:
    """Apply one page of members to the matching contacts, then commit with a heartbeat."""
    by_email: dict[str, dict] = {}
    for member in members:
        email = (member.get("email_address") or "").strip().lower()
        if email:
            by_email[email] = member
    counts["members"] += len(members)
    changed: list[int] = []
    if by_email:
        contacts = [c for c in db.session.scalars(
            # deleted contacts are left out here: see eligibility._JUDGE_COLUMNS for why not in SQL
            select(Contact).where(Contact.workspace_id == connector.workspace_id,
                                  Contact.email_normalized.in_(list(by_email)))
        ) if c.deleted_at is None]
        # Members matched, as the preview counts them (several contacts may share one address).
        members, matched_contacts = match_members(by_email, contacts)
        counts["matched"] += members
        counts["contacts_matched"] = counts.get("contacts_matched", 0) + matched_contacts
        for contact in contacts:
            member = by_email[contact.email_normalized]
            if _apply_member(contact, member, counts):
                changed.append(contact.id)
            else:
                counts["unchanged"] += 1
    run.done = counts["members"]
    run.counts = dict(counts)
    background.checkpoint(run, token)
    db.session.commit()
    if changed:
        announce(connector.workspace_id, changed, ContactChange.CONSENT)


def _evidence(member: dict) -> ConsentEvidence:
    """What the audience says about the member's consent: when (its opt-in time, or its last
    change), from which IP address, and Mailchimp's own reason (R15)."""
    subscribed = member.get("status") == "subscribed"
    at = parse_fired_at(str((member.get("timestamp_opt") if subscribed else "") or member.get("last_changed") or ""))
    details = {k: member.get(k) for k in ("id", "status", "unsubscribe_reason", "last_changed") if member.get(k)}
    return ConsentEvidence(at=at, ip=(member.get("ip_opt") or member.get("ip_signup") or "") if subscribed else "",
                           details=details)


def _apply_member(contact: Contact, member: dict, counts: dict) -> bool:
    """Apply one member's status to its contact; True when the contact changed."""
    status = member.get("status")
    if status == "subscribed":
        if record_consent(contact, Consent.OPT_IN, actor=ACTOR, channel=CHANNEL, evidence=_evidence(member)):
            counts["opt_in"] += 1
            return True
        return False
    if status == "unsubscribed":
        reason = (member.get("unsubscribe_reason") or "").strip()
        locked = reason != ADMIN_UNSUBSCRIBE
        changed = record_consent(
            contact, Consent.OPT_OUT, actor=ACTOR, channel=CHANNEL, locked=locked, note=reason[:300],
            lock_reason=ConsentLockReason.SELF_UNSUBSCRIBE if locked else "", evidence=_evidence(member),
        )
        if changed:
            counts["locked" if locked else "opt_out"] += 1
        return changed
    if status == "cleaned":
        if mark_bounced(contact, actor=ACTOR, channel=CHANNEL):
            counts["bounced"] += 1
            return True
    return False
