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
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from portal.extensions import db
from portal.mailchimp import BATCH_LIMIT, MailchimpError, classify_batch_error
from portal.mailchimp.payload import FieldMapping, build_member, payload_fingerprint, tag_changes
from portal.models import (Connector, Contact, NotSyncedReason, SyncState, PendingTagOp, SyncEvent, SyncEventKind, SyncRun,
                           Tag, contact_tags, utcnow)
from portal.sync.contact_state import SyncRow, load_rows, save_rows
from portal.sync.eligibility import in_workspace, judge
from portal.sync.mailchimp_access import client_for

log = logging.getLogger(__name__)

# The parts of a batch-subscribe answer we read; the rest (full member objects) is dropped
# by Mailchimp before it is sent.
ANSWER_FIELDS = tuple(f"{kind}.{key}" for kind in ("new_members", "updated_members")
                      for key in ("id", "email_address", "tags")) + ("errors",)


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

    def merge(self, other: PushResult) -> None:
        """Add another push's numbers into this one."""
        for key in ("processed", "created", "updated", "unchanged", "errors", "deferred", "member_writes", "tag_ops"):
            setattr(self, key, getattr(self, key) + getattr(other, key))
        self.skipped.update(other.skipped)
        self.error_kinds.update(other.error_kinds)


def mappings_of(connector: Connector) -> list[FieldMapping]:
    """The connector's field mapping as adapter objects."""
    return [FieldMapping.from_dict(m) for m in (connector.field_mapping or [])]


def managed_tag_names(workspace_id: int) -> list[str]:
    """Every tag anaba knows in the workspace: the only tags a push may remove (R3)."""
    return list(db.session.scalars(select(Tag.name).where(Tag.workspace_id == workspace_id)))


_c = Contact.__table__.c
# Core columns (not ORM attributes): a chunk's rows load without per-row ORM work.
CONTACT_COLUMNS = (
    _c.id, _c.email, _c.email_normalized, _c.first_name, _c.last_name, _c.phone, _c.company, _c.job_title,
    _c.street, _c.postal_code, _c.city, _c.country, _c.consent, _c.consent_locked, _c.email_bounced,
    _c.do_not_sync, _c.deleted_at,
)
def _contact_tags(contact_ids: list[int]) -> dict[int, list[str]]:
    tags: dict[int, list[str]] = defaultdict(list)
    for start in range(0, len(contact_ids), 500):
        for cid, name in db.session.execute(
            select(contact_tags.c.contact_id, Tag.name).join(Tag, Tag.id == contact_tags.c.tag_id)
            .where(contact_tags.c.contact_id.in_(contact_ids[start:start + 500]))
        ):
            tags[cid].append(name)
    return {cid: sorted(names) for cid, names in tags.items()}


@dataclass
class PreparedPush:
    """A push worked out from the database, before any call: what to send and the rows to fill.

    Made by :func:`prepare_push`, sent by :func:`send_prepared` (HTTP only, safe in another
    thread), recorded by :func:`record_push` (database only). The copy overlaps the sending of
    one chunk with the preparing of the next.
    """

    connector: Connector
    managed: list[str]
    rows: dict[int, SyncRow]
    result: PushResult
    to_send: list[tuple[Any, dict, list[str], str]]


def prepare_push(connector: Connector, contact_ids: Sequence[int],
                 managed_tags: Iterable[str] | None = None) -> PreparedPush:
    """Read the contacts, judge them, build the member bodies; record the ones left out (in memory)."""
    ids = sorted(set(int(i) for i in contact_ids))
    result = PushResult()
    with db.session.no_autoflush:
        mappings = mappings_of(connector)
        managed = list(managed_tags) if managed_tags is not None else managed_tag_names(connector.workspace_id)
        contacts = []
        for start in range(0, len(ids), 500):
            contacts.extend(db.session.execute(
                select(*CONTACT_COLUMNS).where(in_workspace(connector.workspace_id),
                                               _c.id.in_(ids[start:start + 500]))
            ).all())
        contacts.sort(key=lambda c: c.id)
        found = [c.id for c in contacts]
        rows = load_rows(connector, found)
        tags_of = _contact_tags(found)
        verdicts = judge(connector.workspace_id, connector.id, contacts)
    to_send: list[tuple[Any, dict, list[str], str]] = []
    for contact in contacts:
        row = rows[contact.id]
        result.processed += 1
        verdict = verdicts[contact.id]
        if verdict.reason == NotSyncedReason.INVALID_EMAIL:
            # Mailchimp would refuse it: an error with its fix, without spending a call.
            row.failed(MailchimpError("invalid_email", email=contact.email))
            result.errors += 1
            result.error_kinds["invalid_email"] += 1
            continue
        if not verdict.eligible:
            row.left_out(verdict.reason)
            result.skipped[verdict.reason] += 1
            continue
        payload = build_member(contact, mappings, status="subscribed")
        tags = tags_of.get(contact.id, [])
        fingerprint = payload_fingerprint(payload, tags)
        if row.state == SyncState.SYNCED and row.fingerprint == fingerprint:
            result.unchanged += 1
            continue
        to_send.append((contact, payload, tags, fingerprint))
    return PreparedPush(connector=connector, managed=managed, rows=rows, result=result, to_send=to_send)


def send_prepared(client, prepared: PreparedPush, audience_id: str) -> list[dict]:
    """The batch-subscribe calls of a prepared push (500 members each); their answers, in order.

    Mailchimp refuses a whole batch when one item breaks its schema (a merge value of the
    wrong JSON type after someone changed the field's type in Mailchimp…): one bad contact must
    not sink 499 others (R8), so such a batch is split to find the culprits, which come back as
    per-member errors of the answer (API-NOTES §2).
    """
    return [_subscribe_isolating(client, audience_id, [p for _, p, _, _ in prepared.to_send[start:start + BATCH_LIMIT]])
            for start in range(0, len(prepared.to_send), BATCH_LIMIT)]


_ITEM_FIELD = re.compile(r"^members\.item:(\d+)(?:\.(.*))?$")


def _whole_batch_refusal(exc: MailchimpError) -> bool:
    return exc.status == 400 and not exc.transient and not exc.pauses_connector


def _subscribe_isolating(client, audience_id: str, payloads: list[dict]) -> dict:
    """One batch subscribe; when Mailchimp refuses it whole, resend it without the items it blames
    (or halves of it, when it names none), and merge the answers."""
    try:
        return client.batch_subscribe(audience_id, payloads, update_existing=True, fields=ANSWER_FIELDS) or {}
    except MailchimpError as exc:
        if not _whole_batch_refusal(exc):
            raise
        blamed = _blamed_items(exc, len(payloads))
        if len(payloads) == 1:
            blamed = blamed or {0: (None, exc.detail or exc.title)}
        if not blamed:
            middle = len(payloads) // 2
            return _merge_answers([_subscribe_isolating(client, audience_id, payloads[:middle]),
                                   _subscribe_isolating(client, audience_id, payloads[middle:])])
        log.warning("batch subscribe refused whole for %d item(s); sending the %d others", len(blamed),
                    len(payloads) - len(blamed))
        refused = {"errors": [{"email_address": payloads[i].get("email_address") or "", "error": message,
                               "error_code": "ERROR_GENERIC", "field": field or "", "field_message": message}
                              for i, (field, message) in blamed.items()]}
        rest = [p for i, p in enumerate(payloads) if i not in blamed]
        return _merge_answers([refused, _subscribe_isolating(client, audience_id, rest) if rest else {}])


def _blamed_items(exc: MailchimpError, count: int) -> dict[int, tuple[str | None, str]]:
    """The items a whole-batch refusal names (``members.item:N.field``), with the field and message."""
    blamed: dict[int, tuple[str | None, str]] = {}
    for error in exc.errors:
        match = _ITEM_FIELD.match(str(error.get("field") or ""))
        if match and int(match.group(1)) < count:
            blamed.setdefault(int(match.group(1)), (match.group(2), str(error.get("message") or exc.detail)))
    return blamed


def _merge_answers(answers: Sequence[dict]) -> dict:
    merged: dict[str, list] = {"new_members": [], "updated_members": [], "errors": []}
    for answer in answers:
        for key in merged:
            merged[key].extend(answer.get(key) or [])
    return merged


def record_push(prepared: PreparedPush, answers: Sequence[dict], run: SyncRun | None = None, *,
                client=None) -> PushResult:
    """Write each contact's result from Mailchimp's answers, and the tag changes (not committed).

    Tag changes become PendingTagOp rows of `run`; without a run they are sent now through
    `client`.
    """
    connector, rows, result = prepared.connector, prepared.rows, prepared.result
    now = utcnow()
    events: list[dict] = []
    tag_ops: list[tuple[int, str, str, str]] = []  # contact id, email, tag, op
    for number, answer in enumerate(answers):
        part = prepared.to_send[number * BATCH_LIMIT:(number + 1) * BATCH_LIMIT]
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
                add, remove = tag_changes(current, tags, prepared.managed)
                tag_ops.extend((contact.id, email, t, "add") for t in add)
                tag_ops.extend((contact.id, email, t, "remove") for t in remove)
                row.synced(email=email, member_hash=member.get("id"), fingerprint=fingerprint, tags=tags, at=now)
                events.append(_event(connector, contact.id, run, SyncEventKind.PUSHED, how))
            elif key in failed:
                error = classify_batch_error(failed[key])
                row.attempted()
                if error.transient:
                    row.deferred()
                    result.deferred += 1
                    continue
                row.failed(error)
                result.errors += 1
                result.error_kinds[error.kind] += 1
                events.append(_event(connector, contact.id, run, SyncEventKind.ERROR,
                                     f"{error.kind}: {error.detail}"[:500]))
            else:
                row.deferred()
                result.deferred += 1

    result.tag_ops = len(tag_ops)
    if tag_ops and run is None:
        send_tag_ops(client, connector.audience_id, [(email, tag, op) for _, email, tag, op in tag_ops])
    save_rows(connector, rows)
    if tag_ops and run is not None:
        db.session.execute(PendingTagOp.__table__.insert(), [
            {"run_id": run.id, "connector_id": connector.id, "contact_id": cid, "email": email, "tag": tag, "op": op}
            for cid, email, tag, op in tag_ops
        ])
    if events:
        db.session.execute(SyncEvent.__table__.insert(), events)
    return result


def push_contacts(connector_id: int, contact_ids: Sequence[int], run: SyncRun | None = None, *,
                  client=None, commit: bool = True, managed_tags: Iterable[str] | None = None) -> PushResult:
    """Send these contacts' current state to Mailchimp and record a result for each.

    With `run`, tag changes are stored as PendingTagOp rows of the run (sent later, grouped by
    tag); without, they are sent before returning. With ``commit=False`` the caller commits
    (the copy adds its cursor to the same transaction). Raises MailchimpError for whole-call
    failures with nothing written to the database yet: the caller pauses or retries, and a
    replay of the same contacts is harmless.

    Works on plain rows and writes in bulk (one insert and one update per push), so a chunk
    of 500 costs a handful of queries.
    """
    connector = db.session.get(Connector, connector_id)
    if connector is None or not contact_ids:
        return PushResult()
    own_client = client is None
    client = client or client_for(connector)
    try:
        prepared = prepare_push(connector, contact_ids, managed_tags)
        answers = send_prepared(client, prepared, connector.audience_id)
        result = record_push(prepared, answers, run, client=client)
        if commit:
            db.session.commit()
        return result
    finally:
        if own_client:
            client.close()


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
