"""Test helpers: run the simulator in a subprocess and drive its control API.

``SimulatorProcess`` starts ``python -m mailchimp_sim`` on a free loopback port and stops it
on exit; ``SimControl`` wraps ``/_sim/`` (plain ``requests``) and works against any running
simulator::

    with SimulatorProcess() as sim:
        key = sim.control.new_account()
        client = MailChimp(mc_api=key, timeout=10)
        client.base_url = sim.api_base
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

READY_PREFIX = "mailchimp_sim listening on "
DEFAULT_LIST = {
    "contact": {"company": "anaba", "address1": "1 rue de la Paix", "city": "Paris",
                "state": "IDF", "zip": "75002", "country": "FR"},
    "permission_reminder": "You signed up on our website.",
    "campaign_defaults": {"from_name": "anaba", "from_email": "newsletter@anaba.fr",
                          "subject": "", "language": "fr"},
    "email_type_option": False,
}


class SimControlError(RuntimeError):
    """A control or API call that failed; ``status`` and ``document`` (parsed JSON or None)."""

    def __init__(self, message: str, status: int, document):
        super().__init__(message)
        self.status = status
        self.document = document


class SimControl:
    """Client of the control API of a running simulator at ``root_url``."""

    def __init__(self, root_url: str, timeout: float = 30.0):
        self.root_url = root_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()

    def close(self) -> None:
        """Close the pooled connection."""
        self.session.close()

    def _call(self, method: str, path: str, **kw):
        response = self.session.request(method, self.root_url + path, timeout=self.timeout, **kw)
        if response.status_code >= 400:
            try:
                document = response.json()
            except ValueError:
                document = None
            raise SimControlError(f"{method} {path} -> {response.status_code}: {response.text}",
                                  response.status_code, document)
        return response.json() if response.content else None

    def accounts(self) -> list[dict]:
        """Every account with its audiences and their member counts by status."""
        return self._call("GET", "/_sim/accounts")["accounts"]

    def server_pid(self) -> int:
        """The pid of the process that serves the API and holds the state (with the
        default gunicorn server, a child of the process that was started)."""
        return self._call("GET", "/_sim/health")["pid"]

    def reset(self) -> None:
        """Forget every account, audience, campaign, fault, logged request and pending webhook."""
        self._call("POST", "/_sim/reset")

    def new_account(self, name: str = "Test", api_key: str | None = None) -> str:
        """Create an account and return its API key (``<32 hex>-us1``); ``api_key`` fixes it."""
        body = {"name": name}
        if api_key:
            body["api_key"] = api_key
        return self._call("POST", "/_sim/accounts", json=body)["api_key"]

    def revoke_key(self, api_key: str) -> None:
        """Revoke the key: every later call with it gets 401 "API Key Invalid"."""
        self._call("POST", f"/_sim/accounts/{api_key}/revoke")

    def restore_key(self, api_key: str) -> None:
        """Undo :meth:`revoke_key` (the customer repaired the key on Mailchimp's side)."""
        self._call("POST", f"/_sim/accounts/{api_key}/restore")

    def set_faults(self, api_key: str, error_rate: float = 0.0, statuses=(429, 500, 503),
                   timeout_rate: float = 0.0, latency_ms: float = 0, timeout_seconds: float = 30.0,
                   seed: int | None = None, latency_per_member_ms: float = 0) -> dict:
        """Inject faults on the key's API calls.

        ``error_rate`` of the calls answer one of ``statuses`` (429/500/503 problem documents;
        502 is an HTML page); ``timeout_rate`` of them are processed but answered only after
        ``timeout_seconds`` (the client times out first); every call waits ``latency_ms`` more,
        plus ``latency_per_member_ms`` per member of a bulk call or item of a page read.
        ``seed`` makes the draw repeatable.
        """
        body = {"api_key": api_key, "error_rate": error_rate, "statuses": list(statuses),
                "timeout_rate": timeout_rate, "latency_ms": latency_ms,
                "latency_per_member_ms": latency_per_member_ms,
                "timeout_seconds": timeout_seconds}
        if seed is not None:
            body["seed"] = seed
        return self._call("POST", "/_sim/faults", json=body)

    def clear_faults(self, api_key: str) -> None:
        """Remove the key's faults."""
        self._call("DELETE", f"/_sim/faults/{api_key}")

    def create_list(self, api_key: str, name: str = "Audience", **fields) -> dict:
        """Create an audience through the real ``POST /3.0/lists``; returns the list object."""
        body = dict(DEFAULT_LIST, name=name, **fields)
        return self._call("POST", "/3.0/lists", json=body, auth=("anystring", api_key))

    def member_action(self, list_id: str, email: str, action: str, **data) -> dict:
        """Do what a person does on Mailchimp's side to a member, firing its webhook.

        ``action``: ``unsubscribe-via-form`` (the contact: later API resubscription is
        refused), ``resubscribe-via-form``, ``unsubscribe-by-admin``, ``bounce`` (cleaned),
        ``complain``, ``change-email`` (``new_email=``), ``edit-profile`` (``merge_fields=``,
        ``tags=[{"name", "status"}]``, ``email_type=``),
        ``archive``, ``delete-permanently``. ``email`` may also be the subscriber hash.
        The unsubscribe actions also take ``omit_action=True`` (no ``data[action]``, as
        in 2017 payloads) and ``repeat_reason=True`` (``data[reason]`` sent twice). Any
        action takes ``webhook_delay_s=N`` to deliver its webhook N seconds late (so a
        later change can arrive first).
        Returns ``{"action", "member"}`` (``member`` is None after a permanent delete).
        """
        return self._call("POST", f"/_sim/lists/{list_id}/members/{email}/actions/{action}",
                          json=data)

    def bulk_member_actions(self, list_id: str, actions) -> dict:
        """Many :meth:`member_action` calls in one request: ``actions`` is a list of
        ``{"email", "action", "data"}`` (``data`` as the keyword arguments of
        :meth:`member_action`). Returns ``{"done", "failed", "results": [{email, action,
        ok, status?, error?}]}``; a failed action does not stop the others."""
        return self._call("POST", f"/_sim/lists/{list_id}/members/bulk-actions",
                          json={"actions": list(actions)})

    def lookup_members(self, list_id: str, emails) -> dict:
        """What the simulator holds for these addresses now: ``{email: {"status", "merge_fields"}
        or None}``, read without the key's latency or connection limit (benchmarks)."""
        return self._call("POST", f"/_sim/lists/{list_id}/members/lookup", json={"emails": list(emails)})["members"]

    def throttle_address(self, email: str) -> None:
        """Put ``email`` on the signup throttle: adding or resubscribing it gets 400
        "<email> has signed up to a lot of lists very recently; we're not allowing more
        signups for now" until :meth:`release_address`."""
        self._call("POST", "/_sim/throttled-addresses", json={"email_address": email})

    def release_address(self, email: str) -> None:
        """Take ``email`` off the signup throttle."""
        self._call("DELETE", f"/_sim/throttled-addresses/{email}")

    def send_campaign(self, list_id: str, seed: int = 1, **kw) -> dict:
        """"Send" a campaign to the audience's subscribed members, with activity drawn from
        ``seed`` (``open_rate``, ``click_rate``, ``bounce_rate``, ``soft_bounce_rate``,
        ``unsubscribe_rate``, ``subject``, ``send_time``, ``recipients_limit``...). Activity
        lies between ``send_time`` (default now) and now. Returns the campaign object plus a
        ``simulation`` summary."""
        return self._call("POST", f"/_sim/lists/{list_id}/campaigns", json=dict(kw, seed=seed))

    def requests_log(self, since: int = 0) -> list[dict]:
        """API calls received after sequence ``since``: ``seq, method, path, path_template,
        status, duration_ms, modelled_latency_ms, items, key_suffix`` (the key's last 8
        characters)."""
        return self._call("GET", "/_sim/requests", params={"since": since})["requests"]

    def peak_concurrency(self) -> dict[str, int]:
        """The most simultaneous API requests seen per key suffix since the last
        :meth:`clear_requests` or :meth:`reset` (an 11th, answered 429, counts)."""
        return self._call("GET", "/_sim/requests", params={"since": 2**62})["peak_concurrency"]

    def clear_requests(self) -> None:
        """Empty the request log and restart the peak concurrency counts."""
        self._call("DELETE", "/_sim/requests")

    def webhook_deliveries(self) -> list[dict]:
        """Every webhook delivery attempt so far (url, type, attempt, status, outcome, payload)."""
        return self._call("GET", "/_sim/webhook-deliveries")["deliveries"]

    def redeliver(self, seq: int) -> None:
        """Send logged delivery ``seq`` again, unchanged (same ``fired_at``): a duplicate."""
        self._call("POST", f"/_sim/webhook-deliveries/{seq}/redeliver")

    def wait_for_deliveries(self, count: int, timeout: float = 10.0) -> list[dict]:
        """Poll until at least ``count`` delivery attempts are logged; returns them all."""
        deadline = time.monotonic() + timeout
        while True:
            deliveries = self.webhook_deliveries()
            if len(deliveries) >= count or time.monotonic() > deadline:
                return deliveries
            time.sleep(0.05)


class SimulatorProcess:
    """Context manager running ``python -m mailchimp_sim`` on a free 127.0.0.1 port.

    ``latency_ms`` is added to every API call and ``latency_per_member_ms`` per member of a
    bulk call or item of a page read (docs/simulator.md); ``data`` is a SQLite file to persist to;
    ``webhook_retry_scale`` compresses the 75-minute retry schedule (default: first retry
    after about 1 s); ``extra_args`` are passed through.
    """

    def __init__(self, latency_ms: float = 0, data: str | os.PathLike | None = None,
                 webhook_retry_scale: float = 0.004, extra_args=(), start_timeout: float = 20.0,
                 latency_per_member_ms: float = 0):
        self.latency_ms = latency_ms
        self.latency_per_member_ms = latency_per_member_ms
        self.data = data
        self.webhook_retry_scale = webhook_retry_scale
        self.extra_args = list(extra_args)
        self.start_timeout = start_timeout
        self.process: subprocess.Popen | None = None
        self.root_url = ""
        self.control: SimControl | None = None
        self.output: list[str] = []

    @property
    def server_pid(self) -> int:
        """The pid of the process holding the state (measure its CPU/RSS, not ``process``'s)."""
        return self.control.server_pid()

    @property
    def api_base(self) -> str:
        """The ``mailchimp3`` base URL, trailing slash included."""
        return self.root_url + "/3.0/"

    def start(self) -> "SimulatorProcess":
        """Start the process and wait for its ready line."""
        cmd = [sys.executable, "-m", "mailchimp_sim", "--host", "127.0.0.1", "--port", "0",
               "--latency-ms", str(self.latency_ms),
               "--latency-per-member-ms", str(self.latency_per_member_ms),
               "--webhook-retry-scale", str(self.webhook_retry_scale)] + self.extra_args
        if self.data:
            cmd += ["--data", str(self.data)]
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "") if env.get("PYTHONPATH") else root
        self.process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True, env=env)
        lines: queue.Queue = queue.Queue()
        self._pump_thread = threading.Thread(target=self._pump, args=(lines,), daemon=True)
        self._pump_thread.start()
        deadline = time.monotonic() + self.start_timeout
        while True:
            try:
                line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                self.stop()
                raise RuntimeError("mailchimp_sim did not start:\n" + "".join(self.output))
            if line.startswith(READY_PREFIX):
                self.root_url = line[len(READY_PREFIX):].strip()
                break
        self.control = SimControl(self.root_url)
        return self

    def _pump(self, lines: queue.Queue) -> None:
        for line in self.process.stdout:
            self.output.append(line)
            lines.put(line)
        lines.put(None)

    def stop(self) -> None:
        """SIGTERM, wait (the state is saved when ``data`` is set), kill if it hangs."""
        if self.control is not None:
            self.control.close()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None and self.process.stdout:
            self._pump_thread.join(timeout=5)
            self.process.stdout.close()

    def __enter__(self) -> "SimulatorProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
