"""A Redis counting semaphore: at most N simultaneous Mailchimp connections per API key (R20).

Mailchimp allows 10 simultaneous connections per API key, shared by every worker and process
using that key (API-NOTES §10). Holders are kept in one sorted set per key, named after a
SHA-256 of the API key (the key itself never reaches Redis), each member a random holder id
scored by the time its lease expires. Acquiring is one Lua script: drop expired leases, then
add ours if fewer than N remain. A worker killed while holding a slot (SIGKILL, OOM) therefore
leaks it only until its lease expires, never for good. Times come from Redis's own clock so
that processes on different machines agree.

Waiters block on a small wake-up list that every release pushes to, with a short poll as a
safety net, so a freed slot is taken within milliseconds without hammering Redis.
"""
from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["ConnectionSemaphore", "SemaphoreTimeout", "semaphore_key"]

_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local lease = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now + lease, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], lease + 1000)
  return 1
end
return 0
"""

_RELEASE = """
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('LPUSH', KEYS[2], '1')
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[2]) - 1)
redis.call('PEXPIRE', KEYS[2], 5000)
return removed
"""

_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) <= now then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) + 1000)
return 1
"""

_COUNT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
"""


class SemaphoreTimeout(Exception):
    """No slot freed up within the allowed wait."""


def semaphore_key(api_key: str, prefix: str = "anaba:mc:conn:") -> str:
    """The Redis key for ``api_key``'s semaphore: a prefix and a SHA-256, never the key."""
    digest = hashlib.sha256(("mailchimp-connections:" + api_key).encode("utf-8")).hexdigest()
    return prefix + digest


class ConnectionSemaphore:
    """At most ``limit`` holders at once for one API key, across threads, processes and hosts.

    ``lease_seconds`` bounds how long a slot survives a holder that died without releasing it;
    it must exceed the longest call made while holding a slot (the client sizes it from its
    own timeouts). Use :meth:`slot` as a context manager, or :meth:`acquire` / :meth:`release`.
    Thread-safe: all state lives in Redis; the holder id is returned to the caller.
    """

    def __init__(
        self,
        redis: Any,
        api_key: str,
        *,
        limit: int = 10,
        lease_seconds: float = 60.0,
        poll_interval: float = 0.2,
        prefix: str = "anaba:mc:conn:",
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.redis = redis
        self.limit = int(limit)
        self.lease_ms = max(1, int(lease_seconds * 1000))
        self.poll_interval = poll_interval
        self.key = semaphore_key(api_key, prefix)
        self.wake_key = self.key + ":wake"
        self._acquire = redis.register_script(_ACQUIRE)
        self._release = redis.register_script(_RELEASE)
        self._renew = redis.register_script(_RENEW)
        self._count = redis.register_script(_COUNT)

    def try_acquire(self) -> str | None:
        """Take a slot if one is free right now: the holder id, or None."""
        token = uuid.uuid4().hex
        if int(self._acquire(keys=[self.key], args=[self.limit, self.lease_ms, token])):
            return token
        return None

    def acquire(self, timeout: float | None = None) -> str:
        """Wait for a slot (forever when ``timeout`` is None); raises :class:`SemaphoreTimeout`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            token = self.try_acquire()
            if token:
                return token
            wait = self.poll_interval
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise SemaphoreTimeout(f"no Mailchimp connection slot freed within {timeout} s")
                wait = min(wait, remaining)
            # Woken by a release (or the poll interval, in case a lease expired silently).
            self.redis.blpop([self.wake_key], timeout=max(wait, 0.01))

    def release(self, token: str) -> bool:
        """Give a slot back; False if its lease had already expired (and was reclaimed)."""
        return bool(int(self._release(keys=[self.key, self.wake_key], args=[token, self.limit])))

    def renew(self, token: str, lease_seconds: float | None = None) -> bool:
        """Extend a live lease (for long holders); False if it already expired."""
        lease_ms = self.lease_ms if lease_seconds is None else max(1, int(lease_seconds * 1000))
        return bool(int(self._renew(keys=[self.key], args=[token, lease_ms])))

    def holders(self) -> int:
        """How many unexpired slots are held now."""
        return int(self._count(keys=[self.key]))

    @contextmanager
    def slot(self, timeout: float | None = None) -> Iterator[str]:
        """Hold a slot for the duration of the ``with`` block."""
        token = self.acquire(timeout)
        try:
            yield token
        finally:
            self.release(token)
