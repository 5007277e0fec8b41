"""Server time of the contacts screens with a large workspace (issue 2's performance target).

    python -m bench contacts_ui [--contacts 100000] [--runs 30] [--database-url URL] [--import-rows N]
                                [--connector] [--keep DIR] [--only SCREEN] [--try-index "CREATE INDEX ..."]

Builds a fresh database (a SQLite file in a temporary directory unless `--database-url` names a
PostgreSQL database, which is WIPED), inserts the contacts with `portal.crm.demo`, logs a
customer in through the login form with Flask's test client and times each request in-process
(server time, no network). With `--import-rows`, also times a CSV import of that many rows
(the background job run in-process). Prints one JSON document; target: every median ≤ 150 ms.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def _time(client, url: str, runs: int, headers: dict | None = None) -> dict:
    """Median, p95, min and max milliseconds of `runs` GETs of `url` (after two warm-up requests)."""
    for _ in range(2):
        response = client.get(url, headers=headers)
        if response.status_code != 200:
            raise SystemExit(f"{url} answered {response.status_code}")
    timings, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        response = client.get(url, headers=headers)
        response.get_data()
        timings.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"{url} answered {response.status_code}")
    return {
        "url": url, "runs": runs,
        "median_ms": round(statistics.median(timings), 1), "p95_ms": round(_percentile(timings, 95), 1),
        "min_ms": round(min(timings), 1), "max_ms": round(max(timings), 1),
        # CPU time of this process (server + test client): steadier than wall time on a busy machine.
        "median_cpu_ms": round(statistics.median(cpu), 1),
    }


def _fake_copy(workspace_id: int) -> None:
    """An active connector and the sync rows a finished copy leaves, written straight to the
    database: synced for opt-in contacts with an address (one in 150 refused as an invalid
    address), the reason for the others, the second and later holders of a shared address left
    out for it (R2, R17, R19)."""
    from portal.extensions import db
    from portal.models import Connector, ConnectorStatus, Contact, ContactSync, utcnow

    connector = Connector(workspace_id=workspace_id, status=ConnectorStatus.ACTIVE, api_key_encrypted="-",
                          api_key_hint="…-us1", audience_id="bench0000", audience_name="Bench", activated_at=utcnow())
    db.session.add(connector)
    db.session.flush()
    seen: set[str] = set()
    now = utcnow()
    rows = db.session.execute(db.select(Contact.id, Contact.email_normalized, Contact.consent)
                              .where(Contact.workspace_id == workspace_id).order_by(Contact.id))
    batch: list[dict] = []
    for n, (cid, email, consent) in enumerate(rows):
        row = {"connector_id": connector.id, "workspace_id": workspace_id, "contact_id": cid, "state": "not_synced",
               "reason": "", "error_kind": "", "error_message": "", "error_fix": "", "error_field": "",
               "synced_tags": [], "attempts": 0, "owner_chosen": False, "erase_requested": False, "updated_at": now,
               "member_email": None, "last_synced_at": None}
        if not email:
            row["reason"] = "no_email"
        elif email in seen:
            row["reason"] = "shared_email"
        elif consent != "opt_in":
            row["reason"] = "no_consent" if consent == "unknown" else "opt_out"
        elif n % 150 == 0:
            row.update(state="error", error_kind="invalid_email", error_message="Invalid address", error_fix="edit_contact_and_retry",
                       error_field="email")
        else:
            row.update(state="synced", member_email=email, last_synced_at=now)
        if email:
            seen.add(email)
        batch.append(row)
        if len(batch) == 10000:
            db.session.execute(ContactSync.__table__.insert(), batch)
            batch = []
    if batch:
        db.session.execute(ContactSync.__table__.insert(), batch)
    db.session.commit()


def _login(client, email: str, password: str) -> None:
    html = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)
    client.environ_base["HTTP_X_CSRFTOKEN"] = token
    response = client.post("/login", data={"email": email, "password": password, "csrf_token": token})
    if response.status_code != 302:
        raise SystemExit("could not log in")
    # Logging in starts a new session, and CSRF tokens are tied to the session: take the new one.
    html = client.get("/contacts/").get_data(as_text=True)
    client.environ_base["HTTP_X_CSRFTOKEN"] = re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)


def _csv_file(count: int, seed: int) -> bytes:
    """A French-style CSV export (semicolons, UTF-8 with BOM) of `count` generated contacts."""
    from portal.crm.demo import make_rows

    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(["Prénom", "Nom", "E-mail", "Téléphone", "Société", "Fonction", "Adresse", "Code postal",
                     "Ville", "Pays", "Tags", "Consentement"])
    consent_words = {"opt_in": "oui", "opt_out": "non", "unknown": ""}
    for row, tags in make_rows(0, count, seed=seed):
        writer.writerow([row["first_name"], row["last_name"], row["email"] or "", row["phone"], row["company"],
                         row["job_title"], row["street"], row["postal_code"], row["city"], row["country"],
                         ", ".join(tags), consent_words[row["consent"]]])
    return out.getvalue().encode("utf-8-sig")


def _bench_import(app, client, rows: int) -> dict:
    """Upload a CSV of `rows` rows, confirm the guessed mapping, run the import job in-process."""
    from sqlalchemy import Text, cast, func, select

    from portal.crm import csv_import
    from portal.extensions import db
    from portal.models import CsvImport

    content = _csv_file(rows, seed=7)
    started = time.perf_counter()
    response = client.post("/contacts/import", data={"file": (io.BytesIO(content), "export.csv")},
                           content_type="multipart/form-data")
    upload_s = time.perf_counter() - started
    if response.status_code != 302:
        raise SystemExit(f"upload answered {response.status_code}")
    import_id = int(response.location.rstrip("/").rsplit("/", 1)[1])
    page_started = time.perf_counter()
    client.get(f"/contacts/import/{import_id}")
    mapping_page_s = time.perf_counter() - page_started
    with app.app_context():
        imp = db.session.get(CsvImport, import_id)
        columns = imp.mapping["columns"]
        csv_import.start(imp, columns)
        started = time.perf_counter()
        csv_import.run_import(import_id)
        job_s = time.perf_counter() - started
        imp = db.session.get(CsvImport, import_id)
        rejects_bytes = db.session.scalar(select(func.length(cast(CsvImport.rejects, Text)))
                                          .where(CsvImport.id == import_id))
        result = {
            "rows": rows, "file_mb": round(len(content) / 1e6, 1), "status": imp.status,
            "imported": imp.imported, "updated": imp.updated, "rejected": imp.rejected,
            "upload_and_analyze_s": round(upload_s, 2), "mapping_page_s": round(mapping_page_s, 2),
            "job_s": round(job_s, 1), "rows_per_s": round(rows / job_s), "rejects_json_bytes": rejects_bytes,
        }
    started = time.perf_counter()
    client.get(f"/contacts/import/{import_id}/rejects.csv").get_data()
    result["rejects_download_s"] = round(time.perf_counter() - started, 2)
    return result


def main(argv: list[str]) -> None:
    """Build the data, time the screens, print JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench contacts_ui", description=__doc__.split("\n")[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--database-url", help="PostgreSQL URL of a database this benchmark may wipe")
    parser.add_argument("--import-rows", type=int, default=0, help="also time a CSV import of this many rows")
    parser.add_argument("--connector", action="store_true",
                        help="also give the workspace an active connector whose copy is done (sync rows written "
                             "directly, no simulator) and time the connector page, the error list and the "
                             "state filter")
    parser.add_argument("--only", action="append", default=[], metavar="SCREEN",
                        help="time only this screen (repeatable; names as in the output)")
    parser.add_argument("--keep", metavar="DIR",
                        help="keep the database (the SQLite file in DIR, or the --database-url one) and, when it "
                             "already holds contacts, time it without seeding again (for trying queries on a "
                             "large base; the models' indexes are not re-created on a kept database, use "
                             "--try-index)")
    parser.add_argument("--try-index", action="append", default=[], metavar="DDL",
                        help="extra SQL run after seeding (CREATE/DROP INDEX, ANALYZE, VACUUM), to measure an "
                             "index before changing the models (repeatable)")
    args = parser.parse_args(argv)

    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-contacts-"))
    tmp.mkdir(parents=True, exist_ok=True)
    reuse = bool(args.keep) and (bool(args.database_url) or (tmp / "bench.sqlite").exists())
    database_url = args.database_url or f"sqlite:///{tmp / 'bench.sqlite'}"
    os.environ["ANABA_INSTANCE"] = str(tmp)
    sys.path.insert(0, str(ROOT))
    from portal import create_app
    from portal.crm.accounts import create_user, get_or_create_workspace
    from portal.crm.demo import insert_contacts
    from portal.db_setup import refresh_statistics
    from portal.extensions import db
    from portal.models import Contact, ContactSync, Tag

    env = {"DATABASE_URL": database_url, "ANABA_INSTANCE": str(tmp), "SECRET_KEY": "bench", "ANABA_ENV": "bench"}
    app = create_app({"env": env})
    app.logger.disabled = True

    with app.app_context():
        started = time.perf_counter()
        if reuse:
            reuse = db.inspect(db.engine).has_table("contact") and bool(db.session.scalar(
                db.select(Contact.id).limit(1)))
        if reuse:
            ws, _ = get_or_create_workspace("Bench SARL")
            args.contacts = db.session.scalar(db.select(db.func.count()).select_from(Contact))
        else:
            db.drop_all()
            db.create_all()
            ws, _ = get_or_create_workspace("Bench SARL")
            create_user("bench@example.org", "customer", "bench-password", ws)
            insert_contacts(ws.id, args.contacts)
            db.session.commit()
            refresh_statistics(db.engine)  # as seed-demo and large CSV imports do
        seed_s = time.perf_counter() - started
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for ddl in args.try_index:  # autocommit: VACUUM refuses to run inside a transaction
                conn.execute(db.text(ddl))
        tag = db.session.scalar(db.select(Tag).where(Tag.workspace_id == ws.id, Tag.name == "VIP"))
        middle = db.session.scalar(db.select(Contact.id).where(Contact.workspace_id == ws.id)
                                   .order_by(Contact.id).offset(args.contacts // 2).limit(1))
        tag_id, contact_id = tag.id, middle
        if args.connector and not (reuse and db.session.scalar(db.select(db.func.count()).select_from(ContactSync))):
            _fake_copy(ws.id)
            refresh_statistics(db.engine)

    client = app.test_client()
    _login(client, "bench@example.org", "bench-password")
    hx = {"HX-Request": "true"}
    deep_page = max(1, min(1500, -(-args.contacts // 50)))
    screens = {
        "first_page": ("/contacts/", None),
        "search": ("/contacts/?q=martin", hx),
        "search_two_words_rare": ("/contacts/?q=zoe+fontaine", hx),
        "tag_filter": (f"/contacts/?tag={tag_id}", hx),
        "tag_and_consent_filter": (f"/contacts/?tag={tag_id}&consent=opt_in", hx),
        "sort_newest": ("/contacts/?sort=-created", hx),
        "deep_page": (f"/contacts/?page={deep_page}", hx),
        "contact_record": (f"/contacts/{contact_id}", None),
        "contact_history": (f"/contacts/{contact_id}/history", hx),
    }
    if args.connector:
        screens.update({
            "connector_page": ("/mailchimp/", None),
            "error_list": ("/mailchimp/errors", None),
            "state_filter_error": ("/contacts/?mailchimp=error", hx),
            "state_filter_not_synced": ("/contacts/?mailchimp=not_synced", hx),
        })
    timings = {name: _time(client, url, args.runs, headers) for name, (url, headers) in screens.items()
               if not args.only or name in args.only}
    result = {
        "benchmark": "contacts_ui",
        "database": app.config["SQLALCHEMY_DATABASE_URI"].split(":", 1)[0],
        "contacts": args.contacts, "seed_s": round(seed_s, 1), "extra_indexes": args.try_index,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "target_median_ms": 150,
        "timings": timings,
        "all_medians_within_target": all(t["median_ms"] <= 150 for t in timings.values()),
    }
    if args.import_rows:
        result["csv_import"] = _bench_import(app, client, args.import_rows)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result, indent=2))
