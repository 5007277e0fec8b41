"""Background runs as database rows: claim, heartbeat, checkpoint, finish, resume (R8).

One mechanism for every run: the connector's runs (:class:`~portal.models.SyncRun`) and CSV
imports (:class:`~portal.models.CsvImport`) alike — any model with
:class:`~portal.models.base.RunColumns` and a ``conflicting`` class method.

- A worker works on a run only after *claiming* it with one conditional ``UPDATE`` (queued, or
  running with a heartbeat older than the lease, and nothing conflicting running). The claim
  stores a fresh token in ``job_id``.
- :class:`Heartbeat` keeps the claim alive from a thread while the job works, so liveness does
  not depend on how long one step takes.
- :func:`checkpoint` re-checks the token *inside the transaction* that commits a chunk: a worker
  that lost its lease (it stalled and another took the run over) can never commit over its
  successor's work (:class:`LeaseLost`).
- :func:`execute` wraps it all: claim, heartbeat, work, then finished / paused / failed / "retry
  later" according to what the work did (:class:`Outcome`).
- :func:`needing_a_job` lists the runs a worker should be working on but may not be: running
  with a stale heartbeat (the worker died) or queued (their job may have been lost, e.g. Redis
  was down when they were queued). Re-enqueueing them is harmless: the claim decides.

This module knows nothing of RQ: the caller (``portal.jobs``) enqueues.
"""
from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

from flask import current_app
from sqlalchemy import and_, or_, select, update

from portal.extensions import db
from portal.models import RunStatus, utcnow

log = logging.getLogger(__name__)

R = TypeVar("R")


class LeaseLost(RuntimeError):
    """This worker no longer holds the run (another worker took it over, or it was stopped)."""


class StopRun(Exception):
    """Raised by a run's work to end it otherwise than "finished" (see the subclasses)."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message


class PauseRun(StopRun):
    """Stop where it is, resumable once someone acts (its cursor is kept)."""


class FailRun(StopRun):
    """Stop for good with this message (an expected failure: no traceback is recorded)."""


class YieldRun(StopRun):
    """Step aside after a committed chunk (live work waits): the run is queued again at once,
    its cursor kept, so the worker serves the `live` queue first and then comes back."""


class RetryLater(StopRun):
    """Leave the run claimed and come back after ``delay`` seconds (e.g. Mailchimp is down)."""

    def __init__(self, message: str = "", delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class Outcome(StrEnum):
    """How :func:`execute` left a run."""

    NOT_CLAIMED = "not_claimed"
    FINISHED = "finished"
    PAUSED = "paused"
    FAILED = "failed"
    RETRY_LATER = "retry_later"
    YIELDED = "yielded"
    LEASE_LOST = "lease_lost"


def lease_seconds() -> float:
    """How long a run may go without a heartbeat before it counts as abandoned (config)."""
    return float(current_app.config["RUN_LEASE_SECONDS"])


def claim(model: type[R], run_id: int) -> str | None:
    """Take run `run_id` of `model` for this worker: its token, or None when it cannot be taken.

    One conditional UPDATE: the run must be queued, or running with a stale heartbeat, and no
    conflicting run (``model.conflicting``) may be going on.
    """
    now = utcnow()
    stale = now - timedelta(seconds=lease_seconds())
    run = db.session.get(model, run_id)
    if run is None:
        return None
    token = uuid.uuid4().hex[:16]
    other = db.aliased(model)
    fresh = and_(other.heartbeat_at.is_not(None), other.heartbeat_at >= stale)
    conditions = [
        model.id == run_id,
        or_(model.status == RunStatus.QUEUED,
            and_(model.status == RunStatus.RUNNING, or_(model.heartbeat_at.is_(None), model.heartbeat_at < stale))),
    ]
    conflict = model.conflicting(run, other, fresh)
    if conflict is not None:
        conditions.append(~select(other.id).where(conflict).exists())
    result = db.session.execute(
        update(model).where(*conditions)
        .values(status=RunStatus.RUNNING, job_id=token, heartbeat_at=now, message="",
                started_at=db.func.coalesce(model.started_at, now))
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    if result.rowcount != 1:
        log.info("%s %s not claimed (held elsewhere, over, or waiting for another run)", model.__name__, run_id)
        return None
    db.session.refresh(run)
    return token


def _beat(model: type, run_id: int, token: str) -> int:
    return db.session.execute(
        update(model).where(model.id == run_id, model.job_id == token, model.status == RunStatus.RUNNING)
        .values(heartbeat_at=utcnow()).execution_options(synchronize_session=False)
    ).rowcount


def checkpoint(run: Any, token: str) -> None:
    """Refresh the heartbeat inside the current transaction, or roll back and raise :class:`LeaseLost`.

    Call it just before committing a chunk's results: the commit then happens only if this
    worker still holds the run.
    """
    if _beat(type(run), run.id, token) != 1:
        db.session.rollback()
        raise LeaseLost(f"{type(run).__name__} {run.id} is no longer held by this worker")


class Heartbeat:
    """Keeps a claimed run's heartbeat fresh from a background thread while the job works.

    A SIGKILL stops the thread with the worker, so the lease expires and the run is taken over;
    the commits still check the token (:func:`checkpoint`).
    """

    def __init__(self, run: Any, token: str, interval: float | None = None) -> None:
        self.model = type(run)
        self.run_id = run.id
        self.token = token
        self.interval = interval or max(0.2, lease_seconds() / 3.0)
        self.lost = False
        self._app = current_app._get_current_object()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{self.model.__name__}-{run.id}",
                                        daemon=True)

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
                    beaten = _beat(self.model, self.run_id, self.token)
                    db.session.commit()
                    db.session.remove()
                if beaten != 1:
                    self.lost = True
                    return
            except Exception:  # a missed beat is not fatal: the next one, or the checkpoint, tells
                log.exception("heartbeat of %s %s failed", self.model.__name__, self.run_id)


def _end(model: type, run_id: int, token: str | None, status: RunStatus, message: str,
         from_statuses: tuple[RunStatus, ...] = (RunStatus.RUNNING,)) -> bool:
    db.session.rollback()
    stmt = update(model).where(model.id == run_id, model.status.in_(from_statuses))
    if token:
        stmt = stmt.where(model.job_id == token)
    values: dict[str, Any] = {"status": status, "message": message[:2000], "heartbeat_at": utcnow()}
    if status in (RunStatus.FINISHED, RunStatus.FAILED):
        values["finished_at"] = utcnow()
    ended = db.session.execute(stmt.values(**values).execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    return ended == 1


def finish(run: Any, token: str, *, message: str = "") -> None:
    """Mark the run finished, with whatever the session holds, if this worker still holds it; commits."""
    checkpoint(run, token)
    run.status = RunStatus.FINISHED
    run.finished_at = utcnow()
    if message:
        run.message = message
    db.session.commit()


def pause(run: Any, token: str, message: str) -> None:
    """Stop the run where it is, resumable later (its cursor is kept); commits."""
    _end(type(run), run.id, token, RunStatus.PAUSED, message)


def fail(model: type, run_id: int, token: str | None, message: str) -> None:
    """Mark a run failed (only if still held by `token`, when given); commits."""
    _end(model, run_id, token, RunStatus.FAILED, message, (RunStatus.RUNNING, RunStatus.QUEUED))


def note(run: Any, message: str) -> None:
    """Record a message on a run without changing its status (e.g. why it waits); commits."""
    db.session.rollback()
    db.session.execute(update(type(run)).where(type(run).id == run.id).values(message=message[:2000])
                       .execution_options(synchronize_session=False))
    db.session.commit()


def requeue(model: type, run_id: int, from_statuses: tuple[RunStatus, ...] = (RunStatus.PAUSED, RunStatus.FAILED)
            ) -> bool:
    """Make a stopped run claimable again (its cursor is kept); commits. True if it was requeued."""
    result = db.session.execute(
        update(model).where(model.id == run_id, model.status.in_(from_statuses))
        .values(status=RunStatus.QUEUED, message="", finished_at=None)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return result.rowcount == 1


def execute(run: Any, work: Callable[[Any, str], None],
            on_error: Callable[[Exception], StopRun | None] | None = None) -> Outcome:
    """Claim `run`, do ``work(run, token)`` under a heartbeat, then end the run as the work says.

    Returning normally finishes the run (with whatever the work left in the session, in the
    same commit). :class:`PauseRun`, :class:`FailRun` and :class:`RetryLater` end it otherwise;
    ``on_error`` may turn other exceptions into one of those. A lost lease stops quietly (the new
    holder goes on). Anything else fails the run and propagates, so RQ records the traceback.
    """
    model = type(run)
    run_id = run.id
    token = claim(model, run_id)
    if token is None:
        return Outcome.NOT_CLAIMED
    run = db.session.get(model, run_id)
    try:
        try:
            with Heartbeat(run, token):
                work(run, token)
            finish(run, token)
            return Outcome.FINISHED
        except (StopRun, LeaseLost):
            raise
        except Exception as exc:
            stop = on_error(exc) if on_error is not None else None
            if stop is None:
                raise
            raise stop from exc
    except LeaseLost:
        log.info("%s %s: lease lost, another worker goes on with it", model.__name__, run_id)
        return Outcome.LEASE_LOST
    except PauseRun as stop:
        pause(run, token, stop.message)
        return Outcome.PAUSED
    except FailRun as stop:
        log.warning("%s %s failed: %s", model.__name__, run_id, stop.message)
        fail(model, run_id, token, stop.message)
        return Outcome.FAILED
    except RetryLater as stop:
        note(run, stop.message)
        return Outcome.RETRY_LATER
    except YieldRun:
        _end(model, run_id, token, RunStatus.QUEUED, "")
        return Outcome.YIELDED
    except Exception as exc:
        fail(model, run_id, token, f"{type(exc).__name__}: {exc}")
        raise


def needing_a_job(model: type[R], now: datetime | None = None) -> list[R]:
    """Runs that a worker should have: running with a stale heartbeat, or queued."""
    stale = (now or utcnow()) - timedelta(seconds=lease_seconds())
    return list(db.session.scalars(
        select(model).where(or_(
            model.status == RunStatus.QUEUED,
            and_(model.status == RunStatus.RUNNING, or_(model.heartbeat_at.is_(None), model.heartbeat_at < stale)),
        )).order_by(model.id)
    ))


def progress(run: Any, *, total: int | None = None, done: int | None = None) -> dict:
    """The numbers a progress bar needs: done, total, percent, rate, ETA, status, is_over."""
    total = max(int(run.total if total is None else total or 0), 0)
    done_raw = int(run.done if done is None else done or 0)
    done = min(done_raw, total) if total else done_raw
    percent = 100 if run.status == RunStatus.FINISHED else (int(done * 100 / total) if total else 0)
    rate = eta = None
    if run.started_at and done and run.status == RunStatus.RUNNING:
        elapsed = (utcnow() - run.started_at).total_seconds()
        if elapsed > 0:
            rate = round(done / elapsed, 1)
            eta = int((total - done) / rate) if rate and total >= done else None
    return {"done": done, "total": total, "percent": percent, "eta_seconds": eta, "rate_per_s": rate,
            "status": run.status, "message": run.message or "", "is_over": run.is_over}
