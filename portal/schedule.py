"""Periodic work, one declarative list read by `python worker.py cron` (run exactly ONE cron process).

Each entry: (RQ verb of ``portal.jobs``, queue, cron expression in the cron process's time zone).
rq reads cron expressions in the process's local time: the cron process runs with
``TZ=Europe/Paris`` (``scripts/run_all.py``, docs/deployment.md), so "Saturday 02:00" is Paris time.
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
    # Campaign activity of every active connector, weekly: Saturday 02:00 with TZ=Europe/Paris (R18).
    Periodic(jobs.import_activity_weekly, "reports", WEEKLY_CRON),
]
