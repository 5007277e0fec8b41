"""Helpers for tests where the simulator delivers real webhooks to the portal served over HTTP."""
from __future__ import annotations

import time
from contextlib import contextmanager
from urllib.parse import urlencode


@contextmanager
def public_base_on(app, live_server: str):
    """Point PUBLIC_BASE_URL at the live test server as ``portal.localhost:PORT`` (mailchimp3 refuses
    loopback URLs, and the simulator delivers ``*.localhost`` to 127.0.0.1, API-NOTES §12)."""
    port = live_server.rsplit(":", 1)[1]
    before = app.config["PUBLIC_BASE_URL"]
    app.config["PUBLIC_BASE_URL"] = f"http://portal.localhost:{port}"
    try:
        yield app.config["PUBLIC_BASE_URL"]
    finally:
        app.config["PUBLIC_BASE_URL"] = before


def delivered(sim, action, count: int = 1, timeout: float = 20.0) -> list[dict]:
    """Run `action` (a member action on Mailchimp's side) and wait until its `count` webhook
    deliveries have been answered; returns them."""
    before = len(sim.control.webhook_deliveries())
    action()
    deadline = time.monotonic() + timeout
    while True:
        deliveries = sim.control.webhook_deliveries()[before:]
        if len([d for d in deliveries if d["outcome"] != "retry"]) >= count:
            return deliveries
        if time.monotonic() > deadline:
            raise AssertionError(f"expected {count} webhook deliveries, got {deliveries}")
        time.sleep(0.05)


def form(event: str, list_id: str, fired_at: str = "2026-11-30 09:15:02", **data) -> bytes:
    """A webhook body exactly as Mailchimp sends it: form-encoded bracket keys, ``fired_at`` without zone."""
    pairs = [("type", event), ("fired_at", fired_at)]
    for key, value in data.items():
        if isinstance(value, dict):
            pairs += [(f"data[{key}][{k}]", v) for k, v in value.items()]
        elif isinstance(value, list):
            pairs += [(f"data[{key}]", v) for v in value]
        else:
            pairs.append((f"data[{key}]", value))
    pairs.append(("data[list_id]", list_id))
    return urlencode(pairs).encode()
