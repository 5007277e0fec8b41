"""The Mailchimp client: the one place where the portal talks to Mailchimp (R20).

:class:`MailchimpClient` wraps ``mailchimp3`` (through a small subclass with a pooled
``requests.Session`` and an overridable ``base_url``) and adds what the SDK lacks:

- a timeout on every call (``mailchimp3`` defaults to none);
- at most ``max_connections`` simultaneous calls per API key across every process, through
  :class:`~portal.mailchimp.ratelimit.ConnectionSemaphore` when a Redis connection is given;
- typed errors (:class:`~portal.mailchimp.errors.MailchimpError`) instead of
  ``MailChimpError(dict)`` and raw ``requests`` exceptions;
- retries of transient failures (429, 5xx, timeouts, connection errors) with capped
  exponential backoff and jitter (tenacity, with :class:`RetryPolicy`'s waits), then the typed error. Calls that are not idempotent
  (creating a segment, a merge field, a webhook) are retried only when the request surely
  did not reach Mailchimp (429, connect timeout), never after a read timeout or a 5xx;
- manual paging with ``count``/``offset`` (generators: big audiences never sit in memory);
- a counter of calls made and retried, by endpoint (for benchmarks).

Methods return plain dicts and lists. The client keeps no per-call state (it calls the SDK's
transport directly, not its stateful entity objects), so threads of one process may share it;
its pool holds ``max_connections`` sockets. Each process (each forked RQ job) builds its own.
"""
from __future__ import annotations

import logging
import random
from urllib.parse import urlencode
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import requests
from mailchimp3 import MailChimp
from mailchimp3.mailchimpclient import MailChimpError as _SdkError
from requests.adapters import HTTPAdapter
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from portal.mailchimp.errors import MailchimpError, classify
from portal.mailchimp.payload import subscriber_hash
from portal.mailchimp.ratelimit import ConnectionSemaphore, SemaphoreTimeout

__all__ = ["BATCH_LIMIT", "CallStats", "MailchimpClient", "PAGE_MAX", "REPORT_KEYS", "RetryPolicy", "member_hash"]

log = logging.getLogger(__name__)

BATCH_LIMIT = 500
"""Members per batch-subscribe call and e-mails per static-segment call (API-NOTES §2, §4)."""

PAGE_MAX = 1000
"""Largest ``count`` Mailchimp accepts on collection GETs (API-NOTES §9)."""

REPORT_KEYS = {"sent-to": "sent_to", "email-activity": "emails", "unsubscribed": "unsubscribes"}
"""A campaign's per-recipient reports (``reports/{id}/<name>``) and the key holding their items."""

_KEY_RE = re.compile(r"^[0-9a-f]{32}-[A-Za-z0-9]+$")
_HASH_RE = re.compile(r"^[0-9a-fA-F]{32}$")
_TEMPLATE_RULES = [
    (re.compile(r"^lists/[^/]+"), "lists/{list_id}"),
    (re.compile(r"/members/[^/]+"), "/members/{hash}"),
    (re.compile(r"/segments/[^/]+"), "/segments/{segment_id}"),
    (re.compile(r"/webhooks/[^/]+"), "/webhooks/{webhook_id}"),
    (re.compile(r"/merge-fields/[^/]+"), "/merge-fields/{merge_id}"),
    (re.compile(r"^reports/[^/]+"), "reports/{campaign_id}"),
    (re.compile(r"^campaigns/[^/]+"), "campaigns/{campaign_id}"),
]


def member_hash(email_or_hash: str) -> str:
    """A member's subscriber hash from an e-mail, or a hash given already (any case)."""
    value = email_or_hash.strip()
    if _HASH_RE.match(value):
        return value.lower()
    return subscriber_hash(value)


def _template(method: str, path: str) -> str:
    path = path.split("?", 1)[0].strip("/")
    for rule, replacement in _TEMPLATE_RULES:
        path = rule.sub(replacement, path, count=1)
    return f"{method} /{path}"


@dataclass(frozen=True)
class RetryPolicy:
    """How transient failures are retried: ``max_attempts`` tries in all, waiting
    ``base_delay * 2**(n-1)`` seconds after the n-th, capped at ``max_delay``; with
    ``jitter`` the wait is drawn uniformly in [half, all] of that ("equal jitter": workers
    hit by the same 429 spread out, yet none retries at once)."""

    max_attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0
    jitter: bool = True

    def delay(self, attempt: int, retry_after: float | None = None, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based).

        A ``Retry-After`` hint raises the wait (never above ``max_delay``).
        """
        wait = min(self.max_delay, self.base_delay * (2 ** max(0, attempt - 1)))
        if retry_after:
            wait = min(self.max_delay, max(wait, float(retry_after)))
        if self.jitter and wait > 0:
            wait = (rng or random).uniform(wait / 2, wait)
        return wait


@dataclass
class CallStats:
    """Counts of HTTP calls made by a client: every attempt (``calls``, also ``by_endpoint``
    as ``"METHOD /path/{template}"``), the attempts that were retries, and the calls that ended
    in an error after all attempts (``failures``; the 404/405 that ``get_member`` and
    ``archive_member`` turn into None/False count too)."""

    calls: int = 0
    retries: int = 0
    failures: int = 0
    rate_limited: int = 0
    by_endpoint: Counter = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record(self, endpoint: str, *, retry: bool = False) -> None:
        """Count one attempt on ``endpoint``."""
        with self._lock:
            self.calls += 1
            self.by_endpoint[endpoint] += 1
            if retry:
                self.retries += 1

    def record_failure(self) -> None:
        """Count a call that ended in an error."""
        with self._lock:
            self.failures += 1

    def record_rate_limited(self) -> None:
        """Count an answer "too many requests" (429): the caller may lower its concurrency."""
        with self._lock:
            self.rate_limited += 1

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready snapshot."""
        with self._lock:
            return {
                "calls": self.calls, "retries": self.retries, "failures": self.failures,
                "rate_limited": self.rate_limited, "by_endpoint": dict(sorted(self.by_endpoint.items())),
            }


class _PooledMailChimp(MailChimp):
    """``mailchimp3.MailChimp`` over a pooled session, with ``base_url`` overridable."""

    def __init__(self, api_key: str, *, base_url: str | None, session: requests.Session, timeout: Any) -> None:
        super().__init__(mc_api=api_key, timeout=timeout)
        if base_url:
            # urljoin drops the last segment of a base without its trailing slash (API-NOTES §12).
            self.base_url = base_url.rstrip("/") + "/"
        self.session = session

    def _make_request(self, **kwargs: Any) -> requests.Response:
        # The SDK's version logs payloads (personal data) and opens a new connection each time.
        return self.session.request(**kwargs)


def _iso(value: datetime | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return value.isoformat()


class MailchimpClient:
    """A Mailchimp Marketing API client for one API key.

    ``base_url`` points at another server (the simulator: ``http://127.0.0.1:PORT/3.0/``);
    None uses the key's datacenter. ``timeout`` is ``(connect, read)`` seconds, always applied.
    ``redis`` enables the cross-process limit of ``max_connections`` simultaneous calls per
    key (also the size of the connection pool); ``slot_timeout`` bounds the wait for a slot.
    ``session`` lets callers share a ``requests.Session``; ``sleep`` is the backoff sleeper.

    Raises :class:`MailchimpError` (kind ``api_key_invalid``) at once for a key that cannot be
    a Mailchimp key.
    """

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str | None = None,
        timeout: float | tuple[float, float] | None = (3.05, 30),
        redis: Any = None,
        max_connections: int = 10,
        retry: RetryPolicy = RetryPolicy(),
        session: requests.Session | None = None,
        slot_timeout: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
        bulk_limit: int | None = None,
    ) -> None:
        api_key = (api_key or "").strip()
        if not _KEY_RE.match(api_key):
            raise MailchimpError(
                "api_key_invalid", title="API Key Invalid",
                detail="The key does not have the shape of a Mailchimp API key (32 hex characters, a dash, a datacenter).",
            )
        self.timeout = timeout if timeout is not None else (3.05, 30)
        self.retry = retry
        self.stats = CallStats()
        self.slot_timeout = slot_timeout
        self._sleep = sleep
        self._owns_session = session is None
        if session is None:
            session = requests.Session()
            adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max_connections, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
        self.session = session
        self._mc = _PooledMailChimp(api_key, base_url=base_url, session=session, timeout=self.timeout)
        self._semaphore: ConnectionSemaphore | None = None
        self._bulk: ConnectionSemaphore | None = None
        if redis is not None:
            connect, read = self.timeout if isinstance(self.timeout, tuple) else (self.timeout, self.timeout)
            lease = float(connect) + float(read) + 15.0
            self._semaphore = ConnectionSemaphore(redis, api_key, limit=max_connections, lease_seconds=lease)
            if bulk_limit is not None and bulk_limit < max_connections:
                # Bulk work takes a slot of its own budget first, so it never uses the key's
                # last connections: live replication always finds one.
                self._bulk = ConnectionSemaphore(redis, api_key, limit=max(1, bulk_limit), lease_seconds=lease,
                                                 prefix="anaba:mc:bulk:")

    @property
    def base_url(self) -> str:
        """The API root every path is joined to (always ends with ``/``)."""
        return self._mc.base_url

    def close(self) -> None:
        """Close the connection pool if this client created it."""
        if self._owns_session:
            self.session.close()

    def __enter__(self) -> MailchimpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<MailchimpClient {self.base_url}>"

    # --- the one call path ----------------------------------------------------------------

    def _translate(self, exc: BaseException, path: str, email: str | None) -> MailchimpError:
        if isinstance(exc, _SdkError):
            data = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
            response = data.get("response")
            status = data.get("status") or getattr(response, "status_code", None)
            retry_after = None
            if response is not None:
                header = response.headers.get("Retry-After")
                if header and header.strip().isdigit():
                    retry_after = float(header)
            try:
                status = int(status) if status is not None else None
            except (TypeError, ValueError):
                status = getattr(response, "status_code", None)
            return classify(
                status, data.get("title"), data.get("detail"), data.get("errors"),
                {"path": path, "email": email, "retry_after": retry_after},
            )
        if isinstance(exc, requests.Timeout):
            return MailchimpError("timeout", title=type(exc).__name__, detail="Mailchimp did not answer in time.")
        if isinstance(exc, (requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
            return MailchimpError("unavailable", title=type(exc).__name__, detail="Could not reach Mailchimp.")
        if isinstance(exc, ValueError):
            # A 2xx whose body is not JSON: Mailchimp (or a proxy) misbehaving.
            return MailchimpError("unavailable", title=type(exc).__name__, detail="Unreadable answer from Mailchimp.")
        return MailchimpError("unknown", title=type(exc).__name__, detail=str(exc)[:200])

    def _call(
        self,
        method: str,
        path: str,
        fn: Callable[[], Any],
        *,
        idempotent: bool = True,
        email: str | None = None,
    ) -> Any:
        """One API call: a connection slot for the key, the call, typed errors, retries (tenacity).

        A transient failure (429, 5xx, timeout) is retried with the policy's backoff; a call
        that is not idempotent only when the request surely never reached Mailchimp (429,
        connect timeout).
        """
        endpoint = _template(method, path)

        def attempt_once() -> Any:
            retry = attempts.statistics.get("attempt_number", 1) > 1
            try:
                with self._slot(self._bulk), self._slot(self._semaphore):
                    self.stats.record(endpoint, retry=retry)
                    return fn()
            except MailchimpError:
                raise
            except (_SdkError, requests.RequestException, ValueError) as exc:
                error = self._translate(exc, path, email)
                error.safe_to_retry = error.kind == "rate_limited" or isinstance(exc, requests.ConnectTimeout)
                if error.kind == "rate_limited":
                    self.stats.record_rate_limited()
                raise error from exc

        def retryable(exc: BaseException) -> bool:
            return (isinstance(exc, MailchimpError) and exc.retry_in_client
                    and not getattr(exc, "waited_for_slot", False)
                    and (idempotent or getattr(exc, "safe_to_retry", False)))

        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            return self.retry.delay(state.attempt_number, getattr(error, "retry_after", None))

        def before_sleep(state: RetryCallState) -> None:
            log.warning("mailchimp %s: %s (attempt %d), retrying in %.2fs", endpoint,
                        getattr(state.outcome.exception(), "kind", "?"), state.attempt_number,
                        state.next_action.sleep if state.next_action else 0.0)

        attempts = Retrying(retry=retry_if_exception(retryable), stop=stop_after_attempt(self.retry.max_attempts),
                            wait=wait, sleep=self._sleep, before_sleep=before_sleep, reraise=True)
        try:
            return attempts(attempt_once)
        except MailchimpError as error:
            self.stats.record_failure()
            log.info("mailchimp %s failed after %d attempt(s): %s", endpoint,
                     attempts.statistics.get("attempt_number", 1), error.kind)
            raise

    @contextmanager
    def _slot(self, semaphore: ConnectionSemaphore | None) -> Iterator[None]:
        """Hold one slot of `semaphore` (nothing when there is none) for the call."""
        if semaphore is None:
            yield
            return
        try:
            token = semaphore.acquire(self.slot_timeout)
        except SemaphoreTimeout:
            busy = MailchimpError(
                "rate_limited", title="Connection slots busy",
                detail=f"No Mailchimp connection slot for this key within {self.slot_timeout} s.",
            )
            busy.waited_for_slot = True  # it already waited slot_timeout: the caller decides what next
            raise busy from None
        try:
            yield
        finally:
            semaphore.release(token)

    def _get(self, path: str, **params: Any) -> Any:
        params = {k: v for k, v in params.items() if v is not None}
        return self._call("GET", path, lambda: self._mc._get(path, **params))

    def _paged(self, path: str, key: str, *, page_size: int = PAGE_MAX, **params: Any) -> Iterator[dict]:
        """Yield the items of a collection page by page (``count``/``offset``)."""
        page_size = max(1, min(int(page_size), PAGE_MAX))
        fields = params.pop("fields", None)
        if fields:
            fields = ",".join(f"{key}.{f}" for f in fields) + ",total_items"
        offset = 0
        while True:
            page = self._get(path, count=page_size, offset=offset, fields=fields, **params) or {}
            items = page.get(key) or []
            yield from items
            offset += len(items)
            total = page.get("total_items")
            if len(items) < page_size or (total is not None and offset >= int(total)):
                return

    # --- account and audiences ------------------------------------------------------------

    def ping(self) -> dict:
        """Check the key: ``{"health_status": "Everything's Chimpy!"}``; raises on a bad key."""
        return self._get("ping")

    @staticmethod
    def _audience(item: Mapping[str, Any]) -> dict:
        return {
            "id": item.get("id"),
            "name": item.get("name", ""),
            "member_count": int((item.get("stats") or {}).get("member_count") or 0),
            "subscribe_url_long": item.get("subscribe_url_long", ""),
            "subscribe_url_short": item.get("subscribe_url_short", ""),
        }

    def get_lists(self) -> list[dict]:
        """Every audience of the account: ``id, name, member_count, subscribe_url_long/short``."""
        return [self._audience(item) for item in self._paged("lists", "lists")]

    def get_list(self, list_id: str) -> dict:
        """One audience: the raw Mailchimp object plus ``member_count``; ``audience_gone`` if absent."""
        data = dict(self._get(f"lists/{list_id}"))
        data["member_count"] = int((data.get("stats") or {}).get("member_count") or 0)
        return data

    def get_merge_fields(self, list_id: str) -> list[dict]:
        """The audience's merge fields (``merge_id, tag, name, type, required, options…``)."""
        return list(self._paged(f"lists/{list_id}/merge-fields", "merge_fields"))

    def create_merge_field(
        self, list_id: str, tag: str, name: str, type: str, options: Mapping[str, Any] | None = None,
    ) -> dict:
        """Create a merge field; returns it. Not retried after an ambiguous failure."""
        body: dict[str, Any] = {"tag": tag, "name": name, "type": type}
        if options:
            body["options"] = dict(options)
        path = f"lists/{list_id}/merge-fields"
        return self._call("POST", path, lambda: self._mc._post(path, body), idempotent=False)

    # --- members ----------------------------------------------------------------------------

    def iter_members(
        self,
        list_id: str,
        *,
        fields: Sequence[str] | None = None,
        status: str | None = None,
        since_last_changed: datetime | str | None = None,
        page_size: int = PAGE_MAX,
        **filters: Any,
    ) -> Iterator[dict]:
        """Yield the audience's members one by one, fetching ``page_size`` at a time.

        ``fields`` limits each member to those properties (e.g. ``["email_address", "status",
        "merge_fields", "tags"]``); ``status`` filters (``archived`` included);
        ``since_last_changed`` restricts to members changed after that time; other Mailchimp
        filters (``sort_field="last_changed"``, ``unsubscribed_since``…) pass through ``filters``.
        """
        return self._paged(
            f"lists/{list_id}/members", "members", page_size=page_size, fields=fields,
            status=status, since_last_changed=_iso(since_last_changed), **filters,
        )

    def get_member_tags(self, list_id: str, email_or_hash: str) -> list[str]:
        """All tag names of one member (the member object itself carries at most 50)."""
        path = f"lists/{list_id}/members/{member_hash(email_or_hash)}/tags"
        return [t.get("name", "") for t in self._paged(path, "tags")]

    def get_member(self, list_id: str, email_or_hash: str) -> dict | None:
        """One member (archived ones included), or None when Mailchimp does not know it."""
        path = f"lists/{list_id}/members/{member_hash(email_or_hash)}"
        try:
            return self._get(path)
        except MailchimpError as exc:
            if exc.kind == "not_found":
                return None
            raise

    def batch_subscribe(
        self, list_id: str, members: Sequence[Mapping[str, Any]], *, update_existing: bool = True,
        fields: Sequence[str] | None = None,
    ) -> dict:
        """Create or update up to 500 members in one call (``POST /lists/{id}``).

        Returns Mailchimp's answer as is: ``new_members``, ``updated_members``, ``errors``
        (per-member, 200 even when all failed; classify them with
        :func:`~portal.mailchimp.errors.classify_batch_error`), ``total_created``…
        A member given ``status_if_new`` only is sent with ``status`` (the only key this
        endpoint reads). Sent raw: the SDK's own check would reject the whole batch for one
        malformed address, where Mailchimp reports it per member. ``fields`` narrows the answer
        (dot notation, e.g. ``new_members.email_address``): a full answer for 500 members is
        about 750 KB of member objects the caller mostly ignores.
        """
        if len(members) > BATCH_LIMIT:
            raise ValueError(f"at most {BATCH_LIMIT} members per batch")
        items = []
        for member in members:
            item = dict(member)
            if "status" not in item and "status_if_new" in item:
                item["status"] = item["status_if_new"]
            item.pop("status_if_new", None)
            items.append(item)
        body = {"members": items, "update_existing": bool(update_existing)}
        path = f"lists/{list_id}"
        url = f"{path}?{urlencode({'fields': ','.join(fields)})}" if fields else path
        return self._call("POST", path, lambda: self._mc._post(url, body))

    def upsert_member(self, list_id: str, old_email: str, payload: Mapping[str, Any]) -> dict:
        """Create or update a member with ``PUT`` on the hash of its *old* e-mail.

        When ``payload["email_address"]`` differs, Mailchimp renames that member rather than
        creating another (API-NOTES §1.3, R11); if the new address already belongs to another
        member the answer is ``member_exists``. Sent without the SDK's check, which wrongly
        demands ``status_if_new`` for existing members. Returns the member.
        """
        body = dict(payload)
        body.setdefault("email_address", old_email.strip())
        path = f"lists/{list_id}/members/{member_hash(old_email)}"
        return self._call("PUT", path, lambda: self._mc._put(path, body), email=body.get("email_address"))

    def update_member(self, list_id: str, email: str, payload: Mapping[str, Any]) -> dict:
        """Update an existing member (``PATCH``); ``not_found`` if it does not exist."""
        body = {k: v for k, v in payload.items() if k != "status_if_new"}
        path = f"lists/{list_id}/members/{member_hash(email)}"
        return self._call("PATCH", path, lambda: self._mc._patch(path, body), email=email)

    def archive_member(self, list_id: str, email: str) -> bool:
        """Archive a member (``DELETE``, R12). True when archived now; False when Mailchimp
        answers 405 because it is already archived (or bounced/pending, which cannot be
        archived): there is nothing left to do either way."""
        path = f"lists/{list_id}/members/{member_hash(email)}"
        try:
            self._call("DELETE", path, lambda: self._mc._delete(path), email=email)
        except MailchimpError as exc:
            if exc.status == 405:
                return False
            raise
        return True

    def delete_member_permanently(self, list_id: str, email: str) -> None:
        """Erase a member for good (GDPR erasure; it can never be re-imported)."""
        path = f"lists/{list_id}/members/{member_hash(email)}/actions/delete-permanent"
        self._call("POST", path, lambda: self._mc._post(path), email=email)

    def set_member_tags(
        self, list_id: str, email: str, add: Iterable[str] = (), remove: Iterable[str] = (),
    ) -> None:
        """Add and remove tags on one member (``is_syncing``: no automation fires). No call
        is made when there is nothing to change."""
        tags = [{"name": n, "status": "active"} for n in add] + [{"name": n, "status": "inactive"} for n in remove]
        if not tags:
            return
        path = f"lists/{list_id}/members/{member_hash(email)}/tags"
        body = {"tags": tags, "is_syncing": True}
        self._call("POST", path, lambda: self._mc._post(path, body), email=email)

    # --- tags as static segments ------------------------------------------------------------

    def get_segments(self, list_id: str, type: str | None = "static") -> list[dict]:
        """Every segment of the audience of ``type`` (``static`` = tags), all pages."""
        return list(self._paged(f"lists/{list_id}/segments", "segments", type=type))

    def create_segment(self, list_id: str, name: str, emails: Iterable[str] = ()) -> dict:
        """Create a static segment (a tag) holding ``emails``; more than 500 e-mails are
        added by follow-up calls. Returns the segment. Not retried after an ambiguous failure."""
        emails = list(emails)
        body = {"name": name, "static_segment": emails[:BATCH_LIMIT]}
        path = f"lists/{list_id}/segments"
        segment = self._call("POST", path, lambda: self._mc._post(path, body), idempotent=False)
        if len(emails) > BATCH_LIMIT:
            self.update_segment_members(list_id, segment["id"], add=emails[BATCH_LIMIT:])
        return segment

    def update_segment_members(
        self, list_id: str, segment_id: Any, add: Iterable[str] = (), remove: Iterable[str] = (), *,
        fields: Sequence[str] | None = None,
    ) -> dict:
        """Add and remove e-mails on a static segment, 500 of each per call (as many calls as
        needed). E-mails not in the audience are ignored by Mailchimp. Returns the merged
        answers: ``members_added``, ``members_removed``, ``errors``, ``total_added``,
        ``total_removed``, ``error_count``. ``fields`` narrows each answer (e.g. ``["total_added",
        "errors"]``): ``members_added`` carries a full member object for each e-mail added."""
        add, remove = list(add), list(remove)
        merged: dict[str, Any] = {
            "members_added": [], "members_removed": [], "errors": [],
            "total_added": 0, "total_removed": 0, "error_count": 0,
        }
        path = f"lists/{list_id}/segments/{segment_id}"
        url = f"{path}?{urlencode({'fields': ','.join(fields)})}" if fields else path
        rounds = max((len(add) + BATCH_LIMIT - 1) // BATCH_LIMIT, (len(remove) + BATCH_LIMIT - 1) // BATCH_LIMIT)
        for i in range(rounds):
            body: dict[str, Any] = {}
            chunk_add = add[i * BATCH_LIMIT:(i + 1) * BATCH_LIMIT]
            chunk_remove = remove[i * BATCH_LIMIT:(i + 1) * BATCH_LIMIT]
            if chunk_add:
                body["members_to_add"] = chunk_add
            if chunk_remove:
                body["members_to_remove"] = chunk_remove
            answer = self._call("POST", path, lambda b=body: self._mc._post(url, b)) or {}
            for key in ("members_added", "members_removed", "errors"):
                merged[key].extend(answer.get(key) or [])
            for key in ("total_added", "total_removed", "error_count"):
                merged[key] += int(answer.get(key) or 0)
        return merged

    # --- webhooks ---------------------------------------------------------------------------

    def get_webhooks(self, list_id: str) -> list[dict]:
        """The audience's webhooks."""
        return list((self._get(f"lists/{list_id}/webhooks") or {}).get("webhooks") or [])

    def create_webhook(
        self,
        list_id: str,
        url: str,
        events: Iterable[str] | Mapping[str, bool],
        sources: Iterable[str] | Mapping[str, bool],
    ) -> dict:
        """Register a webhook; ``events``/``sources`` are names or ``{name: bool}`` (R21).

        Sent without the SDK's URL check, which refuses loopback and private hosts and so the
        simulator (API-NOTES §12); Mailchimp itself verifies the URL with a GET.
        """
        def flags(value: Iterable[str] | Mapping[str, bool], names: Sequence[str]) -> dict[str, bool]:
            if isinstance(value, Mapping):
                return {n: bool(value.get(n, False)) for n in names}
            chosen = set(value)
            return {n: n in chosen for n in names}

        body = {
            "url": url,
            "events": flags(events, ("subscribe", "unsubscribe", "profile", "cleaned", "upemail", "campaign")),
            "sources": flags(sources, ("user", "admin", "api")),
        }
        path = f"lists/{list_id}/webhooks"
        return self._call("POST", path, lambda: self._mc._post(path, body), idempotent=False)

    def delete_webhook(self, list_id: str, webhook_id: str) -> None:
        """Unregister a webhook (R9)."""
        path = f"lists/{list_id}/webhooks/{webhook_id}"
        self._call("DELETE", path, lambda: self._mc._delete(path))

    # --- campaigns and activity (R18) -------------------------------------------------------

    def get_campaigns(
        self, list_id: str, since_send_time: datetime | str | None = None, *, status: str | None = "sent",
        fields: Sequence[str] | None = None, sort_field: str | None = "send_time", sort_dir: str | None = "ASC",
        page_size: int = PAGE_MAX,
    ) -> Iterator[dict]:
        """Yield the audience's campaigns (sent ones by default), oldest send first.

        ``since_send_time`` keeps campaigns sent strictly after it (Mailchimp compares whole
        seconds); ``fields`` limits each campaign to those properties in dot notation
        (``["id", "send_time", "settings.title"]``).
        """
        return self._paged(
            "campaigns", "campaigns", page_size=page_size, fields=fields, list_id=list_id, status=status,
            since_send_time=_iso(since_send_time), sort_field=sort_field, sort_dir=sort_dir,
        )

    def report_page(
        self, campaign_id: str, report: str, *, offset: int = 0, count: int = PAGE_MAX,
        fields: Sequence[str] | None = None, since: datetime | str | None = None,
    ) -> dict:
        """One page of a campaign's per-recipient report: ``{"items": [...], "total_items": n}``.

        ``report`` is ``sent-to`` (every recipient, ``status`` sent/hard/soft),
        ``email-activity`` (recipients with an open, click or bounce; ``since`` keeps events
        strictly after that time, whole seconds) or ``unsubscribed``. ``fields`` names the
        item properties to return (dot notation inside an item, e.g. ``activity.timestamp``):
        a full sent-to item carries every merge field of the member. ``since`` is only sent
        where the API has it (email-activity). Pages are read by ``offset`` so that a run
        can checkpoint and resume between them.
        """
        key = REPORT_KEYS[report]
        params: dict[str, Any] = {"count": max(1, min(int(count), PAGE_MAX)), "offset": max(0, int(offset))}
        if fields:
            params["fields"] = ",".join(f"{key}.{f}" for f in fields) + ",total_items"
        if since is not None and report == "email-activity":
            params["since"] = _iso(since)
        page = self._get(f"reports/{campaign_id}/{report}", **params) or {}
        items = page.get(key) or []
        return {"items": items, "total_items": int(page.get("total_items") or 0)}

    def iter_email_activity(
        self, campaign_id: str, since: datetime | str | None = None, *, fields: Sequence[str] | None = None,
    ) -> Iterator[dict]:
        """Yield one item per recipient: ``email_address`` and its ``activity`` (open, click, bounce)."""
        return self._paged(f"reports/{campaign_id}/email-activity", "emails", since=_iso(since), fields=fields)

    def iter_sent_to(self, campaign_id: str, *, fields: Sequence[str] | None = None) -> Iterator[dict]:
        """Yield the campaign's recipients (``email_address``, ``status``…)."""
        return self._paged(f"reports/{campaign_id}/sent-to", "sent_to", fields=fields)

    def iter_unsubscribed(self, campaign_id: str, *, fields: Sequence[str] | None = None) -> Iterator[dict]:
        """Yield the members who unsubscribed from the campaign (``email_address``, ``timestamp``…)."""
        return self._paged(f"reports/{campaign_id}/unsubscribed", "unsubscribes", fields=fields)
