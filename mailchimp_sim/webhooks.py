"""Audience webhook delivery as Mailchimp does it (API-NOTES §6): form-encoded bracket keys,
``fired_at`` without zone, only the selected events and sources, a validator GET at
creation, retries with backoff from background threads, and 410 disabling the webhook.

Hosts named ``localhost`` or ``*.localhost`` are reached on 127.0.0.1 (same port, Host
header kept), because ``mailchimp3`` refuses loopback URLs client-side (§12).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from datetime import datetime, timezone
from urllib.parse import urlsplit, urlunsplit

import requests

EVENT_UA = "MailChimp.com"
VALIDATOR_UA = "MailChimp.com WebHook Validator"
RETRY_DELAYS = (300.0, 1500.0, 4500.0)  # 5, 25 and 75 minutes after the first attempt
UNFILTERED_EVENTS = ("campaign", "cleaned")  # not limited by source (documented for campaign)
DELIVERY_TIMEOUT = 10.0


def fired_at(ts: float | None = None) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in UTC with no zone, as Mailchimp sends it."""
    moment = datetime.fromtimestamp(ts or time.time(), timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _flatten(prefix: str, value, out: list) -> None:
    if isinstance(value, dict):
        for key, sub in value.items():
            _flatten(f"{prefix}[{key}]", sub, out)
    else:
        out.append((prefix, "" if value is None else str(value)))


def build_payload(event: str, lst, member, **extra) -> list[tuple[str, str]]:
    """The form fields of one event, in Mailchimp's order (§6.4)."""
    pairs: list[tuple[str, str]] = [("type", event), ("fired_at", fired_at())]
    data: dict = {}
    if event == "campaign":
        data = {"id": extra["campaign_id"], "subject": extra.get("subject", ""),
                "status": "sent", "reason": "", "list_id": lst.id}
    elif event == "upemail":
        data = {"list_id": lst.id, "new_id": member.id, "new_email": member.email,
                "old_email": extra.get("old_email", "")}
    elif event == "cleaned":
        data = {"list_id": lst.id, "campaign_id": extra.get("campaign_id", ""),
                "reason": extra.get("reason", "hard"), "email": member.email}
    else:
        merges = {"EMAIL": member.email}
        for tag in lst.merge_fields:
            merges[tag] = member.merge.get(tag, "")
        if event == "unsubscribe":
            if not extra.get("omit_action"):  # real 2017 payloads lacked it (§6.4)
                data["action"] = extra.get("action", "unsub")
            data["reason"] = extra.get("reason", "manual")
        data.update(id=member.id, email=member.email, email_type=member.email_type,
                    ip_opt=member.ip_opt, web_id=member.web_id)
        if event == "subscribe":
            data["ip_signup"] = member.ip_signup
        data["merges"] = merges
        data["list_id"] = lst.id
        if event == "unsubscribe":
            data["campaign_id"] = extra.get("campaign_id", "")
    _flatten("data", data, pairs)
    if event == "unsubscribe" and extra.get("repeat_reason"):
        pairs.append(("data[reason]", "hard"))  # the official sample lists it twice
    return pairs


def target(url: str) -> tuple[str, dict]:
    """The URL to connect to and extra headers (``*.localhost`` → 127.0.0.1, Host kept)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        netloc = "127.0.0.1" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc)), {"Host": parts.netloc}
    return url, {}


def validate_url(url: str) -> int:
    """Send the validator GET; the HTTP status, or 0 when the receiver is unreachable."""
    real, headers = target(url)
    headers["User-Agent"] = VALIDATOR_UA
    try:
        with requests.get(real, headers=headers, timeout=DELIVERY_TIMEOUT,
                          allow_redirects=False) as response:
            return response.status_code
    except requests.RequestException:
        return 0


class Dispatcher:
    """Queues events per matching webhook and delivers them from background threads."""

    def __init__(self, store, retry_scale: float = 1.0, threads: int = 4):
        self.store = store
        self.retry_scale = retry_scale
        self.heap: list = []
        self.cond = threading.Condition()
        self.counter = itertools.count()
        self.log: list[dict] = []
        self.log_seq = itertools.count(1)
        self.stopping = False
        self.generation = 0
        self.emit_delay = 0.0  # set by a control action (under the store lock) to delay its events
        self.threads = [threading.Thread(target=self._run, name=f"webhooks-{i}", daemon=True)
                        for i in range(threads)]
        store.emit = self.emit

    def start(self) -> None:
        """Start the delivery threads."""
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        """Stop delivering (pending deliveries are dropped)."""
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        for thread in self.threads:
            if thread.is_alive():
                thread.join(timeout=DELIVERY_TIMEOUT + 1)

    def reset(self) -> None:
        """Drop every pending delivery and the delivery log."""
        with self.cond:
            self.heap.clear()
            self.log.clear()
            self.generation += 1

    def emit(self, lst, event: str, source: str, member=None, **extra) -> None:
        """Queue ``event`` for every webhook of ``lst`` that selected it and its source."""
        hooks = [h for h in lst.webhooks.values()
                 if not h.disabled and h.events.get(event)
                 and (event in UNFILTERED_EVENTS or h.sources.get(source))]
        if not hooks:
            return
        payload = build_payload(event, lst, member, **extra)
        due = time.monotonic() + self.emit_delay
        with self.cond:
            for hook in hooks:
                item = {"webhook_id": hook.id, "list_id": lst.id, "url": hook.url,
                        "type": event, "source": source, "payload": payload, "attempt": 1,
                        "generation": self.generation}
                heapq.heappush(self.heap, (due, next(self.counter), item))
            self.cond.notify_all()

    def redeliver(self, seq: int) -> bool:
        """Queue the payload of logged delivery ``seq`` again, unchanged (same ``fired_at``)."""
        with self.cond:
            entry = next((e for e in self.log if e["seq"] == seq), None)
            if entry is None:
                return False
            item = {"webhook_id": entry["webhook_id"], "list_id": entry["list_id"],
                    "url": entry["url"], "type": entry["type"], "source": entry["source"],
                    "payload": list(entry["pairs"]), "attempt": 1, "generation": self.generation}
            heapq.heappush(self.heap, (time.monotonic(), next(self.counter), item))
            self.cond.notify_all()
            return True

    def pending(self) -> int:
        """How many deliveries wait (including scheduled retries)."""
        with self.cond:
            return len(self.heap)

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.stopping:
                    if self.heap and self.heap[0][0] <= time.monotonic():
                        break
                    timeout = self.heap[0][0] - time.monotonic() if self.heap else None
                    self.cond.wait(timeout)
                if self.stopping:
                    return
                _, _, item = heapq.heappop(self.heap)
            self._deliver(item)

    def _deliver(self, item: dict) -> None:
        with self.store.lock:
            lst = self.store.lists.get(item["list_id"])
            hook = lst.webhooks.get(item["webhook_id"]) if lst else None
            if hook is None or hook.disabled:
                return
        real, headers = target(item["url"])
        headers["User-Agent"] = EVENT_UA
        started = time.monotonic()
        try:
            with requests.post(real, data=item["payload"], headers=headers,
                               timeout=DELIVERY_TIMEOUT, allow_redirects=False) as response:
                status = response.status_code
        except requests.RequestException:
            status = 0
        entry = {"webhook_id": item["webhook_id"], "list_id": item["list_id"],
                 "url": item["url"], "type": item["type"], "source": item["source"],
                 "attempt": item["attempt"], "status": status,
                 "duration_ms": round((time.monotonic() - started) * 1000, 1),
                 "fired_at": dict(item["payload"]).get("fired_at", ""),
                 "payload": dict(item["payload"]), "pairs": list(item["payload"])}
        retry = None
        if status == 410:
            with self.store.lock:
                hook.disabled = True
                self.store.dirty = True
            entry["outcome"] = "disabled"
        elif 200 <= status < 300:
            entry["outcome"] = "delivered"
        elif item["attempt"] <= len(RETRY_DELAYS):
            delay = RETRY_DELAYS[item["attempt"] - 1] * self.retry_scale
            if item["attempt"] > 1:
                delay -= RETRY_DELAYS[item["attempt"] - 2] * self.retry_scale
            retry = dict(item, attempt=item["attempt"] + 1)
            entry["outcome"] = "retry"
            entry["retry_in_s"] = round(delay, 3)
        else:
            entry["outcome"] = "dropped"
        with self.cond:
            if item["generation"] != self.generation:
                return
            entry["seq"] = next(self.log_seq)
            self.log.append(entry)
            del self.log[:-10000]
            if retry is not None:
                heapq.heappush(self.heap, (time.monotonic() + delay, next(self.counter), retry))
                self.cond.notify_all()
