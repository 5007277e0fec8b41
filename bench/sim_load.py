"""Benchmark the Mailchimp simulator: load members through batch subscribe (``POST /lists/{id}``,
500 per call) with N parallel clients, and print JSON figures.

    .venv/bin/python bench/sim_load.py [--members 100000] [--clients 4] [--root-url URL]
                                       [--campaigns 20] [--edits 1000]

Without ``--root-url`` a simulator is started (and stopped) on a free loopback port. Each
client keeps one pooled connection (``requests.Session``). Output: wall time, members/s,
client-side p50/p95 per call, server-side p50/p95 (from ``/_sim/requests``), the
simulator's CPU time per call (what it costs, whatever else the machine runs), sim RSS, and
the rate of small single-member PATCH calls afterwards. ``--campaigns N`` then sends N
simulated campaigns to the audience and pages through their reports (1,000 per page);
``--edits N`` makes N admin edits through the bulk control call and reads them back with
``since_last_changed``: times, event counts and the simulator's RSS after all that.
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


def rss_mb(pid: int | None) -> float | None:
    """Resident memory of the simulator's processes, in MiB."""
    if not pid:
        return None
    import psutil
    process = psutil.Process(pid)  # gunicorn: the worker holding the state is a child
    return round(sum(p.memory_info().rss for p in [process] + process.children(recursive=True))
                 / 2**20, 1)


def _read_all(session, url, params, key) -> tuple[int, list[float]]:
    """Page through a collection 1,000 at a time: (items, ms per page)."""
    items, times, offset = 0, [], 0
    while True:
        started = time.perf_counter()
        doc = session.get(url, params=dict(params, count=1000, offset=offset), timeout=120).json()
        times.append((time.perf_counter() - started) * 1000)
        got = len(doc[key])
        items += got
        offset += 1000
        if not got or offset >= doc["total_items"]:
            return items, times


def campaigns_at_scale(root_url, key, list_id, count, pid) -> dict:
    """Send ``count`` campaigns, then read every report of the last one as the connector does."""
    control = SimControl(root_url, timeout=600)
    send_s, events = [], 0
    day = 86400
    for n in range(count):
        started = time.perf_counter()
        sent_at = time.strftime("%Y-%m-%dT%H:%M:%S+00:00",
                                time.gmtime(time.time() - (count - n) * day))
        doc = control.send_campaign(list_id, seed=n + 1, send_time=sent_at, unsubscribe_rate=0.002,
                                    bounce_rate=0.005)
        send_s.append(time.perf_counter() - started)
        events += doc["simulation"]["events"]
    out = {"campaigns": count, "activity_events": events,
           "campaign_send_s_mean": round(statistics.mean(send_s), 2),
           "campaign_send_s_max": round(max(send_s), 2), "sim_rss_mb_after_campaigns": rss_mb(pid)}
    with requests.Session() as session:
        session.auth = ("bench", key)
        base = f"{root_url}/3.0"
        listed = session.get(f"{base}/campaigns", params={
            "list_id": list_id, "status": "sent", "count": 1000,
            "since_send_time": "2000-01-01T00:00:00+00:00"}, timeout=60).json()
        cid = listed["campaigns"][-1]["id"]
        for name, path, params, field in (
                ("sent_to", f"/reports/{cid}/sent-to", {}, "sent_to"),
                ("email_activity", f"/reports/{cid}/email-activity",
                 {"fields": "emails.email_address,emails.activity,total_items"}, "emails"),
                ("email_activity_since", f"/reports/{cid}/email-activity",
                 {"since": listed["campaigns"][-1]["send_time"],
                  "fields": "emails.email_address,emails.activity,total_items"}, "emails"),
                ("unsubscribed", f"/reports/{cid}/unsubscribed", {}, "unsubscribes")):
            started = time.perf_counter()
            items, pages = _read_all(session, base + path, params, field)
            out[f"{name}_items"] = items
            out[f"{name}_s"] = round(time.perf_counter() - started, 2)
            out[f"{name}_page_ms_first_last"] = [round(pages[0], 1), round(pages[-1], 1)]
    control.close()
    return out


def edits_at_scale(root_url, key, list_id, count, members) -> dict:
    """``count`` admin edits (merge field and tag) through one bulk control call, then the
    ``since_last_changed`` read a reconciliation makes."""
    control = SimControl(root_url, timeout=600)
    with requests.Session() as session:
        session.auth = ("bench", key)
        before = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
        time.sleep(1.1)  # since_last_changed is exclusive, to the second
        step = max(1, members // count)
        actions = [{"email": f"user{i:06d}@anaba-bench.fr", "action": "edit-profile",
                    "data": {"merge_fields": {"LNAME": f"Edited{i}"},
                             "tags": [{"name": "Edited", "status": "active"}]}}
                   for i in range(0, step * count, step)]
        started = time.perf_counter()
        result = control.bulk_member_actions(list_id, actions)
        bulk_s = time.perf_counter() - started
        started = time.perf_counter()
        items, pages = _read_all(session, f"{root_url}/3.0/lists/{list_id}/members",
                                 {"since_last_changed": before,
                                  "fields": "members.email_address,members.merge_fields,"
                                            "members.tags,members.last_changed,total_items"},
                                 "members")
        read_s = time.perf_counter() - started
    control.close()
    return {"edits": result["done"], "edit_failures": result["failed"],
            "bulk_edit_s": round(bulk_s, 3), "changed_members_read": items,
            "since_last_changed_read_s": round(read_s, 3)}


def run(root_url: str, members: int, clients: int, batch: int, pid: int | None,
        args_server: str = "", small_count: int = 2000, campaigns: int = 0,
        edits: int = 0) -> dict:
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
    rss = rss_mb(pid)
    extra = {}
    if edits:
        extra.update(edits_at_scale(root_url, key, list_id, edits, members))
    if campaigns:
        extra.update(campaigns_at_scale(root_url, key, list_id, campaigns, pid))
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
        "sim_rss_mb": rss, "server": args_server, **small, **extra,
    }


def main() -> None:
    """Parse options, run, print one JSON object."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--members", type=int, default=100_000)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--small-calls", type=int, default=2000,
                   help="single-member PATCH calls measured after the load (0: none)")
    p.add_argument("--campaigns", type=int, default=0,
                   help="then send this many campaigns and read their reports")
    p.add_argument("--edits", type=int, default=0,
                   help="then make this many admin edits and read them back (reconciliation)")
    p.add_argument("--root-url", help="use a running simulator instead of starting one")
    p.add_argument("--pid", type=int, help="with --root-url: the simulator's pid, for RSS")
    p.add_argument("--server", choices=("gunicorn", "werkzeug"), default="gunicorn",
                   help="server of the simulator started by the benchmark")
    args = p.parse_args()
    if args.root_url:
        result = run(args.root_url.rstrip("/"), args.members, args.clients, args.batch, args.pid,
                     "external", args.small_calls, args.campaigns, args.edits)
    else:
        with SimulatorProcess(extra_args=["--server", args.server]) as sim:
            result = run(sim.root_url, args.members, args.clients, args.batch, sim.process.pid,
                         args.server, args.small_calls, args.campaigns, args.edits)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
