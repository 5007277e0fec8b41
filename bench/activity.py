"""Benchmark of the weekly campaign activity import (R18) against the Mailchimp simulator; prints one JSON document.

    python -m bench activity                                   # 100,000 members, 20 campaigns
    python -m bench activity --members 10000 --campaigns 5
    python -m bench activity --latency-ms 60 --latency-per-member-ms 0.2

Starts its own simulator and redis-server and a fresh SQLite database (or ``--database-url``,
emptied first). In a separate process it creates a workspace with ``--members`` contacts, an
active connector whose audience holds them (all but ``--strangers`` of the audience's members
are contacts, so the "no contact" path runs too) and their sync rows, as after a copy; then
sends ``--campaigns`` simulated campaigns, one a day over the last days, with realistic rates
(about 1,000,000 opens, clicks, bounces and unsubscribes for 100,000 members × 20 campaigns,
plus one "received" per delivered recipient).

Each import runs in a fresh process, as in a worker's work horse, so its peak RSS is its own
(``resource.getrusage``, app included). Reported for the first import and for a second one
right after it (which must add nothing): seconds, activities added and skipped, API calls by
endpoint, peak RSS, and the simulator's modelled latency: Σ ``modelled_latency_ms`` of the
import's calls, and the API-bound floor = that sum ÷ 10 (the key's connections; no client can
go faster) and ÷ the import's own concurrency (``PREFETCH`` page readers). Then, on the data it
left: the contacts table with each activity filter and the busiest contact's tab (``screens_ms``).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import shutil
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKSPACE = "Bench Activity"
# Rates close to a French small business's newsletter (a quarter open, a few percent click).
RATES = {"open_rate": 0.25, "click_rate": 0.04, "bounce_rate": 0.005, "soft_bounce_rate": 0.01,
         "unsubscribe_rate": 0.003}


def _make_app(env: dict):
    os.environ["ANABA_INSTANCE"] = env["ANABA_INSTANCE"]
    from portal import create_app

    return create_app({"env": env, "MAIL_SUPPRESS_SEND": True})


def _setup(env: dict, members: int, strangers: int, api_key: str, list_id: str) -> None:
    """In a separate process: tables, contacts, members in the audience, the connector and its sync rows."""
    import logging

    logging.disable(logging.INFO)
    sys.path.insert(0, str(ROOT))
    app = _make_app(env)
    with app.app_context():
        from flask import current_app
        from sqlalchemy import insert, select

        from portal.crm.accounts import get_or_create_workspace
        from portal.crm.demo import make_rows
        from portal.extensions import db
        from portal.mailchimp import encrypt_secret, mask_api_key, subscriber_hash
        from portal.models import Connector, ConnectorStatus, Contact, ContactSync, SyncState, utcnow
        from portal.sync.mailchimp_access import client_for

        db.drop_all()
        db.create_all()
        ws, _token = get_or_create_workspace(WORKSPACE)
        contacts = members - strangers
        rows = [dict(row, consent="opt_in") for row, _tags in make_rows(ws.id, contacts, seed=2026, bad_email_rate=0,
                                                                       duplicate_rate=0)]
        for start in range(0, len(rows), 5000):
            db.session.execute(insert(Contact), rows[start:start + 5000])
        db.session.commit()
        connector = Connector(workspace_id=ws.id, status=ConnectorStatus.ACTIVE, audience_id=list_id,
                              audience_name="Bench audience", api_key_hint=mask_api_key(api_key),
                              api_key_encrypted=encrypt_secret(api_key, current_app.config["FERNET_KEY"]),
                              field_mapping=[], merge_fields_to_create=[], activated_at=utcnow())
        db.session.add(connector)
        db.session.commit()
        pairs = db.session.execute(select(Contact.id, Contact.email).where(Contact.workspace_id == ws.id)).all()
        emails = [e for _id, e in pairs] + [f"inconnu{i}@autre-base.fr" for i in range(strangers)]
        with client_for(connector) as client:
            for start in range(0, len(emails), 500):
                client.batch_subscribe(list_id, [{"email_address": e, "status": "subscribed"}
                                                 for e in emails[start:start + 500]], fields=["total_created"])
        now = utcnow()
        sync = [{"connector_id": connector.id, "workspace_id": ws.id, "contact_id": cid, "state": SyncState.SYNCED,
                 "reason": "", "member_email": email, "member_hash": subscriber_hash(email), "synced_tags": [],
                 "last_synced_at": now, "error_kind": "", "error_message": "", "error_fix": "", "error_field": "",
                 "attempts": 0, "owner_chosen": False, "updated_at": now} for cid, email in pairs]
        for start in range(0, len(sync), 5000):
            db.session.execute(insert(ContactSync), sync[start:start + 5000])
        db.session.commit()
        if db.engine.dialect.name == "sqlite":
            db.session.execute(db.text("ANALYZE"))
            db.session.commit()


def _import(env: dict, prefetch: int | None, out) -> None:
    """In a fresh process (a work horse): one activity import of the bench connector; its figures."""
    import logging

    logging.disable(logging.WARNING)
    sys.path.insert(0, str(ROOT))
    app = _make_app(env)
    with app.app_context():
        from sqlalchemy import select

        from portal import jobs
        from portal.extensions import db
        from portal.models import Connector
        from portal.sync import activity_import
        from portal.sync import runs as sync_runs

        if prefetch:
            activity_import.PREFETCH = prefetch
        connector_id = db.session.scalar(select(Connector.id))
        run = jobs.import_activity_now(connector_id, in_background=False)
        cpu = resource.getrusage(resource.RUSAGE_SELF)
        started = time.monotonic()
        activity_import.run(run.id)
        seconds = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
        run = sync_runs.get(run.id)
        counts = dict(run.counts or {})
        out.put({
            "status": run.status, "seconds": round(seconds, 2),
            "activities_added": int(counts.get("added", 0)), "skipped_no_contact": int(counts.get("no_contact", 0)),
            "campaigns": int(counts.get("campaigns", 0)), "errors": int(run.error_count or 0),
            "worker_cpu_seconds": round(after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime, 2),
            "peak_rss_mb": round(after.ru_maxrss / 1024.0, 1),
            "prefetch": activity_import.PREFETCH,
        })
        db.session.remove()
        db.engine.dispose()


def _screens(env: dict, out) -> None:
    """In a fresh process: the contacts table with each activity filter and a contact's tab, as
    the views call them (median ms of 7 runs, the first one dropped)."""
    import logging
    import statistics

    logging.disable(logging.WARNING)
    sys.path.insert(0, str(ROOT))
    app = _make_app(env)
    with app.app_context():
        from sqlalchemy import func, select

        from portal.crm import contacts as crm
        from portal.extensions import db
        from portal.models import Activity, Workspace

        ws = db.session.scalar(select(Workspace.id).where(Workspace.name == WORKSPACE))
        busiest = db.session.execute(select(Activity.contact_id, func.count()).group_by(Activity.contact_id)
                                     .order_by(func.count().desc()).limit(1)).first()

        def median_ms(call) -> float:
            times = []
            for _ in range(8):
                started = time.perf_counter()
                call()
                times.append((time.perf_counter() - started) * 1000)
            return round(statistics.median(times[1:]), 1)

        figures = {}
        for opened in ("", "1", "4", "13", "never"):
            page = crm.search_contacts(ws, opened=opened)
            figures[f"table_opened={opened or 'all'}"] = {
                "ms": median_ms(lambda o=opened: crm.search_contacts(ws, opened=o)), "contacts": page.total}
        figures["record_tab_busiest_contact"] = {
            "ms": median_ms(lambda: crm.contact_campaign_timeline(ws, busiest[0])), "activities": busiest[1]}
        out.put(figures)
        db.session.remove()
        db.engine.dispose()


def _run_in_child(ctx, target, *args) -> dict:
    out = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, out))
    proc.start()
    result = out.get()
    proc.join()
    return result


def _run_import(ctx, env: dict, prefetch: int | None) -> dict:
    out = ctx.Queue()
    proc = ctx.Process(target=_import, args=(env, prefetch, out))
    proc.start()
    result = out.get()
    proc.join()
    return result


def _calls(sim, seq: int) -> dict:
    log = sim.control.requests_log(seq)
    modelled = sum(r.get("modelled_latency_ms") or 0 for r in log)
    busy = sum(r.get("duration_ms") or 0 for r in log)
    return {
        "api_busy_seconds": round(busy / 1000, 2),
        "api_calls": len(log),
        "api_calls_by_endpoint": dict(sorted(Counter(f'{r["method"]} {r["path_template"]}' for r in log).items())),
        "api_items": sum(r.get("items") or 0 for r in log),
        "modelled_latency_seconds": round(modelled / 1000, 2),
        "last_seq": log[-1]["seq"] if log else seq,
    }


def _database(workdir: Path, url: str | None) -> str:
    return url or f"sqlite:///{workdir / 'bench.sqlite'}"


def _database_size_mb(url: str) -> float | None:
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        return round(sum(p.stat().st_size for p in path.parent.glob(path.name + "*")) / 1e6, 1)
    return None


def main(argv: list[str]) -> None:
    """Run the benchmark and print its JSON report."""
    parser = argparse.ArgumentParser(prog="python -m bench activity")
    parser.add_argument("--members", type=int, default=100_000, help="audience members (contacts + strangers)")
    parser.add_argument("--strangers", type=int, default=None, help="members without a contact (default 2%%)")
    parser.add_argument("--campaigns", type=int, default=20)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--latency-per-member-ms", type=float, default=0.0)
    parser.add_argument("--prefetch", type=int, default=None, help="page readers (default: the module's PREFETCH)")
    parser.add_argument("--database-url", default=None, help="PostgreSQL to use instead of SQLite (emptied!)")
    args = parser.parse_args(argv)
    strangers = args.strangers if args.strangers is not None else args.members // 50

    import logging

    logging.disable(logging.WARNING)
    sys.path.insert(0, str(ROOT))
    from cryptography.fernet import Fernet

    from bench.initial_copy import _free_port, _start_redis
    from mailchimp_sim.testing import SimulatorProcess

    workdir = Path(tempfile.mkdtemp(prefix="bench-activity-"))
    redis_proc, redis_url = _start_redis(workdir)
    report: dict = {"benchmark": "activity", "members": args.members, "strangers": strangers,
                    "campaigns": args.campaigns, "latency_ms": args.latency_ms,
                    "latency_per_member_ms": args.latency_per_member_ms, "cpus": os.cpu_count(),
                    "rates": RATES, "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}
    ctx = multiprocessing.get_context("spawn")
    try:
        with SimulatorProcess(latency_ms=0) as sim:
            database_url = _database(workdir, args.database_url)
            report["database"] = database_url.split(":", 1)[0]
            env = {
                "DATABASE_URL": database_url, "REDIS_URL": redis_url,
                "SECRET_KEY": "bench", "FERNET_KEY": Fernet.generate_key().decode(),
                "MAILCHIMP_API_BASE": sim.api_base, "MAILCHIMP_TIMEOUT": "120",
                "ANABA_INSTANCE": str(workdir / "instance"), "ANABA_ENV": "test",
                "MAIL_SERVER": "127.0.0.1", "MAIL_PORT": str(_free_port()),
                "PUBLIC_BASE_URL": "http://portal.localhost:5000",
            }
            key = sim.control.new_account("Bench")
            list_id = sim.control.create_list(key, "Bench audience")["id"]
            started = time.monotonic()
            loader = ctx.Process(target=_setup, args=(env, args.members, strangers, key, list_id))
            loader.start()
            loader.join()
            if loader.exitcode:
                sys.exit("setup failed")
            now = datetime.now(timezone.utc).replace(microsecond=0)
            events = recipients = 0
            for n in range(args.campaigns):
                send_time = now - timedelta(days=args.campaigns - n, hours=3)
                sent = sim.control.send_campaign(list_id, seed=1000 + n, send_time=send_time.isoformat(),
                                                 subject=f"Lettre n°{n + 1}", **RATES)
                events += sent["simulation"]["events"]
                recipients += sent["simulation"]["recipients"]
            report["setup_seconds"] = round(time.monotonic() - started, 1)
            report["generated"] = {"recipients": recipients, "events": events}
            if args.latency_ms or args.latency_per_member_ms:
                sim.control.set_faults(key, latency_ms=args.latency_ms,
                                       latency_per_member_ms=args.latency_per_member_ms)
            seq = _calls(sim, 0)["last_seq"]
            from bench.initial_copy import _process_cpu

            for name in ("first", "second"):
                sim.control.clear_requests()
                sim_cpu = _process_cpu(sim.server_pid)
                figures = _run_import(ctx, env, args.prefetch)
                figures["simulator_cpu_seconds"] = round(_process_cpu(sim.server_pid) - sim_cpu, 2)
                calls = _calls(sim, seq)
                seq = calls.pop("last_seq")
                figures.update(calls)
                modelled = figures["modelled_latency_seconds"]
                if modelled:
                    figures["api_floor_seconds_10_connections"] = round(modelled / 10, 2)
                    figures["api_floor_seconds_own_concurrency"] = round(modelled / figures["prefetch"], 2)
                    figures["ratio_to_floor_10_connections"] = round(figures["seconds"] / (modelled / 10), 2)
                    figures["ratio_to_floor_own_concurrency"] = round(
                        figures["seconds"] / (modelled / figures["prefetch"]), 2)
                figures["mean_api_concurrency"] = round(figures["api_busy_seconds"] / figures["seconds"], 2)
                figures["peak_concurrency"] = sim.control.peak_concurrency().get(key[-8:])
                report[name] = figures
            first, second = report["first"], report["second"]
            report["second_to_first_time_ratio"] = round(second["seconds"] / first["seconds"], 3)
            report["screens_ms"] = _run_in_child(ctx, _screens, env)
            report["targets"] = {
                "first_seconds_le_120": first["seconds"] <= 120,
                "first_peak_rss_mb_le_300": first["peak_rss_mb"] <= 300,
                "second_adds_nothing": second["activities_added"] == 0,
                "second_le_20_percent_of_first": second["seconds"] <= 0.2 * first["seconds"],
            }
            report["database_size_mb"] = _database_size_mb(database_url)
            report["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    finally:
        redis_proc.terminate()
        redis_proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(report, indent=2, ensure_ascii=False, default=str))


if __name__ == "__main__":
    main(sys.argv[1:])
