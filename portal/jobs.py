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

Redis may be down (issue 13): the work is in the database first (queued run rows, contacts
marked for a push), so enqueueing never fails an action. The enqueueing primitives log and
return None, and :func:`resume_stale_runs` (the cron's sweep, and every worker as it starts or
reconnects) enqueues that work once Redis is back. :func:`background_problem` tells the pages
when queued work cannot start.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from functools import wraps
from typing import Any, TypeVar

from flask import current_app, g, has_request_context
from flask_babel import gettext as _
from redis.exceptions import LockError, RedisError

from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.worker import Worker

from portal.background import Outcome
from portal.crm import csv_import
from portal.extensions import redis_store
from portal.models import (BackgroundProblem, Connector, ConnectorStatus, ContactChange, CsvImport, RunKind,
                           RunStatus, SyncRun, User, utcnow)
from portal.sync import ConnectorError
from portal.sync import (activity_import, audience, consent_import, error_fixes, lifecycle, mailchimp_events,
                         preview, reconciliation, replication, webhooks)
from portal.sync import initial_copy as copy
from portal.sync import runs as sync_runs

log = logging.getLogger(__name__)

QUEUES = ("live", "bulk", "reports")
"""The queues, in the priority order a worker serves them: live replication first."""
JOB_TIMEOUT = 6 * 3600
FAILURE_TTL = 7 * 24 * 3600
_WAITING = (JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED, JobStatus.SCHEDULED)


F = TypeVar("F", bound=Callable[..., Any])


def _left_for_the_sweep(func: F) -> F:
    """An enqueueing primitive that logs and returns None when Redis cannot be reached: the work
    waits in the database and :func:`resume_stale_runs` enqueues it once Redis is back."""

    @wraps(func)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except RedisError as exc:
            log.warning("Redis unavailable, %s(%s) left for the sweep: %s", func.__name__,
                        ", ".join(map(str, args)), exc)
            return None

    return wrapped  # type: ignore[return-value]


def background_problem() -> BackgroundProblem | None:
    """Why queued work would not start now (Redis down, no worker listening), or None. Once per request."""
    if has_request_context() and "background_problem" in g:
        return g.background_problem
    try:
        connection = redis_store.redis
        connection.ping()
        problem = None if Worker.count(connection=connection) else BackgroundProblem.NO_WORKER
    except RedisError:
        problem = BackgroundProblem.REDIS_DOWN
    if has_request_context():
        g.background_problem = problem
    return problem


# --- enqueueing --------------------------------------------------------------------------------

def queue(name: str) -> Queue:
    """The RQ queue called `name` (one of :data:`QUEUES`) on the app's Redis."""
    if name not in QUEUES:
        raise ValueError(f"unknown queue {name!r}")
    return Queue(name, connection=redis_store.redis, default_timeout=3600)


@_left_for_the_sweep
def enqueue(queue_name: str, func: Any, *args: Any, job_id: str | None = None, **kwargs: Any) -> Job | None:
    """Put `func(*args)` on the queue `queue_name`; a `job_id` derived from the work makes it idempotent
    (a job with that id still waiting or running is returned instead). None when Redis is down."""
    if job_id is not None:
        try:
            existing = Job.fetch(job_id, connection=redis_store.redis)
            if existing.get_status(refresh=True) in _WAITING:
                return existing
        except NoSuchJobError:
            pass
    return queue(queue_name).enqueue(func, *args, job_id=job_id, job_timeout=kwargs.pop("job_timeout", JOB_TIMEOUT),
                                     failure_ttl=FAILURE_TTL, **kwargs)


def _verb_of(run: SyncRun | CsvImport) -> tuple[Any, str, str]:
    """The verb that works on `run`, its queue, and the run's job id."""
    if isinstance(run, CsvImport):
        return import_csv, "bulk", f"run-csv-import-{run.id}"
    verbs = {
        RunKind.CONSENT_IMPORT: (import_consent, "bulk"),
        RunKind.PREVIEW: (compute_preview, "bulk"),
        RunKind.INITIAL_COPY: (initial_copy, "bulk"),
        RunKind.RECONCILE: (reconcile, "bulk"),
        RunKind.ACTIVITY_IMPORT: (import_activity, "reports"),
        RunKind.AUDIENCE_CHECK: (check_audience, "live"),  # a few GETs support waits for: not behind a copy
    }
    verb, queue = verbs[RunKind(run.kind)]
    return verb, queue, f"run-{run.kind}-{run.id}"


def enqueue_run(run: SyncRun | CsvImport, *, resumed: bool = False) -> Job | None:
    """Enqueue the verb that works on `run` (idempotent: one job per run at a time).

    A run left "running" by a dead worker gets a job id of its own (from its last heartbeat):
    RQ still lists the dead worker's job as started. A run that stepped aside for live work
    (`resumed`) goes back to the front of its queue, with a job id of its own too.
    """
    verb, queue_name, job_id = _verb_of(run)
    if run.status == RunStatus.RUNNING:
        job_id += f"-r{int(run.heartbeat_at.timestamp()) if run.heartbeat_at else 0}"
    if resumed:
        job_id += f"-y{time.time_ns()}"
        return enqueue(queue_name, verb, run.id, job_id=job_id, at_front=True)
    return enqueue(queue_name, verb, run.id, job_id=job_id)


def live_work_waiting() -> bool:
    """True when live replication jobs wait: a long bulk job steps aside between chunks (R10)."""
    try:
        return queue("live").count > 0
    except RedisError:
        return False  # no live job can be waiting where none can be queued


def serve_live_work() -> None:
    """Between two chunks of a long bulk job: push the changes waiting for other connectors (R10).

    With one worker, the waiting replication jobs would otherwise wait for the whole job; when
    they run later they find nothing left to do.
    """
    if not live_work_waiting():
        return
    for connector_id in replication.due_connectors():
        replicate(connector_id)


@_left_for_the_sweep
def queue_replication(connector_id: int, *, delay: float | None = None) -> Job | None:
    """Make sure a replication job for the connector comes (R10).

    Coalesces: a job still waiting takes every change made before it starts. A job already
    running may have looked before this change: a second one is queued behind it.
    """
    return _queue_coalesced(f"replicate-{connector_id}", replicate, connector_id, delay)


@_left_for_the_sweep
def queue_webhook_apply(connector_id: int, *, delay: float | None = None) -> Job:
    """Make sure a job applies the connector's stored webhook events (R21); coalesces like
    :func:`queue_replication` (a job already running may have read before the newest event)."""
    return _queue_coalesced(f"webhooks-{connector_id}", apply_webhook_events, connector_id, delay)


def _queue_coalesced(job_id: str, func: Callable, connector_id: int, delay: float | None) -> Job:
    """Queue `func(connector_id)` on ``live`` as `job_id` unless that job is still waiting (it will
    take the newest work); behind it when it is running (it may have looked already)."""
    if delay:
        return queue("live").enqueue_in(timedelta(seconds=delay), func, connector_id,
                                        job_id=f"{job_id}-at{int(time.time() + delay)}", failure_ttl=FAILURE_TTL)
    try:
        if Job.fetch(job_id, connection=redis_store.redis).get_status(refresh=True) == JobStatus.STARTED:
            job_id += "-next"
    except NoSuchJobError:
        pass
    return enqueue("live", func, connector_id, job_id=job_id, job_timeout=600)


_WAKE = "anaba:webhooks:wake:{}"
"""Set while a job that will read the connector's newest events is waiting: a burst of events
then costs one Redis call each, not an enqueue each."""


WAKE_GRACE = 0.2
"""Seconds during which a web process that saw a job waiting does not ask Redis again (a burst of
events then costs no Redis call each); the job looks once more :data:`APPLY_GRACE` seconds after
finding nothing, so an event stored meanwhile is not left for the minute sweep."""
APPLY_GRACE = 0.3
_seen_waiting: dict[int, float] = {}


def _wake_webhook_applier(connector_id: int) -> None:
    now = time.monotonic()
    if now - _seen_waiting.get(connector_id, float("-inf")) < WAKE_GRACE:
        return
    if redis_store.redis.set(_WAKE.format(connector_id), b"1", nx=True, ex=60):
        queue_webhook_apply(connector_id)
    _seen_waiting[connector_id] = now


@_left_for_the_sweep
def enqueue_later(run: SyncRun | CsvImport, delay: float) -> Job | None:
    """Come back to `run` in `delay` seconds (the worker's scheduler moves it then)."""
    verb, queue_name, job_id = _verb_of(run)
    return queue(queue_name).enqueue_in(timedelta(seconds=delay), verb, run.id, job_id=f"{job_id}-later",
                                      job_timeout=JOB_TIMEOUT, failure_ttl=FAILURE_TTL)


def enqueue_waiting(connector_id: int) -> None:
    """Enqueue every queued run of the connector (those the last action created or requeued)."""
    for kind in RunKind:
        for run in sync_runs.waiting(connector_id, kind):
            enqueue_run(run)


def failed_jobs(limit: int = 20) -> list[dict]:
    """The most recent failed background jobs across queues (RQ's failed registries), for support
    (none while Redis is down: the page says it is)."""
    try:
        return _failed_jobs(limit)
    except RedisError as exc:
        log.warning("failed jobs not listed, Redis unavailable: %s", exc)
        return []


def _failed_jobs(limit: int) -> list[dict]:
    found = []
    for name in QUEUES:
        registry = queue(name).failed_job_registry
        for job in Job.fetch_many(registry.get_job_ids(0, limit - 1), connection=redis_store.redis):
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


def _started(run: SyncRun) -> SyncRun:
    """Enqueue a run just created and hand it back to the caller."""
    enqueue_run(run)
    return run


def validate_connector(connector_id: int, user: User | None) -> SyncRun:
    """Support validates (R7): the initial copy starts (R8)."""
    return _started(lifecycle.validate(connector_id, user))


def resubmit_connector(connector_id: int, user: User | None) -> Connector:
    """The customer submits a sent-back connector again: a fresh preview starts."""
    connector = lifecycle.resubmit(connector_id, user)
    enqueue_waiting(connector.id)
    return connector


def recompute_preview(connector_id: int) -> SyncRun:
    """Support asks for a fresh dry-run preview (R7)."""
    return _started(lifecycle.start_preview(connector_id))


def check_audience_now(connector_id: int) -> SyncRun:
    """Support asks for the audience checks again (R7); they run in the background."""
    run = audience.start_checks(connector_id)
    enqueue_run(run)
    return run


def copy_again(connector_id: int) -> SyncRun:
    """Run the full copy again (only changed contacts are sent)."""
    return _started(lifecycle.start_copy(connector_id))


def reconnect_connector(connector_id: int, user: User | None, api_key: str | None = None) -> Connector:
    """Resume a paused connector (R19 "reconnect"); a paused copy goes on where it stopped, and
    the changes made meanwhile are pushed."""
    connector = lifecycle.reconnect(connector_id, user, api_key)
    enqueue_waiting(connector.id)
    if replication.replicates(connector):
        queue_replication(connector.id)
        # A new key may reach the audience through another account: make sure our webhook is there.
        enqueue("live", register_webhook, connector.id, job_id=f"webhook-register-{connector.id}")
    queue_webhook_apply(connector.id)  # events that arrived while paused
    return connector


def reconcile_now(connector_id: int) -> SyncRun:
    """Support asks for a reconciliation now (R22): what changed in Mailchimp is found and repaired."""
    return _started(reconciliation.start(connector_id))


def receive_webhook(secret: str, body: bytes, *, content_type: str = "", remote_addr: str = "",
                    too_large: bool = False) -> webhooks.Receipt:
    """Mailchimp posted to a webhook URL (R21): the event is stored, then a job applies it.

    When Redis is down the event is stored all the same and answered 200: the minute sweep
    (:func:`resume_stale_runs`) applies it later.
    """
    receipt = webhooks.receive(secret, body, content_type=content_type, remote_addr=remote_addr,
                               too_large=too_large)
    if receipt.accepted:
        try:
            _wake_webhook_applier(receipt.connector_id)
        except RedisError as exc:
            log.warning("webhook event %s stored; not enqueued (%s): the sweep applies it", receipt.event_id, exc)
    return receipt


def reregister_webhook(connector_id: int) -> None:
    """Someone asks to register the connector's webhook again (health panel): done in the background,
    since Mailchimp calls our URL back while it registers it."""
    connector = lifecycle.get_connector(connector_id)
    if connector.status not in (ConnectorStatus.ACTIVE, ConnectorStatus.COPYING):
        raise ConnectorError(_("Only an active connector has a webhook."))
    enqueue("live", register_webhook, connector_id, True, job_id=f"webhook-register-{connector_id}")


def erase_from_mailchimp(workspace_id: int, contact_id: int) -> None:
    """Erase the contact's member from Mailchimp for good (GDPR, R12), in the background."""
    connector = lifecycle.live_connector(workspace_id)
    if connector is None:
        raise ConnectorError(_("There is no Mailchimp connector."))
    replication.request_erase(connector, contact_id)
    queue_replication(connector.id)


def push_again(workspace_id: int, contact_id: int) -> None:
    """Someone acts on a contact archived or deleted in Mailchimp: push it again (R13)."""
    connector = lifecycle.live_connector(workspace_id)
    if connector is None:
        raise ConnectorError(_("There is no Mailchimp connector."))
    replication.bring_back(connector, contact_id)
    if replication.replicates(connector):
        queue_replication(connector.id)


def queue_retry(connector_id: int, contact_ids: Sequence[int] | None = None) -> None:
    """Push these contacts again (None: every contact in error) (R19): they wait as pending and the
    replication job sends them like any change."""
    connector = lifecycle.get_connector(connector_id)
    ids = list(contact_ids) if contact_ids is not None else error_fixes.contacts_in_error(connector_id)
    if ids and replication.note_changes(connector, ids):
        queue_replication(connector_id)


def choose_email_owner(workspace_id: int, contact_id: int, actor: str = "") -> Connector:
    """This contact owns the e-mail it shares (R19); every contact sharing it is pushed again."""
    connector, to_push = error_fixes.choose_email_owner(workspace_id, contact_id, actor=actor)
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
    """The contact base changed these contacts (committed): they wait, shown "pending" (R17),
    and a replication job pushes them within seconds (R10)."""
    connector = lifecycle.live_connector(workspace_id)
    if connector is not None and replication.note_changes(connector, contact_ids):
        queue_replication(connector.id)


# --- verbs (run in a worker; a wire protocol) ----------------------------------------------------

def import_csv(import_id: int) -> None:
    """Import an uploaded CSV file (crm.csv_import); steps aside between chunks for live work."""
    if csv_import.run_import(import_id, should_yield=live_work_waiting) == Outcome.YIELDED:
        enqueue_run(csv_import.get(import_id), resumed=True)


def import_consent(run_id: int) -> None:
    """Import consent from the connector's audience (R6); then the waiting preview may start."""
    consent_import.run(run_id)
    run = sync_runs.get(run_id)
    if run is not None:
        enqueue_waiting(run.connector_id)


def check_audience(run_id: int) -> None:
    """Check a connector's audience for support's validation page (R7): merge fields, webhook, size."""
    audience.run_checks(run_id)


def compute_preview(run_id: int) -> None:
    """Compute the dry-run preview of a connector's first copy (R7)."""
    preview.run(run_id)


def initial_copy(run_id: int) -> None:
    """Run (or resume) the initial copy of a connector (R8): between chunks it pushes the changes
    waiting for other connectors, it comes back later if Mailchimp is down, and once over lets
    the changes made during the copy be pushed."""
    result = copy.run(run_id, serve_live=serve_live_work)
    run = sync_runs.get(run_id)
    if result.outcome == Outcome.RETRY_LATER:
        enqueue_later(run, sync_runs.retry_delay())
    elif result.outcome == Outcome.FINISHED and replication.next_due(run.connector_id) is not None:
        queue_replication(run.connector_id)


def reconcile(run_id: int) -> None:
    """Reconcile a connector with its audience (R22); the contacts found drifted are pushed again."""
    result = reconciliation.run(run_id)
    run = sync_runs.get(run_id)
    if result.outcome == Outcome.RETRY_LATER:
        enqueue_later(run, sync_runs.retry_delay())
    elif result.outcome == Outcome.FINISHED and replication.next_due(run.connector_id) is not None:
        queue_replication(run.connector_id)


def reconcile_all() -> list[int]:
    """Nightly: a reconciliation for every active connector (R22)."""
    runs = reconciliation.start_all()
    for run in runs:
        enqueue_run(run)
    return [run.id for run in runs]


def replicate(connector_id: int) -> str:
    """Push the connector's changed contacts (R10), one job per connector at a time (its lock)."""
    # The lock outlives a worker that died holding it by REPLICATION_LOCK_SECONDS at most.
    lease = current_app.config["REPLICATION_LOCK_SECONDS"]
    lock = redis_store.redis.lock(f"anaba:replicate:{connector_id}", timeout=lease)
    # Wait for a live holder to finish its rounds (it pushes this change too, or looks again after
    # letting go), or for a dead holder's lock to expire.
    if not lock.acquire(blocking=True, blocking_timeout=lease + 1):
        queue_replication(connector_id, delay=lease)
        return "busy"
    try:
        outcome, retry_in = replication.replicate(connector_id,
                                                  keep_alive=lambda: lock.extend(lease, replace_ttl=True))
    finally:
        try:
            lock.release()
        except LockError:
            log.warning("replication lock of connector %s had expired", connector_id)
    if outcome == replication.Outcome.MORE:
        queue_replication(connector_id)
    elif outcome == replication.Outcome.RETRY_LATER:
        queue_replication(connector_id, delay=retry_in)
    elif outcome == replication.Outcome.DONE:
        due = replication.next_due(connector_id)
        if due is not None:
            wait = (due - utcnow()).total_seconds()
            queue_replication(connector_id, delay=wait if wait > 0.5 else None)
    return outcome


def apply_webhook_events(connector_id: int) -> str:
    """Apply the connector's stored webhook events in Mailchimp's order (R13, R15, R16, R21), one job
    per connector at a time (its lock); the changes are then replicated like any other."""
    redis_store.redis.delete(_WAKE.format(connector_id))  # an event stored from now on wakes another job
    lease = current_app.config["REPLICATION_LOCK_SECONDS"]
    lock = redis_store.redis.lock(f"anaba:webhooks:{connector_id}", timeout=lease)
    if not lock.acquire(blocking=True, blocking_timeout=lease + 1):
        queue_webhook_apply(connector_id, delay=lease)
        return "busy"
    try:
        while True:
            outcome, retry_in = mailchimp_events.apply_pending(
                connector_id, keep_alive=lambda: lock.extend(lease, replace_ttl=True))
            if outcome != replication.Outcome.DONE:
                break
            time.sleep(APPLY_GRACE)  # see WAKE_GRACE
            if not mailchimp_events.has_pending(connector_id):
                break
    finally:
        try:
            lock.release()
        except LockError:
            log.warning("webhook lock of connector %s had expired", connector_id)
    if outcome == replication.Outcome.MORE:
        queue_webhook_apply(connector_id)
    elif outcome == replication.Outcome.RETRY_LATER:
        queue_webhook_apply(connector_id, delay=retry_in)
    return outcome


def register_webhook(connector_id: int, force: bool = False) -> str:
    """Register the connector's webhook on its audience (R21); `force` replaces it. The problem left."""
    return webhooks.register_now(connector_id, force=force)


def retry_contacts(connector_id: int, contact_ids: list[int] | None = None) -> None:
    """Push these contacts again (None: every contact in error) (R19); kept for jobs queued before
    retries went through replication."""
    queue_retry(connector_id, contact_ids)


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


def resume_stale_runs() -> list[int]:
    """Enqueue the work a worker should have but may not: runs whose worker died or whose job was
    lost, changes waiting for a push and webhook events waiting to be applied for more than a
    little while (the job was lost, or Redis was down when they were made), and webhooks whose
    registration failed a while ago."""
    ids = []
    for run in sync_runs.needing_a_job() + csv_import.needing_a_job():
        enqueue_run(run)
        ids.append(run.id)
    if ids:
        log.info("runs enqueued again: %s", ids)
    for connector_id in replication.due_connectors(older_than=current_app.config["REPLICATION_SWEEP_SECONDS"]):
        queue_replication(connector_id)
    for connector_id in webhooks.connectors_with_unapplied(older_than=current_app.config["REPLICATION_SWEEP_SECONDS"]):
        queue_webhook_apply(connector_id)
    for connector_id in webhooks.needing_registration():
        enqueue("live", register_webhook, connector_id, job_id=f"webhook-register-{connector_id}")
    return ids
