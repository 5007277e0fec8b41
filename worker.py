"""Run an RQ worker (or the one cron process) inside the portal's app context.

    python worker.py                 # worker on live, bulk, reports (in that priority order)
    python worker.py bulk            # worker on the named queues only
    python worker.py cron            # the periodic scheduler: run exactly one per deployment
"""
from __future__ import annotations

import sys

from rq import Worker

from portal import create_app
from portal import jobs
from portal.extensions import db, redis_store


class AppWorker(Worker):
    """A forking worker whose work horse never reuses the parent's database connections."""

    def main_work_horse(self, *args, **kwargs):
        db.engine.dispose(close=False)
        return super().main_work_horse(*args, **kwargs)

    def perform_job(self, *args, **kwargs):
        try:
            return super().perform_job(*args, **kwargs)
        finally:
            db.session.remove()  # the next job must not see this one's objects


def resume_abandoned_runs() -> None:
    """Re-enqueue runs a dead worker left behind (R8): now, and once their lease has surely expired."""
    from datetime import timedelta

    from portal import background

    jobs.resume_stale_runs()
    jobs.queue("bulk").enqueue_in(timedelta(seconds=background.lease_seconds() + 5), jobs.resume_stale_runs)
    db.session.remove()


def main(argv: list[str]) -> None:
    """Build the app once, then work or schedule until stopped."""
    app = create_app()
    with app.app_context():
        if argv[:1] == ["cron"]:
            from rq.cron import CronScheduler

            from portal.schedule import SCHEDULE

            scheduler = CronScheduler(connection=redis_store.redis, name="anaba-cron")
            for periodic in SCHEDULE:
                scheduler.register(periodic.func, periodic.queue, cron=periodic.cron)
            scheduler.start()
            return
        names = argv or list(jobs.QUEUES)
        import portal.mailchimp.client  # noqa: F401  (loaded once here, not in every forked work horse)

        resume_abandoned_runs()
        worker = AppWorker([jobs.queue(n) for n in names], connection=redis_store.redis)
        worker.work(with_scheduler=True)


if __name__ == "__main__":
    main(sys.argv[1:])
