"""Benchmark the Mailchimp simulator: load members through batch subscribe (``POST /lists/{id}``,
500 per call) with N parallel clients, and print JSON figures.

    .venv/bin/python bench/sim_load.py [--members 100000] [--clients 4] [--root-url URL]

Without ``--root-url`` a simulator is started (and stopped) on a free loopback port. Each
client keeps one pooled connection (``requests.Session``). Output: wall time, members/s,
client-side p50/p95 per call, server-side p50/p95 (from ``/_sim/requests``), the
simulator's CPU time per call (what it costs, whatever else the machine runs), sim RSS, and
the rate of small single-member PATCH calls afterwards.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mailchimp_sim.testing import SimControl, SimulatorProcess  # noqa: E402


def percentile(values, q):
    """The q-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def sim_cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of the simulator's processes (robust to machine load)."""
    if not pid:
        return 0.0
    import psutil
    process = psutil.Process(pid)
    total = 0.0
    for p in [process] + process.children(recursive=True):
        times = p.cpu_times()
        total += times.user + times.system
    return total


def small_calls(root_url, key, list_id, count, clients, members) -> dict:
    """``count`` single-member PATCH calls spread over the clients (pooled sessions)."""
    if not count or not members:
        return {}
    durations, lock = [], threading.Lock()
    numbers = iter(range(count))

    def worker():
        """One client: take the next chunk until none is left."""
        with requests.Session() as session:
            session.auth = ("bench", key)
            while True:
                with lock:
                    n = next(numbers, None)
                if n is None:
                    return
                email = f"user{n % members:06d}@anaba-bench.fr"
                started = time.perf_counter()
                session.patch(f"{root_url}/3.0/lists/{list_id}/members/{email}",
                              json={"merge_fields": {"LNAME": f"Patched{n}"}}, timeout=60)
                with lock:
                    durations.append((time.perf_counter() - started) * 1000)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    return {"small_calls": count, "small_calls_per_s": round(count / wall),
            "small_call_ms_p50": round(percentile(durations, 50), 2),
            "small_call_ms_p95": round(percentile(durations, 95), 2)}


def run(root_url: str, members: int, clients: int, batch: int, pid: int | None,
        args_server: str = "", small_count: int = 2000) -> dict:
    """Load ``members`` into a fresh audience and measure."""
    control = SimControl(root_url)
    key = control.new_account("bench")
    list_id = control.create_list(key, name="Bench")["id"]
    control.clear_requests()
    chunks = [range(i, min(members, i + batch)) for i in range(0, members, batch)]
    durations, errors, lock = [], [], threading.Lock()
    cursor = iter(chunks)

    def worker():
        """One client: take the next chunk until none is left."""
        with requests.Session() as session:
            session.auth = ("bench", key)
            while True:
                with lock:
                    chunk = next(cursor, None)
                if chunk is None:
                    return
                body = {"members": [{"email_address": f"user{i:06d}@anaba-bench.fr",
                                     "status": "subscribed",
                                     "merge_fields": {"FNAME": f"User{i}", "LNAME": "Bench"}}
                                    for i in chunk], "update_existing": True}
                started = time.perf_counter()
                response = session.post(f"{root_url}/3.0/lists/{list_id}", json=body, timeout=120)
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    durations.append(elapsed)
                    if response.status_code != 200 or response.json()["error_count"]:
                        errors.append(response.status_code)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    cpu_before = sim_cpu_seconds(pid)
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    cpu_after = sim_cpu_seconds(pid)
    server = [e["duration_ms"] for e in control.requests_log() if e["method"] == "POST"]
    small = small_calls(root_url, key, list_id, small_count, clients, members)
    total = requests.get(f"{root_url}/3.0/lists/{list_id}", auth=("bench", key),
                         timeout=30).json()["stats"]["member_count"]
    rss = None
    if pid:
        import psutil
        process = psutil.Process(pid)  # gunicorn: the worker holding the state is a child
        rss = round(sum(p.memory_info().rss for p in [process] + process.children(recursive=True))
                    / 2**20, 1)
    control.close()
    return {
        "members_requested": members, "members_in_audience": total, "clients": clients,
        "batch_size": batch, "calls": len(durations), "failed_calls": len(errors),
        "wall_s": round(wall, 2), "members_per_s": round(members / wall),
        "client_ms_p50": round(percentile(durations, 50), 1),
        "client_ms_p95": round(percentile(durations, 95), 1),
        "server_ms_p50": round(percentile(server, 50), 1) if server else None,
        "server_ms_p95": round(percentile(server, 95), 1) if server else None,
        "server_ms_mean": round(statistics.mean(server), 1) if server else None,
        "sim_cpu_ms_per_call": (round((cpu_after - cpu_before) * 1000 / len(chunks), 1)
                                if pid else None),
        "sim_rss_mb": rss, "server": args_server, **small,
    }


def main() -> None:
    """Parse options, run, print one JSON object."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--members", type=int, default=100_000)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--small-calls", type=int, default=2000,
                   help="single-member PATCH calls measured after the load (0: none)")
    p.add_argument("--root-url", help="use a running simulator instead of starting one")
    p.add_argument("--pid", type=int, help="with --root-url: the simulator's pid, for RSS")
    p.add_argument("--server", choices=("gunicorn", "werkzeug"), default="gunicorn",
                   help="server of the simulator started by the benchmark")
    args = p.parse_args()
    if args.root_url:
        result = run(args.root_url.rstrip("/"), args.members, args.clients, args.batch, args.pid,
                     "external", args.small_calls)
    else:
        with SimulatorProcess(extra_args=["--server", args.server]) as sim:
            result = run(sim.root_url, args.members, args.clients, args.batch, sim.process.pid,
                         args.server, args.small_calls)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
