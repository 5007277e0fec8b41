"""RQ entry points: thin verbs that take ids and call crm/ or sync/.

Their names and parameters are a wire protocol (jobs wait in Redis across deploys): add new
parameters with defaults, never rename. Exceptions propagate so RQ records the failure.
"""
from __future__ import annotations

from portal.extensions import rq


def enqueue(queue: str, func, *args, job_id: str | None = None, **kwargs):
    """Put `func(*args)` on `queue`; a `job_id` derived from the work makes it idempotent."""
    q = rq.queue(queue)
    if job_id is not None:
        from rq.job import Job
        from rq.exceptions import NoSuchJobError

        try:
            existing = Job.fetch(job_id, connection=rq.redis)
            if existing.get_status(refresh=True) in ("queued", "started", "deferred", "scheduled"):
                return existing
        except NoSuchJobError:
            pass
    return q.enqueue(func, *args, job_id=job_id, job_timeout=kwargs.pop("job_timeout", 6 * 3600),
                     failure_ttl=7 * 24 * 3600, **kwargs)


def import_csv(import_id: int) -> None:
    """Import an uploaded CSV file (crm.csv_import)."""
    from portal.crm import csv_import

    csv_import.run_import(import_id)


def import_consent(run_id: int) -> None:
    """Import consent from the connector's audience (R6)."""
    from portal.sync import consent_import

    consent_import.run(run_id)


def compute_preview(run_id: int) -> None:
    """Compute the dry-run preview of a connector's first copy (R7)."""
    from portal.sync import preview

    preview.run(run_id)


def initial_copy(run_id: int) -> None:
    """Run (or resume) the initial copy of a connector (R8)."""
    from portal.sync import initial_copy as copy

    copy.run(run_id)


def retry_contacts(connector_id: int, contact_ids: list[int] | None = None) -> dict:
    """Push these contacts again (None: every contact in error) (R19)."""
    from portal.sync import connectors

    return connectors.retry_now(connector_id, contact_ids)


def resume_stale_runs() -> list[int]:
    """Re-enqueue the runs whose worker died (stale heartbeat) (R8)."""
    from portal.sync import runs

    return runs.resume_stale_runs()
