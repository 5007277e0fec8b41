"""Periodic work, one declarative list read by `python worker.py cron` (run exactly ONE cron process).

Each entry: (job function path, queue, cron expression in the cron process's TZ). Nightly
reconciliation (R22) and the weekly activity import (R18) are added here by their issues.
"""
from __future__ import annotations

SCHEDULE: list[tuple[str, str, str]] = [
    # A copy whose worker died resumes within a minute even if no worker restarts (R8).
    ("portal.jobs.resume_stale_runs", "bulk", "* * * * *"),
]
