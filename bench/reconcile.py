"""`python -m bench reconcile`: the nightly reconciliation of a large audience (R22).

An active connector over `--contacts` opt-in contacts (copied in this process), then `--drift`
members edited in Mailchimp by an admin (merge fields, through the simulator's bulk member
actions). The reconciliation runs in this process: its time, API calls, the drift it found, the
worker's peak memory; then the replication that puts anaba's values back (calls); then a second
reconciliation, which must find nothing and write nothing.
"""
from __future__ import annotations

import argparse
import time

from bench import _harness as h


def main(argv: list[str]) -> None:
    """Run the benchmark and print its JSON report."""
    parser = argparse.ArgumentParser(prog="python -m bench reconcile")
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--drift", type=int, default=1_000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args(argv)

    import logging

    logging.disable(logging.WARNING)
    report: dict = {"benchmark": "reconcile", "contacts": args.contacts, "drift_made": args.drift,
                    "load_average_at_start": h.load_average()}
    with h.services(database_url=args.database_url) as world:
        sim = world.sim
        report["setup_seconds"] = h.load_contacts(world.env, "Bench Reconcile", args.contacts, demo=False)
        app = h.make_app(world.env)
        key = sim.control.new_account("Bench")
        list_id = sim.control.create_list(key, "Bench reconcile")["id"]
        started = time.monotonic()
        connector_id = h.activate(app, "Bench Reconcile", key, list_id)
        report["copy_seconds"] = round(time.monotonic() - started, 2)
        time.sleep(1.1)  # Mailchimp's since filters have one-second precision
        step = max(1, args.contacts // args.drift)
        edits = [{"email": f"bench{i}@bench-anaba.fr", "action": "edit-profile",
                  "data": {"merge_fields": {"FNAME": f"Changed in Mailchimp {i}"}}}
                 for i in range(0, step * args.drift, step)][:args.drift]
        for start in range(0, len(edits), 1000):
            sim.control.bulk_member_actions(list_id, edits[start:start + 1000])
        time.sleep(1.1)
        report["first"] = _reconcile(app, sim, connector_id)
        sim.control.clear_requests()
        started = time.monotonic()
        with app.app_context():
            from portal.sync import replication

            while replication.next_due(connector_id) is not None:
                replication.replicate(connector_id, rounds=100)
        log = sim.control.requests_log()
        report["repair"] = {"seconds": round(time.monotonic() - started, 2), "api_calls": len(log),
                            "calls_by_endpoint": h.calls_by_endpoint(log)}
        checked = sim.control.lookup_members(list_id, [e["email"] for e in edits])
        report["repaired_members"] = sum(1 for m in checked.values()
                                         if not str((m or {}).get("merge_fields", {}).get("FNAME", "")).startswith(
                                             "Changed"))
        time.sleep(1.1)
        report["second"] = _reconcile(app, sim, connector_id)
        report["worker_peak_rss_mb"] = h.peak_rss_mb()
        report["load_average_at_end"] = h.load_average()
    h.report(report)


def _reconcile(app, sim, connector_id: int) -> dict:
    from portal.extensions import db
    from portal.models import SyncRun
    from portal.sync import reconciliation

    sim.control.clear_requests()
    started = time.monotonic()
    with app.app_context():
        run = reconciliation.start(connector_id)
        reconciliation.run(run.id)
        run = db.session.get(SyncRun, run.id)
        result = dict(run.result or {})
        status = run.status
        db.session.remove()
    log = sim.control.requests_log()
    return {"seconds": round(time.monotonic() - started, 2), "status": status, "api_calls": len(log),
            "writes": sum(1 for r in log if r["method"] != "GET"), "members_read": result.get("members_read"),
            "drift": result.get("drift"), "repushed": result.get("repushed")}
