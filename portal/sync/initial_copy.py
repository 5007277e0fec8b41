"""The initial copy of a workspace's contacts into its Mailchimp audience (R8).

Resumable by construction (ARCHITECTURE habit 6): the run's ``cursor`` is the id of the last
contact whose result is committed, and ``result["phase"]`` says which phase it is in.

- Phase 0 — create the merge fields the mapping needs and the audience lacks.
- Phase 1 — contacts in id order, in chunks holding 500 eligible contacts each, through the
  three steps of :func:`portal.sync.push.push_contacts`: prepared, sent with one
  batch-subscribe call, and recorded (results, and tag changes as PendingTagOp rows); the
  cursor then advances and everything commits together, with the lease re-checked in that
  transaction. The next chunk is prepared while the current one is being sent. A chunk
  replayed after a crash rewrites the same values: harmless.
- Phase 2 — tag changes, grouped by tag, 500 e-mails per static-segment call (a missing
  tag is created with its first 500 e-mails); each call's rows are deleted once it succeeds.

API calls are therefore about members/500 + Σ over tags of ceil(changes/500): the fewest the
API allows. A revoked key or a deleted audience pauses the run and the connector (nobody is
marked failed); transient Mailchimp failures are retried by the client, then per chunk.
At the end the connector is active, our webhook is registered on the audience (R21) and the
customers get an e-mail with the counts.
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import delete, select
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from portal import background
from portal.background import Outcome
from portal.extensions import db
from portal.mailchimp import MailchimpError
from portal.mailchimp.payload import FieldMapping
from portal.models import Connector, ConnectorStatus, Contact, PendingTagOp, RunKind, RunStatus, SyncRun, utcnow
from portal.sync import consent_import, webhooks
from portal.sync import runs as run_rows
from portal.sync.eligibility import in_workspace, own_reason
from portal.sync.lifecycle import pause_connector
from portal.sync.mailchimp_access import client_for
from portal.sync.notifications import notify_copy_finished
from portal.sync.push import (SegmentDirectory, managed_tag_names, prepare_push, record_push, send_prepared,
                              send_tag_group)

log = logging.getLogger(__name__)

CHUNK_ELIGIBLE = 500
MAX_CHUNK_CONTACTS = 5000
TAG_BATCH = 500
CHUNK_RETRIES = 5
T = TypeVar("T")


def run(run_id: int, *, sleep: Callable[[float], None] = time.sleep,
        should_yield: Callable[[], bool] = lambda: False) -> run_rows.RunResult:
    """Run or resume the initial copy `run_id` (does nothing if another worker holds it).

    At the end the connector is active and its customers get the copy's counts by e-mail; a
    revoked key or a deleted audience pauses the run and the connector (nobody is marked failed).
    Between chunks, when `should_yield` says live work waits, the copy steps aside
    (:class:`~portal.background.YieldRun`) and comes back from its cursor (R10).
    """
    activated: list[Connector] = []

    def work(run: SyncRun, connector: Connector, token: str) -> None:
        with client_for(connector) as client:
            phase = int((run.result or {}).get("phase", 0))
            if phase == 0:
                _ensure_consent_imported(client, connector, sleep)
                _create_merge_fields(client, connector, sleep)
                _set_phase(run, token, 1)
            if int(run.result.get("phase", 0)) == 1:
                _copy_contacts(client, run, connector, token, sleep, should_yield)
                _set_phase(run, token, 2)
            _drain_tags(client, run, connector, token, sleep, should_yield)
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


def next_chunk(connector: Connector, after_id: int) -> tuple[list[int], int]:
    """The next contacts after `after_id` holding CHUNK_ELIGIBLE eligible ones, and the last id.

    Ineligible contacts ride along (they get their "not synced" result in the same commit),
    so every batch-subscribe call carries close to 500 members.
    """
    c = Contact.__table__.c
    ids: list[int] = []
    eligible = 0
    cursor = after_id
    while eligible < CHUNK_ELIGIBLE and len(ids) < MAX_CHUNK_CONTACTS:
        rows = db.session.execute(
            select(c.id, c.email, c.email_normalized, c.consent, c.consent_locked, c.email_bounced,
                   c.do_not_sync, c.deleted_at)
            .where(in_workspace(connector.workspace_id), c.deleted_at.is_(None), c.id > cursor)
            .order_by(c.id).limit(1000)
        ).all()
        if not rows:
            break
        for row in rows:
            ids.append(row.id)
            cursor = row.id
            # The owner rule is left to the push: contacts sharing an e-mail are rare, so a
            # chunk seldom carries fewer than 500 members, and never more.
            if not own_reason(row):
                eligible += 1
                if eligible >= CHUNK_ELIGIBLE:
                    break
    return ids, cursor


def _copy_contacts(client, run: SyncRun, connector: Connector, token: str, sleep,
                   should_yield: Callable[[], bool]) -> None:
    """Phase 1: chunks of contacts, each committed with its results and the new cursor.

    Pipelined: while Mailchimp processes one chunk's batch call (in a sending thread), this
    thread prepares the next chunk and records the previous one. Commits stay in cursor order,
    and each chunk's results and cursor still go in one transaction.
    """
    managed = managed_tag_names(connector.workspace_id)
    audience_id = connector.audience_id
    ids, last_id = next_chunk(connector, run.cursor)
    if not ids:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"copy-{run.id}-send") as pool:
        prepared = prepare_push(connector, ids, managed)
        in_flight = pool.submit(send_prepared, client, prepared, audience_id)
        while True:
            next_ids, next_last = next_chunk(connector, last_id)
            upcoming = prepare_push(connector, next_ids, managed) if next_ids else None
            answers = _answers(in_flight, client, prepared, audience_id, sleep)
            stepping_aside = upcoming is not None and should_yield()
            if upcoming is not None and not stepping_aside:
                in_flight = pool.submit(send_prepared, client, upcoming, audience_id)
            result = record_push(prepared, answers, run, client=client)
            run.cursor = last_id
            run.done = (run.done or 0) + len(ids)
            run.error_count = (run.error_count or 0) + result.errors
            run.counts = result.add_to(run.counts)
            background.checkpoint(run, token)
            db.session.commit()
            if upcoming is None:
                return
            if stepping_aside:
                raise background.YieldRun("live work waits")
            prepared, ids, last_id = upcoming, next_ids, next_last


def _answers(future, client, prepared, audience_id: str, sleep) -> list[dict]:
    """The answers of a chunk sent in the background; a transient failure (after the client's
    own retries) sends the chunk again, more slowly. Sending a chunk twice is harmless."""
    try:
        return future.result()
    except MailchimpError as exc:
        if not exc.transient:
            raise
        log.warning("copy: %s, sending the chunk again", exc.kind)
        sleep(2.0)
    return _retrying(lambda: send_prepared(client, prepared, audience_id), sleep)


def _drain_tags(client, run: SyncRun, connector: Connector, token: str, sleep,
                should_yield: Callable[[], bool] = lambda: False) -> None:
    """Phase 2: send the run's pending tag changes, one tag at a time, 500 e-mails per call."""
    directory = SegmentDirectory(client, connector.audience_id)
    tags = list(db.session.scalars(
        select(PendingTagOp.tag).where(PendingTagOp.run_id == run.id).distinct().order_by(PendingTagOp.tag)
    ))
    for tag in tags:
        while True:
            adds = db.session.execute(
                select(PendingTagOp.id, PendingTagOp.email).where(
                    PendingTagOp.run_id == run.id, PendingTagOp.tag == tag, PendingTagOp.op == "add")
                .order_by(PendingTagOp.id).limit(TAG_BATCH)
            ).all()
            removes = db.session.execute(
                select(PendingTagOp.id, PendingTagOp.email).where(
                    PendingTagOp.run_id == run.id, PendingTagOp.tag == tag, PendingTagOp.op == "remove")
                .order_by(PendingTagOp.id).limit(TAG_BATCH)
            ).all()
            if not adds and not removes:
                break
            db.session.commit()  # end the read transaction before the (slow) HTTP call
            calls = _retrying(lambda: send_tag_group(directory, tag, [r.email for r in adds],
                                                     [r.email for r in removes]), sleep)
            done_ids = [r.id for r in adds] + [r.id for r in removes]
            db.session.execute(delete(PendingTagOp).where(PendingTagOp.id.in_(done_ids)))
            counts = dict(run.counts or {})
            counts["tag_calls"] = int(counts.get("tag_calls", 0)) + calls
            counts["tag_changes_sent"] = int(counts.get("tag_changes_sent", 0)) + len(done_ids)
            run.counts = counts
            background.checkpoint(run, token)
            db.session.commit()
            if should_yield():
                raise background.YieldRun("live work waits")
