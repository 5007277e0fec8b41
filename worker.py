"""Run an RQ worker (or the one cron process) inside the portal's app context.

    python worker.py                 # worker on live, bulk, reports (in that priority order)
    python worker.py bulk            # worker on the named queues only
    python worker.py cron            # the periodic scheduler: run exactly one per deployment

Both survive a Redis outage (issue 13): they wait for Redis with a capped exponential backoff
(1 s, 2 s, 4 s… 30 s) and carry on, instead of exiting. A worker that comes back enqueues the
work that was left waiting meanwhile (:func:`resume_abandoned_runs`); so does the cron's
minute sweep. SIGTERM / SIGINT still stop them (a worker finishes its job first).
"""
from __future__ import annotations

import logging
import signal
import sys
import time
from collections.abc import Callable
from datetime import timedelta

from redis.exceptions import RedisError
from rq import Worker, worker_registration
from rq.cron import CronScheduler
from rq.exceptions import StopRequested

from portal import create_app
from portal import jobs
from portal.extensions import db, redis_store

log = logging.getLogger("worker")

BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0


class Backoff:
    """Capped exponential waits between attempts to reach Redis again."""

    def __init__(self, first: float = BACKOFF_FIRST, cap: float = BACKOFF_MAX) -> None:
        self.first, self.cap, self.next = first, cap, first

    def wait(self, sleep: Callable[[float], None] = time.sleep) -> float:
        """Sleep the current wait, double the next one (up to the cap); the seconds slept."""
        waited = self.next
        sleep(waited)
        self.next = min(self.cap, self.next * 2)
        return waited

    def reset(self) -> None:
        """Redis answered: the next outage starts from the first wait again."""
        self.next = self.first


class AppWorker(Worker):
    """A forking worker whose work horse never reuses the parent's database connections."""

    # RQ's own retry while dequeueing (when Redis drops during BLPOP) grows up to this.
    max_connection_wait_time = BACKOFF_MAX

    def main_work_horse(self, *args, **kwargs):
        db.engine.dispose(close=False)
        return super().main_work_horse(*args, **kwargs)

    def perform_job(self, *args, **kwargs):
        try:
            return super().perform_job(*args, **kwargs)
        finally:
            db.session.remove()  # the next job must not see this one's objects

    def heartbeat(self, timeout=None, pipeline=None):
        """RQ's heartbeat; after an outage that emptied Redis, register again and enqueue the lost work."""
        super().heartbeat(timeout, pipeline)
        if pipeline is None and not self.connection.sismember(worker_registration.REDIS_WORKER_KEYS, self.key):
            log.warning("worker: Redis forgot this worker (restarted?); registering again, resuming lost work")
            worker_registration.register(self)
            try:
                jobs.resume_stale_runs()
            finally:
                db.session.remove()


class AppCron(CronScheduler):
    """The cron scheduler, carrying on through Redis outages instead of exiting on the first error.

    A tick that cannot reach Redis is tried again after a backoff; the jobs due meanwhile are
    enqueued once it answers (each at most once: rq keeps their next time in the process).
    """

    def start(self) -> None:
        """Register, then enqueue due jobs and heartbeat until SIGTERM / SIGINT."""
        self.log.info("CronScheduler %s: starting...", self.name)
        self._install_signal_handlers()
        backoff = Backoff()
        registered = False
        try:
            while True:
                try:
                    if not registered:
                        self.register_birth()
                        registered = True
                    if self.enqueue_jobs():
                        self.save()
                    self.heartbeat()
                    backoff.reset()
                    pause = self.calculate_sleep_interval()
                except RedisError as exc:
                    registered = False  # a restarted Redis forgot us: register again
                    log.warning("cron: Redis unavailable (%s); trying again in %.0f s", exc, backoff.next)
                    backoff.wait()
                    continue
                if pause > 0:
                    time.sleep(pause)
        except (KeyboardInterrupt, StopRequested):
            self.log.info("CronScheduler %s: stop requested", self.name)
        finally:
            try:
                self.register_death()
            except RedisError:
                pass
            self.log.info("CronScheduler %s: shutdown complete", self.name)


def resume_abandoned_runs() -> None:
    """Re-enqueue runs a dead worker left behind (R8) or that were queued while Redis was down:
    now, and once their lease has surely expired."""
    from portal import background

    jobs.resume_stale_runs()
    jobs.queue("bulk").enqueue_in(timedelta(seconds=background.lease_seconds() + 5), jobs.resume_stale_runs)
    db.session.remove()


def wait_for_redis(backoff: Backoff, stopping: Callable[[], bool]) -> bool:
    """Wait until Redis answers (True), or until a stop was asked for (False)."""
    while not stopping():
        try:
            redis_store.redis.ping()
            return True
        except RedisError as exc:
            log.warning("worker: Redis unavailable (%s); trying again in %.0f s", exc, backoff.next)
            backoff.wait()
    return False


def run_worker(names: list[str]) -> None:
    """Work the queues until stopped; through a Redis outage, wait and start again."""
    stop = {"asked": False}

    def ask_stop(signum, frame):  # only between two workers: a running one handles its own signals
        stop["asked"] = True

    backoff = Backoff()
    while True:
        signal.signal(signal.SIGTERM, ask_stop)
        signal.signal(signal.SIGINT, ask_stop)
        if not wait_for_redis(backoff, lambda: stop["asked"]):
            return
        worker = None
        try:
            resume_abandoned_runs()
            worker = AppWorker([jobs.queue(n) for n in names], connection=redis_store.redis)
            backoff.reset()
            worker.work(with_scheduler=True)
        except RedisError as exc:
            log.warning("worker: Redis connection lost (%s)", exc)
        finally:
            db.session.remove()
        if worker is not None and (worker._stop_requested or worker._shutdown_requested_date):
            return  # SIGTERM / SIGINT: a warm shutdown, not an outage
        log.warning("worker: stopped without being asked (Redis outage?); starting again once Redis answers")
        backoff.wait()


def main(argv: list[str]) -> None:
    """Build the app once, then work or schedule until stopped."""
    app = create_app()
    with app.app_context():
        if argv[:1] == ["cron"]:
            from portal.schedule import SCHEDULE

            scheduler = AppCron(connection=redis_store.redis, name="anaba-cron")
            for periodic in SCHEDULE:
                scheduler.register(periodic.func, periodic.queue, cron=periodic.cron)
            scheduler.start()
            return
        import portal.mailchimp.client  # noqa: F401  (loaded once here, not in every forked work horse)

        run_worker(argv or list(jobs.QUEUES))


if __name__ == "__main__":
    main(sys.argv[1:])
