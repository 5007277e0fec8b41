"""Periodic work, one declarative list read by `python worker.py cron` (run exactly ONE cron process).

Each entry: (RQ verb of ``portal.jobs``, queue, cron expression). rq evaluates cron expressions in
the cron process's local time zone: run it with ``TZ=Europe/Paris`` (scripts/run_all.py does; see
docs/deployment.md), so "03:00" is 03:00 in France all year.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from portal import jobs
from portal.sync.activity_import import WEEKLY_CRON


class Periodic(NamedTuple):
    """A job the cron process enqueues on a schedule."""

    func: Callable[..., object]
    queue: str
    cron: str


SCHEDULE: list[Periodic] = [
    # A run whose worker died (or whose job was lost) goes on within a minute even if no worker restarts (R8).
    Periodic(jobs.resume_stale_runs, "bulk", "* * * * *"),
    # What webhooks and live pushes missed, repaired every night (R22).
    Periodic(jobs.reconcile_all, "bulk", "0 3 * * *"),
    # Campaign activity of every active connector, weekly: Saturday 02:00 with TZ=Europe/Paris (R18).
    Periodic(jobs.import_activity_weekly, "reports", WEEKLY_CRON),
]
