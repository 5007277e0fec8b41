"""The dry-run preview of a connector's first copy, for support's validation page (R7).

Only reads Mailchimp (GETs): the audience's merge fields, then its members page by page with
just ``email_address``, ``status``, ``merge_fields`` and ``tags``. Nothing about the members
is kept beyond the page being read — matched contact ids only — so a 100,000-member
audience costs a few megabytes.

Pass 1 (audience pages): contacts matching each page by e-mail; for the eligible ones the
member body is built and compared with the member (:func:`member_diff`, tag changes) →
*to update* (with up to 20 field-by-field samples) or *already up to date*.
Pass 2 (contacts by id): every live contact is judged → *skipped* by reason (a contact
sharing an address another contact owns included, as the copy records it), *to create*
(eligible and not in the audience), or *predicted failure* (invalid e-mail, value too long
or otherwise refused merge value), with samples.

The result is stored in ``SyncRun.result`` (see docs/sync-engine.md for its shape); pages read
its figures through :func:`portal.sync.counts.from_preview`, like the copy's.
"""
from __future__ import annotations

import logging
from collections import Counter

from sqlalchemy import select

from portal import background
from portal.extensions import db
from portal.mailchimp.payload import address_line, build_member, member_diff, predict_errors, tag_changes
from portal.models import Connector, Contact, NotSyncedReason, SyncRun, utcnow
from portal.sync import counts
from portal.sync import runs as run_rows
from portal.sync.eligibility import in_workspace, judge, owners_for
from portal.sync.lifecycle import live_contact_count
from portal.sync.mailchimp_access import client_for
from portal.sync.push import managed_tag_names, mappings_of

log = logging.getLogger(__name__)

SAMPLES = 20
PAGE = 1000
MEMBER_FIELDS = ["email_address", "status", "merge_fields", "tags"]


def run(run_id: int) -> run_rows.RunResult:
    """Compute the preview `run_id` and store it in the run's result (GETs only: a refusal fails it)."""
    return run_rows.execute(run_id, _store, pause_on_refusal=False)


def _store(run: SyncRun, connector: Connector, token: str) -> None:
    run.result = _compute(run, connector, token)
    run.counts = {k: run.result[k] for k in ("to_create", "to_update", "up_to_date", "eligible")}
    run.counts["skipped"] = run.result["skipped"]
    run.error_count = sum(f["count"] for f in run.result["predicted_failures"].values())


def _sample(contact: Contact, **extra) -> dict:
    return {"contact_id": contact.id, "name": contact.full_name, "email": contact.email or "", **extra}


def _compute(run: SyncRun, connector: Connector, token: str) -> dict:
    mappings = mappings_of(connector)
    managed = managed_tag_names(connector.workspace_id)
    total_contacts = live_contact_count(connector.workspace_id)
    out: dict = {
        "to_create": 0, "to_update": 0, "up_to_date": 0, "eligible": 0, "total_contacts": total_contacts,
        "update_samples": [], "create_samples": [], "skipped": {}, "predicted_failures": {},
        "shared": {"addresses": 0, "samples": []},
        "audience": {"members": 0, "matched": 0, "contacts_matched": 0, "unknown_members": 0, "statuses": {}},
    }
    shared_addresses: set[str] = set()
    skipped: Counter = Counter()
    failures: dict[str, dict] = {}
    matched: set[int] = set()

    def fail(kind: str, contact: Contact, **extra) -> None:
        group = failures.setdefault(kind, {"count": 0, "samples": []})
        group["count"] += 1
        if len(group["samples"]) < SAMPLES:
            group["samples"].append(_sample(contact, **extra))

    with client_for(connector) as client:
        merge_fields = client.get_merge_fields(connector.audience_id)
        stats = client.get_list(connector.audience_id).get("stats") or {}
        run.total = total_contacts + sum(int(stats.get(k) or 0)
                                         for k in ("member_count", "unsubscribe_count", "cleaned_count"))
        statuses: Counter = Counter()
        page: list[dict] = []

        def flush_page() -> None:
            _pass_one(connector, page, mappings, merge_fields, managed, out, matched, fail)
            run.done = out["audience"]["members"]
            background.checkpoint(run, token)
            db.session.commit()

        for member in client.iter_members(connector.audience_id, fields=MEMBER_FIELDS, page_size=PAGE):
            statuses[member.get("status") or ""] += 1
            page.append(member)
            if len(page) >= PAGE:
                flush_page()
                page = []
        if page:
            flush_page()
        out["audience"]["statuses"] = dict(statuses)

    # Pass 2: every live contact, in id order.
    last_id = seen = 0
    while True:
        contacts = list(db.session.scalars(
            select(Contact).where(in_workspace(connector.workspace_id), Contact.deleted_at.is_(None),
                                  Contact.id > last_id).order_by(Contact.id).limit(PAGE)
        ))
        if not contacts:
            break
        last_id = contacts[-1].id
        verdicts = judge(connector.workspace_id, connector.id, contacts)
        shared_owner = owners_for(connector.workspace_id, connector.id,
                                  [c.email_normalized for c in contacts if verdicts[c.id].reason == NotSyncedReason.SHARED_EMAIL])
        owner_names = _names(set(shared_owner.values()))
        for contact in contacts:
            reason = verdicts[contact.id].reason
            if reason == NotSyncedReason.INVALID_EMAIL:
                fail(NotSyncedReason.INVALID_EMAIL, contact)
                continue
            if reason == NotSyncedReason.SHARED_EMAIL:
                # Not a failure: the owner of the address is sent, this one is "not synced" (R19).
                skipped[reason] += 1
                shared_addresses.add(contact.email_normalized)
                owner_id = shared_owner.get(contact.email_normalized)
                if len(out["shared"]["samples"]) < SAMPLES:
                    out["shared"]["samples"].append(_sample(contact, owner_id=owner_id,
                                                            owner_name=owner_names.get(owner_id, "")))
                continue
            if reason:
                skipped[reason] += 1
                continue
            if contact.id in matched:
                continue  # counted in pass 1
            predicted = predict_errors(contact, mappings, merge_fields)
            if predicted:
                fail(predicted[0].kind, contact, field=predicted[0].field or "", message=predicted[0].message)
                continue
            out["eligible"] += 1
            out["to_create"] += 1
            if len(out["create_samples"]) < SAMPLES:
                out["create_samples"].append(_sample(contact, tags=contact.tag_names))
        seen += len(contacts)
        run.done = out["audience"]["members"] + seen
        background.checkpoint(run, token)
        db.session.commit()
    out["skipped"] = dict(skipped)
    out["shared"]["addresses"] = len(shared_addresses)
    out["predicted_failures"] = failures
    out["computed_at"] = utcnow().isoformat()
    run.done = run.total
    return out


def _pass_one(connector: Connector, members: list[dict], mappings, merge_fields, managed, out: dict,
              matched: set[int], fail) -> None:
    """Compare one page of members with the contacts that have their e-mails."""
    out["audience"]["members"] += len(members)
    by_email = {(m.get("email_address") or "").strip().lower(): m for m in members if m.get("email_address")}
    contacts = [c for c in db.session.scalars(
        select(Contact).where(Contact.workspace_id == connector.workspace_id,
                              Contact.email_normalized.in_(list(by_email)))
    ) if c.deleted_at is None] if by_email else []
    members, matched_contacts = counts.match_members(by_email, contacts)
    out["audience"]["unknown_members"] += len(by_email) - members
    out["audience"]["matched"] += members
    out["audience"]["contacts_matched"] += matched_contacts
    verdicts = judge(connector.workspace_id, connector.id, contacts)
    for contact in contacts:
        if not verdicts[contact.id].eligible:
            continue  # pass 2 reports it
        matched.add(contact.id)
        predicted = predict_errors(contact, mappings, merge_fields)
        if predicted:
            fail(predicted[0].kind, contact, field=predicted[0].field or "", message=predicted[0].message)
            continue
        out["eligible"] += 1
        member = by_email[contact.email_normalized]
        payload = build_member(contact, mappings, status="subscribed")
        diff = member_diff(member, payload)
        current_tags = [t.get("name", "") for t in member.get("tags") or [] if isinstance(t, dict)]
        add, remove = tag_changes(current_tags, contact.tag_names, managed)
        if not diff and not add and not remove:
            out["up_to_date"] += 1
            continue
        out["to_update"] += 1
        if len(out["update_samples"]) < SAMPLES:
            out["update_samples"].append(_sample(
                contact,
                changes={k: [_plain(v[0]), _plain(v[1])] for k, v in diff.items()},
                tags_add=add, tags_remove=remove,
            ))


def _names(contact_ids: set[int]) -> dict[int, str]:
    """The display names of these contacts, by id."""
    if not contact_ids:
        return {}
    return {c.id: c.full_name for c in db.session.scalars(select(Contact).where(Contact.id.in_(sorted(contact_ids))))}


def _plain(value):
    """A JSON- and template-friendly merge value: an address as one line, the way it is written on
    an envelope ("12 rue de la Paix, 75002 Paris, FR"), each part once."""
    if isinstance(value, dict):
        return address_line(value)
    return value
