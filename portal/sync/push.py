"""Push a set of contacts to the connector's audience: the one write path to Mailchimp members.

:func:`push_contacts` is shared by the initial copy's chunks (R8), retries of contacts in error
(R19) and, later, live replication (R10): it knows nothing of cursors or phases. Given contact
ids it

1. judges each contact's eligibility (:mod:`portal.sync.eligibility`) and records the reason
   for those left out;
2. builds each eligible contact's member body and fingerprint, and skips contacts whose
   fingerprint equals what was last sent (an unchanged contact sends nothing);
3. sends the rest through batch subscribe (``POST /lists/{id}``, 500 per call,
   ``update_existing``), so anaba's values overwrite the member's (R1, R4);
4. records a result per contact from ``new_members`` / ``updated_members`` / ``errors``:
   errors are classified, and only the contact's own faults are stored on the contact;
5. works out tag changes against the member's current tags (only the tags anaba knows are
   ever removed, R3) and either writes them as :class:`~portal.models.PendingTagOp` rows of
   `run` (the copy sends them grouped by tag later) or sends them at once.

Whole-call failures (key revoked, audience gone, Mailchimp down after the client's retries)
propagate as :class:`~portal.mailchimp.MailchimpError` with nothing recorded, so the caller
can pause or retry; replaying the same contacts later is harmless.
"""
from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import insert, select

from portal.extensions import db
from portal.mailchimp import BATCH_LIMIT, MailchimpError, classify_batch_error
from portal.mailchimp.payload import FieldMapping, build_member, payload_fingerprint, tag_changes
from portal.models import Connector, Contact, ContactSync, PendingTagOp, SyncEvent, SyncRun, Tag, utcnow
from portal.sync.eligibility import judge, state_for_reason

log = logging.getLogger(__name__)


@dataclass
class PushResult:
    """What happened to the contacts of one push."""

    processed: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: int = 0
    deferred: int = 0
    member_writes: int = 0
    tag_ops: int = 0
    skipped: Counter = field(default_factory=Counter)
    error_kinds: Counter = field(default_factory=Counter)

    def add_to(self, counts: dict) -> dict:
        """Add these numbers into a run's ``counts`` JSON (returns a new dict)."""
        merged = dict(counts or {})
        for key in ("created", "updated", "unchanged", "errors", "deferred", "member_writes", "tag_ops"):
            merged[key] = int(merged.get(key, 0)) + getattr(self, key)
        skipped = dict(merged.get("skipped") or {})
        for reason, n in self.skipped.items():
            skipped[reason] = int(skipped.get(reason, 0)) + n
        merged["skipped"] = skipped
        kinds = dict(merged.get("error_kinds") or {})
        for kind, n in self.error_kinds.items():
            kinds[kind] = int(kinds.get(kind, 0)) + n
        merged["error_kinds"] = kinds
        return merged


def mappings_of(connector: Connector) -> list[FieldMapping]:
    """The connector's field mapping as adapter objects."""
    return [FieldMapping.from_dict(m) for m in (connector.field_mapping or [])]


def managed_tag_names(workspace_id: int) -> list[str]:
    """Every tag anaba knows in the workspace: the only tags a push may remove (R3)."""
    return list(db.session.scalars(select(Tag.name).where(Tag.workspace_id == workspace_id)))


def push_contacts(connector_id: int, contact_ids: Sequence[int], run: SyncRun | None = None, *,
                  client=None, commit: bool = True, managed_tags: Iterable[str] | None = None) -> PushResult:
    """Send these contacts' current state to Mailchimp and record a result for each.

    With `run`, tag changes are stored as PendingTagOp rows of the run (sent later, grouped by
    tag); without, they are sent before returning. With ``commit=False`` the caller commits
    (the copy adds its cursor to the same transaction). Raises MailchimpError for whole-call
    failures, leaving the session rolled back to before the push's writes only if the caller
    rolls back (nothing has been flushed to Mailchimp's detriment: a replay is harmless).
    """
    from portal.sync.connectors import client_for

    connector = db.session.get(Connector, connector_id)
    result = PushResult()
    ids = sorted(set(int(i) for i in contact_ids))
    if connector is None or not ids:
        return result
    own_client = client is None
    client = client or client_for(connector)
    try:
        mappings = mappings_of(connector)
        managed = list(managed_tags) if managed_tags is not None else managed_tag_names(connector.workspace_id)
        contacts = list(db.session.scalars(
            select(Contact).where(Contact.workspace_id == connector.workspace_id, Contact.id.in_(ids))
            .order_by(Contact.id)
        ))
        rows = _sync_rows(connector, [c.id for c in contacts])
        verdicts = judge(connector.workspace_id, connector.id, contacts)
        now = utcnow()
        to_send: list[tuple[Contact, dict, list[str], str]] = []
        for contact in contacts:
            row = rows[contact.id]
            result.processed += 1
            verdict = verdicts[contact.id]
            if verdict.reason == "invalid_email":
                # Mailchimp would refuse it: an error with its fix, without spending a call.
                _record_error(row, MailchimpError("invalid_email", email=contact.email))
                result.errors += 1
                result.error_kinds["invalid_email"] += 1
                continue
            if not verdict.eligible:
                _leave_out(row, verdict.reason)
                result.skipped[verdict.reason] += 1
                continue
            payload = build_member(contact, mappings, status="subscribed")
            tags = contact.tag_names
            fingerprint = payload_fingerprint(payload, tags)
            if row.state == "synced" and row.fingerprint == fingerprint:
                result.unchanged += 1
                continue
            to_send.append((contact, payload, tags, fingerprint))

        events: list[dict] = []
        tag_ops: list[tuple[int, str, str, str]] = []  # contact id, email, tag, op
        for start in range(0, len(to_send), BATCH_LIMIT):
            part = to_send[start:start + BATCH_LIMIT]
            answer = client.batch_subscribe(connector.audience_id, [p for _, p, _, _ in part],
                                            update_existing=True) or {}
            result.member_writes += len(part)
            done = {}
            for member in answer.get("new_members") or []:
                done[(member.get("email_address") or "").lower()] = ("created", member)
            for member in answer.get("updated_members") or []:
                done[(member.get("email_address") or "").lower()] = ("updated", member)
            failed = {(e.get("email_address") or "").strip().lower(): e for e in answer.get("errors") or []}
            for contact, payload, tags, fingerprint in part:
                row = rows[contact.id]
                email = payload["email_address"]
                key = email.lower()
                if key in done:
                    how, member = done[key]
                    setattr(result, how, getattr(result, how) + 1)
                    current = [t.get("name", "") for t in member.get("tags") or [] if isinstance(t, dict)]
                    add, remove = tag_changes(current, tags, managed)
                    tag_ops.extend((contact.id, email, t, "add") for t in add)
                    tag_ops.extend((contact.id, email, t, "remove") for t in remove)
                    row.state, row.reason = "synced", ""
                    row.member_email = email
                    row.member_hash = member.get("id") or row.member_hash
                    row.fingerprint = fingerprint
                    row.synced_tags = list(tags)
                    row.last_synced_at = now
                    row.attempts = 0
                    _clear_error(row)
                    events.append(_event(connector, contact.id, run, "pushed", how))
                elif key in failed:
                    error = classify_batch_error(failed[key])
                    row.attempts = (row.attempts or 0) + 1
                    if error.transient:
                        row.state, row.reason = "pending", ""
                        result.deferred += 1
                        continue
                    _record_error(row, error)
                    result.errors += 1
                    result.error_kinds[error.kind] += 1
                    events.append(_event(connector, contact.id, run, "error", f"{error.kind}: {error.detail}"[:500]))
                else:
                    row.state, row.reason = "pending", ""
                    result.deferred += 1

        result.tag_ops = len(tag_ops)
        if tag_ops:
            if run is not None:
                db.session.execute(insert(PendingTagOp), [
                    {"run_id": run.id, "connector_id": connector.id, "contact_id": cid, "email": email,
                     "tag": tag, "op": op}
                    for cid, email, tag, op in tag_ops
                ])
            else:
                send_tag_ops(client, connector.audience_id, [(email, tag, op) for _, email, tag, op in tag_ops])
        if events:
            db.session.execute(insert(SyncEvent), events)
        if commit:
            db.session.commit()
        return result
    finally:
        if own_client:
            client.close()


def _sync_rows(connector: Connector, contact_ids: list[int]) -> dict[int, ContactSync]:
    """The contacts' sync rows, created (pending) where missing."""
    rows = {}
    for start in range(0, len(contact_ids), 500):
        part = contact_ids[start:start + 500]
        rows.update({r.contact_id: r for r in db.session.scalars(
            select(ContactSync).where(ContactSync.connector_id == connector.id, ContactSync.contact_id.in_(part))
        )})
    for cid in contact_ids:
        if cid not in rows:
            row = ContactSync(connector_id=connector.id, workspace_id=connector.workspace_id, contact_id=cid,
                              state="pending", reason="", synced_tags=[], attempts=0, owner_chosen=False,
                              error_kind="", error_message="", error_fix="", error_field="")
            db.session.add(row)
            rows[cid] = row
    return rows


def _leave_out(row: ContactSync, reason: str) -> None:
    row.state = state_for_reason(reason)
    row.reason = reason
    # Whatever was last sent no longer says anything: when the contact becomes eligible
    # again it must be sent even if its fields did not change.
    row.fingerprint = None
    _clear_error(row)


def _record_error(row: ContactSync, error: MailchimpError) -> None:
    row.state, row.reason = "error", ""
    row.fingerprint = None
    row.error_kind = error.kind
    row.error_message = error.message
    row.error_fix = error.fix
    row.error_field = (error.field or "")[:40]


def _clear_error(row: ContactSync) -> None:
    row.error_kind = ""
    row.error_message = ""
    row.error_fix = ""
    row.error_field = ""


def _event(connector: Connector, contact_id: int, run: SyncRun | None, kind: str, detail: str) -> dict:
    return {"workspace_id": connector.workspace_id, "connector_id": connector.id, "contact_id": contact_id,
            "run_id": run.id if run is not None else None, "kind": kind, "detail": detail,
            "created_at": utcnow()}


# --- tags ---------------------------------------------------------------------------------------

class SegmentDirectory:
    """The audience's tags (static segments) by lower-cased name; creates missing ones.

    A missing tag is created with its first e-mails to add in the same call, so creating a
    tag costs no extra call.
    """

    def __init__(self, client, list_id: str) -> None:
        self.client = client
        self.list_id = list_id
        self._by_name: dict[str, dict] | None = None

    def _load(self) -> dict[str, dict]:
        if self._by_name is None:
            self._by_name = {s["name"].strip().casefold(): s for s in self.client.get_segments(self.list_id)}
        return self._by_name

    def find(self, name: str) -> dict | None:
        """The segment called `name` (case-insensitive), if the audience has it."""
        return self._load().get(name.strip().casefold())

    def create(self, name: str, first_emails: Sequence[str]) -> dict:
        """Create the tag holding `first_emails` (at most 500); returns the segment."""
        try:
            segment = self.client.create_segment(self.list_id, name, list(first_emails)[:BATCH_LIMIT])
        except MailchimpError as exc:
            if exc.transient or exc.pauses_connector:
                raise
            # Created by an earlier attempt whose answer we never saw ("tag already exists").
            self._by_name = None
            segment = self.find(name)
            if segment is None:
                raise
            if first_emails:
                self.client.update_segment_members(self.list_id, segment["id"], add=list(first_emails)[:BATCH_LIMIT])
        self._load()[name.strip().casefold()] = segment
        return segment


def send_tag_group(directory: SegmentDirectory, tag: str, add: Sequence[str], remove: Sequence[str]) -> int:
    """Apply at most 500 additions and 500 removals of one tag in one call; calls made."""
    segment = directory.find(tag)
    if segment is None:
        if not add:
            return 0  # removing a tag the audience does not have: nothing to do
        directory.create(tag, add)
        if not remove:
            return 1
        directory.client.update_segment_members(directory.list_id, directory.find(tag)["id"], remove=remove)
        return 2
    directory.client.update_segment_members(directory.list_id, segment["id"], add=add, remove=remove)
    return 1


def send_tag_ops(client, list_id: str, ops: Sequence[tuple[str, str, str]]) -> int:
    """Send (email, tag, op) changes now, by the cheaper of per-member and per-tag calls."""
    if not ops:
        return 0
    by_member: dict[str, tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
    by_tag: dict[str, tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
    for email, tag, op in ops:
        by_member[email][0 if op == "add" else 1].append(tag)
        by_tag[tag][0 if op == "add" else 1].append(email)
    if len(by_member) <= len(by_tag):
        for email, (add, remove) in by_member.items():
            client.set_member_tags(list_id, email, add=add, remove=remove)
        return len(by_member)
    directory = SegmentDirectory(client, list_id)
    calls = 0
    for tag, (add, remove) in by_tag.items():
        for start in range(0, max(len(add), len(remove)), BATCH_LIMIT):
            calls += send_tag_group(directory, tag, add[start:start + BATCH_LIMIT], remove[start:start + BATCH_LIMIT])
    return calls
