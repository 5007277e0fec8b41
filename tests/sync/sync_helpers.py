"""Helpers for the sync engine's tests: contacts in bulk, the audience and sync rows as they are."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select


def add_contacts(ws, count: int, *, start: int = 0, consent: str = "opt_in", tags_every: int = 3,
                 email=None, **fields) -> list[int]:
    """Insert `count` contacts fast (no events); every `tags_every`-th gets tags. Their ids."""
    from portal.crm.contacts import insert_contacts
    from portal.extensions import db

    rows, tags = [], []
    for n, i in enumerate(range(start, start + count)):
        rows.append({"email": email(i) if email else f"person{i}@ardent-clients.fr",
                     "first_name": fields.get("first_name", f"Prénom{i}"),
                     "last_name": fields.get("last_name", f"Nom{i}"), "company": fields.get("company", "Ardent"),
                     "consent": consent})
        names = []
        if tags_every and n % tags_every == 0:
            names.append("Clients")
            if n % (tags_every * 2) == 0:
                names.append("VIP")
        tags.append(names)
    ids = insert_contacts(ws.id, rows, tags)
    db.session.commit()
    return ids


def sync_rows(connector_id: int) -> dict:
    """Every ContactSync row of the connector, by contact id, in contact id order."""
    from portal.extensions import db
    from portal.models import ContactSync

    return {r.contact_id: r for r in db.session.scalars(select(ContactSync).where(ContactSync.connector_id == connector_id)
                                                                     .order_by(ContactSync.contact_id))}


def members(mc, list_id: str) -> dict:
    """The audience's members (all statuses but archived) by lower-cased e-mail."""
    return {m["email_address"].lower(): m for m in mc.iter_members(list_id)}


def writes(sim, since: int = 0) -> list[dict]:
    """Every logged API call that is not a GET, after sequence `since`."""
    return [r for r in sim.control.requests_log(since) if r["method"] != "GET"]


def member_writes(sim, since: int = 0) -> list[dict]:
    """Logged calls that write members: batch subscribe and any write under /members."""
    return [r for r in writes(sim, since)
            if r["path_template"].endswith("/lists/{list_id}") or "/members" in r["path_template"]]


def last_seq(sim) -> int:
    """The sequence number of the last logged API call (0 when none)."""
    log = sim.control.requests_log()
    return log[-1]["seq"] if log else 0


# --- real worker processes ----------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


def start_worker(app_env, sim, lease, log_path, queues=("bulk",), **settings):
    """A real `python worker.py QUEUES` process on the test services (its log goes to `log_path`)."""
    env = dict(os.environ)
    env.update(app_env)
    env.update({"MAILCHIMP_API_BASE": sim.api_base, "RUN_LEASE_SECONDS": str(lease), "PYTHONPATH": str(ROOT),
                **{k: str(v) for k, v in settings.items()}})
    with open(log_path, "ab") as log:  # a file, not a pipe: a full pipe would block the worker
        return subprocess.Popen([sys.executable, "worker.py", *queues], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=log)


def crash_worker(worker: subprocess.Popen) -> None:
    """SIGKILL the worker and its work horse (RQ puts the horse in its own process group)."""
    import psutil

    horses = psutil.Process(worker.pid).children(recursive=True)
    for horse in horses:
        horse.kill()
    worker.kill()
    worker.wait(10)
    psutil.wait_procs(horses, timeout=10)


def stop_worker(worker: subprocess.Popen) -> None:
    """SIGTERM the worker (a warm shutdown) and wait for it."""
    worker.terminate()
    try:
        worker.wait(30)
    except subprocess.TimeoutExpired:
        crash_worker(worker)


def wait_for(predicate, timeout=60.0, every=0.05):
    """Poll `predicate` until it returns something true (returned), or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out")
