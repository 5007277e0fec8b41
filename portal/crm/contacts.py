"""Create, change, delete and find contacts; tags and consent with their audit trail."""
from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field as dataclass_field
from datetime import datetime, timedelta
from functools import wraps
from typing import Any

from email_validator import EmailNotValidError, validate_email
from flask_babel import gettext as _
from sqlalchemy import ColumnElement, Integer, any_, cast, func, insert, select
from sqlalchemy.dialects import postgresql

from portal.crm.errors import ConsentLocked, ContactNotFound, CrmError, ValidationFailed
from portal.crm.events import announce
from portal.crm.spreadsheet_cells import protect_cell
from portal.extensions import db
from portal import labels
from portal.models import (CONSENT_VALUES, Activity, ActivityAction, ActivityCampaign, ActivitySummary, Channel,
                           Consent, ConsentEvent, ConsentLockReason, Contact, ContactChange, ContactSync, SyncEvent,
                           Tag, contact_tags, utcnow)
from portal.models.contact import fold, search_index
from portal.security import has_control_characters, is_invisible

MAX_TAGS = 50
TAG_MAX_LENGTH = 100


def normalize_email(raw: str | None) -> str | None:
    """Trimmed e-mail, or None when blank."""
    raw = (raw or "").strip()
    return raw or None


def check_email(email: str) -> str | None:
    """A human reason why `email` is not a usable address, or None when it is fine."""
    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError:
        return _("This is not a valid e-mail address.")
    return None


def clean_tag_names(names: Iterable[str]) -> list[str]:
    """Trimmed, de-duplicated (case-insensitively) tag names, first spelling wins."""
    seen: dict[str, str] = {}
    for name in names:
        name = " ".join(str(name).split())
        if name and name.lower() not in seen:
            seen[name.lower()] = name
    return list(seen.values())


def validate_contact_data(data: Mapping, *, partial: bool = False) -> dict:
    """Check and clean incoming contact fields; raise ValidationFailed with every problem found.

    Unknown keys are ignored. With `partial`, only the keys present are checked.
    """
    errors: dict[str, str] = {}
    clean: dict = {}
    for field in Contact.EDITABLE:
        if field not in data:
            continue
        value = data[field]
        if value is None:
            value = ""
        if not isinstance(value, (str, int, float)):
            errors[field] = _("Must be text.")
            continue
        if has_control_characters(str(value)):
            errors[field] = _("Must not contain control characters.")
            continue
        value = " ".join(str(value).split()) if field != "street" else str(value).strip()
        if value and is_invisible(value):
            errors[field] = _("Only invisible characters: type a visible value or leave the field empty.")
            continue
        limit = Contact.MAX_LENGTHS[field]
        if len(value) > limit:
            errors[field] = _("At most %(n)d characters.", n=limit)
            continue
        clean[field] = value
    if "email" in clean:
        clean["email"] = normalize_email(clean["email"])
        if clean["email"]:
            reason = check_email(clean["email"])
            if reason:
                errors["email"] = reason
    if "consent" in data:
        if data["consent"] not in CONSENT_VALUES:
            errors["consent"] = _("Consent must be one of: opt_in, opt_out, unknown.")
        else:
            clean["consent"] = data["consent"]
    if "tags" in data:
        tags = data["tags"]
        if isinstance(tags, str):
            tags = [t for t in tags.split(",")]
        if not isinstance(tags, (list, tuple)) or not all(isinstance(t, str) for t in tags):
            errors["tags"] = _("Tags must be a list of names.")
        elif any(has_control_characters(t) for t in tags):
            errors["tags"] = _("Must not contain control characters.")
        elif any(t.strip() and is_invisible(t) for t in tags):
            errors["tags"] = _("A tag needs visible characters.")
        else:
            names = clean_tag_names(tags)
            if len(names) > MAX_TAGS:
                errors["tags"] = _("At most %(n)d tags per contact.", n=MAX_TAGS)
            elif any(len(n) > TAG_MAX_LENGTH for n in names):
                errors["tags"] = _("A tag has at most %(n)d characters.", n=TAG_MAX_LENGTH)
            else:
                clean["tags"] = names
    if not partial:
        has_name = any(clean.get(f) for f in ("email", "first_name", "last_name", "company"))
        if not has_name and "email" not in errors:
            errors["email"] = _("Give at least an e-mail, a name or a company.")
    if errors:
        raise ValidationFailed(errors)
    return clean


def get_contact(workspace_id: int, contact_id: int, *, include_deleted: bool = False) -> Contact:
    """The workspace's contact `contact_id`; ContactNotFound for any other workspace's id."""
    query = select(Contact).where(Contact.id == contact_id, Contact.workspace_id == workspace_id)
    if not include_deleted:
        query = query.where(Contact.deleted_at.is_(None))
    contact = db.session.scalar(query)
    if contact is None:
        raise ContactNotFound(_("Contact not found."))
    return contact


def tags_by_name(workspace_id: int, names: Iterable[str], *, create: bool = True) -> list[Tag]:
    """The workspace's tags with these names (matched case-insensitively), created if missing."""
    names = clean_tag_names(names)
    if not names:
        return []
    # Matched in Python: SQLite's lower() only folds ASCII, so "ÉTÉ" and "été" would differ there.
    existing = {
        t.name.lower(): t for t in db.session.scalars(select(Tag).where(Tag.workspace_id == workspace_id))
    }
    result = []
    for name in names:
        tag = existing.get(name.lower())
        if tag is None and create:
            tag = Tag(workspace_id=workspace_id, name=name)
            db.session.add(tag)
            existing[name.lower()] = tag
        if tag is not None:
            result.append(tag)
    return result


def workspace_tags(workspace_id: int) -> list[Tag]:
    """Every tag of the workspace, by name."""
    return list(db.session.scalars(select(Tag).where(Tag.workspace_id == workspace_id).order_by(Tag.name)))


_STATE_DEFAULTS = {"consent": Consent.UNKNOWN, "consent_locked": False, "consent_lock_reason": "",
                   "consent_changed_at": None, "email_bounced": False, "do_not_sync": False, "deleted_at": None}


def insert_contacts(workspace_id: int, rows: Sequence[Mapping], tags: Sequence[Sequence[str]] | None = None,
                    ) -> list[int]:
    """Bulk-insert contacts, the one fast path (CSV import, demo data, benchmarks, tests); their ids.

    Each row holds contact fields (``Contact.EDITABLE``, plus optionally consent, consent_locked,
    email_bounced, do_not_sync, created_at, updated_at, deleted_at); the normalised columns are
    computed here. ``tags[i]`` are the tag names of ``rows[i]`` (created when the workspace lacks
    them). Not committed, not announced: the caller commits, then announces (R10). Consent
    events are the caller's to write, with the channel it knows.
    """
    if not rows:
        return []
    now = utcnow()
    values = []
    for row in rows:
        fields = {name: str(row.get(name) or "") for name in Contact.EDITABLE}
        fields["email"] = row.get("email") or None
        dated = {"consent_changed_at": now} if row.get("consent", Consent.UNKNOWN) != Consent.UNKNOWN else {}
        values.append({
            **fields, **_STATE_DEFAULTS, **dated, **{k: v for k, v in row.items() if k in _STATE_DEFAULTS},
            **Contact.derived(fields["email"], fields["first_name"], fields["last_name"], fields["company"]),
            "workspace_id": workspace_id, "created_at": row.get("created_at") or now,
            "updated_at": row.get("updated_at") or row.get("created_at") or now,
        })
    ids = list(db.session.scalars(insert(Contact).returning(Contact.id, sort_by_parameter_order=True), values))
    if tags:
        by_name = {t.name.lower(): t for t in tags_by_name(workspace_id, [n for names in tags for n in names])}
        db.session.flush()
        links = {(cid, by_name[n.lower()].id) for cid, names in zip(ids, tags) for n in clean_tag_names(names)}
        if links:
            db.session.execute(insert(contact_tags), [{"contact_id": c, "tag_id": t} for c, t in sorted(links)])
    return ids


@dataclass(frozen=True)
class ConsentEvidence:
    """What Mailchimp gave for a consent change it reported (R15): the raw webhook event it came in,
    the IP address and the time it recorded, and whatever else it said (reason, campaign…)."""

    at: datetime | None = None
    ip: str = ""
    webhook_event_id: int | None = None
    details: dict = dataclass_field(default_factory=dict)


def record_consent(contact: Contact, new: str, *, actor: str, channel: str, locked: bool | None = None,
                   note: str = "", lock_reason: str = "", evidence: ConsentEvidence | None = None) -> bool:
    """Change the contact's consent and write the audit event; True when anything changed. Not committed.

    Refuses to set opt-in on a locked contact unless the change comes from Mailchimp (R16):
    only the contact re-subscribing through Mailchimp may lift the lock. `lock_reason` is a
    :class:`~portal.models.ConsentLockReason` code (a self-unsubscribe when a lock is set without
    one). `evidence` (Mailchimp's channels) dates the change by Mailchimp's clock.
    """
    if new not in CONSENT_VALUES:
        raise ValidationFailed({"consent": _("Consent must be one of: opt_in, opt_out, unknown.")})
    from_mailchimp = Channel(channel).from_mailchimp
    if contact.consent_locked and new == Consent.OPT_IN and not from_mailchimp:
        raise ConsentLocked(
            _("This contact unsubscribed through Mailchimp; they have to subscribe again through Mailchimp.")
        )
    new_locked = contact.consent_locked if locked is None else locked
    if from_mailchimp and new == Consent.OPT_IN:
        new_locked = False
    if new == contact.consent and new_locked == contact.consent_locked:
        return False
    if lock_reason and lock_reason not in tuple(ConsentLockReason):
        raise ValueError(f"unknown consent lock reason {lock_reason!r}")
    reason = ""
    if new_locked:
        reason = lock_reason or (contact.consent_lock_reason if contact.consent_locked else "") \
            or ConsentLockReason.SELF_UNSUBSCRIBE
    now = utcnow()
    evidence = evidence or ConsentEvidence()
    db.session.add(ConsentEvent(
        workspace_id=contact.workspace_id, contact_id=contact.id, old=contact.consent, new=new,
        locked=new_locked, lock_reason=reason, actor=actor[:254], channel=channel, note=note[:300], created_at=now,
        webhook_event_id=evidence.webhook_event_id, evidence_ip=(evidence.ip or "")[:45],
        evidence_at=evidence.at, evidence=dict(evidence.details) or None,
    ))
    contact.consent = new
    contact.consent_locked = new_locked
    contact.consent_lock_reason = reason
    contact.consent_changed_at = evidence.at if (from_mailchimp and evidence.at) else now
    contact.updated_at = now
    return True


def _apply(contact: Contact, clean: Mapping, *, actor: str, channel: str) -> bool:
    """Copy cleaned fields onto the contact; True when anything changed."""
    changed = False
    for field in Contact.EDITABLE:
        if field in clean and (getattr(contact, field) or "") != (clean[field] or ""):
            setattr(contact, field, clean[field] if field == "email" else (clean[field] or ""))
            changed = True
    if "tags" in clean:
        tags = tags_by_name(contact.workspace_id, clean["tags"])
        if {t.name.lower() for t in tags} != {t.name.lower() for t in contact.tags} or (
            contact.id is None and tags
        ):
            contact.tags = tags
            changed = True
    if changed:
        contact.refresh_derived()
        contact.updated_at = utcnow()
    if "consent" in clean:
        if contact.id is None:
            db.session.flush()
        changed = record_consent(contact, clean["consent"], actor=actor, channel=channel) or changed
    return changed


def _all_or_nothing(func):
    """A refused write (bad field, locked consent) leaves nothing half-applied in the session."""

    @wraps(func)
    def wrapped(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except CrmError:
            db.session.rollback()
            raise

    return wrapped


@_all_or_nothing
def create_contact(workspace_id: int, data: Mapping, *, actor: str, channel: str) -> Contact:
    """Create a contact from raw fields (validated here), commit, announce it."""
    clean = validate_contact_data(data)
    consent = clean.pop("consent", None)
    contact = Contact(workspace_id=workspace_id)
    db.session.add(contact)
    _apply(contact, clean, actor=actor, channel=channel)
    contact.refresh_derived()
    db.session.flush()
    if consent and consent != Consent.UNKNOWN:
        record_consent(contact, consent, actor=actor, channel=channel)
    db.session.commit()
    announce(workspace_id, [contact.id], ContactChange.CREATED)
    return contact


@_all_or_nothing
def update_contact(workspace_id: int, contact_id: int, data: Mapping, *, actor: str, channel: str) -> Contact:
    """Change some fields of a contact (only the keys given), commit, announce when changed."""
    contact = get_contact(workspace_id, contact_id)
    clean = validate_contact_data(data, partial=True)
    merged_has_identity = any(
        (clean.get(f) if f in clean else getattr(contact, f)) for f in ("email", "first_name", "last_name", "company")
    )
    if not merged_has_identity:
        raise ValidationFailed({"email": _("Give at least an e-mail, a name or a company.")})
    changed = _apply(contact, clean, actor=actor, channel=channel)
    db.session.commit()
    if changed:
        announce(workspace_id, [contact.id], ContactChange.UPDATED)
    return contact


@_all_or_nothing
def set_consent(workspace_id: int, contact_id: int, consent: str, *, actor: str, channel: str,
                locked: bool | None = None, note: str = "", lock_reason: str = "",
                evidence: ConsentEvidence | None = None) -> Contact:
    """Change one contact's consent (R15), commit, announce."""
    contact = get_contact(workspace_id, contact_id)
    changed = record_consent(contact, consent, actor=actor, channel=channel, locked=locked, note=note,
                             lock_reason=lock_reason, evidence=evidence)
    db.session.commit()
    if changed:
        announce(workspace_id, [contact.id], ContactChange.CONSENT)
    return contact


BULK_CHUNK = 1000
"""Contacts per commit (and per announcement) of a bulk change."""


def add_tag_to(workspace_id: int, contact_ids: Iterable[int], name: str, *, actor: str, channel: str) -> int:
    """Put one tag on many contacts (created if the workspace lacks it); commits and announces per
    1,000. Returns how many contacts gained it."""
    tag = tags_by_name(workspace_id, [name])[0]
    db.session.commit()
    ids = sorted(set(int(i) for i in contact_ids))
    added = 0
    for start in range(0, len(ids), BULK_CHUNK):
        part = ids[start:start + BULK_CHUNK]
        live = set(db.session.scalars(select(Contact.id).where(
            Contact.workspace_id == workspace_id, Contact.deleted_at.is_(None), Contact.id.in_(part))))
        have = set(db.session.scalars(select(contact_tags.c.contact_id).where(
            contact_tags.c.tag_id == tag.id, contact_tags.c.contact_id.in_(part))))
        new = sorted(live - have)
        if new:
            db.session.execute(insert(contact_tags), [{"contact_id": cid, "tag_id": tag.id} for cid in new])
            db.session.execute(Contact.__table__.update().where(Contact.id.in_(new)).values(updated_at=utcnow()))
        db.session.commit()
        announce(workspace_id, new, ContactChange.UPDATED)
        added += len(new)
    return added


def set_consent_of(workspace_id: int, contact_ids: Iterable[int], consent: str, *, actor: str, channel: str
                   ) -> int:
    """Set the consent of many contacts, each change audited (R15); commits and announces per 1,000.

    Contacts whose consent is locked are left as they are when asked for opt-in (R16). Returns
    how many changed.
    """
    ids = sorted(set(int(i) for i in contact_ids))
    changed_count = 0
    for start in range(0, len(ids), BULK_CHUNK):
        changed = []
        for contact in db.session.scalars(select(Contact).where(
                Contact.workspace_id == workspace_id, Contact.deleted_at.is_(None),
                Contact.id.in_(ids[start:start + BULK_CHUNK]))):
            if contact.consent_locked and consent == Consent.OPT_IN:
                continue
            if record_consent(contact, consent, actor=actor, channel=channel):
                changed.append(contact.id)
        db.session.commit()
        announce(workspace_id, changed, ContactChange.CONSENT)
        changed_count += len(changed)
    return changed_count


def set_do_not_sync(workspace_id: int, contact_id: int, flag: bool, *, actor: str, channel: str) -> Contact:
    """Exclude a contact from Mailchimp (or include it again), commit, announce (R19 fix action)."""
    contact = get_contact(workspace_id, contact_id)
    if contact.do_not_sync != flag:
        contact.do_not_sync = flag
        contact.updated_at = utcnow()
        db.session.commit()
        announce(workspace_id, [contact.id], ContactChange.UPDATED)
    return contact


def mark_bounced(contact: Contact, *, actor: str, channel: str) -> bool:
    """Record that Mailchimp cleaned this address (R6); True when it changed. Caller commits."""
    if contact.email_bounced:
        return False
    contact.email_bounced = True
    contact.updated_at = utcnow()
    return True


def delete_contact(workspace_id: int, contact_id: int, *, actor: str, channel: str) -> None:
    """Soft-delete: the contact leaves every screen; the row stays so its member can be archived (R12)."""
    contact = get_contact(workspace_id, contact_id)
    contact.deleted_at = utcnow()
    contact.updated_at = contact.deleted_at
    db.session.commit()
    announce(workspace_id, [contact.id], ContactChange.DELETED)


def shared_email_counts(workspace_id: int, emails: Iterable[str]) -> dict[str, int]:
    """How many live contacts of the workspace use each of these (normalised) e-mails."""
    emails = [e for e in {e.lower() for e in emails if e}]
    if not emails:
        return {}
    rows = db.session.execute(
        select(Contact.email_normalized, func.count())
        .where(Contact.workspace_id == workspace_id, Contact.deleted_at.is_(None),
               Contact.email_normalized.in_(emails))
        .group_by(Contact.email_normalized)
    )
    return {e: n for e, n in rows}


def contact_history(workspace_id: int, contact_id: int) -> list[dict]:
    """Consent changes and sync events of one contact, newest first: {"at", "kind", "event"}.

    The SQL filters on the contact only and the workspace is checked in Python: with both in the
    WHERE clause SQLite may walk the workspace index (every event of the workspace) instead of
    the contact's.
    """
    items = [
        {"at": e.created_at, "kind": "consent", "event": e}
        for e in db.session.scalars(select(ConsentEvent).where(ConsentEvent.contact_id == contact_id))
        if e.workspace_id == workspace_id
    ]
    previous: dict | None = None
    for e in db.session.scalars(select(SyncEvent).where(SyncEvent.contact_id == contact_id).order_by(SyncEvent.id)):
        if e.workspace_id != workspace_id:
            continue
        items.append({"at": e.created_at, "kind": "sync", "event": e, "changes": _push_changes(previous, e.data)})
        previous = e.data or previous
    items.sort(key=lambda item: (item["at"], item["event"].id), reverse=True)
    return items


def consent_history(workspace_id: int, contact_id: int) -> list[ConsentEvent]:
    """Every consent change of one contact, oldest first (R15), deleted contacts included (a
    regulator may ask about someone deleted since); ContactNotFound for another workspace's id."""
    get_contact(workspace_id, contact_id, include_deleted=True)
    return list(db.session.scalars(select(ConsentEvent).where(ConsentEvent.contact_id == contact_id)
                                   .order_by(ConsentEvent.created_at, ConsentEvent.id)))


def _iso(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value is not None else ""


def contacts_by_email_everywhere(email: str, *, limit: int = 50) -> list[tuple[Contact, str]]:
    """Support's look-up (R15): the contacts of every workspace with this address (deleted ones too),
    each with its workspace's name. For a complaint or a regulator's question about one person."""
    from portal.models import Workspace

    address = (email or "").strip().lower()
    if not address:
        return []
    rows = db.session.execute(
        select(Contact, Workspace.name).join(Workspace, Workspace.id == Contact.workspace_id)
        .where(Contact.email_normalized == address).order_by(Workspace.name, Contact.id).limit(limit)).all()
    return [(contact, name) for contact, name in rows]


def consent_history_csv(workspace_id: int | None, contact_id: int) -> str:
    """One contact's consent history as a CSV file (``;``-separated, headers in the reader's
    language): what a customer answers a regulator or a complaint with. Every change with its
    before and after, lock, channel, who or what made it, when, and Mailchimp's evidence.
    Cells a spreadsheet would run as formulas are neutralised. `workspace_id` None: support,
    for a contact of any workspace."""

    if workspace_id is None:  # support: any workspace
        found = db.session.get(Contact, contact_id)
        if found is None:
            raise ContactNotFound(_("Contact not found."))
        workspace_id = found.workspace_id
    contact = get_contact(workspace_id, contact_id, include_deleted=True)
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow([protect_cell(c) for c in (
        _("Contact"), _("E-mail"), _("When (UTC)"), _("Before"), _("After"), _("Locked"), _("Lock reason"),
        _("Channel"), _("Who or what"), _("Note"), _("Time given by Mailchimp (UTC)"), _("IP address given by Mailchimp"),
        _("Webhook event"), _("Details from Mailchimp"))])
    for e in consent_history(workspace_id, contact_id):
        details = ", ".join(f"{k}={v}" for k, v in sorted((e.evidence or {}).items()) if v not in (None, ""))
        writer.writerow([protect_cell(c) for c in (
            contact.full_name, contact.email or "", _iso(e.created_at), labels.consent(e.old), labels.consent(e.new),
            _("yes") if e.locked else _("no"), labels.lock_reason(e.lock_reason) if e.locked else "",
            labels.channel(e.channel), e.actor, e.note or "", _iso(e.evidence_at), e.evidence_ip or "",
            e.webhook_event_id or "", details)])
    return out.getvalue()


def _push_changes(before: dict | None, sent: dict | None) -> dict | None:
    """What a live push changed compared with the push before it (None when it kept no data)."""
    if not sent:
        return None
    fields = sent.get("fields") or {}
    old = (before or {}).get("fields")
    changed = sorted(k for k, v in fields.items() if (old is None and v not in ("", None))
                     or (old is not None and old.get(k) != v))
    old_status = (before or {}).get("status")
    return {"fields": changed, "tags_added": sent.get("tags_added") or [], "tags_removed": sent.get("tags_removed") or [],
            "status": sent.get("status") if old_status and old_status != sent.get("status") else None,
            "old_email": sent.get("old_email"), "email": sent.get("email")}


NEVER_OPENED = "never"


@dataclass
class CampaignActivity:
    """What one campaign did with one contact (R18): a line of the "Marketing communication" tab."""

    campaign_id: str
    title: str
    subject: str
    send_time: datetime | None
    received_at: datetime | None = None
    opens: list[datetime] = dataclass_field(default_factory=list)
    clicks: list[tuple[str, datetime]] = dataclass_field(default_factory=list)
    bounce: str = ""  # ActivityAction.HARD_BOUNCE / SOFT_BOUNCE
    bounced_at: datetime | None = None
    unsubscribed_at: datetime | None = None

    @property
    def when(self) -> datetime | None:
        """When the campaign reached (or tried to reach) the contact: its send time, else the first event."""
        firsts = [t for t in (self.received_at, self.bounced_at, *self.opens, *(at for _u, at in self.clicks),
                              self.unsubscribed_at) if t is not None]
        return self.send_time or (min(firsts) if firsts else None)

    @property
    def links(self) -> list[tuple[str, int, datetime]]:
        """Each clicked link once: ``(url, clicks, last click)``, most clicked first."""
        by_url: dict[str, list[datetime]] = {}
        for url, at in self.clicks:
            by_url.setdefault(url, []).append(at)
        return sorted(((url, len(times), max(times)) for url, times in by_url.items()), key=lambda x: (-x[1], x[0]))

    @property
    def last_open(self) -> datetime | None:
        """The most recent open."""
        return max(self.opens) if self.opens else None


class _Paged:
    """A page of a longer list: how many pages there are."""

    total: int
    per_page: int

    @property
    def pages(self) -> int:
        """Number of pages (at least 1)."""
        return max(1, -(-self.total // self.per_page))


@dataclass
class ActivityTimeline(_Paged):
    """One page of a contact's campaigns, newest first."""

    items: list[CampaignActivity]
    total: int
    page: int
    per_page: int


def contact_campaign_timeline(workspace_id: int, contact_id: int, *, page: int = 1,
                              per_page: int = 10) -> ActivityTimeline:
    """The contact's campaigns with what the person did in each (R18), newest send first, a page at a time.

    A contact has an activity row per event; at most a few hundred campaigns, so the page is
    cut in Python after one grouped query on the contact's rows.
    """
    rows = db.session.execute(
        select(Activity.campaign_id, func.min(Activity.occurred_at))
        .where(Activity.contact_id == contact_id, Activity.workspace_id == workspace_id)
        .group_by(Activity.campaign_id)
    ).all()
    campaigns = _campaigns(workspace_id, [cid for cid, _first in rows])
    first_seen = dict(rows)

    def sent(cid: str) -> datetime:
        known = campaigns.get(cid)
        return known.send_time if known is not None else first_seen[cid]

    ordered = sorted(first_seen, key=lambda cid: (sent(cid), cid), reverse=True)
    total = len(ordered)
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    shown = ordered[(page - 1) * per_page:page * per_page]
    items = {cid: CampaignActivity(
        campaign_id=cid, title=campaigns[cid].title if cid in campaigns else "",
        subject=campaigns[cid].subject if cid in campaigns else "",
        send_time=campaigns[cid].send_time if cid in campaigns else None) for cid in shown}
    if shown:
        for a in db.session.scalars(select(Activity).where(
                Activity.contact_id == contact_id, Activity.workspace_id == workspace_id,
                Activity.campaign_id.in_(shown)).order_by(Activity.occurred_at, Activity.id)):
            item = items[a.campaign_id]
            if a.action == ActivityAction.SENT:
                item.received_at = a.occurred_at
            elif a.action == ActivityAction.OPEN:
                item.opens.append(a.occurred_at)
            elif a.action == ActivityAction.CLICK:
                item.clicks.append((a.url, a.occurred_at))
            elif a.action in (ActivityAction.HARD_BOUNCE, ActivityAction.SOFT_BOUNCE):
                item.bounce, item.bounced_at = a.action, a.occurred_at
            elif a.action == ActivityAction.UNSUBSCRIBE:
                item.unsubscribed_at = a.occurred_at
    return ActivityTimeline(items=[items[cid] for cid in shown], total=total, page=page, per_page=per_page)


def _campaigns(workspace_id: int, campaign_ids: Iterable[str]) -> dict[str, ActivityCampaign]:
    ids = list(campaign_ids)
    if not ids:
        return {}
    return {c.campaign_id: c for c in db.session.scalars(select(ActivityCampaign).where(
        ActivityCampaign.workspace_id == workspace_id, ActivityCampaign.campaign_id.in_(ids)))}


def contact_activity_list(workspace_id: int, contact_id: int, *, after_id: int = 0, limit: int = 100,
                          since: datetime | None = None, action: str = ""
                          ) -> list[tuple[Activity, ActivityCampaign | None]]:
    """The contact's activities in import order (id) after `after_id`, `limit` at a time (the API).

    ContactNotFound for another workspace's contact, or a deleted one. `since` keeps those that
    occurred at or after it; `action` one :class:`~portal.models.ActivityAction`.
    """
    get_contact(workspace_id, contact_id)
    where = [Activity.contact_id == contact_id, Activity.workspace_id == workspace_id, Activity.id > after_id]
    if since is not None:
        where.append(Activity.occurred_at >= since)
    if action:
        where.append(Activity.action == action)
    activities = list(db.session.scalars(select(Activity).where(*where).order_by(Activity.id).limit(limit)))
    campaigns = _campaigns(workspace_id, {a.campaign_id for a in activities})
    return [(a, campaigns.get(a.campaign_id)) for a in activities]


def _engaged(workspace_id: int, opened: str):
    """The contacts of the table's activity filter, from the per-contact summary each import
    leaves (:class:`~portal.models.ActivitySummary`), not from the activity itself: opened (or
    clicked) a campaign in the last N weeks, or received campaigns and never opened one."""
    summary = select(ActivitySummary.contact_id).where(ActivitySummary.workspace_id == workspace_id)
    if opened == NEVER_OPENED:
        return summary.where(ActivitySummary.last_engaged_at.is_(None), ActivitySummary.last_received_at.is_not(None))
    return summary.where(ActivitySummary.last_engaged_at >= utcnow() - timedelta(weeks=int(opened)))


def valid_opened_filter(value: str | None) -> str:
    """The activity filter as given if it is one ("never", or a number of weeks from 1 to 520), else ""."""
    value = (value or "").strip()
    if value == NEVER_OPENED:
        return value
    if value.isdigit() and 1 <= int(value) <= 520:
        return str(int(value))
    return ""


# A filtered table counts its contacts up to this many and then says "more than": an exact count
# of a large result reads every matching contact (up to a second at 1,000,000 contacts), while
# nobody pages through ten thousand of them.
COUNT_CAP = 10_000


@dataclass
class ContactPage(_Paged):
    """One page of the contacts table. ``capped``: more than ``total`` contacts match (a filtered
    table counts up to :data:`COUNT_CAP`)."""

    items: list[Contact]
    total: int
    page: int
    per_page: int
    capped: bool = False

    @property
    def pages(self) -> int:
        """Number of pages (at least 1); with a capped count, at least one past this page while it is full."""
        counted = max(1, -(-self.total // self.per_page))
        if self.capped and self.items:
            return max(counted, self.page + (1 if len(self.items) == self.per_page else 0))
        return counted


SORTS = {
    "name": (Contact.sort_name, Contact.id),
    "-name": (Contact.sort_name.desc(), Contact.id.desc()),
    "created": (Contact.created_at, Contact.id),
    "-created": (Contact.created_at.desc(), Contact.id.desc()),
}


def _text_conditions(q: str, searched: Any = Contact.search_text) -> list:
    """The search words (at most 5), each found anywhere in name, e-mail or company (`searched`)."""
    where = []
    for word in fold(q).split()[:5]:
        escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append(searched.like(f"%{escaped}%", escape="\\"))
    return where


@dataclass
class _IdSet:
    """Contact ids a search is restricted to: `ids`, a one-column SELECT, read whole when small;
    `walk`, the same test made contact by contact while walking the list in its order (None when
    the list's own conditions already make it)."""

    ids: Any
    walk: ColumnElement[bool] | None


def _in_set(ids) -> ColumnElement[bool]:
    """`ids` (a one-column SELECT) checked for each contact in turn: the database walks the list in
    its order and stops at the page, instead of reading and sorting the whole set."""
    column = ids.selected_columns[0]
    return ids.where(column == Contact.id).exists()


def _whole_set(ids) -> ColumnElement[bool]:
    """`ids` (a one-column SELECT, small) read whole first, then the few contacts it names sorted."""
    if db.engine.dialect.name == "postgresql":
        # Given `id IN (…)`, PostgreSQL walks the whole list in its order checking each contact
        # against the set (the "error" filter at 1,000,000 contacts: 253 ms); an array it reads
        # first makes it fetch those contacts by id and sort them (30 ms).
        listed = ids.subquery()
        every = select(func.array_agg(listed.c[0])).scalar_subquery()
        return Contact.id == any_(cast(every, postgresql.ARRAY(Integer)))
    return Contact.id.in_(ids)


def _id_sets(workspace_id: int, tag_id: int | None, sync_state: tuple[int, str] | None, opened: str = "",
             q: str = "") -> list[_IdSet]:
    """The sets a search is restricted to: a tag, a Mailchimp state, campaign activity and, on
    SQLite, the contacts its full-text index finds for the words of three letters or more."""
    sets = []
    if tag_id:
        sets.append(select(contact_tags.c.contact_id).where(contact_tags.c.tag_id == tag_id))
    if sync_state:
        connector_id, state = sync_state
        sets.append(select(ContactSync.contact_id).where(ContactSync.connector_id == connector_id,
                                                         ContactSync.state == state))
    if opened:
        sets.append(_engaged(workspace_id, opened))
    found = [_IdSet(ids, _in_set(ids)) for ids in sets]
    # The index answers LIKE only without an ESCAPE clause and for three letters in a row: a word
    # holding % or _ finds a few more candidates there (they are wildcards), which the list's own
    # escaped conditions then leave out.
    words = [w for w in fold(q).split()[:5] if re.search(r"[^%_]{3}", w)]
    if words and db.engine.dialect.name == "sqlite":
        indexed = [search_index.c.search_text.like(f"%{word}%") for word in words]
        found.append(_IdSet(select(search_index.c.rowid).where(*indexed), None))
    return found


def _search_conditions(workspace_id: int, *, q: str = "", tag_id: int | None = None, consent: str = "",
                       sync_state: tuple[int, str] | None = None) -> list:
    """WHERE clauses of a contact search: words in name, e-mail or company; a tag; a consent value;
    a Mailchimp sync state (``(connector_id, state)``, R17)."""
    where = [Contact.workspace_id == workspace_id, *_text_conditions(q)]
    if consent in CONSENT_VALUES:
        where.append(Contact.consent == consent)
    where += [Contact.id.in_(found.ids) for found in _id_sets(workspace_id, tag_id, sync_state, q=q)]
    return where


def live_contact_count(workspace_id: int) -> int:
    """The workspace's live contacts: all of them less the deleted ones (an index lists those)."""
    everyone = db.session.scalar(select(func.count()).select_from(Contact).where(
        Contact.workspace_id == workspace_id)) or 0
    deleted = db.session.scalar(select(func.count()).select_from(Contact).where(
        Contact.workspace_id == workspace_id, Contact.deleted_at.is_not(None))) or 0
    return everyone - deleted


def _capped_count(query) -> int:
    return db.session.scalar(select(func.count()).select_from(query.limit(COUNT_CAP + 1).subquery())) or 0


def search_contacts(workspace_id: int, *, q: str = "", tag_id: int | None = None, consent: str = "",
                    sync_state: tuple[int, str] | None = None, sort: str = "name", page: int = 1,
                    per_page: int = 50, opened: str = "") -> ContactPage:
    """Filter, sort and page the workspace's live contacts (search matches name, e-mail, company).

    `sync_state` is ``(connector_id, state)`` (R17). `opened` filters on campaign activity (R18):
    a number of weeks ("4": opened or clicked a campaign in the last 4 weeks) or "never"
    (received campaigns, never opened one). The whole table is counted exactly; a filtered one up to
    :data:`COUNT_CAP` (``capped`` says there are more).
    """
    row_where = [Contact.workspace_id == workspace_id, Contact.deleted_at.is_(None), *_text_conditions(q)]
    if consent in CONSENT_VALUES:
        row_where.append(Contact.consent == consent)
    sets = _id_sets(workspace_id, tag_id, sync_state, valid_opened_filter(opened), q)
    page = max(1, page)
    order = SORTS.get(sort, SORTS["name"])
    small_set = None
    if len(row_where) == 2 and not sets:
        total, capped = live_contact_count(workspace_id), False
    else:
        # Each set's size up to the cap (a short walk of its index); the smallest drives the count.
        sizes = sorted(((_capped_count(found.ids), n) for n, found in enumerate(sets)), key=lambda x: x[0])
        others = [sets[n].walk for _size, n in sizes[1:] if sets[n].walk is not None]
        if sets:
            size, first = sizes[0]
            driver = sets[first].ids
            # The set stays the outer loop and each of its ids is looked up: given a join, SQLite's
            # planner (its statistics sampled) walked the whole workspace instead (3.6 s at 1,000,000).
            contact_matches = select(Contact.id).where(Contact.id == driver.selected_columns[0], *row_where,
                                                       *others).exists()
            counted = driver.where(contact_matches)
            if size <= COUNT_CAP:
                small_set = sets[first]
        else:
            counted = select(Contact.id).where(*row_where)
            if db.engine.dialect.name == "sqlite":
                # SQLite's planner would count through the narrower updated_at index and read every
                # row for the search; walking the list index, which holds search_text, is 10x faster.
                counted = counted.order_by(Contact.sort_name, Contact.id)
        matched = _capped_count(counted)
        total, capped = min(matched, COUNT_CAP), matched > COUNT_CAP
    # A set small enough is read whole and sorted; a larger one is checked contact by contact while
    # walking the list in its order, which stops at the page (the first page of 300,000 "not
    # synced" contacts: 305 ms → 1 ms at 1,000,000).
    page_where = [*row_where, *(_whole_set(found.ids) if found is small_set else found.walk
                                for found in sets if found is small_set or found.walk is not None)]
    # Ids first, rows second: the database pages through the narrow index alone, then reads
    # only the 50 rows shown (a deep page on PostgreSQL: 137-216 ms → 18 ms).
    page_ids = (select(Contact.id).where(*page_where).order_by(*order)
                .offset((page - 1) * per_page).limit(per_page))
    items = list(db.session.scalars(select(Contact).where(Contact.id.in_(page_ids)).order_by(*order)))
    return ContactPage(items=items, total=total, page=page, per_page=per_page, capped=capped)


def list_by_id(workspace_id: int, *, since: datetime | None = None, after_id: int = 0, limit: int = 100,
               q: str = "", tag: str = "", consent: str = "") -> list[Contact]:
    """Contacts in id order after `after_id`, `limit` at a time (the API's paging).

    With `since`, only contacts changed at or after it, deleted ones included (a sync client
    sees deletions); without, live contacts only. `tag` is a tag name.
    """
    tag_id = None
    if tag:
        tags = tags_by_name(workspace_id, [tag], create=False)
        if not tags:
            return []
        tag_id = tags[0].id
    where = [*_search_conditions(workspace_id, q=q, tag_id=tag_id, consent=consent), Contact.id > after_id]
    if since is None:
        where.append(Contact.deleted_at.is_(None))
    else:
        where.append(Contact.updated_at >= since)
    return list(db.session.scalars(select(Contact).where(*where).order_by(Contact.id).limit(limit)))


def tag_counts(workspace_id: int) -> list[tuple[Tag, int]]:
    """Every tag of the workspace, by name, with how many live contacts carry it."""
    # Counted on the (tag_id, contact_id) index alone: deleted contacts are few, so excluding
    # them by id is far cheaper than joining every live contact.
    deleted = select(Contact.id).where(Contact.workspace_id == workspace_id, Contact.deleted_at.is_not(None))
    counts = dict(db.session.execute(
        select(contact_tags.c.tag_id, func.count())
        .where(contact_tags.c.tag_id.in_(select(Tag.id).where(Tag.workspace_id == workspace_id)),
               contact_tags.c.contact_id.not_in(deleted))
        .group_by(contact_tags.c.tag_id)
    ).all())
    return [(tag, counts.get(tag.id, 0)) for tag in workspace_tags(workspace_id)]
