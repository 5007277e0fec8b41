"""Push a set of contacts to the connector's audience: the one write path to Mailchimp members.

:func:`push_contacts` (and its three steps, :func:`prepare_push` → :func:`send_prepared` →
:func:`record_push`) is shared by the initial copy's chunks (R8), live replication (R10) and
retries (R19): it knows nothing of cursors or phases. Given contact ids it works out, for each
contact, the one thing Mailchimp must be told (:class:`Action`):

- **send** — the member body through batch subscribe (``POST /lists/{id}``, 500 per call,
  ``update_existing``): anaba's values overwrite the member's (R1, R4). Its status follows the
  consent (R14, R15): opt-in → ``subscribed``; a member we had whose contact became opt-out or
  unknown → ``unsubscribed``. A contact whose member body is unchanged since the last push
  sends nothing (its fingerprint, R10);
- **rename** — the contact's e-mail changed: ``PUT`` on the *old* address's hash with the new
  address renames the same member (R11, API-NOTES §1.3);
- **tags** — only tags changed: tag calls alone, against the tags last sent;
- **archive** — the contact was deleted in anaba: ``DELETE`` archives the member (R12);
- **erase** — someone asked for a GDPR erasure: ``delete-permanent`` (R12).

Contacts left out (R2) get their "not synced" reason; contacts whose member was archived or
deleted in Mailchimp are not pushed until someone acts (R13). Tag changes are computed against
the member's current tags (only tags anaba knows are ever removed, R3) and either stored as
:class:`~portal.models.PendingTagOp` rows of a run (the copy sends them grouped by tag later) or
sent at once. Per-member refusals become the contact's error with its fix (R19); whole-call
failures (key revoked, audience gone, Mailchimp down after the client's retries) propagate as
:class:`~portal.mailchimp.MailchimpError` with nothing recorded, so the caller can pause or
retry: replaying the same contacts later is harmless.
"""
from __future__ import annotations

import logging
import re
import threading
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import select, update

from portal.extensions import db
from portal.mailchimp import BATCH_LIMIT, MailchimpError, classify_batch_error
from portal.mailchimp.payload import FieldMapping, build_member, payload_fingerprint, tag_changes
from portal.models import (Connector, Contact, ContactSync, NotSyncedReason, PendingTagOp, RunKind, SyncEvent,
                           SyncEventKind, SyncRun, SyncState, Tag, contact_tags, utcnow)
from portal.sync.contact_state import SyncRow, id_conditions, load_rows, save_rows
from portal.sync.eligibility import in_workspace, judge
from portal.sync.mailchimp_access import client_for

if TYPE_CHECKING:  # the adapter loads mailchimp3 on first use only
    from portal.mailchimp.client import MailchimpClient

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")

# The parts of a batch-subscribe answer we read; the rest (full member objects) is dropped
# by Mailchimp before it is sent.
ANSWER_FIELDS = tuple(f"{kind}.{key}" for kind in ("new_members", "updated_members")
                      for key in ("id", "contact_id", "email_address", "tags", "tags_count")) + (
    "updated_members.timestamp_opt", "errors")
CLOCK_MARGIN = timedelta(minutes=5)
"""How far Mailchimp's clock may be from ours when telling a member we created from one that was there."""
TAG_ANSWER_FIELDS = ("total_added", "total_removed", "error_count", "errors")
"""The parts of a static-segment answer the tag calls keep: without them Mailchimp sends back a
full member object for each of the 500 e-mails, which nobody reads."""
MEMBER_TAGS_SHOWN = 50
"""Tags a member object carries at most; beyond, the member's tags endpoint has them all."""

# A member we had stays ours to keep in line with consent (R15) in these states.
_HAS_MEMBER = (SyncState.SYNCED, SyncState.PENDING, SyncState.ERROR, SyncState.UNSUBSCRIBED)
_UNSUBSCRIBE_REASONS = (NotSyncedReason.OPT_OUT, NotSyncedReason.NO_CONSENT, NotSyncedReason.CONSENT_LOCKED)
EMAIL_CHANGE_CONFLICT = "email_change_conflict"


class Action(StrEnum):
    """What Mailchimp must be told about one contact."""

    SEND = "send"
    RENAME = "rename"
    TAGS = "tags"
    ARCHIVE = "archive"
    ERASE = "erase"


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
    archived: int = 0
    erased: int = 0
    unsubscribed: int = 0
    skipped: Counter = field(default_factory=Counter)
    error_kinds: Counter = field(default_factory=Counter)
    deferred_ids: list[int] = field(default_factory=list)
    retry_after: float | None = None

    COUNTERS = ("created", "updated", "unchanged", "errors", "deferred", "member_writes", "tag_ops", "archived",
                "erased", "unsubscribed")

    def add_to(self, counts: dict) -> dict:
        """Add these numbers into a run's ``counts`` JSON (returns a new dict)."""
        merged = dict(counts or {})
        for key in self.COUNTERS:
            value = getattr(self, key)
            if value or key in merged or key in ("created", "updated", "unchanged", "errors"):
                merged[key] = int(merged.get(key, 0)) + value
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
        for key in ("processed", *self.COUNTERS):
            setattr(self, key, getattr(self, key) + getattr(other, key))
        self.skipped.update(other.skipped)
        self.error_kinds.update(other.error_kinds)
        self.deferred_ids.extend(other.deferred_ids)


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


def contact_tags_of(contact_ids: list[int]) -> dict[int, list[str]]:
    """Each contact's tag names, sorted, by contact id."""
    tags: dict[int, list[str]] = defaultdict(list)
    wanted = set(contact_ids)
    for condition in id_conditions(contact_tags.c.contact_id, contact_ids):
        for cid, name in db.session.execute(
            select(contact_tags.c.contact_id, Tag.name).join(Tag, Tag.id == contact_tags.c.tag_id).where(condition)
        ):
            if cid in wanted:
                tags[cid].append(name)
    return {cid: sorted(names) for cid, names in tags.items()}


@dataclass
class Item:
    """One contact's planned action and, once sent, Mailchimp's answer for it."""

    contact: Any
    action: Action
    email: str  # the address the member is known by now (the old one for a rename)
    payload: dict | None = None
    fingerprint: str | None = None
    tags: list[str] = field(default_factory=list)
    reason: str = ""  # why a member is unsubscribed (R15)
    had_member: bool = False
    answer: Any = None  # the member (dict), True/False (archive), or the MailchimpError


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
    items: list[Item]

    @property
    def to_send(self) -> list[Item]:
        """The items that go through batch subscribe, in order."""
        return [item for item in self.items if item.action == Action.SEND]


def _has_member(row: SyncRow) -> bool:
    return bool(row.member_email) and row.state in _HAS_MEMBER


def _known_as(row: SyncRow) -> str:
    return (row.member_email or "").strip().lower()


def prepare_push(connector: Connector, contact_ids: Sequence[int],
                 managed_tags: Iterable[str] | None = None, *, contacts: Sequence[Any] | None = None) -> PreparedPush:
    """Read the contacts, judge them, plan each one's action; record the ones left out (in memory).

    `contacts` are these contacts' rows (at least :data:`CONTACT_COLUMNS`, in the workspace) when
    the caller has just read them in the same transaction (the copy, choosing its chunk): they are
    not read again.
    """
    ids = sorted(set(int(i) for i in contact_ids))
    result = PushResult()
    with db.session.no_autoflush:
        mappings = mappings_of(connector)
        managed = list(managed_tags) if managed_tags is not None else managed_tag_names(connector.workspace_id)
        if contacts is not None:
            wanted = set(ids)
            contacts = [c for c in contacts if c.id in wanted]
        else:
            contacts = []
            for start in range(0, len(ids), 500):
                contacts.extend(db.session.execute(
                    select(*CONTACT_COLUMNS).where(in_workspace(connector.workspace_id),
                                                   _c.id.in_(ids[start:start + 500]))
                ).all())
        contacts.sort(key=lambda c: c.id)
        found = [c.id for c in contacts]
        rows = load_rows(connector, found)
        tags_of = contact_tags_of(found)
        verdicts = judge(connector.workspace_id, connector.id, contacts)
    items: list[Item] = []
    for contact in contacts:
        row = rows[contact.id]
        result.processed += 1
        item = _plan(contact, row, verdicts[contact.id].reason, mappings, tags_of.get(contact.id, []), result)
        if item is not None:
            items.append(item)
    return PreparedPush(connector=connector, managed=managed, rows=rows, result=result, items=items)


def _plan(contact, row: SyncRow, reason: str, mappings: list[FieldMapping], tags: list[str],
          result: PushResult) -> Item | None:
    """The action one contact needs, or None (its row already says why)."""
    if row.erase_requested:
        return Item(contact, Action.ERASE, email=row.member_email or contact.email_normalized or "")
    if row.state in (SyncState.ARCHIVED_IN_MC, SyncState.DELETED_IN_MC):
        result.skipped[row.state] += 1
        return None  # R13: nothing goes back until someone acts
    if reason == NotSyncedReason.DELETED:
        if _has_member(row):
            return Item(contact, Action.ARCHIVE, email=row.member_email)
        row.left_out(reason)
        result.skipped[reason] += 1
        return None
    if row.error_kind == EMAIL_CHANGE_CONFLICT and _known_as(row) != contact.email_normalized:
        # The person changed their address in Mailchimp to one another contact has: until someone
        # chooses the owner, pushing would rename the member back or create a second one.
        row.set(state=SyncState.ERROR)
        result.skipped[row.error_kind] += 1
        return None
    if reason == NotSyncedReason.INVALID_EMAIL:
        # Mailchimp would refuse it: an error with its fix, without spending a call.
        row.failed(MailchimpError("invalid_email", email=contact.email))
        result.errors += 1
        result.error_kinds["invalid_email"] += 1
        return None
    if reason in _UNSUBSCRIBE_REASONS and _has_member(row) and _known_as(row) == contact.email_normalized:
        # R15: no longer opt-in, the member we created stops receiving campaigns. A locked consent
        # (R16) too, unless the row knows Mailchimp holds it unsubscribed already (the usual case:
        # the lock came from Mailchimp); an API unsubscribe keeps the person's own reason there.
        status = "unsubscribed"
    elif reason:
        if reason == NotSyncedReason.CONSENT_LOCKED and _has_member(row):
            row.left_out(reason, state=SyncState.UNSUBSCRIBED)  # they unsubscribed themself in Mailchimp
        else:
            row.left_out(reason)
        result.skipped[reason] += 1
        return None
    else:
        status = "subscribed"
    payload = build_member(contact, mappings, status=status)
    fingerprint = payload_fingerprint(payload)
    unsubscribe_reason = reason if status == "unsubscribed" else ""
    had_member = _has_member(row)
    if had_member and _known_as(row) != contact.email_normalized:
        return Item(contact, Action.RENAME, email=row.member_email, payload=payload, fingerprint=fingerprint,
                    tags=tags, had_member=True)
    if row.state in (SyncState.SYNCED, SyncState.UNSUBSCRIBED, SyncState.PENDING) and row.fingerprint == fingerprint:
        if sorted(row.synced_tags or []) == tags:
            result.unchanged += 1
            row.restore_state(unsubscribed=status == "unsubscribed", reason=unsubscribe_reason)
            return None
        return Item(contact, Action.TAGS, email=contact.email_normalized, payload=payload, fingerprint=fingerprint,
                    tags=tags, reason=unsubscribe_reason, had_member=had_member)
    return Item(contact, Action.SEND, email=contact.email_normalized, payload=payload, fingerprint=fingerprint,
                tags=tags, reason=unsubscribe_reason, had_member=had_member)


# --- sending --------------------------------------------------------------------------------------

def send_prepared(client: MailchimpClient, prepared: PreparedPush, audience_id: str, *,
                  parallel: int = 1) -> list[dict]:
    """Every call of a prepared push; the batch-subscribe answers (500 members each), in order.

    Renames, archives and erasures are one call each; their answers are kept on their items.
    Up to `parallel` batch calls are in flight at once (a bulk change in live replication, R20;
    the client's connection semaphore stays the referee). Mailchimp refuses a whole batch when
    one item breaks its schema (a merge value of the wrong JSON type after someone changed the
    field's type in Mailchimp…): one bad contact must not sink 499 others (R8), so such a batch
    is split to find the culprits, which come back as per-member errors of the answer
    (API-NOTES §2).
    """
    for item in prepared.items:
        if item.action in (Action.RENAME, Action.ARCHIVE, Action.ERASE):
            item.answer = _send_one(client, audience_id, item)
    batch = prepared.to_send
    chunks = [[item.payload for item in batch[start:start + BATCH_LIMIT]] for start in range(0, len(batch), BATCH_LIMIT)]
    return in_parallel(lambda payloads: _subscribe_isolating(client, audience_id, payloads), chunks, parallel)


def in_parallel(fn: Callable[[T], R], jobs: Sequence[T], width: int) -> list[R]:
    """``fn`` over `jobs`, answers in order, up to `width` at once (threads: the work is waiting
    on Mailchimp). The first failure is raised once the calls already in flight are over."""
    if width <= 1 or len(jobs) <= 1:
        return [fn(job) for job in jobs]
    with ThreadPoolExecutor(min(width, len(jobs)), thread_name_prefix="push") as pool:
        return list(pool.map(fn, jobs))


def _send_one(client, audience_id: str, item: Item) -> Any:
    """One member call; a refusal that concerns this member only is returned, not raised."""
    try:
        if item.action == Action.RENAME:
            return client.upsert_member(audience_id, item.email, item.payload)
        if item.action == Action.ARCHIVE:
            return client.archive_member(audience_id, item.email)
        client.delete_member_permanently(audience_id, item.email)
        return True
    except MailchimpError as exc:
        if exc.pauses_connector:
            raise
        return exc


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


# --- recording ------------------------------------------------------------------------------------

def _moment(raw: Any) -> datetime | None:
    """An ISO 8601 time (Mailchimp's or ours) as aware UTC, or None."""
    text = str(raw or "").strip()
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


class _Recorder:
    """Writes each contact's result, its event and its tag changes (not committed)."""

    def __init__(self, prepared: PreparedPush, run: SyncRun | None, client,
                 directory: SegmentDirectory | None = None, parallel: int = 1) -> None:
        self.directory = directory
        self.parallel = parallel
        self.prepared = prepared
        self.connector = prepared.connector
        self.result = prepared.result
        self.run = run
        self.client = client
        self.now = utcnow()
        self.events: list[dict] = []
        self.tag_ops: list[tuple[int, str, str, str]] = []  # contact id, email, tag, op
        # Read once: an event per contact would otherwise go through the ORM's attributes each time.
        self._event_ids = {"workspace_id": self.connector.workspace_id, "connector_id": self.connector.id,
                           "run_id": run.id if run is not None else None}

    def event(self, contact_id: int, kind: SyncEventKind, detail: str, data: dict | None = None) -> None:
        """A line of the contact's history; live pushes keep what they sent."""
        event = {**self._event_ids, "contact_id": contact_id, "kind": kind, "detail": detail, "created_at": self.now}
        if self.run is None:
            event["data"] = data
        # A run's events keep no data: the column is left out of their insert (SQL NULL) rather
        # than serialised as JSON null once per contact.
        self.events.append(event)

    def member_tags(self, member: dict, email: str) -> list[str]:
        """The member's current tags: those its object carries, or all of them past 50 (R3)."""
        names = [t.get("name", "") for t in member.get("tags") or [] if isinstance(t, dict)]
        if int(member.get("tags_count") or 0) > len(names) and self.client is not None:
            names = self.client.get_member_tags(self.connector.audience_id, email)
        return names

    def pushed(self, item: Item, how: str, member: dict | None, current_tags: list[str] | None) -> None:
        """Mailchimp took the item: the row is synced, the tag changes are worked out."""
        row = self.prepared.rows[item.contact.id]
        email = item.contact.email_normalized
        add, remove = tag_changes(current_tags, item.tags, self.prepared.managed) if current_tags is not None \
            else tag_changes(row.synced_tags or [], item.tags, row.synced_tags or [])
        self.tag_ops.extend((item.contact.id, email, t, "add") for t in add)
        self.tag_ops.extend((item.contact.id, email, t, "remove") for t in remove)
        unsubscribed = item.payload["status"] == "unsubscribed"
        row.synced(email=email, member_hash=(member or {}).get("id"), fingerprint=item.fingerprint, tags=item.tags,
                   at=self.now, unsubscribed=unsubscribed, reason=item.reason,
                   mc_contact_id=(member or {}).get("contact_id"))
        if unsubscribed:
            self.result.unsubscribed += 1
        kind = SyncEventKind.RENAMED if item.action == Action.RENAME else (
            SyncEventKind.UNSUBSCRIBED if unsubscribed else SyncEventKind.PUSHED)
        self.event(item.contact.id, kind, how, None if self.run is not None else {
            "status": item.payload["status"], "fields": item.payload.get("merge_fields") or {},
            "email": email, "old_email": item.email if item.action == Action.RENAME else None,
            "tags_added": add, "tags_removed": remove,
        })

    def refused(self, item: Item, error: MailchimpError) -> None:
        """Mailchimp refused the item: pending again (transient), out of reach, or the contact's error."""
        row = self.prepared.rows[item.contact.id]
        row.attempted()
        if error.transient:
            row.deferred()
            self.result.deferred += 1
            self.result.deferred_ids.append(item.contact.id)
            if error.retry_after:
                self.result.retry_after = max(self.result.retry_after or 0.0, error.retry_after)
            return
        if item.action == Action.RENAME and error.kind == "member_exists":
            error = MailchimpError("email_taken", status=error.status, title=error.title, detail=error.detail,
                                   email=error.email)  # R11: the new address belongs to another member
        if error.kind == "forgotten_email" and item.had_member and item.action != Action.RENAME:
            row.gone_from_mailchimp(SyncState.DELETED_IN_MC)  # R13: deleted in Mailchimp, not pushed back
            self.event(item.contact.id, SyncEventKind.MAILCHIMP_STATE, SyncState.DELETED_IN_MC)
            self.result.skipped[SyncState.DELETED_IN_MC] += 1
            return
        row.failed(error)
        self.result.errors += 1
        self.result.error_kinds[error.kind] += 1
        self.event(item.contact.id, SyncEventKind.ERROR, f"{error.kind}: {error.detail}"[:500])

    def created_earlier_in_run(self, item: Item, member: dict) -> bool:
        """Whether Mailchimp's "updated" member is one this copy created in an earlier send of the same contacts.

        A chunk is sent again after a crash (or after a lost answer): the members its first
        send created come back "updated". The copy notes each send in ``run.result["in_flight"]``
        (``[after_id, upto_id, sent_at]``, committed before the call) until the chunk commits.
        A contact that never had a member, sent at least twice, whose member opted in after the
        first send, was created by that send: it counts as created, so the customer's e-mail and
        the summary stay right. No extra call: the batch answer carries ``timestamp_opt``.
        """
        run = self.run
        if run is None or run.kind != RunKind.INITIAL_COPY or item.had_member:
            return False
        sends = [entry for entry in (run.result or {}).get("in_flight") or []
                 if len(entry) >= 3 and entry[0] < item.contact.id <= entry[1]]
        if len(sends) < 2:
            return False  # sent once: Mailchimp's word stands (a member that was there is "updated")
        opted, first = _moment(member.get("timestamp_opt")), min(filter(None, (_moment(e[2]) for e in sends)),
                                                                    default=None)
        return opted is not None and first is not None and opted >= first - CLOCK_MARGIN

    def batch(self, answers: Sequence[dict]) -> None:
        """Record the batch-subscribe items from the answers, 500 per answer."""
        batch = self.prepared.to_send
        for number, answer in enumerate(answers):
            part = batch[number * BATCH_LIMIT:(number + 1) * BATCH_LIMIT]
            self.result.member_writes += len(part)
            done = {}
            for member in answer.get("new_members") or []:
                done[(member.get("email_address") or "").lower()] = ("created", member)
            for member in answer.get("updated_members") or []:
                done[(member.get("email_address") or "").lower()] = ("updated", member)
            failed = {(e.get("email_address") or "").strip().lower(): e for e in answer.get("errors") or []}
            for item in part:
                key = item.payload["email_address"].lower()
                if key in done:
                    how, member = done[key]
                    if how == "updated" and self.created_earlier_in_run(item, member):
                        how = "created"
                    setattr(self.result, how, getattr(self.result, how) + 1)
                    self.pushed(item, how, member, self.member_tags(member, item.payload["email_address"]))
                elif key in failed:
                    self.refused(item, classify_batch_error(failed[key]))
                else:
                    self.refused(item, MailchimpError("unavailable", detail="No answer for this member."))

    def single(self, item: Item) -> None:
        """Record a rename, an archive, an erasure or a tags-only change."""
        row = self.prepared.rows[item.contact.id]
        answer = item.answer
        if item.action == Action.TAGS:
            self.result.updated += 1
            self.pushed(item, "tags", None, None)
            return
        if isinstance(answer, MailchimpError) and not (
                answer.kind == "not_found" and item.action in (Action.ARCHIVE, Action.ERASE)):
            self.refused(item, answer)
            return
        if item.action == Action.RENAME:
            self.result.member_writes += 1
            self.result.updated += 1
            self.pushed(item, "renamed", answer, self.member_tags(answer, item.payload["email_address"]))
        elif item.action == Action.ARCHIVE:
            self.result.archived += 1
            row.left_out(NotSyncedReason.DELETED)
            self.event(item.contact.id, SyncEventKind.ARCHIVED, item.email)
        else:
            self.result.erased += 1
            row.gone_from_mailchimp(SyncState.DELETED_IN_MC)
            self.event(item.contact.id, SyncEventKind.ERASED, item.email)

    def save(self) -> PushResult:
        """Write the rows, the tag changes (sent now, or kept for the run) and the events."""
        erased = [self.prepared.rows[item.contact.id].id for item in self.prepared.items
                  if item.action == Action.ERASE and self.prepared.rows[item.contact.id].state == SyncState.DELETED_IN_MC]
        if erased:
            db.session.execute(update(ContactSync).where(ContactSync.id.in_(erased)).values(erase_requested=False))
        self.result.tag_ops = len(self.tag_ops)
        if self.tag_ops and self.run is None:
            send_tag_ops(self.client, self.connector.audience_id,
                         [(email, tag, op) for _, email, tag, op in self.tag_ops], directory=self.directory,
                         parallel=self.parallel)
        save_rows(self.connector, self.prepared.rows)
        if self.tag_ops and self.run is not None:
            db.session.execute(PendingTagOp.__table__.insert(), [
                {"run_id": self.run.id, "connector_id": self.connector.id, "contact_id": cid, "email": email,
                 "tag": tag, "op": op}
                for cid, email, tag, op in self.tag_ops
            ])
        if self.events:
            db.session.execute(SyncEvent.__table__.insert(), self.events)
        return self.result


def record_push(prepared: PreparedPush, answers: Sequence[dict], run: SyncRun | None = None, *,
                client: MailchimpClient | None = None, directory: SegmentDirectory | None = None,
                parallel: int = 1) -> PushResult:
    """Write each contact's result from Mailchimp's answers, and the tag changes (not committed).

    Tag changes become PendingTagOp rows of `run`; without a run they are sent now through
    `client` (which also reads the tags of members carrying more than 50), with `directory`
    (the audience's tags, read once per replication job) when given, up to `parallel` tag calls
    at once.
    """
    recorder = _Recorder(prepared, run, client, directory, parallel)
    recorder.batch(answers)
    for item in prepared.items:
        if item.action != Action.SEND:
            recorder.single(item)
    return recorder.save()


def push_contacts(connector_id: int, contact_ids: Sequence[int], run: SyncRun | None = None, *,
                  client: MailchimpClient | None = None, commit: bool = True,
                  managed_tags: Iterable[str] | None = None) -> PushResult:
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


# --- tags ---------------------------------------------------------------------------------------

class SegmentDirectory:
    """The audience's tags (static segments) by lower-cased name; creates missing ones.

    A missing tag is created with its first e-mails to add in the same call, so creating a
    tag costs no extra call. Safe to share between the copy's sending threads.
    """

    def __init__(self, client, list_id: str) -> None:
        self.client = client
        self.list_id = list_id
        self._by_name: dict[str, dict] | None = None
        self._lock = threading.RLock()

    @property
    def loaded(self) -> bool:
        """True once the audience's tags have been read."""
        return self._by_name is not None

    def _load(self) -> dict[str, dict]:
        with self._lock:
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
            with self._lock:
                self._by_name = None
                segment = self.find(name)
            if segment is None:
                raise
            if first_emails:
                self.client.update_segment_members(self.list_id, segment["id"], add=list(first_emails)[:BATCH_LIMIT],
                                                   fields=TAG_ANSWER_FIELDS)
        with self._lock:
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
        directory.client.update_segment_members(directory.list_id, directory.find(tag)["id"], remove=remove,
                                                fields=TAG_ANSWER_FIELDS)
        return 2
    directory.client.update_segment_members(directory.list_id, segment["id"], add=add, remove=remove,
                                            fields=TAG_ANSWER_FIELDS)
    return 1


def send_tag_ops(client: MailchimpClient, list_id: str, ops: Sequence[tuple[str, str, str]], *,
                 directory: SegmentDirectory | None = None, parallel: int = 1) -> int:
    """Send (email, tag, op) changes now, by the cheaper of per-member and per-tag calls (500 e-mails
    per static-segment call), up to `parallel` calls at once; `directory` saves reading the
    audience's tags again."""
    if not ops:
        return 0
    by_member: dict[str, tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
    by_tag: dict[str, tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
    for email, tag, op in ops:
        by_member[email][0 if op == "add" else 1].append(tag)
        by_tag[tag][0 if op == "add" else 1].append(email)
    directory = directory or SegmentDirectory(client, list_id)
    per_tag_calls = sum(-(-max(len(a), len(r)) // BATCH_LIMIT) for a, r in by_tag.values())
    if not directory.loaded:
        per_tag_calls += 1  # reading the audience's tags
    if len(by_member) <= per_tag_calls:
        in_parallel(lambda change: client.set_member_tags(list_id, change[0], add=change[1][0], remove=change[1][1]),
                    list(by_member.items()), parallel)
        return len(by_member)
    groups = [(tag, add[start:start + BATCH_LIMIT], remove[start:start + BATCH_LIMIT])
              for tag, (add, remove) in by_tag.items() for start in range(0, max(len(add), len(remove)), BATCH_LIMIT)]
    # A tag the audience lacks is created by its first group alone, before the others: two groups
    # racing to create it would cost a refused call.
    creating, others, seen = [], [], set()
    for group in groups:
        new = group[0] not in seen and directory.find(group[0]) is None
        (creating if new else others).append(group)
        seen.add(group[0])
    calls = 0
    for wave in (creating, others):
        calls += sum(in_parallel(lambda g: send_tag_group(directory, *g), wave, parallel))
    return calls
