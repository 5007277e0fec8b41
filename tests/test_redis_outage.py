"""Issue 13: a Redis outage with a real ``redis-server`` stopped during requests and started again
(empty, as after a restart without persistence). Pages answer with a message instead of a 500,
an import started meanwhile is not lost, and ``python worker.py`` and ``python worker.py cron``
carry on instead of exiting."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import factories
from scripts.local_services import free_port

ROOT = Path(__file__).resolve().parent.parent


class RedisProcess:
    """A private redis-server that a test can stop and start again on the same port."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        """Start it (empty: nothing is saved) and wait until it answers."""
        self.proc = subprocess.Popen(
            [shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        """Stop it (the outage)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def outage_redis(tmp_path):
    """A redis-server of this test's own (the session's is left alone), stopped at the end."""
    server = RedisProcess(tmp_path)
    server.start()
    yield server
    server.stop()


def _start(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:  # a file, not a pipe: a full pipe would block the process
        return subprocess.Popen([sys.executable, "worker.py", *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=out)


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _stop(proc: subprocess.Popen) -> int | None:
    if proc.poll() is None:
        proc.terminate()
        try:
            return proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return proc.returncode


def test_pages_work_through_a_redis_outage_and_nothing_started_meanwhile_is_lost(
        app, app_env, client, outage_redis, customer, support_user, workspace, tmp_path, monkeypatch):
    from redis import Redis
    from rq.cron import CronScheduler
    from rq.worker import Worker

    from portal.extensions import db
    from portal.models import Contact, CsvImport

    monkeypatch.setitem(app.extensions, "redis", Redis.from_url(outage_redis.url, socket_connect_timeout=1,
                                                                socket_timeout=2))
    probe = Redis.from_url(outage_redis.url, socket_connect_timeout=1, socket_timeout=2)
    env = {**os.environ, **app_env, "REDIS_URL": outage_redis.url, "PYTHONPATH": str(ROOT)}
    log = tmp_path / "processes.log"
    worker = _start([], env, log)
    cron = _start(["cron"], env, log)
    try:
        _wait_for(lambda: Worker.count(connection=probe) >= 1, 60, "the worker")
        _wait_for(lambda: [s for s in CronScheduler.all(probe) if s.name == "anaba-cron"], 60, "the cron")

        ui = client
        ui.login(customer.email)
        support = type(client)(app)  # conftest's Browser
        support.login(support_user.email)
        contact = factories.contact(workspace, email="avant@example.org", first_name="Avant")
        upload = ui.post("/contacts/import", data={"file": (_csv(), "clients.csv")},
                         content_type="multipart/form-data")
        imp = db.session.scalars(db.select(CsvImport)).one()
        assert upload.status_code == 302

        outage_redis.stop()  # --- the outage
        started = time.monotonic()
        answers = {
            "contacts": ui.get("/contacts/"),
            "record": ui.get(f"/contacts/{contact.id}"),
            "edit": ui.post(f"/contacts/{contact.id}/edit", data={"first_name": "Pendant"}),
            "start import": ui.post(f"/contacts/import/{imp.id}/start", data={"col-0": "email", "col-1": "first_name"}),
            "import page": ui.get(f"/contacts/import/{imp.id}"),
            "import progress": ui.get(f"/contacts/import/{imp.id}/progress", headers={"HX-Request": "true"}),
            "mailchimp": ui.get("/mailchimp/"),
            "retry": ui.post("/mailchimp/errors/retry"),
            "support home": support.get("/support/"),
            "support queue": support.get("/support/connectors/"),
            "support errors": support.get("/support/connectors/errors"),
        }
        for name, response in answers.items():
            assert response.status_code < 500, (name, response.status_code)
        # The wizard's key check needs Redis (the Mailchimp connection slots, R20): a message on
        # top of the page for htmx, never an error page inside the form (and no call goes out).
        monkeypatch.setitem(app.config, "MAILCHIMP_API_BASE", "http://127.0.0.1:9/3.0/")
        wizard = ui.post("/mailchimp/setup/key", data={"api_key": "0" * 32 + "-us1"}, headers={"HX-Request": "true"})
        assert wizard.status_code == 503 and wizard.headers["HX-Retarget"] == "main"
        assert wizard.headers["Retry-After"] == "60" and "<html" not in wizard.get_data(as_text=True)
        assert "traitement en arrière-plan est indisponible" in wizard.get_data(as_text=True)
        assert time.monotonic() - started < 30  # each page answers at once, none hangs on Redis
        for name in ("contacts", "support home", "import page"):
            assert "traitement en arrière-plan est indisponible" in answers[name].get_data(as_text=True), name
        progress = answers["import progress"].get_data(as_text=True)
        assert "dès son retour" in progress and "continue en arrière-plan" not in progress
        db.session.expire_all()
        assert db.session.get(CsvImport, imp.id).status == "queued"  # waiting in the database, not lost
        assert db.session.get(Contact, contact.id).first_name == "Pendant"

        time.sleep(3)
        assert worker.poll() is None and cron.poll() is None, log.read_text()[-3000:]

        outage_redis.start()  # --- Redis is back, empty (a restart without persistence)
        back = time.monotonic()
        _wait_for(lambda: (db.session.expire_all(), db.session.get(CsvImport, imp.id).status)[1] == "finished", 90,
                  "the import to run once Redis is back")
        print(f"outage: import finished {time.monotonic() - back:.1f} s after Redis came back")
        emails = set(db.session.scalars(db.select(Contact.email).where(Contact.workspace_id == workspace.id)))
        assert {"un@example.org", "deux@example.org"} <= emails
        _wait_for(lambda: Worker.count(connection=probe) >= 1, 60, "the worker to register again")
        _wait_for(lambda: [s for s in CronScheduler.all(probe) if s.name == "anaba-cron"], 60,
                  "the cron to register again")
        assert worker.poll() is None and cron.poll() is None
        assert "traitement en arrière-plan est indisponible" not in ui.get("/contacts/").get_data(as_text=True)
    finally:
        codes = (_stop(worker), _stop(cron))
    assert codes == (0, 0), log.read_text()[-3000:]  # SIGTERM still stops both cleanly


def _csv():
    import io

    return io.BytesIO(b"email,first_name\nun@example.org,Un\ndeux@example.org,Deux\n")
