"""What the benchmarks share: private services, the app, contacts in bulk, an active connector,
real worker processes, and a few measurements. Not a benchmark itself (its name starts with _)."""
from __future__ import annotations

import json
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Services:
    """A benchmark's private world: its work folder, the app's environment, the simulator."""

    workdir: Path
    env: dict
    sim: object
    processes: list = field(default_factory=list)


@contextmanager
def services(*, latency_ms: float = 0.0, latency_per_member_ms: float = 0.0, database_url: str | None = None,
             threads: int = 64) -> Iterator[Services]:
    """Start redis-server and the simulator, and give the app's environment (SQLite file by default)."""
    sys.path.insert(0, str(ROOT))
    from cryptography.fernet import Fernet

    from mailchimp_sim.testing import SimulatorProcess
    from scripts.local_services import free_port, redis_server

    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    with ExitStack() as stack:
        redis_url = stack.enter_context(redis_server(workdir))
        extra = ["--threads", str(threads)]
        sim = stack.enter_context(SimulatorProcess(latency_ms=latency_ms, latency_per_member_ms=latency_per_member_ms,
                                                   extra_args=extra))
        env = {
            "DATABASE_URL": database_url or f"sqlite:///{workdir / 'bench.sqlite'}", "REDIS_URL": redis_url,
            "SECRET_KEY": "bench", "FERNET_KEY": Fernet.generate_key().decode(),
            "MAILCHIMP_API_BASE": sim.api_base, "MAILCHIMP_TIMEOUT": "120",
            "ANABA_INSTANCE": str(workdir / "instance"), "ANABA_ENV": "test",
            "MAIL_SERVER": "127.0.0.1", "MAIL_PORT": str(free_port()),
            "PUBLIC_BASE_URL": "http://portal.localhost:5000",
        }
        world = Services(workdir=workdir, env=env, sim=sim)
        try:
            yield world
        finally:
            for proc in world.processes:
                stop(proc)
            shutil.rmtree(workdir, ignore_errors=True)


def make_app(env: dict):
    """The portal app on the benchmark's environment, tables created."""
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    from portal import create_app
    from portal.extensions import db

    app = create_app({"env": env})
    with app.app_context():
        db.create_all()
    return app


def _load(env: dict, workspace: str, count: int, demo: bool) -> None:
    import logging

    logging.disable(logging.WARNING)
    app = make_app(env)
    with app.app_context():
        from portal.crm.accounts import get_or_create_workspace
        from portal.crm.contacts import insert_contacts
        from portal.crm.demo import insert_contacts as insert_demo
        from portal.db_setup import refresh_statistics
        from portal.extensions import db

        ws, _token = get_or_create_workspace(workspace)
        if demo:
            insert_demo(ws.id, count, seed=2026)
        else:
            for start in range(0, count, 5000):
                insert_contacts(ws.id, [{"email": f"bench{i}@bench-anaba.fr", "first_name": f"Bench {i}",
                                         "last_name": "Live", "consent": "opt_in"}
                                        for i in range(start, min(count, start + 5000))])
                db.session.commit()
            refresh_statistics(db.engine)


def load_contacts(env: dict, workspace: str, count: int, *, demo: bool = True) -> float:
    """Fill a workspace in a separate process (its memory is not the benchmark's); seconds taken.

    ``demo``: realistic French contacts (70 % opt-in, tags, a few bad e-mails); otherwise
    `count` opt-in contacts ``bench{i}@bench-anaba.fr``.
    """
    started = time.monotonic()
    loader = multiprocessing.get_context("spawn").Process(target=_load, args=(env, workspace, count, demo))
    loader.start()
    loader.join()
    if loader.exitcode:
        sys.exit("loading the contacts failed")
    return round(time.monotonic() - started, 2)


def api_token(app, workspace: str) -> str:
    """A fresh API bearer token for the workspace."""
    from portal.crm.accounts import find_workspace, new_api_token

    with app.app_context():
        return new_api_token(find_workspace(workspace))


def activate(app, workspace: str, key: str, list_id: str) -> int:
    """Submit, import consent, validate and copy in this process: the connector is active; its id."""
    from portal import jobs
    from portal.crm.accounts import find_workspace
    from portal.models import RunKind
    from portal.sync import consent_import, initial_copy
    from portal.sync import runs as sync_runs

    from portal.sync import preview

    with app.app_context():
        connector = jobs.submit_connector(find_workspace(workspace).id, None, key, list_id)
        consent_import.run(sync_runs.latest_run(connector.id, RunKind.CONSENT_IMPORT).id)
        preview.run(sync_runs.latest_run(connector.id, RunKind.PREVIEW).id)
        initial_copy.run(jobs.validate_connector(connector.id, None).id)
        jobs.queue("live").empty()
        jobs.queue("bulk").empty()
        return connector.id


def submit(app, workspace: str, key: str, list_id: str) -> int:
    """Submit a connector and import its consent in this process (it waits for validation); its id."""
    from portal import jobs
    from portal.crm.accounts import find_workspace
    from portal.models import RunKind
    from portal.sync import consent_import
    from portal.sync import runs as sync_runs

    from portal.sync import preview

    with app.app_context():
        connector = jobs.submit_connector(find_workspace(workspace).id, None, key, list_id)
        consent_import.run(sync_runs.latest_run(connector.id, RunKind.CONSENT_IMPORT).id)
        preview.run(sync_runs.latest_run(connector.id, RunKind.PREVIEW).id)
        jobs.queue("bulk").empty()
        return connector.id


def start_worker(world: Services, *queues: str, log_name: str = "worker.log") -> subprocess.Popen:
    """A real `python worker.py QUEUES` process on the benchmark's services."""
    env = dict(os.environ)
    env.update(world.env)
    env["PYTHONPATH"] = str(ROOT)
    log = open(world.workdir / log_name, "ab")
    import redis
    from rq import Worker

    connection = redis.Redis.from_url(world.env["REDIS_URL"])
    before = Worker.count(connection=connection)
    proc = subprocess.Popen([sys.executable, "worker.py", *queues], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=log)
    world.processes.append(proc)
    deadline = time.monotonic() + 60
    while Worker.count(connection=connection) <= before and time.monotonic() < deadline:
        time.sleep(0.05)  # ready once it has registered with Redis
    connection.close()
    return proc


def stop(proc: subprocess.Popen) -> None:
    """A warm shutdown, then a kill if it takes too long."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def peak_rss_mb(pid: int | None = None) -> float:
    """Peak resident memory of this process (or of another, with its children, via psutil), in MB."""
    if pid is None:
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)
    import psutil

    root = psutil.Process(pid)
    return round(sum(p.memory_info().rss for p in [root] + root.children(recursive=True)) / 2**20, 1)


def calls_by_endpoint(log: list[dict]) -> dict:
    """`METHOD /path/template` → count, from the simulator's request log."""
    return dict(sorted(Counter(f'{r["method"]} {r["path_template"]}' for r in log).items()))


def percentile(values: list[float], p: float) -> float | None:
    """The p-th percentile (nearest rank) of `values`, or None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(p / 100.0 * len(ordered) + 0.5)) - 1))
    return ordered[rank]


def load_average() -> list[float]:
    """The machine's 1, 5 and 15-minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def report(data: dict) -> None:
    """Print the benchmark's one JSON document."""
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))
