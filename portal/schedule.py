"""Periodic work, one declarative list read by `python worker.py cron` (run exactly ONE cron process).

Each entry: (RQ verb of ``portal.jobs``, queue, cron expression in the cron process's time zone).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from portal import jobs


class Periodic(NamedTuple):
    """A job the cron process enqueues on a schedule."""

    func: Callable[..., object]
    queue: str
    cron: str


SCHEDULE: list[Periodic] = [
    # A run whose worker died (or whose job was lost) goes on within a minute even if no worker restarts (R8).
    Periodic(jobs.resume_stale_runs, "bulk", "* * * * *"),
]
