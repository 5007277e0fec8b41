"""Background work: the one module that knows RQ.

Three parts:

- **Starting work** — what views and the CLI call for an action that needs the background:
  each calls one function of ``portal.sync`` (or ``portal.crm``), which leaves its work as
  *queued run rows*, then enqueues those rows here. One call per action for the caller.
- **Verbs** — the RQ entry points, thin: they take ids and call ``sync/`` or ``crm/``, then
  enqueue whatever the run says comes next (the preview after the consent import, a copy
  that must come back later). Their names and parameters are a wire protocol (jobs wait in
  Redis across deploys): add parameters with defaults, never rename. Exceptions propagate so
  RQ records the failure.
- **Listening** — :func:`on_contacts_changed`, connected to the contact base's signal by
  ``create_app``.

Job ids are derived from the work (``run-<kind>-<id>``, ``retry-<connector>-…``), so asking
twice for the same work enqueues it once (ARCHITECTURE habit 5).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from portal import background
from portal.background import Outcome
from portal.crm import csv_import
from portal.extensions import rq
from portal.models import Connector, ContactChange, CsvImport, RunKind, RunStatus, SyncRun, User
from portal.sync import activity_import, consent_import, error_fixes, lifecycle, preview
from portal.sync import initial_copy as copy
from portal.sync import runs as sync_runs
from portal.sync.contact_state import mark_changed

log = logging.getLogger(__name__)

JOB_TIMEOUT = 6 * 3600
FAILURE_TTL = 7 * 24 * 3600
_WAITING = (JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED, JobStatus.SCHEDULED)


# --- enqueueing --------------------------------------------------------------------------------

def enqueue(queue: str, func: Any, *args: Any, job_id: str | None = None, **kwargs: Any) -> Job:
    """Put `func(*args)` on `queue`; a `job_id` derived from the work makes it idempotent
    (a job with that id still waiting or running is returned instead)."""
    if job_id is not None:
        try:
            existing = Job.fetch(job_id, connection=rq.redis)
            if existing.get_status(refresh=True) in _WAITING:
                return existing
        except NoSuchJobError:
            pass
    return rq.queue(queue).enqueue(func, *args, job_id=job_id, job_timeout=kwargs.pop("job_timeout", JOB_TIMEOUT),
                                   failure_ttl=FAILURE_TTL, **kwargs)


def _verb_of(run: SyncRun | CsvImport) -> tuple[Any, str, str]:
    """The verb that works on `run`, its queue, and the run's job id."""
    if isinstance(run, CsvImport):
        return import_csv, "bulk", f"run-csv-import-{run.id}"
    verbs = {
        RunKind.CONSENT_IMPORT: (import_consent, "bulk"),
        RunKind.PREVIEW: (compute_preview, "bulk"),
        RunKind.INITIAL_COPY: (initial_copy, "bulk"),
        RunKind.ACTIVITY_IMPORT: (import_activity, "reports"),
    }
    verb, queue = verbs[RunKind(run.kind)]
    return verb, queue, f"run-{run.kind}-{run.id}"


def enqueue_run(run: SyncRun | CsvImport) -> Job:
    """Enqueue the verb that works on `run` (idempotent: one job per run at a time).

    A run left "running" by a dead worker gets a job id of its own (from its last heartbeat):
    RQ still lists the dead worker's job as started.
    """
    verb, queue, job_id = _verb_of(run)
    if run.status == RunStatus.RUNNING:
        job_id += f"-r{int(run.heartbeat_at.timestamp()) if run.heartbeat_at else 0}"
    return enqueue(queue, verb, run.id, job_id=job_id)


def enqueue_later(run: SyncRun | CsvImport, delay: float) -> Job:
    """Come back to `run` in `delay` seconds (the worker's scheduler moves it then)."""
    verb, queue, job_id = _verb_of(run)
    return rq.queue(queue).enqueue_in(timedelta(seconds=delay), verb, run.id, job_id=f"{job_id}-later",
                                      job_timeout=JOB_TIMEOUT, failure_ttl=FAILURE_TTL)


def enqueue_waiting(connector_id: int) -> None:
    """Enqueue every queued run of the connector (those the last action created or requeued)."""
    for kind in RunKind:
        for run in sync_runs.waiting(connector_id, kind):
            enqueue_run(run)


def failed_jobs(limit: int = 20) -> list[dict]:
    """The most recent failed background jobs across queues (RQ's failed registries), for support."""
    found = []
    for name in rq.NAMES:
        registry = rq.queue(name).failed_job_registry
        for job in Job.fetch_many(registry.get_job_ids(0, limit - 1), connection=rq.redis):
            if job is None:
                continue
            result = job.latest_result()
            lines = ((result.exc_string if result is not None else "") or "").strip().splitlines()
            found.append({"id": job.id, "queue": name, "func": job.func_name, "ended_at": job.ended_at,
                          "error": lines[-1] if lines else ""})
    return sorted(found, key=lambda j: str(j["ended_at"]), reverse=True)[:limit]


# --- starting work (views and the CLI) -----------------------------------------------------------

def submit_connector(workspace_id: int, user: User | None, api_key: str, audience_id: str,
                     mapping: Sequence[Any] | None = None, create_missing: bool = True) -> Connector:
    """Submit a connector (R5): saved waiting for validation, its consent import and preview started."""
    connector = lifecycle.create_connector(workspace_id, user, api_key, audience_id, mapping, create_missing)
    enqueue_waiting(connector.id)
    return connector


def validate_connector(connector_id: int, user: User | None) -> SyncRun:
    """Support validates (R7): the initial copy starts (R8)."""
    run = lifecycle.validate(connector_id, user)
    enqueue_run(run)
    return run


def resubmit_connector(connector_id: int, user: User | None) -> Connector:
    """The customer submits a sent-back connector again: a fresh preview starts."""
    connector = lifecycle.resubmit(connector_id, user)
    enqueue_waiting(connector.id)
    return connector


def recompute_preview(connector_id: int) -> SyncRun:
    """Support asks for a fresh dry-run preview (R7)."""
    run = lifecycle.start_preview(connector_id)
    enqueue_run(run)
    return run


def copy_again(connector_id: int) -> SyncRun:
    """Run the full copy again (only changed contacts are sent)."""
    run = lifecycle.start_copy(connector_id)
    enqueue_run(run)
    return run


def reconnect_connector(connector_id: int, user: User | None, api_key: str | None = None) -> Connector:
    """Resume a paused connector (R19 "reconnect"); a paused copy goes on where it stopped."""
    connector = lifecycle.reconnect(connector_id, user, api_key)
    enqueue_waiting(connector.id)
    return connector


def queue_retry(connector_id: int, contact_ids: Sequence[int] | None = None) -> Job:
    """Push these contacts again on the `live` queue (None: every contact in error) (R19)."""
    ids = sorted({int(i) for i in contact_ids}) if contact_ids is not None else None
    suffix = "all" if ids is None else f"{len(ids)}-{hash(tuple(ids)) & 0xffffffff:x}"
    return enqueue("live", retry_contacts, connector_id, ids, job_id=f"retry-{connector_id}-{suffix}")


def choose_email_owner(workspace_id: int, contact_id: int) -> Connector:
    """This contact owns the e-mail it shares (R19); every contact sharing it is pushed again."""
    connector, to_push = error_fixes.choose_email_owner(workspace_id, contact_id)
    if to_push:
        queue_retry(connector.id, to_push)
    return connector


def start_csv_import(imp: CsvImport, columns: list[str]) -> bool:
    """Start an uploaded CSV import with this column mapping; False when it had started already."""
    if not csv_import.start(imp, columns):
        return False
    enqueue_run(imp)
    return True


def resume_csv_import(imp: CsvImport) -> bool:
    """Queue a failed import again; it continues after its last committed chunk."""
    if not csv_import.resume(imp):
        return False
    enqueue_run(imp)
    return True


def import_activity_now(connector_id: int, *, in_background: bool = True) -> SyncRun:
    """Support's "import now": the connector's campaign activity import starts (R18).

    ``in_background=False`` only creates the queued run, for a caller that runs the verb itself
    (``flask activity import --foreground``).
    """
    run = activity_import.start_import(connector_id)
    if in_background:
        enqueue_run(run)
    return run


# --- listening ---------------------------------------------------------------------------------

def on_contacts_changed(workspace_id: int, *, contact_ids: list[int], change: ContactChange) -> None:
    """The contact base changed these contacts (committed): show them "pending" to the active
    connector, which has not received the change yet (R17)."""
    connector = lifecycle.live_connector(workspace_id)
    if connector is not None:
        mark_changed(connector, contact_ids)


# --- verbs (run in a worker; a wire protocol) ----------------------------------------------------

def import_csv(import_id: int) -> None:
    """Import an uploaded CSV file (crm.csv_import)."""
    csv_import.run_import(import_id)


def import_consent(run_id: int) -> None:
    """Import consent from the connector's audience (R6); then the waiting preview may start."""
    consent_import.run(run_id)
    run = sync_runs.get(run_id)
    if run is not None:
        enqueue_waiting(run.connector_id)


def compute_preview(run_id: int) -> None:
    """Compute the dry-run preview of a connector's first copy (R7)."""
    preview.run(run_id)


def initial_copy(run_id: int) -> None:
    """Run (or resume) the initial copy of a connector (R8); come back later if Mailchimp is down."""
    result = copy.run(run_id)
    if result.outcome == Outcome.RETRY_LATER:
        enqueue_later(sync_runs.get(run_id), sync_runs.retry_delay())


def import_activity(run_id: int) -> None:
    """Run (or resume) a campaign activity import (R18); come back later if Mailchimp is down, and
    try a failed one again a few times (its traceback stays in RQ's failed registry each time)."""
    try:
        result = activity_import.run(run_id)
    except Exception:
        _retry_failed_activity_import(run_id)
        raise
    if result.outcome == Outcome.RETRY_LATER:
        enqueue_later(sync_runs.get(run_id), sync_runs.retry_delay())
    elif result.outcome == Outcome.FAILED:
        _retry_failed_activity_import(run_id)


def _retry_failed_activity_import(run_id: int) -> None:
    delay = activity_import.retry_delay_after_failure(run_id)
    if delay is not None:
        enqueue_later(sync_runs.get(run_id), delay)


def import_activity_weekly() -> list[int]:
    """The weekly schedule (R18): an activity import for every active connector, each its own job."""
    ids = []
    for run in activity_import.start_weekly_imports():
        enqueue_run(run)
        ids.append(run.id)
    return ids


def retry_contacts(connector_id: int, contact_ids: list[int] | None = None) -> dict:
    """Push these contacts again (None: every contact in error) (R19)."""
    return error_fixes.retry_now(connector_id, contact_ids)


def resume_stale_runs() -> list[int]:
    """Enqueue the runs a worker should have but may not (its worker died, or its job was lost)."""
    ids = []
    for run in sync_runs.needing_a_job() + csv_import.needing_a_job():
        enqueue_run(run)
        ids.append(run.id)
    if ids:
        log.info("runs enqueued again: %s", ids)
    return ids
