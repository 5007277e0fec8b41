"""Background runs as database rows: creating, claiming, heartbeats, progress and resuming (R8).

Every consent import, preview and copy is a :class:`~portal.models.SyncRun`. A worker may
work on a run only after *claiming* it with one conditional ``UPDATE`` (status queued, or
running with a heartbeat older than the lease); the claim stores a fresh token in
``SyncRun.job_id``. Each later checkpoint re-checks that token in the same transaction as
the work it commits (:func:`checkpoint`), so a worker that lost its lease (it stalled, and
another worker took the run over) can never commit over the new holder's progress.

A run whose heartbeat is older than ``RUN_LEASE_SECONDS`` is stale: its worker died.
:func:`resume_stale_runs` (called when a worker starts, and as an RQ verb) puts it back on
its queue; the next claim succeeds and the run continues from its cursor.
"""
from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import and_, or_, select, update

from portal.extensions import db
from portal.mailchimp import MailchimpError
from portal.models import Connector, SyncRun, utcnow

log = logging.getLogger(__name__)

DEFAULT_LEASE_SECONDS = 60.0

# Which RQ verb runs each kind, and on which queue.
VERBS = {
    "consent_import": ("portal.jobs.import_consent", "bulk"),
    "preview": ("portal.jobs.compute_preview", "bulk"),
    "initial_copy": ("portal.jobs.initial_copy", "bulk"),
}


class LeaseLost(RuntimeError):
    """This worker no longer holds the run (another worker took it over, or it was stopped)."""


def lease_seconds() -> float:
    """How long a run may go without a heartbeat before it counts as abandoned."""
    value = current_app.config.get("RUN_LEASE_SECONDS")
    try:
        return float(value) if value else DEFAULT_LEASE_SECONDS
    except (TypeError, ValueError):
        return DEFAULT_LEASE_SECONDS


def create_run(connector: Connector, kind: str, *, total: int = 0) -> SyncRun:
    """Add a queued run of `kind` for `connector` (flushed, not committed)."""
    if kind not in SyncRun.KINDS:
        raise ValueError(f"unknown run kind {kind!r}")
    run = SyncRun(connector_id=connector.id, workspace_id=connector.workspace_id, kind=kind,
                  status="queued", total=total, counts={}, result={})
    db.session.add(run)
    db.session.flush()
    return run


def enqueue_run(run: SyncRun, *, suffix: str = "") -> None:
    """Put the run's verb on its queue; the job id is derived from the run (idempotent)."""
    from importlib import import_module

    from portal.jobs import enqueue

    path, queue = VERBS[run.kind]
    module, _, name = path.rpartition(".")
    func = getattr(import_module(module), name)
    enqueue(queue, func, run.id, job_id=f"sync-run-{run.id}{suffix}")


def claim(run_id: int) -> str | None:
    """Take the run for this worker; its token, or None when someone else holds it.

    Decided by one conditional UPDATE: the run must be queued, or running with a stale
    heartbeat, and no other run of the same kind for the connector may be running with a
    fresh heartbeat (one copy per connector at a time).
    """
    now = utcnow()
    stale = now - timedelta(seconds=lease_seconds())
    run = db.session.get(SyncRun, run_id)
    if run is None:
        return None
    token = uuid.uuid4().hex[:16]
    other = db.aliased(SyncRun)
    busy = (
        select(other.id)
        .where(other.connector_id == run.connector_id, other.kind == run.kind, other.id != run.id,
               other.status == "running", other.heartbeat_at >= stale)
        .exists()
    )
    result = db.session.execute(
        update(SyncRun)
        .where(
            SyncRun.id == run_id,
            or_(SyncRun.status == "queued",
                and_(SyncRun.status == "running", or_(SyncRun.heartbeat_at.is_(None), SyncRun.heartbeat_at < stale))),
            ~busy,
        )
        .values(status="running", job_id=token, heartbeat_at=now, message="",
                started_at=db.func.coalesce(SyncRun.started_at, now))
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    if result.rowcount != 1:
        log.info("run %s not claimed (held elsewhere, over, or another run is active)", run_id)
        return None
    db.session.refresh(run)
    return token


def checkpoint(run: SyncRun, token: str) -> None:
    """Refresh the heartbeat inside the current transaction, or raise :class:`LeaseLost`.

    Call it just before committing a chunk's results: the commit then happens only if this
    worker still holds the run.
    """
    result = db.session.execute(
        update(SyncRun)
        .where(SyncRun.id == run.id, SyncRun.job_id == token, SyncRun.status == "running")
        .values(heartbeat_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        db.session.rollback()
        raise LeaseLost(f"run {run.id} is no longer held by this worker")


class Heartbeat:
    """Keeps a claimed run's heartbeat fresh from a background thread while the job works.

    Liveness then does not depend on how long one chunk takes (a slow Mailchimp, long
    backoffs); the commits still check the token (:func:`checkpoint`). A SIGKILL stops the
    thread with the worker, so the lease expires and the run is taken over.
    """

    def __init__(self, run_id: int, token: str, interval: float | None = None) -> None:
        self.run_id = run_id
        self.token = token
        self.interval = interval or max(0.2, lease_seconds() / 3.0)
        self.lost = False
        self._app = current_app._get_current_object()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-run-{run_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                with self._app.app_context():
                    result = db.session.execute(
                        update(SyncRun)
                        .where(SyncRun.id == self.run_id, SyncRun.job_id == self.token, SyncRun.status == "running")
                        .values(heartbeat_at=utcnow())
                        .execution_options(synchronize_session=False)
                    )
                    db.session.commit()
                    db.session.remove()
                if result.rowcount != 1:
                    self.lost = True
                    return
            except Exception:  # a missed beat is not fatal: the next one, or the checkpoint, tells
                log.exception("heartbeat of run %s failed", self.run_id)


def finish(run: SyncRun, token: str, *, status: str = "finished", message: str = "") -> None:
    """Mark the run over (finished or failed) if this worker still holds it; commits."""
    checkpoint(run, token)
    run.status = status
    run.finished_at = utcnow()
    if message:
        run.message = message
    db.session.commit()


def pause(run: SyncRun, token: str, message: str) -> None:
    """Stop the run where it is, resumable later (its cursor is kept); commits."""
    db.session.rollback()
    run = db.session.get(SyncRun, run.id)
    db.session.execute(
        update(SyncRun).where(SyncRun.id == run.id, SyncRun.job_id == token)
        .values(status="paused", message=message, heartbeat_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def fail(run_id: int, token: str | None, message: str) -> None:
    """Mark a run failed after an unexpected error (only if still held by `token`); commits."""
    db.session.rollback()
    stmt = update(SyncRun).where(SyncRun.id == run_id, SyncRun.status.in_(("running", "queued")))
    if token:
        stmt = stmt.where(SyncRun.job_id == token)
    db.session.execute(stmt.values(status="failed", message=message[:2000], finished_at=utcnow())
                       .execution_options(synchronize_session=False))
    db.session.commit()


def requeue(run_id: int) -> bool:
    """Make a paused (or failed) run claimable again and enqueue it; commits. True if requeued."""
    result = db.session.execute(
        update(SyncRun).where(SyncRun.id == run_id, SyncRun.status.in_(("paused", "failed")))
        .values(status="queued", message="", finished_at=None)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    if result.rowcount != 1:
        return False
    run = db.session.get(SyncRun, run_id)
    enqueue_run(run, suffix=f"-q{int(utcnow().timestamp())}")
    return True


def retry_later(run: SyncRun, message: str) -> None:
    """Leave a running run to be taken over once its lease expires, and schedule that; commits.

    Used when Mailchimp stays unavailable longer than the client's and the chunk's retries:
    nothing is lost, the run continues from its cursor.
    """
    from portal.extensions import rq

    db.session.rollback()
    db.session.execute(update(SyncRun).where(SyncRun.id == run.id).values(message=message[:2000])
                       .execution_options(synchronize_session=False))
    db.session.commit()
    path, queue = VERBS[run.kind]
    from importlib import import_module

    module, _, name = path.rpartition(".")
    delay = timedelta(seconds=lease_seconds() + 5)
    rq.queue(queue).enqueue_in(delay, getattr(import_module(module), name), run.id,
                               job_id=f"sync-run-{run.id}-later{int(utcnow().timestamp())}",
                               job_timeout=6 * 3600)


def execute(run_id: int, label: str, work: Callable[[SyncRun, Connector, str], None],
            after: Callable[[int], None] | None = None) -> None:
    """Claim `run_id` and run ``work(run, connector, token)`` under a heartbeat, then finish it.

    Does nothing when another worker holds the run. A Mailchimp error fails the run with its
    message; a lost lease stops quietly (the new holder goes on); anything else fails the run
    and propagates so RQ records it. ``after(connector_id)`` runs in every case once claimed.
    """
    token = claim(run_id)
    if token is None:
        return
    run = db.session.get(SyncRun, run_id)
    connector = db.session.get(Connector, run.connector_id)
    try:
        with Heartbeat(run_id, token):
            work(run, connector, token)
        finish(run, token)
    except MailchimpError as exc:
        log.warning("%s %s: %s", label, run_id, exc)
        fail(run_id, token, exc.message)
    except LeaseLost:
        return
    except Exception as exc:
        fail(run_id, token, f"{type(exc).__name__}: {exc}")
        raise
    finally:
        if after is not None:
            after(run.connector_id)


def stale_runs(now: datetime | None = None) -> list[SyncRun]:
    """Runs marked running whose worker stopped sending heartbeats."""
    stale = (now or utcnow()) - timedelta(seconds=lease_seconds())
    return list(db.session.scalars(
        select(SyncRun).where(SyncRun.status == "running",
                              or_(SyncRun.heartbeat_at.is_(None), SyncRun.heartbeat_at < stale))
    ))


def resume_stale_runs() -> list[int]:
    """Re-enqueue every abandoned run (a worker died holding it); the ids re-enqueued.

    The job id is derived from the stale heartbeat, so two workers starting together enqueue
    the run once; and the claim decides who works on it anyway.
    """
    ids = []
    for run in stale_runs():
        if run.kind not in VERBS:
            continue
        beat = int(run.heartbeat_at.timestamp()) if run.heartbeat_at else 0
        enqueue_run(run, suffix=f"-r{beat}")
        ids.append(run.id)
        log.warning("run %s (%s) was abandoned; re-enqueued", run.id, run.kind)
    return ids


def progress(run: SyncRun) -> dict:
    """The numbers a progress bar needs: done, total, percent, errors, rate, ETA, status."""
    total = max(int(run.total or 0), 0)
    done = min(int(run.done or 0), total) if total else int(run.done or 0)
    percent = 100 if run.status == "finished" else (int(done * 100 / total) if total else 0)
    rate = None
    eta = None
    if run.started_at and done and run.status == "running":
        elapsed = (utcnow() - run.started_at).total_seconds()
        if elapsed > 0:
            rate = round(done / elapsed, 1)
            eta = int((total - done) / rate) if rate and total >= done else None
    return {
        "done": done, "total": total, "percent": percent, "errors": int(run.error_count or 0),
        "eta_seconds": eta, "rate_per_s": rate, "status": run.status, "counts": dict(run.counts or {}),
        "message": run.message or "", "kind": run.kind, "is_over": run.is_over,
    }
