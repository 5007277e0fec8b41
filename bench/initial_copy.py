"""Benchmark of the initial copy (R8) against the Mailchimp simulator; prints one JSON document.

    python -m bench initial_copy --contacts 100000
    python -m bench initial_copy --contacts 100000 --latency-ms 300 --latency-per-member-ms 10 [--budget 8]
    python -m bench initial_copy --contacts 1000000 [--database-url postgresql+psycopg://…]
    python -m bench initial_copy --contacts 2000 --latency-ms 100 --strategy naive

Starts its own simulator (with its latency model: ``--latency-ms`` per call and
``--latency-per-member-ms`` per member or e-mail of a bulk call) and redis-server, fills a fresh
database (a SQLite file, or ``--database-url``) with demo contacts (about 30 % carrying 1–3 of 10
tags) in a separate process, then runs the consent import and the copy in this process, as a
worker would, with ``--budget`` batch calls in flight. It reports: wall time, contacts/s, API
calls by endpoint, the fewest calls the API allows for this data and the ratio, the API-bound
floor (the sum of every copy call's modelled latency ÷ the budget) and ``wall_to_floor``, this
process's peak RSS, the simulator's peak connections for the key, and the member writes and
time of a second run with nothing changed (writes must be 0).

``--strategy naive`` copies the same contacts the way most connectors do — one ``PUT`` per
member and one tags ``POST`` per tagged member — and then the batch way on a fresh audience,
and prints the per-contact cost ratio between the two.

``--profile PATH`` writes a cProfile of the copy (the first run, not the consent import nor the
second run) to PATH, for ``python -m pstats PATH``; it profiles the worker's own thread only
(the threads sending the batch calls are not in it), and slows the copy down.
"""
from __future__ import annotations

import argparse
import cProfile
import math
import os
import resource
import time
from collections import Counter

from bench import _harness as h


def _minimum_calls(connector_id: int) -> dict:
    """The fewest calls the API allows for what was copied: members/500 + Σ tags ceil(n/500)."""
    from sqlalchemy import func, select

    from portal.extensions import db
    from portal.models import ContactSync, Tag, contact_tags

    members = db.session.scalar(select(func.count()).select_from(ContactSync).where(
        ContactSync.connector_id == connector_id, ContactSync.state == "synced")) or 0
    per_tag = db.session.execute(
        select(Tag.name, func.count()).select_from(ContactSync)
        .join(contact_tags, contact_tags.c.contact_id == ContactSync.contact_id)
        .join(Tag, Tag.id == contact_tags.c.tag_id)
        .where(ContactSync.connector_id == connector_id, ContactSync.state == "synced")
        .group_by(Tag.name)
    ).all()
    member_calls = math.ceil(members / 500)
    tag_calls = sum(math.ceil(n / 500) for _name, n in per_tag)
    return {"members_synced": members, "member_calls": member_calls, "tag_calls": tag_calls,
            "total": member_calls + tag_calls, "tagged_members_by_tag": dict(per_tag)}


def _by_endpoint(log: list[dict]) -> dict:
    counts = Counter(f'{r["method"]} {r["path_template"]}' for r in log)
    return dict(sorted(counts.items()))


def _writes(log: list[dict]) -> int:
    return sum(1 for r in log if r["method"] != "GET")


def _cpu_seconds() -> float:
    """User + system CPU time of this process (robust when other work shares the machine)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _process_cpu(pid: int) -> float:
    """User + system CPU time of another process and its children (the simulator)."""
    import psutil

    root = psutil.Process(pid)
    total = 0.0
    for proc in [root] + root.children(recursive=True):  # the simulator serves from a child process
        times = proc.cpu_times()
        total += times.user + times.system
    return total


def _batch_copy(app, sim, key: str, list_id: str, workspace: str, preview: bool = False,
                profile: str | None = None) -> dict:
    """Submit, import consent, validate and copy with the engine; then copy again."""
    from sqlalchemy import select

    from portal.extensions import db
    from portal.models import SyncRun, Workspace
    from portal import jobs
    from portal.sync import runs as sync_runs
    from portal.sync import consent_import, initial_copy
    from portal.sync import preview as preview_job

    with app.app_context():
        ws = db.session.scalar(select(Workspace).where(Workspace.name == workspace))
        sim.control.clear_requests()
        started = time.monotonic()
        connector = jobs.submit_connector(ws.id, None, key, list_id)
        consent_run = sync_runs.latest_run(connector.id, "consent_import")
        consent_import.run(consent_run.id)
        consent_seconds = time.monotonic() - started
        preview_seconds = None
        if preview:
            preview_started = time.monotonic()
            preview_job.run(sync_runs.latest_run(connector.id, "preview").id)
            preview_seconds = round(time.monotonic() - preview_started, 2)
        copy_run = jobs.validate_connector(connector.id, None)
        before_copy = sim.control.requests_log()
        copy_seq = before_copy[-1]["seq"] if before_copy else 0
        cpu_before = _cpu_seconds()
        sim_cpu_before = _process_cpu(sim.server_pid)
        profiler = cProfile.Profile() if profile else None
        copy_started = time.monotonic()
        if profiler is not None:
            profiler.runcall(initial_copy.run, copy_run.id)
            profiler.dump_stats(profile)
        else:
            initial_copy.run(copy_run.id)
        copy_seconds = time.monotonic() - copy_started
        copy_cpu = _cpu_seconds() - cpu_before
        sim_cpu = _process_cpu(sim.server_pid) - sim_cpu_before
        log = sim.control.requests_log()
        run = db.session.get(SyncRun, copy_run.id)
        minimum = _minimum_calls(connector.id)
        copy_log = [r for r in log if r["seq"] > 0]
        calls = len(copy_log)
        writes = _writes(copy_log)
        seq = log[-1]["seq"] if log else 0
        rerun = jobs.copy_again(connector.id)
        rerun_started = time.monotonic()
        initial_copy.run(rerun.id)
        rerun_seconds = time.monotonic() - rerun_started
        second_log = sim.control.requests_log(seq)
        filled = _reads_of_the_filled_audience(connector, (consent_import.run, preview_job.run)) if preview else None
        contacts = run.total
        copy_only = [r for r in log if r["seq"] > copy_seq]
        budget = int(app.config["MAILCHIMP_BULK_CONNECTIONS"])
        modelled = sum(float(r.get("modelled_latency_ms") or 0) for r in copy_only) / 1000.0
        floor = modelled / budget if modelled else None
        return {
            "budget": budget,
            "copy_calls": len(copy_only),
            "modelled_latency_seconds": round(modelled, 2),
            "api_bound_floor_seconds": round(floor, 2) if floor else None,
            "wall_to_floor": round(copy_seconds / floor, 3) if floor else None,
            "status": run.status, "contacts": contacts, "counts": run.counts,
            "consent_import_seconds": round(consent_seconds, 2),
            "preview_seconds": preview_seconds,
            "copy_seconds": round(copy_seconds, 2),
            "copy_worker_cpu_seconds": round(copy_cpu, 2),
            "copy_simulator_cpu_seconds": round(sim_cpu, 2),
            "contacts_per_second": round(contacts / copy_seconds, 1) if copy_seconds else None,
            "api_calls": calls, "api_writes": writes,
            "api_calls_by_endpoint": _by_endpoint(copy_log),
            "minimum_calls": minimum,
            "ratio_writes_to_minimum": round(writes / minimum["total"], 3) if minimum["total"] else None,
            "ratio_calls_to_minimum": round(calls / minimum["total"], 3) if minimum["total"] else None,
            "second_run": {"seconds": round(rerun_seconds, 2), "api_calls": len(second_log),
                           "member_writes": _writes(second_log),
                           "calls_by_endpoint": _by_endpoint(second_log)},
            "seconds_per_synced_contact": (copy_seconds / minimum["members_synced"]) if minimum["members_synced"] else None,
            "reads_of_the_filled_audience": filled,
        }


def _naive_copy(app, sim, key: str, list_id: str, workspace: str) -> dict:
    """One PUT per member, one tags POST per tagged member, in contact order (no engine)."""
    from sqlalchemy import select

    from portal.extensions import db
    from portal.mailchimp.payload import build_member, default_mappings
    from portal.models import Contact, Workspace
    from portal.sync.mailchimp_access import client_for
    from portal.sync.eligibility import judge

    with app.app_context():
        ws = db.session.scalar(select(Workspace).where(Workspace.name == workspace))
        mappings = [m for m in default_mappings() if m.tag != "COMPANY"]
        sim.control.clear_requests()
        synced = errors = 0
        started = time.monotonic()
        with client_for(key) as client:
            last = 0
            while True:
                contacts = list(db.session.scalars(select(Contact).where(
                    Contact.workspace_id == ws.id, Contact.deleted_at.is_(None), Contact.id > last)
                    .order_by(Contact.id).limit(500)))
                if not contacts:
                    break
                last = contacts[-1].id
                verdicts = judge(ws.id, None, contacts)
                for contact in contacts:
                    if not verdicts[contact.id].eligible:
                        continue
                    payload = build_member(contact, mappings, status_key="status_if_new")
                    try:
                        client.upsert_member(list_id, contact.email, payload)
                        if contact.tag_names:
                            client.set_member_tags(list_id, contact.email, add=contact.tag_names)
                        synced += 1
                    except Exception:  # noqa: BLE001 - counted, as a naive connector would log it
                        errors += 1
        seconds = time.monotonic() - started
        log = sim.control.requests_log()
        return {"seconds": round(seconds, 2), "members_synced": synced, "errors": errors,
                "api_calls": len(log), "api_calls_by_endpoint": _by_endpoint(log),
                "seconds_per_synced_contact": seconds / synced if synced else None}


def _reads_of_the_filled_audience(connector, runners) -> dict:
    """After the copy, the consent import and the preview again, now that the audience holds every
    member (paged at 1,000 with ``fields=``): their time, and the process's memory high-water mark."""
    from portal.extensions import db
    from portal.models import RunKind, SyncRun
    from portal.sync import runs as sync_runs

    figures: dict = {"peak_rss_mb_before": h.peak_rss_mb()}
    for kind, runner in zip((RunKind.CONSENT_IMPORT, RunKind.PREVIEW), runners):
        run = sync_runs.create_run(connector, kind)
        db.session.commit()
        started = time.monotonic()
        runner(run.id)
        db.session.expire_all()
        run = db.session.get(SyncRun, run.id)
        figures[kind.value] = {"seconds": round(time.monotonic() - started, 2), "status": run.status,
                               "members_read": (run.counts or {}).get("members")
                               or ((run.result or {}).get("audience") or {}).get("members")}
    figures["peak_rss_mb_after"] = h.peak_rss_mb()
    return figures


def main(argv: list[str]) -> None:
    """Run the benchmark and print its JSON report."""
    parser = argparse.ArgumentParser(prog="python -m bench initial_copy")
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--strategy", choices=("batch", "naive"), default="batch")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--latency-per-member-ms", type=float, default=0.0)
    parser.add_argument("--budget", type=int, default=8, help="batch calls in flight (MAILCHIMP_BULK_CONNECTIONS)")
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL (default: a SQLite file)")
    parser.add_argument("--preview", action="store_true", help="also time the dry-run preview (R7), and the consent import and preview again against the filled audience")
    parser.add_argument("--profile", metavar="PATH", default=None,
                        help="write a cProfile of the copy (the worker's thread) to PATH")
    args = parser.parse_args(argv)

    import logging

    logging.disable(logging.WARNING)
    workspace = "Bench Copy"
    report: dict = {"benchmark": "initial_copy", "contacts": args.contacts, "strategy": args.strategy,
                    "latency_ms": args.latency_ms, "latency_per_member_ms": args.latency_per_member_ms,
                    "database": "postgresql" if args.database_url else "sqlite", "cpus": os.cpu_count(),
                    "load_average_at_start": h.load_average()}
    with h.services(latency_ms=args.latency_ms, latency_per_member_ms=args.latency_per_member_ms,
                    database_url=args.database_url) as world:
        sim = world.sim
        world.env["MAILCHIMP_BULK_CONNECTIONS"] = str(args.budget)
        report["setup_seconds"] = h.load_contacts(world.env, workspace, args.contacts)
        app = h.make_app(world.env)
        key = sim.control.new_account("Bench")
        list_id = sim.control.create_list(key, "Bench audience")["id"]
        if args.strategy == "naive":
            naive = _naive_copy(app, sim, key, list_id, workspace)
            report["naive"] = naive
            key2 = sim.control.new_account("Bench batch")
            list2 = sim.control.create_list(key2, "Bench audience (batch)")["id"]
            batch = _batch_copy(app, sim, key2, list2, workspace)
            report["batch"] = batch
            per_naive = naive["seconds_per_synced_contact"]
            per_batch = batch["seconds_per_synced_contact"]
            report["per_contact_cost_ratio_naive_to_batch"] = round(per_naive / per_batch, 1) if per_batch else None
            report["calls_ratio_naive_to_batch"] = round(naive["api_calls"] / batch["api_calls"], 1)
        else:
            report.update(_batch_copy(app, sim, key, list_id, workspace, preview=args.preview,
                                      profile=args.profile))
        report["worker_peak_rss_mb"] = h.peak_rss_mb()
        report["simulator_peak_concurrency"] = sim.control.peak_concurrency()
        report["load_average_at_end"] = h.load_average()
        with app.app_context():
            from portal.extensions import db

            db.session.remove()
            db.engine.dispose()
    h.report(report)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
