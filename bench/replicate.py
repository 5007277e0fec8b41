"""`python -m bench replicate`: how fast a change made in anaba is visible in Mailchimp (R10).

An active connector over `--contacts` opt-in contacts; one real worker (`python worker.py live
bulk reports`, the queues in the order `make run` uses). `--edits` single-contact edits go
through the JSON API (PATCH first_name), `--rate` per second; a watcher reads the simulator's
state (its control API, which pays no latency) every 20 ms and notes when each edit is there.
Latency = from the API's answer (the change is committed) to the change being visible.

`--latency-ms` / `--latency-per-member-ms` turn on the simulator's latency model.
`--during-copy` runs the initial copy of another workspace's `--copy-contacts` contacts (same
Mailchimp account, another audience) on the same worker while the edits are made.
"""
from __future__ import annotations

import argparse
import threading
import time

from bench import _harness as h


def main(argv: list[str]) -> None:
    """Run the benchmark and print its JSON report."""
    parser = argparse.ArgumentParser(prog="python -m bench replicate")
    parser.add_argument("--edits", type=int, default=1000)
    parser.add_argument("--contacts", type=int, default=200)
    parser.add_argument("--rate", type=float, default=10.0, help="edits per second")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--latency-per-member-ms", type=float, default=0.0)
    parser.add_argument("--during-copy", action="store_true")
    parser.add_argument("--copy-contacts", type=int, default=100_000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args(argv)

    import logging

    logging.disable(logging.WARNING)
    report: dict = {"benchmark": "replicate", "edits": args.edits, "contacts": args.contacts, "rate": args.rate,
                    "latency_ms": args.latency_ms, "latency_per_member_ms": args.latency_per_member_ms,
                    "during_copy": args.during_copy, "load_average_at_start": h.load_average()}
    with h.services(latency_ms=0, database_url=args.database_url) as world:
        sim = world.sim
        h.load_contacts(world.env, "Bench Live", args.contacts, demo=False)
        if args.during_copy:
            report["copy_setup_seconds"] = h.load_contacts(world.env, "Bench Copy", args.copy_contacts)
        app = h.make_app(world.env)
        key = sim.control.new_account("Bench")
        live_list = sim.control.create_list(key, "Bench live")["id"]
        h.activate(app, "Bench Live", key, live_list)
        token = h.api_token(app, "Bench Live")
        copy_run_id = None
        if args.during_copy:
            copy_list = sim.control.create_list(key, "Bench copy")["id"]
            copy_connector = h.submit(app, "Bench Copy", key, copy_list)
        if args.latency_ms or args.latency_per_member_ms:
            sim.control.set_faults(key, latency_ms=args.latency_ms, latency_per_member_ms=args.latency_per_member_ms)
        sim.control.clear_requests()
        worker = h.start_worker(world, "live", "bulk", "reports")
        if args.during_copy:
            from portal import jobs

            with app.app_context():
                copy_run_id = jobs.validate_connector(copy_connector, None).id
            _wait(lambda: _copy_state(app, copy_run_id)[1] > 0, 300)
            report["copy_done_at_first_edit"] = _copy_state(app, copy_run_id)[1]
        copying = (lambda: _copy_state(app, copy_run_id)[0] == "running") if copy_run_id is not None else None
        latencies, during, lost = _edit_and_watch(app, sim, token, live_list, args, copying)
        report["worker_rss_mb_at_end"] = h.peak_rss_mb(worker.pid)
        if copy_run_id is not None:
            status, done, total = _copy_state(app, copy_run_id)
            report["copy_at_last_edit"] = {"status": status, "done": done, "total": total}
        log = sim.control.requests_log()
        report.update({
            "p50_ms": _ms(h.percentile(latencies, 50)), "p95_ms": _ms(h.percentile(latencies, 95)),
            "p99_ms": _ms(h.percentile(latencies, 99)), "max_ms": _ms(max(latencies) if latencies else None),
            "seen": len(latencies), "lost": lost,
            "during_copy_edits": len(during),
            "during_copy_p50_ms": _ms(h.percentile(during, 50)), "during_copy_p95_ms": _ms(h.percentile(during, 95)),
            "during_copy_p99_ms": _ms(h.percentile(during, 99)),
            "api_calls": len(log), "calls_by_endpoint": h.calls_by_endpoint(log),
            "load_average_at_end": h.load_average(),
        })
        h.stop(worker)
    h.report(report)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def _wait(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting")
        time.sleep(0.05)


def _copy_state(app, run_id: int) -> tuple[str, int, int]:
    from portal.extensions import db
    from portal.models import SyncRun

    with app.app_context():
        run = db.session.get(SyncRun, run_id)
        state = (run.status, run.done, run.total)
        db.session.remove()
        return state


def _edit_and_watch(app, sim, token: str, list_id: str, args, copying=None) -> tuple[list[float], list[float], int]:
    """Make the edits at the given rate while a thread watches them arrive; (latencies, latencies of the
    edits made while the other copy ran, lost)."""
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    with app.app_context():
        from portal.crm.contacts import list_by_id
        from portal.crm.accounts import workspace_id_for_token

        contacts = [(c.id, c.email) for c in list_by_id(workspace_id_for_token(token), limit=args.contacts)]
    pending: list[tuple[str, int, float]] = []  # (email, version, committed at)
    latencies: list[float] = []
    during_copy: set[int] = set()
    during: list[float] = []
    lock = threading.Lock()
    done = threading.Event()

    def watch() -> None:
        while not done.is_set() or pending:
            with lock:
                emails = sorted({email for email, _v, _t in pending})
            if emails:
                found = sim.control.lookup_members(list_id, emails)
                now = time.monotonic()
                with lock:
                    still = []
                    for email, version, at in pending:
                        member = found.get(email) or {}
                        name = str((member.get("merge_fields") or {}).get("FNAME") or "")
                        seen = int(name.rsplit(" ", 1)[-1]) if name.startswith("Edit ") else -1
                        if seen >= version:
                            latencies.append(now - at)
                            if version in during_copy:
                                during.append(now - at)
                        else:
                            still.append((email, version, at))
                    pending[:] = still
            if done.is_set() and time.monotonic() > deadline[0]:
                return
            time.sleep(0.02)

    deadline = [float("inf")]
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    interval = 1.0 / args.rate
    started = time.monotonic()
    for n in range(args.edits):
        contact_id, email = contacts[n % len(contacts)]
        response = client.patch(f"/api/v1/contacts/{contact_id}", json={"first_name": f"Edit {n}"}, headers=headers)
        if response.status_code != 200:
            raise SystemExit(f"edit answered {response.status_code}")
        with lock:
            pending.append((email, n, time.monotonic()))
            if copying is not None and copying():
                during_copy.add(n)
        sleep = started + (n + 1) * interval - time.monotonic()
        if sleep > 0:
            time.sleep(sleep)
    deadline[0] = time.monotonic() + 120
    done.set()
    watcher.join(130)
    return latencies, during, len(pending)
