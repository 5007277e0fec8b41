"""The initial copy of a workspace's contacts into its Mailchimp audience (R8).

Resumable by construction (ARCHITECTURE habit 6): the run's ``cursor`` is the id of the last
contact whose result is committed, and ``result["phase"]`` says which phase it is in.

- Phase 0 — create the merge fields the mapping needs and the audience lacks.
- Phase 1 — contacts in id order, in chunks holding 500 eligible contacts each, through the
  three steps of :func:`portal.sync.push.push_contacts`: prepared, sent with one
  batch-subscribe call, and recorded (results, and tag changes as PendingTagOp rows); the
  cursor then advances and everything commits together, with the lease re-checked in that
  transaction. Up to the key's bulk budget of chunks are in Mailchimp at once while the next
  ones are prepared; they are recorded oldest first, so the cursor only moves forward. A
  chunk replayed after a crash rewrites the same values: harmless.
- Phase 2 — tag changes, grouped by tag, 500 e-mails per static-segment call (a missing
  tag is created with its first 500 e-mails), as many calls at once as phase 1; each call's
  rows are deleted once it succeeds.

API calls are therefore about members/500 + Σ over tags of ceil(changes/500): the fewest the
API allows. A revoked key or a deleted audience pauses the run and the connector (nobody is
marked failed); transient Mailchimp failures are retried by the client, then per chunk.
At the end the connector is active, our webhook is registered on the audience (R21) and the
customers get an e-mail with the counts.
"""
from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from flask import current_app
from sqlalchemy import delete, select
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from portal import background
from portal.background import Outcome
from portal.db_setup import refresh_statistics
from portal.extensions import db
from portal.mailchimp import MailchimpError
from portal.mailchimp.payload import FieldMapping
from portal.models import (Connector, ConnectorStatus, Contact, ContactSync, PendingTagOp, RunKind, RunStatus,
                           SyncRun, SyncState, utcnow)
from portal.sync import consent_import, webhooks
from portal.sync import runs as run_rows
from portal.sync.eligibility import in_workspace, own_reason
from portal.sync.lifecycle import pause_connector
from portal.sync.mailchimp_access import client_for
from portal.sync.replication import mark_dirty
from portal.sync.notifications import notify_copy_finished
from portal.sync.push import (CONTACT_COLUMNS, PreparedPush, SegmentDirectory, managed_tag_names, prepare_push,
                              record_push, send_prepared, send_tag_group)

log = logging.getLogger(__name__)

CHUNK_ELIGIBLE = 500
MAX_CHUNK_CONTACTS = 20_000
SCAN_PAGE = 2000
UP_TO_DATE = (SyncState.SYNCED, SyncState.UNSUBSCRIBED)
TAG_BATCH = 500
CHUNK_RETRIES = 5
STATS_AFTER = 10_000
"""A copy of this many contacts refreshes the database's planner statistics (its rows are new)."""
DEFERRED_RETRY_SECONDS = 60.0
"""When a contact Mailchimp refused for now is tried again, unless the refusal said when."""
T = TypeVar("T")


def run(run_id: int, *, sleep: Callable[[float], None] = time.sleep,
        serve_live: Callable[[], None] = lambda: None) -> run_rows.RunResult:
    """Run or resume the initial copy `run_id` (does nothing if another worker holds it).

    At the end the connector is active and its customers get the copy's counts by e-mail; a
    revoked key or a deleted audience pauses the run and the connector (nobody is marked failed).
    Up to ``MAILCHIMP_BULK_CONNECTIONS`` batch calls are in flight at once (the rest of the
    key's connections stay free for live replication, R20); between chunks `serve_live` pushes
    the changes waiting for other connectors, so a long copy never delays them (R10).
    """
    budget = int(current_app.config["MAILCHIMP_BULK_CONNECTIONS"])
    activated: list[Connector] = []

    def work(run: SyncRun, connector: Connector, token: str) -> None:
        with client_for(connector, bulk=True) as client:
            phase = int((run.result or {}).get("phase", 0))
            if phase == 0:
                _ensure_consent_imported(client, connector, sleep)
                _create_merge_fields(client, connector, sleep)
                _set_phase(run, token, 1)
            if int(run.result.get("phase", 0)) == 1:
                _copy_contacts(client, run, connector, token, sleep, serve_live, budget)
                _set_phase(run, token, 2)
            _drain_tags(client, run, connector, token, sleep, serve_live, budget)
        if connector.status == ConnectorStatus.COPYING:
            connector.status = ConnectorStatus.ACTIVE
            connector.activated_at = connector.activated_at or utcnow()
            activated.append(connector)
        run.result = dict(run.result or {}, phase=3, finished_at=utcnow().isoformat())
        run.done = max(run.done, run.total)

    result = run_rows.execute(run_id, work)
    if result.pauses_connector:
        pause_connector(db.session.get(SyncRun, run_id).connector_id, result.error)
    elif result.outcome == Outcome.FINISHED and activated:
        finished = db.session.get(SyncRun, run_id)
        if (finished.total or 0) >= STATS_AFTER:
            # SQLite never refreshes its planner statistics itself (the CSV import does the same):
            # having last seen contact_sync empty, it counted the e-mail's shared addresses by
            # walking every contact (0.5 s at 100,000) rather than through their partial index.
            refresh_statistics(db.engine)
        # Active from now on: Mailchimp's side of consent comes back through our webhook (R15, R21).
        webhooks.register_now(activated[0].id)
        notify_copy_finished(activated[0], db.session.get(SyncRun, run_id))
    return result


CONSENT_WAIT_SECONDS = 900


def _ensure_consent_imported(client, connector: Connector, sleep) -> None:
    """The copy sends opt-in contacts only, so consent must come from the audience first (R6).

    Validation may come before the consent import has run (support is fast, or its worker
    died): run it here (the claim makes it a no-op while another worker holds it, and lets
    this one take it over once that worker's lease expires), or run a fresh one if it failed.
    """
    deadline = time.monotonic() + CONSENT_WAIT_SECONDS
    retried = False
    while True:
        db.session.expire_all()
        latest = db.session.scalar(
            select(SyncRun).where(SyncRun.connector_id == connector.id, SyncRun.kind == RunKind.CONSENT_IMPORT)
            .order_by(SyncRun.id.desc()).limit(1)
        )
        if latest is None or latest.status == RunStatus.FINISHED:
            return
        if latest.status in (RunStatus.FAILED, RunStatus.PAUSED):
            if retried:
                client.get_list(connector.audience_id)  # a revoked key or a deleted audience pauses
                raise MailchimpError("unknown", title="Consent import failed", detail=latest.message)
            retried = True
            latest = run_rows.create_run(connector, RunKind.CONSENT_IMPORT)
            db.session.commit()
        consent_import.run(latest.id)
        db.session.expire_all()
        if RunStatus(db.session.get(SyncRun, latest.id).status).is_live:
            if time.monotonic() > deadline:
                raise MailchimpError("unknown", title="Consent import still running",
                                     detail="The consent import did not finish in time.")
            sleep(1.0)


def _retrying(fn: Callable[[], T], sleep: Callable[[float], None]) -> T:
    """Call `fn`; on a transient Mailchimp failure (after the client's own retries), roll back
    and try again a few times, slower (2, 4, 8, 16, 32 s). Replaying a chunk or a tag call is harmless."""

    def rollback(state: RetryCallState) -> None:
        db.session.rollback()
        log.warning("copy: %s, retrying in %.1fs", getattr(state.outcome.exception(), "kind", "?"),
                    state.next_action.sleep if state.next_action else 0.0)

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception()
        return min(60.0, getattr(error, "retry_after", None) or 2.0 * (2 ** (state.attempt_number - 1)))

    return Retrying(retry=retry_if_exception(lambda exc: isinstance(exc, MailchimpError) and exc.transient),
                    stop=stop_after_attempt(CHUNK_RETRIES + 1), wait=wait, sleep=sleep, before_sleep=rollback,
                    reraise=True)(fn)


def _set_phase(run: SyncRun, token: str, phase: int) -> None:
    run.result = dict(run.result or {}, phase=phase)
    background.checkpoint(run, token)
    db.session.commit()


def _create_merge_fields(client, connector: Connector, sleep) -> None:
    """Phase 0: create the mapped merge fields the audience does not have yet."""
    wanted = [FieldMapping.from_dict(m) for m in connector.merge_fields_to_create or []]
    if not wanted:
        return
    existing = {str(f.get("tag", "")).upper() for f in _retrying(lambda: client.get_merge_fields(connector.audience_id), sleep)}
    for mapping in wanted:
        if mapping.tag in existing:
            continue
        try:
            _retrying(lambda m=mapping: client.create_merge_field(
                connector.audience_id, m.tag, m.name or m.tag.title(), m.type), sleep)
        except MailchimpError as exc:
            if exc.transient or exc.pauses_connector:
                raise
            # Created by an attempt whose answer was lost ("already exists"): check, go on.
            tags = {str(f.get("tag", "")).upper() for f in client.get_merge_fields(connector.audience_id)}
            if mapping.tag not in tags:
                raise
        existing.add(mapping.tag)


@dataclass
class Chunk:
    """The next stretch of contacts in id order: those to push, those already up to date, the last id."""

    ids: list[int]
    unchanged: int
    last_id: int
    scanned: int
    contacts: list  # the rows of `ids` (CONTACT_COLUMNS), for prepare_push


def next_chunk(connector: Connector, after_id: int) -> Chunk:
    """The next contacts after `after_id` holding CHUNK_ELIGIBLE eligible ones to push, and the last id.

    Ineligible contacts ride along (they get their "not synced" result in the same commit), so
    every batch-subscribe call carries close to 500 members. A contact whose member already
    holds what anaba would send (synced, nothing changed since: ``dirty_at`` unset) is counted
    up to date without being read again, so a re-run with nothing changed costs a scan.
    """
    c = Contact.__table__.c
    s = ContactSync.__table__.c
    ids: list[int] = []
    contacts: list = []
    eligible = unchanged = scanned = 0
    cursor = after_id
    while eligible < CHUNK_ELIGIBLE and scanned < MAX_CHUNK_CONTACTS:
        # Every column the push reads, so that it does not read the chunk's contacts again.
        rows = db.session.execute(
            select(*CONTACT_COLUMNS, s.state.label("sync_state"), s.fingerprint.label("sync_fingerprint"),
                   s.dirty_at.label("sync_dirty_at"))
            .outerjoin(ContactSync.__table__, (s.contact_id == c.id) & (s.connector_id == connector.id))
            .where(in_workspace(connector.workspace_id), c.deleted_at.is_(None), c.id > cursor)
            .order_by(c.id).limit(_page_size(eligible, scanned))
        ).all()
        if not rows:
            break
        for row in rows:
            cursor = row.id
            scanned += 1
            if row.sync_state in UP_TO_DATE and row.sync_fingerprint and row.sync_dirty_at is None:
                unchanged += 1
                continue
            ids.append(row.id)
            contacts.append(row)
            # The owner rule is left to the push: contacts sharing an e-mail are rare, so a
            # chunk seldom carries fewer than 500 members, and never more.
            if not own_reason(row):
                eligible += 1
                if eligible >= CHUNK_ELIGIBLE:
                    break
    return Chunk(ids=ids, unchanged=unchanged, last_id=cursor, scanned=scanned, contacts=contacts)


def _page_size(eligible: int, scanned: int) -> int:
    """How many contacts :func:`next_chunk` reads next: about what the eligible ones still missing
    need at the rate seen so far, at most SCAN_PAGE."""
    # Rows read past the chunk's 500th eligible contact are thrown away (the next chunk reads them
    # again): a fixed page of 2,000 read each contact about three times.
    missing = CHUNK_ELIGIBLE - eligible
    if not eligible:
        return SCAN_PAGE if scanned else min(SCAN_PAGE, 2 * missing)
    return min(SCAN_PAGE, missing * scanned // eligible + missing // 4 + 16)


class Window:
    """How many batch calls the copy keeps in flight: the key's bulk budget, halved when Mailchimp
    answers 429 (another client shares the key), then grown back one by one."""

    def __init__(self, budget: int) -> None:
        self.budget = max(1, budget)
        self.size = self.budget

    def after(self, rate_limited: bool) -> None:
        """Adjust after one call: halve on a 429, else grow by one up to the budget."""
        self.size = max(1, self.size // 2) if rate_limited else min(self.budget, self.size + 1)


def _copy_contacts(client, run: SyncRun, connector: Connector, token: str, sleep,
                   serve_live: Callable[[], None], budget: int) -> None:
    """Phase 1: chunks of contacts, each committed with its results and the new cursor.

    Up to `budget` chunks are in Mailchimp at once (their batch calls in sending threads) while
    this thread prepares the next ones and records those that came back — always the oldest
    first, so commits stay in cursor order and each chunk's results and cursor go in one
    transaction: a crash replays at most the chunks that were in flight (harmless). Between
    chunks, live work waiting for another connector is served (R10).
    """
    managed = managed_tag_names(connector.workspace_id)
    audience_id = connector.audience_id
    window = Window(budget)
    in_flight: deque[tuple[int, Chunk, PreparedPush, Future]] = deque()
    prepared_up_to = run.cursor
    exhausted = False
    with ThreadPoolExecutor(max_workers=window.budget, thread_name_prefix=f"copy-{run.id}-send") as pool:
        while True:
            while not exhausted and len(in_flight) < window.size:
                chunk = next_chunk(connector, prepared_up_to)
                if not chunk.scanned:
                    exhausted = True
                    break
                after, prepared_up_to = prepared_up_to, chunk.last_id
                prepared = prepare_push(connector, chunk.ids, managed, contacts=chunk.contacts)
                # The prepared push keeps the rows it sends; the others (up to thousands left out in a
                # re-run's chunk) need not wait in memory for the answers.
                chunk.contacts = []
                if prepared.to_send:
                    _note_send(run, token, after, chunk.last_id)
                in_flight.append((after, chunk, prepared, pool.submit(send_prepared, client, prepared, audience_id)))
            if not in_flight:
                return
            after, chunk, prepared, future = in_flight.popleft()
            limited = client.stats.rate_limited
            answers = _answers(future, client, prepared, audience_id, sleep,
                               lambda a=after, u=chunk.last_id: _note_send(run, token, a, u))
            window.after(client.stats.rate_limited > limited)
            result = record_push(prepared, answers, run, client=client)
            if result.deferred_ids:
                # Refused for now through no fault of theirs (a sign-up throttle, an outage on one
                # item): live replication tries them again once the refusal may have lifted.
                retry_at = utcnow() + timedelta(seconds=result.retry_after or DEFERRED_RETRY_SECONDS)
                mark_dirty(connector, result.deferred_ids, retry_at)
            result.unchanged += chunk.unchanged
            run.cursor = chunk.last_id
            run.done = (run.done or 0) + chunk.scanned
            run.error_count = (run.error_count or 0) + result.errors
            run.counts = result.add_to(run.counts)
            run.result = dict(run.result or {}, in_flight=[entry for entry in (run.result or {}).get("in_flight") or []
                                                           if entry[1] > chunk.last_id])
            background.checkpoint(run, token)
            db.session.commit()
            serve_live()


def _note_send(run: SyncRun, token: str, after_id: int, upto_id: int) -> None:
    """Record, before the call, that the contacts after `after_id` up to `upto_id` are being sent; commits.

    Kept in ``run.result["in_flight"]`` until their chunk commits: a chunk sent again after a
    crash then knows which of its "updated" members its first send created
    (:meth:`portal.sync.push._Recorder.created_earlier_in_run`).
    """
    sent = [entry for entry in (run.result or {}).get("in_flight") or [] if entry[1] > run.cursor]
    run.result = dict(run.result or {}, in_flight=[*sent, [after_id, upto_id, utcnow().isoformat()]])
    background.checkpoint(run, token)
    db.session.commit()


def _answers(future, client, prepared, audience_id: str, sleep, note_resend: Callable[[], None]) -> list[dict]:
    """The answers of a chunk sent in the background; a transient failure (after the client's
    own retries) sends the chunk again, more slowly (each send noted first). Sending a chunk twice
    is harmless."""
    try:
        return future.result()
    except MailchimpError as exc:
        if not exc.transient:
            raise
        log.warning("copy: %s, sending the chunk again", exc.kind)
        sleep(2.0)

    def resend() -> list[dict]:
        note_resend()
        return send_prepared(client, prepared, audience_id)

    return _retrying(resend, sleep)


def _tag_batches(run: SyncRun) -> Iterator[tuple[str, list, list]]:
    """The run's pending tag changes as (tag, ≤500 additions, ≤500 removals), one tag after the other."""
    tags = list(db.session.scalars(
        select(PendingTagOp.tag).where(PendingTagOp.run_id == run.id).distinct().order_by(PendingTagOp.tag)))
    for tag in tags:
        ops = {op: db.session.execute(
            select(PendingTagOp.id, PendingTagOp.email).where(
                PendingTagOp.run_id == run.id, PendingTagOp.tag == tag, PendingTagOp.op == op)
            .order_by(PendingTagOp.id)).all() for op in ("add", "remove")}
        rounds = max(len(ops["add"]), len(ops["remove"]))
        for start in range(0, rounds, TAG_BATCH):
            yield tag, ops["add"][start:start + TAG_BATCH], ops["remove"][start:start + TAG_BATCH]


def _drain_tags(client, run: SyncRun, connector: Connector, token: str, sleep,
                serve_live: Callable[[], None] = lambda: None, budget: int = 1) -> None:
    """Phase 2: send the run's pending tag changes grouped by tag, 500 e-mails per call, up to
    `budget` calls at once; each call's changes are deleted in the commit that follows it.

    The first call of each tag the audience lacks creates it (with its first e-mails); the
    other calls are sent once every tag exists, so a tag is never created twice.
    """
    directory = SegmentDirectory(client, connector.audience_id)
    window = Window(budget)
    in_flight: dict[Future, tuple[str, list, list]] = {}

    def settle(future: Future) -> None:
        tag, adds, removes = in_flight.pop(future)
        limited = client.stats.rate_limited
        try:
            calls = future.result()
        except MailchimpError as exc:
            if not exc.transient:
                raise
            calls = _retrying(lambda: send_tag_group(directory, tag, [r.email for r in adds],
                                                     [r.email for r in removes]), sleep)
        window.after(client.stats.rate_limited > limited)
        done_ids = [r.id for r in adds] + [r.id for r in removes]
        db.session.execute(delete(PendingTagOp).where(PendingTagOp.id.in_(done_ids)))
        counts = dict(run.counts or {})
        counts["tag_calls"] = int(counts.get("tag_calls", 0)) + calls
        counts["tag_changes_sent"] = int(counts.get("tag_changes_sent", 0)) + len(done_ids)
        run.counts = counts
        background.checkpoint(run, token)
        db.session.commit()
        serve_live()

    batches = list(_tag_batches(run))
    db.session.commit()  # end the read transaction before the (slow) HTTP calls
    # The first batch of each tag the audience lacks creates it: those go first (in parallel, one
    # per tag), the others once every tag exists.
    creating: set[str] = set()
    first, rest = [], []
    for batch in batches:
        if directory.find(batch[0]) is None and batch[0] not in creating:
            creating.add(batch[0])
            first.append(batch)
        else:
            rest.append(batch)
    with ThreadPoolExecutor(max_workers=window.budget, thread_name_prefix=f"copy-{run.id}-tags") as pool:
        for group in (first, rest):
            for tag, adds, removes in group:
                while len(in_flight) >= window.size:
                    settle(next(as_completed(in_flight)))
                future = pool.submit(send_tag_group, directory, tag, [r.email for r in adds],
                                     [r.email for r in removes])
                in_flight[future] = (tag, adds, removes)
            while in_flight:
                settle(next(as_completed(in_flight)))
