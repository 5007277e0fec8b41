"""The Redis semaphore keeps each API key under its simultaneous-connection limit (R20)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis as redis_lib

from portal.mailchimp.ratelimit import ConnectionSemaphore, SemaphoreTimeout, semaphore_key

ROOT = Path(__file__).resolve().parents[2]
KEY = "0123456789abcdef0123456789abcdef-us6"

# Run by child processes: take a slot, count concurrent holders in Redis, hold briefly, release.
WORKER = r"""
import random, sys, time, redis
from portal.mailchimp.ratelimit import ConnectionSemaphore
url, key, limit, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
r = redis.Redis.from_url(url)
track = r.register_script(
    "local n = redis.call('INCR', KEYS[1]) "
    "if n > tonumber(redis.call('GET', KEYS[2]) or '0') then redis.call('SET', KEYS[2], n) end return n")
sem = ConnectionSemaphore(r, key, limit=limit, lease_seconds=30)
for _ in range(rounds):
    with sem.slot(timeout=60):
        track(keys=["active", "max_active"])
        time.sleep(random.uniform(0.001, 0.01))
        r.decr("active")
print("done")
"""

# Run by a child process: take a slot with a short lease and never give it back.
HOLDER = r"""
import sys, time, redis
from portal.mailchimp.ratelimit import ConnectionSemaphore
r = redis.Redis.from_url(sys.argv[1])
sem = ConnectionSemaphore(r, sys.argv[2], limit=1, lease_seconds=float(sys.argv[3]))
sem.acquire(timeout=30)
print("holding", flush=True)
time.sleep(600)
"""


def _python(code: str, *args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, env=env, text=True, **kwargs)


def test_limit_holders_at_most_and_a_release_frees_a_slot(redis_conn):
    sem = ConnectionSemaphore(redis_conn, KEY, limit=3)
    tokens = [sem.try_acquire() for _ in range(3)]
    assert all(tokens) and len(set(tokens)) == 3
    assert sem.try_acquire() is None
    assert sem.holders() == 3
    assert sem.release(tokens[0]) is True
    assert sem.try_acquire() is not None
    assert sem.try_acquire() is None


def test_keys_have_separate_budgets_and_redis_never_sees_the_api_key(redis_conn):
    other = "fedcba9876543210fedcba9876543210-us1"
    first = ConnectionSemaphore(redis_conn, KEY, limit=1)
    second = ConnectionSemaphore(redis_conn, other, limit=1)
    assert first.try_acquire() and second.try_acquire()
    assert first.try_acquire() is None
    names = [k.decode() for k in redis_conn.keys("*")]
    assert names and not any(KEY in n or KEY.split("-")[0] in n for n in names)
    assert semaphore_key(KEY) != semaphore_key(other)


def test_acquire_gives_up_after_its_timeout(redis_conn):
    sem = ConnectionSemaphore(redis_conn, KEY, limit=1, poll_interval=0.02)
    with sem.slot():
        with pytest.raises(SemaphoreTimeout):
            sem.acquire(timeout=0.1)
    assert sem.holders() == 0


def test_waiter_gets_the_slot_when_the_holder_releases(redis_conn):
    sem = ConnectionSemaphore(redis_conn, KEY, limit=1)
    token = sem.acquire()
    got: list[str] = []
    waiter = threading.Thread(target=lambda: got.append(sem.acquire(timeout=30)))
    waiter.start()
    while not redis_conn.exists(sem.key) or sem.holders() != 1:
        time.sleep(0.01)
    assert not got
    sem.release(token)
    waiter.join(30)
    assert got and got[0] != token


def test_expired_lease_is_reclaimed_and_cannot_be_renewed(redis_conn):
    sem = ConnectionSemaphore(redis_conn, KEY, limit=1, lease_seconds=0.05)
    stale = sem.acquire()
    fresh = sem.acquire(timeout=30)
    assert fresh != stale
    assert sem.renew(stale) is False
    assert sem.release(stale) is False


def test_renewed_lease_keeps_the_slot(redis_conn):
    sem = ConnectionSemaphore(redis_conn, KEY, limit=1, lease_seconds=30)
    token = sem.acquire()
    assert sem.renew(token, 60) is True
    assert sem.try_acquire() is None


def test_many_threads_never_exceed_the_limit(redis_conn, redis_url):
    limit, active, peak = 4, [0], [0]
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work():
        conn = redis_lib.Redis.from_url(redis_url)
        sem = ConnectionSemaphore(conn, KEY, limit=limit)
        try:
            for _ in range(15):
                with sem.slot(timeout=60):
                    with lock:
                        active[0] += 1
                        peak[0] = max(peak[0], active[0])
                    time.sleep(0.002)
                    with lock:
                        active[0] -= 1
        except BaseException as exc:  # surfaced below: a thread must not fail silently
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=work) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    assert 1 <= peak[0] <= limit
    assert ConnectionSemaphore(redis_conn, KEY, limit=limit).holders() == 0


def test_many_processes_never_exceed_the_limit(redis_conn, redis_url):
    limit = 3
    procs = [_python(WORKER, redis_url, KEY, str(limit), "20", stdout=subprocess.PIPE) for _ in range(8)]
    try:
        outputs = [p.communicate(timeout=120)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0] * len(procs)
    assert all("done" in out for out in outputs)
    peak = int(redis_conn.get("max_active"))
    assert 1 <= peak <= limit
    assert int(redis_conn.get("active")) == 0


def test_slot_of_a_killed_worker_comes_back_when_its_lease_expires(redis_conn, redis_url):
    holder = _python(HOLDER, redis_url, KEY, "1.0", stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == "holding"
        sem = ConnectionSemaphore(redis_conn, KEY, limit=1)
        assert sem.try_acquire() is None
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(10)
        token = sem.acquire(timeout=30)
        assert token
        assert sem.holders() == 1
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        holder.stdout.close()
