"""Shared fixtures: real Redis, a real database (SQLite or TEST_DATABASE_URL), an SMTP sink,
the Mailchimp simulator, the app, logged-in clients and a live server for browser tests."""
from __future__ import annotations

import os
import re
import sys
import threading
from email import message_from_bytes, policy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from scripts.local_services import free_port, redis_server  # noqa: E402

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
    # *.localhost names resolve to this machine (PUBLIC_BASE_URL http://portal.localhost:…, issue 12).
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE *.localhost, EXCLUDE 127.0.0.1",
]


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """A private redis-server on a free loopback port for the whole session."""
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def redis_conn(redis_url):
    """A Redis client on the session server, flushed before the test."""
    import redis

    conn = redis.Redis.from_url(redis_url)
    conn.flushdb()
    yield conn
    conn.close()


class SmtpSink:
    """Collects every message delivered to it."""

    def __init__(self) -> None:
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd hook
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


@pytest.fixture(scope="session")
def smtp_sink():
    """A real SMTP server (aiosmtpd) on loopback that keeps what it receives."""
    from aiosmtpd.controller import Controller

    sink = SmtpSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield sink, controller.port
    controller.stop()


@pytest.fixture
def mailbox(smtp_sink):
    """The messages the SMTP sink receives during this test."""
    sink, _ = smtp_sink
    sink.messages.clear()
    return sink.messages


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    """TEST_DATABASE_URL (PostgreSQL pass) or a fresh SQLite file."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite'}"


@pytest.fixture(scope="session")
def app_env(database_url, redis_url, smtp_sink, tmp_path_factory):
    """The environment the app (and any worker process a test starts) runs with."""
    from cryptography.fernet import Fernet

    _, smtp_port = smtp_sink
    instance = tmp_path_factory.mktemp("instance")
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": "test-secret",
        "FERNET_KEY": Fernet.generate_key().decode(),
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": str(smtp_port),
        "PUBLIC_BASE_URL": "http://portal.localhost:5000",
        "ANABA_INSTANCE": str(instance),
        "MAILCHIMP_TIMEOUT": "5",
        "ANABA_ENV": "test",
    }


class ContextClient:
    """Mixin: each request runs in its own app context, as in production.

    Tests keep an app context open for their own queries; without this, requests would share
    its `g` (and the logged-in user cached there) and its database session.
    """

    def open(self, *args, **kwargs):
        with self.application.app_context():
            return super().open(*args, **kwargs)


@pytest.fixture(scope="session")
def app(app_env):
    """The portal app on the test database, tables created once for the session."""
    os.environ["ANABA_INSTANCE"] = app_env["ANABA_INSTANCE"]
    from portal import create_app
    from portal.extensions import db

    application = create_app({"env": app_env, "TESTING": True})
    from flask.testing import FlaskClient

    application.test_client_class = type("TestClient", (ContextClient, FlaskClient), {})
    with application.app_context():
        db.drop_all()
        db.create_all()
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(autouse=True)
def _clean_database(request):
    """Every test that uses the app starts from empty tables and an app context."""
    if "app" not in request.fixturenames:
        yield
        return
    app = request.getfixturevalue("app")
    from portal.extensions import db

    ctx = app.app_context()
    ctx.push()
    try:
        yield
    finally:
        db.session.remove()
        with db.engine.begin() as conn:
            for table in reversed(db.metadata.sorted_tables):
                conn.execute(table.delete())
        ctx.pop()


def _csrf_from(html: str) -> str | None:
    match = re.search(r'name="csrf-token" content="([^"]+)"', html)
    return match.group(1) if match else None


class Browser:
    """A test client that logs in like a person and sends the CSRF token like htmx does."""

    def __init__(self, app) -> None:
        self.client = app.test_client()

    def __getattr__(self, name):
        return getattr(self.client, name)

    def refresh_csrf(self, path: str = "/login") -> str:
        """Read the CSRF token from a page and send it on every later request."""
        html = self.client.get(path).get_data(as_text=True)
        token = _csrf_from(html)
        assert token, f"no CSRF token on {path}"
        self.client.environ_base["HTTP_X_CSRFTOKEN"] = token
        return token

    def login(self, email: str, password: str = "secret-pw"):
        """Log in through the form; returns the response."""
        token = self.refresh_csrf("/login")
        response = self.client.post("/login", data={"email": email, "password": password, "csrf_token": token})
        if response.status_code == 302:
            # A login starts a fresh session (issue 13): read the new session's CSRF token, as a page would.
            self._refresh_after_login()
        return response

    def _refresh_after_login(self) -> None:
        """Read the CSRF token of the page a logged-in user lands on."""
        html = self.client.get("/", follow_redirects=True).get_data(as_text=True)
        token = _csrf_from(html)
        assert token, "no CSRF token on the home page after login"
        self.client.environ_base["HTTP_X_CSRFTOKEN"] = token


@pytest.fixture
def client(app):
    """An anonymous browser-like client."""
    return Browser(app)


@pytest.fixture
def workspace(app):
    """A customer workspace."""
    import factories

    return factories.workspace("Boulangerie Ardent")


@pytest.fixture
def customer(workspace):
    """A customer user of `workspace` (password secret-pw)."""
    import factories

    return factories.user("camille@ardent.test", "customer", workspace)


@pytest.fixture
def support_user(app):
    """A support agent (password secret-pw)."""
    import factories

    return factories.user("sam@anaba.test", "support")


@pytest.fixture
def customer_client(app, customer):
    """A client logged in as `customer`."""
    b = Browser(app)
    b.login(customer.email)
    return b


@pytest.fixture
def ui(customer_client, customer):
    """The customer's client, with the interface in English so assertions read plainly."""
    from portal.extensions import db

    customer.locale = "en"
    db.session.commit()
    return customer_client


@pytest.fixture
def support_client(app, support_user):
    """A client logged in as the support agent."""
    b = Browser(app)
    b.login(support_user.email)
    return b


@pytest.fixture
def run_jobs(app):
    """Run every queued RQ job in-process (no fork) until the queues are empty."""
    from rq import SimpleWorker

    from portal import jobs
    from portal.extensions import redis_store

    def run(queues=("live", "bulk", "reports")):
        worker = SimpleWorker([jobs.queue(q) for q in queues], connection=redis_store.redis)
        worker.work(burst=True)

    return run


@pytest.fixture(autouse=True)
def _flush_redis_for_app_tests(request):
    """Tests that use the app start with empty queues."""
    if "app" in request.fixturenames:
        from portal.extensions import redis_store

        app = request.getfixturevalue("app")
        with app.app_context():
            redis_store.redis.flushdb()
    yield


@pytest.fixture(scope="session")
def sim():
    """The Mailchimp simulator, a real HTTP server in its own process, for the session."""
    from mailchimp_sim.testing import SimulatorProcess

    with SimulatorProcess() as process:
        yield process


@pytest.fixture
def sim_key(sim):
    """A fresh simulator account's API key (the simulator is reset first)."""
    sim.control.reset()
    return sim.control.new_account("Test")


@pytest.fixture
def mc_app(app, sim):
    """The app pointed at the simulator."""
    app.config["MAILCHIMP_API_BASE"] = sim.api_base
    yield app
    app.config["MAILCHIMP_API_BASE"] = None


@pytest.fixture(scope="session")
def live_server(app):
    """The app served over real HTTP in a thread, for Playwright."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Launch Debian's Chromium (never a downloaded browser) with the flags this machine needs."""
    return {**browser_type_launch_args, "executable_path": "/usr/bin/chromium", "args": CHROMIUM_ARGS}
