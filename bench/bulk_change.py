"""`python -m bench bulk_change`: bulk changes in anaba reach Mailchimp through the batch endpoints (R10).

An active connector over `--contacts` opt-in contacts and one real worker. Then a tag is added to
`--tagged` contacts at once, and later `--opt-out` contacts become opt-out. For each: the API
calls used, against the minimum the API allows (one static-segment call per 500 e-mails; one
batch-subscribe call per 500 members), and the time until Mailchimp matches anaba.
"""
from __future__ import annotations

import argparse
import math
import time

from bench import _harness as h


def main(argv: list[str]) -> None:
    """Run the benchmark and print its JSON report."""
    parser = argparse.ArgumentParser(prog="python -m bench bulk_change")
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--tagged", type=int, default=20_000)
    parser.add_argument("--opt-out", type=int, default=5_000)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--latency-per-member-ms", type=float, default=0.0)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args(argv)

    import logging

    logging.disable(logging.WARNING)
    report: dict = {"benchmark": "bulk_change", "contacts": args.contacts, "tagged_contacts": args.tagged,
                    "opt_out_contacts": args.opt_out, "latency_ms": args.latency_ms,
                    "latency_per_member_ms": args.latency_per_member_ms, "load_average_at_start": h.load_average()}
    with h.services(database_url=args.database_url) as world:
        sim = world.sim
        report["setup_seconds"] = h.load_contacts(world.env, "Bench Bulk", args.contacts, demo=False)
        app = h.make_app(world.env)
        key = sim.control.new_account("Bench")
        list_id = sim.control.create_list(key, "Bench bulk")["id"]
        h.activate(app, "Bench Bulk", key, list_id)
        if args.latency_ms or args.latency_per_member_ms:
            sim.control.set_faults(key, latency_ms=args.latency_ms, latency_per_member_ms=args.latency_per_member_ms)
        h.start_worker(world, "live", "bulk", "reports")
        with app.app_context():
            from portal.crm import contacts as crm
            from portal.crm.accounts import find_workspace

            ws = find_workspace("Bench Bulk")
            ids = [c.id for c in crm.list_by_id(ws.id, limit=args.contacts)]
        emails = [f"bench{i}@bench-anaba.fr" for i in range(args.contacts)]

        report["tag"] = _phase(
            app, sim, list_id, emails[:args.tagged],
            lambda: crm.add_tag_to(ws.id, ids[:args.tagged], "Salon 2026", actor="bench", channel="api"),
            lambda m: "Salon 2026" in m.get("tags", []))
        report["opt_out"] = _phase(
            app, sim, list_id, emails[:args.opt_out],
            lambda: crm.set_consent_of(ws.id, ids[:args.opt_out], "opt_out", actor="bench", channel="api"),
            lambda m: m.get("status") == "unsubscribed")
        report["load_average_at_end"] = h.load_average()
    h.report(report)


def _phase(app, sim, list_id: str, emails: list[str], change, check) -> dict:
    """Make one bulk change in anaba and time it until every member in `emails` passes `check`;
    the calls it took against the minimum (one call per 500 e-mails)."""
    sim.control.clear_requests()
    started = time.monotonic()
    with app.app_context():
        change()
    committed = time.monotonic() - started
    _wait_until(lambda: _all(sim, list_id, emails, check), 600)
    matched = time.monotonic() - started
    # The simulator applies a call before it waits out its modelled latency: the last calls may
    # still be on their way back when the members match. Count them once the worker is done.
    _wait_until(lambda: _nothing_pending(app), 600)
    log = sim.control.requests_log()
    minimum = math.ceil(len(emails) / 500)
    return {"seconds": round(matched, 2), "seconds_until_recorded": round(time.monotonic() - started, 2),
            "seconds_to_commit": round(committed, 2),
            "api_calls": len(log), "minimum_calls": minimum, "calls_to_minimum": round(len(log) / minimum, 3),
            "calls_by_endpoint": h.calls_by_endpoint(log),
            "peak_calls_in_flight": max(sim.control.peak_concurrency().values(), default=0)}


def _nothing_pending(app) -> bool:
    """True when no contact waits for a push any more (the worker recorded every answer)."""
    from sqlalchemy import func, select

    from portal.extensions import db
    from portal.models import ContactSync

    with app.app_context():
        waiting = db.session.scalar(select(func.count()).select_from(ContactSync).where(
            ContactSync.dirty_at.is_not(None)))
        db.session.remove()
    return not waiting


def _wait_until(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting for Mailchimp to match")
        time.sleep(0.2)


def _all(sim, list_id: str, emails: list[str], check) -> bool:
    """True when every one of these members passes `check` (read without any API call)."""
    for start in range(0, len(emails), 2000):
        found = sim.control.lookup_members(list_id, emails[start:start + 2000])
        if not all(member is not None and check(member) for member in found.values()):
            return False
    return True
