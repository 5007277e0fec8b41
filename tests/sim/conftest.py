"""Fixtures for the simulator's own tests: one simulator process per session, reset
before each test, a mailchimp3 client pointed at it, and a local webhook receiver."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from mailchimp3 import MailChimp  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402
from werkzeug.wrappers import Request, Response  # noqa: E402

from mailchimp_sim.testing import SimulatorProcess  # noqa: E402


@pytest.fixture(scope="session")
def sim():
    """The simulator process shared by the whole session."""
    with SimulatorProcess() as process:
        yield process


@pytest.fixture
def control(sim):
    """The control client, after a reset of the simulator."""
    sim.control.reset()
    return sim.control


@pytest.fixture
def api_key(control):
    """A fresh account's API key."""
    return control.new_account()


@pytest.fixture
def audience(control, api_key):
    """An audience (list object) of that account."""
    return control.create_list(api_key, name="Clients")


@pytest.fixture
def list_id(audience):
    """The audience's id."""
    return audience["id"]


def make_client(sim, key):
    """A mailchimp3 client for ``key`` pointed at the simulator."""
    client = MailChimp(mc_api=key, timeout=10)
    client.base_url = sim.api_base
    return client


@pytest.fixture
def client_for(sim):
    """Build a mailchimp3 client for any key, pointed at the simulator."""
    return lambda key: make_client(sim, key)


@pytest.fixture
def mc(sim, api_key):
    """A mailchimp3 client for the account."""
    return make_client(sim, api_key)


class Receiver:
    """A webhook receiver on 127.0.0.1: records calls, answers the queued statuses."""

    def __init__(self):
        self.calls: list[dict] = []
        self.statuses: list[int] = []
        self.default_status = 200
        self.lock = threading.Lock()
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def app(self, environ, start_response):
        """Record the call and answer the next queued status (or the default)."""
        request = Request(environ)
        with self.lock:
            status = self.statuses.pop(0) if self.statuses else self.default_status
            self.calls.append({"method": request.method, "path": request.path,
                               "headers": dict(request.headers),
                               "form": list(request.form.items(multi=True)),
                               "content_type": request.content_type, "status": status})
        return Response("ok", status=status)(environ, start_response)

    def url(self, path="/webhooks/mailchimp/s3cret"):
        """A URL mailchimp3 accepts (``*.localhost``) that reaches this receiver."""
        return f"http://portal.localhost:{self.port}{path}"

    def posts(self):
        """The event POSTs received so far."""
        with self.lock:
            return [c for c in self.calls if c["method"] == "POST"]


def running_receiver():
    """Start a receiver; the caller stops it with ``stop_receiver``."""
    rec = Receiver()
    rec.thread.start()
    return rec


def stop_receiver(rec):
    """Stop a receiver started by ``running_receiver``."""
    rec.server.shutdown()
    rec.server.server_close()
    rec.thread.join(timeout=5)


@pytest.fixture
def receiver():
    """A running webhook receiver, stopped after the test."""
    rec = running_receiver()
    yield rec
    stop_receiver(rec)


@pytest.fixture(scope="module")
def module_receiver():
    """A webhook receiver shared by one test module."""
    rec = running_receiver()
    yield rec
    stop_receiver(rec)
