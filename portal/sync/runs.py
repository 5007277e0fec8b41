"""A connector's background runs: creating their rows, reading them, their progress, and how a
Mailchimp failure ends one (R8).

The mechanism itself (claim, heartbeat, checkpoint, outcomes) is :mod:`portal.background`,
shared with CSV imports. Runs are created here and *returned*; ``portal.jobs`` enqueues them.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select

from portal import background
from portal.background import FailRun, Outcome, PauseRun, RetryLater, StopRun
from portal.extensions import db
from portal.mailchimp import MailchimpError
from portal.models import Connector, ConnectorStatus, RunKind, RunStatus, SyncRun

log = logging.getLogger(__name__)

LeaseLost = background.LeaseLost


def create_run(connector: Connector, kind: RunKind, *, total: int = 0) -> SyncRun:
    """Add a queued run of `kind` for `connector` (flushed, not committed)."""
    run = SyncRun(connector_id=connector.id, workspace_id=connector.workspace_id, kind=RunKind(kind),
                  status=RunStatus.QUEUED, total=total, counts={}, result={})
    db.session.add(run)
    db.session.flush()
    return run


def get(run_id: int) -> SyncRun | None:
    """A run by id."""
    return db.session.get(SyncRun, run_id)


def latest_run(connector_id: int, kind: RunKind) -> SyncRun | None:
    """The connector's most recent run of `kind`."""
    return db.session.scalar(
        select(SyncRun).where(SyncRun.connector_id == connector_id, SyncRun.kind == kind)
        .order_by(SyncRun.id.desc()).limit(1)
    )


def history(connector_id: int) -> list[SyncRun]:
    """Every run of the connector, newest first."""
    return list(db.session.scalars(
        select(SyncRun).where(SyncRun.connector_id == connector_id).order_by(SyncRun.id.desc())
    ))


def waiting(connector_id: int, kind: RunKind) -> list[SyncRun]:
    """The connector's queued runs of `kind` (e.g. the preview waiting for the consent import)."""
    return list(db.session.scalars(
        select(SyncRun).where(SyncRun.connector_id == connector_id, SyncRun.kind == kind,
                              SyncRun.status == RunStatus.QUEUED)
    ))


def progress(run: SyncRun) -> dict:
    """``{done, total, percent, errors, eta_seconds, rate_per_s, status, counts, kind, is_over…}``."""
    return {**background.progress(run), "errors": int(run.error_count or 0), "counts": dict(run.counts or {}),
            "kind": run.kind}


def retry_delay() -> float:
    """How long a run waits before coming back when Mailchimp stays unavailable."""
    return background.lease_seconds() + 5.0


def _stop_for(exc: Exception, pause_on_refusal: bool) -> StopRun | None:
    """How a Mailchimp failure ends a run: pause (key or audience gone), later (Mailchimp down), or fail.

    The run's message is the error kind, so each reader sees it in their own language.
    """
    if not isinstance(exc, MailchimpError):
        return None
    if exc.pauses_connector and pause_on_refusal:
        return PauseRun(exc.kind)
    if exc.transient and pause_on_refusal:
        return RetryLater(exc.kind, delay=retry_delay())
    return FailRun(exc.kind)


class RunResult:
    """What :func:`execute` did: its ``outcome`` and, when Mailchimp stopped it, the ``error``."""

    def __init__(self, outcome: Outcome, error: MailchimpError | None = None) -> None:
        self.outcome = outcome
        self.error = error

    @property
    def pauses_connector(self) -> bool:
        """True when the key was refused or the audience is gone: the connector must pause."""
        return self.outcome == Outcome.PAUSED and self.error is not None and self.error.pauses_connector


def execute(run_id: int, work: Callable[[SyncRun, Connector, str], None], *,
            pause_on_refusal: bool = True) -> RunResult:
    """Claim the run and do ``work(run, connector, token)``; Mailchimp failures end it as they should.

    With `pause_on_refusal`, a revoked key or a deleted audience pauses the run (the caller
    pauses the connector, see :attr:`RunResult.pauses_connector`) and a Mailchimp outage longer
    than the client's retries leaves it to come back later (:func:`retry_delay`). Any other
    refusal, or any refusal without `pause_on_refusal`, fails it.
    """
    run = db.session.get(SyncRun, run_id)
    if run is None:
        return RunResult(Outcome.NOT_CLAIMED)
    connector = db.session.get(Connector, run.connector_id)
    if connector is None or connector.status == ConnectorStatus.DELETED:
        background.fail(SyncRun, run_id, None, "connector deleted")
        return RunResult(Outcome.FAILED)
    seen: list[MailchimpError] = []

    def on_error(exc: Exception) -> StopRun | None:
        if isinstance(exc, MailchimpError):
            seen.append(exc)
        return _stop_for(exc, pause_on_refusal)

    outcome = background.execute(run, lambda r, token: work(r, db.session.get(Connector, r.connector_id), token),
                                 on_error)
    return RunResult(outcome, seen[-1] if seen else None)


def requeue(run: SyncRun) -> bool:
    """Make a paused or failed run claimable again, from its cursor; commits."""
    return background.requeue(SyncRun, run.id)


def needing_a_job() -> list[SyncRun]:
    """Connector runs a worker should have (its worker died, or its job was lost)."""
    return background.needing_a_job(SyncRun)


def stale_after() -> timedelta:
    """How old a heartbeat may get before its run counts as abandoned."""
    return timedelta(seconds=background.lease_seconds())
