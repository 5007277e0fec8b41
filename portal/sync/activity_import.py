"""The weekly import of campaign activity onto each contact (R18).

Once a week (Saturday 02:00, Paris time, from the one cron process) and whenever support asks,
each active connector gets a run of kind ``activity_import``. The run reads, for the
connector's audience only:

1. the campaigns sent since the newest send time already known (minus
   :data:`CAMPAIGN_OVERLAP`; the first import reaches back :data:`HISTORY`), and upserts them as
   :class:`~portal.models.ActivityCampaign` rows (title, subject, send time);
2. for each campaign to read — the new ones, those sent in the last :data:`FOLLOW` (opens and
   clicks keep arriving for weeks) and any left unfinished — three per-recipient reports, 1,000
   items a page with ``fields=`` so that the answers stay small:

   - ``sent-to`` once per campaign (recipients never change): a ``sent`` activity at the send
     time for each delivered recipient;
   - ``email-activity`` with ``since`` = the newest event seen last time minus
     :data:`ACTIVITY_OVERLAP` (the filter is exclusive at one-second precision): opens, clicks
     with their link, hard and soft bounces;
   - ``unsubscribed`` (no ``since`` in the API; a few rows per campaign).

Each recipient is matched to a contact through the connector's sync rows (what each contact was
sent as: ``member_hash``, then ``member_email``) and then the live contacts' current e-mail,
so a contact whose e-mail changed keeps its history and new activity lands on it. Recipients
that match no contact are counted as skipped, never an error.

Idempotent by construction: each activity has a natural key (contact, campaign, action, time,
link, occurrence within that second) under a unique constraint, written with ``INSERT … ON
CONFLICT DO NOTHING``, so running twice or with overlapping windows adds nothing twice.

Resumable: rows are written, sorted by contact, every :data:`BUFFER_ROWS` rows together with the
run's cursor (campaign, report, offset, ``since`` used, newest event seen) in ``run.result``,
under the run's lease (:func:`portal.background.checkpoint`); a crash goes on from the last
checkpoint. A campaign's bookmarks (:class:`ActivityCampaign`) advance only once all three
reports are read. The run ends by recomputing the per-contact summary (:func:`refresh_summary`)
that the contacts table's filters read.

Pages are read a few ahead in threads (:data:`PREFETCH`), through the connector's client: the
per-key connection budget of ``portal.mailchimp`` (10) is shared with live replication.
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from flask_babel import gettext as _
from sqlalchemy import case, delete, func, insert, select

from portal import background
from portal.background import Outcome
from portal.db_setup import refresh_statistics
from portal.extensions import db
from portal.mailchimp import MailchimpError, subscriber_hash
from portal.models import (Activity, ActivityAction, ActivityCampaign, ActivitySummary, Connector, ConnectorStatus,
                           Contact, ContactSync, RunKind, RunStatus, SyncEvent, SyncEventKind, SyncRun, utcnow)
from portal.sync import ConnectorError
from portal.sync import runs as run_rows
from portal.sync.lifecycle import get_connector, pause_connector
from portal.sync.mailchimp_access import client_for

log = logging.getLogger(__name__)

WEEKLY_CRON = "0 2 * * 6"
"""When the weekly import starts: Saturday 02:00 in :data:`SCHEDULE_TIMEZONE` (the cron process's ``TZ``)."""
SCHEDULE_TIMEZONE = "Europe/Paris"
HISTORY = timedelta(days=365)
"""How far back the first import of a connector reaches."""
CAMPAIGN_OVERLAP = timedelta(days=1)
"""Campaigns are listed again from the newest send time known minus this."""
ACTIVITY_OVERLAP = timedelta(hours=6)
"""A campaign's events are read again from the newest one seen minus this (late-processed events)."""
FOLLOW = timedelta(days=30)
"""Campaigns sent this recently have their opens, clicks and unsubscribes read at every import."""
PAGE = 1000
BUFFER_ROWS = 50_000
"""Rows read before they are written, sorted, and committed with the cursor (a checkpoint): at
most this many rows' pages are read again after a crash; about 10 MB of memory."""
PREFETCH = 4
"""Report pages read at the same time, in threads: at most this many of the key's 10 connections
for this run, the others stay free for live replication."""
READ_AHEAD = 32
"""Report pages asked for ahead of the rows being written (a few hundred KB each with ``fields=``):
enough for the readers to keep working through the write of a 50,000-row buffer."""
SUMMARY_CHUNK = 5_000
"""Contacts whose summary is recomputed per transaction (short write transactions on SQLite)."""
STATS_AFTER = 100_000
"""An import that added this many activities refreshes the database's planner statistics."""
FAILED_RETRY_DELAYS = (300.0, 1800.0, 7200.0)
"""Seconds before a failed import is tried again, attempt after attempt; then it stays failed (reported)."""

STEPS = ("sent-to", "email-activity", "unsubscribed")
ACTIVITY_COLUMNS = ("workspace_id", "contact_id", "campaign_id", "campaign_title", "action", "url", "url_key",
                    "occurred_at", "occurrence")
"""The columns of the rows :func:`_rows` builds (tuples, in this order) and :func:`_insert` writes."""
CAMPAIGN_FIELDS = ("id", "send_time", "emails_sent", "recipients.list_id", "settings.title",
                   "settings.subject_line")
REPORT_FIELDS = {
    "sent-to": ("email_id", "email_address", "status"),
    "email-activity": ("email_id", "email_address", "activity.action", "activity.type", "activity.timestamp",
                       "activity.url"),
    "unsubscribed": ("email_id", "email_address", "timestamp"),
}
_BOUNCES = {"hard": ActivityAction.HARD_BOUNCE, "soft": ActivityAction.SOFT_BOUNCE}


# --- starting runs ------------------------------------------------------------------------------

def start_import(connector_id: int) -> SyncRun:
    """An activity import of the connector, queued ("import now"); commits.

    Only for an active connector (ConnectorError otherwise). Asking while one is queued or
    running returns that one; a paused one (key refused, then reconnected) is queued again and
    goes on from its checkpoint.
    """
    connector = get_connector(connector_id)
    if connector.status != ConnectorStatus.ACTIVE:
        raise ConnectorError(_("Campaign activity is imported for active connectors only."))
    latest = run_rows.latest_run(connector.id, RunKind.ACTIVITY_IMPORT)
    if latest is not None and RunStatus(latest.status).is_live:
        return latest
    if latest is not None and latest.status == RunStatus.PAUSED and run_rows.requeue(latest):
        db.session.refresh(latest)
        return latest
    run = run_rows.create_run(connector, RunKind.ACTIVITY_IMPORT)
    db.session.commit()
    return run


def start_weekly_imports() -> list[SyncRun]:
    """An activity import for every active connector (the weekly schedule); commits."""
    connector_ids = list(db.session.scalars(
        select(Connector.id).where(Connector.status == ConnectorStatus.ACTIVE).order_by(Connector.id)))
    started = []
    for connector_id in connector_ids:
        try:
            started.append(start_import(connector_id))
        except ConnectorError:  # paused or deleted since the query: nothing to import
            db.session.rollback()
    return started


def retry_delay_after_failure(run_id: int) -> float | None:
    """Queue a failed import again (from its checkpoint) and say in how many seconds to run it;
    None once :data:`FAILED_RETRY_DELAYS` is used up (the run stays failed, for support to see)."""
    run = run_rows.get(run_id)
    if run is None or run.status != RunStatus.FAILED:
        return None
    attempts = int((run.result or {}).get("failed_attempts", 0))
    if attempts >= len(FAILED_RETRY_DELAYS):
        return None
    run.result = {**(run.result or {}), "failed_attempts": attempts + 1}
    db.session.commit()
    if not run_rows.requeue(run):
        return None
    return FAILED_RETRY_DELAYS[attempts]


def next_import_at(now: datetime | None = None) -> datetime:
    """When the weekly import next starts: the next Saturday 02:00 in Paris (aware, Paris time).

    Saturday 02:00 exists exactly once in every week (France changes clocks on Sundays).
    """
    zone = ZoneInfo(SCHEDULE_TIMEZONE)
    local = (now or utcnow()).astimezone(zone)
    day = local.date() + timedelta(days=(5 - local.weekday()) % 7)
    candidate = datetime.combine(day, time(2, 0), tzinfo=zone)
    if candidate <= local:
        candidate = datetime.combine(day + timedelta(days=7), time(2, 0), tzinfo=zone)
    return candidate


def recent_runs(connector_id: int, limit: int = 10) -> list[SyncRun]:
    """The connector's latest activity imports, newest first (support's connector page)."""
    return list(db.session.scalars(
        select(SyncRun).where(SyncRun.connector_id == connector_id, SyncRun.kind == RunKind.ACTIVITY_IMPORT)
        .order_by(SyncRun.id.desc()).limit(limit)))


def overview(connector_id: int, limit: int = 10) -> dict[str, Any]:
    """What support sees of a connector's activity imports: ``runs`` (newest first), ``latest`` and its
    ``latest_progress``, ``next_import_at`` (Paris time; None unless the connector is active) and the
    number of ``campaigns`` known."""
    connector = get_connector(connector_id)
    runs = recent_runs(connector_id, limit)
    campaigns = db.session.scalar(select(func.count()).select_from(ActivityCampaign).where(
        ActivityCampaign.connector_id == connector_id)) or 0
    latest = runs[0] if runs else None
    return {"connector": connector, "runs": runs, "latest": latest, "campaigns": campaigns,
            "latest_progress": run_rows.progress(latest) if latest is not None else None,
            "next_import_at": next_import_at() if connector.status == ConnectorStatus.ACTIVE else None}


# --- the run ----------------------------------------------------------------------------------------

def run(run_id: int) -> run_rows.RunResult:
    """Run or resume the activity import `run_id` (nothing if another worker holds it).

    A refused key or a deleted audience pauses the run and the connector; Mailchimp down
    beyond the client's retries leaves it to come back later (``RETRY_LATER``).
    """
    result = run_rows.execute(run_id, _import)
    if result.pauses_connector:
        pause_connector(run_rows.get(run_id).connector_id, result.error)
    elif result.outcome == Outcome.FINISHED:
        added = int((run_rows.get(run_id).counts or {}).get("added", 0))
        if added >= STATS_AFTER:
            # SQLite never refreshes its planner statistics itself (the CSV import does the same).
            refresh_statistics(db.engine)
    return result


def refresh_summary(workspace_id: int, *, after_id: int = 0, up_to_id: int | None = None) -> None:
    """Recompute the per-contact summary (last received, last opened or clicked) of the workspace's
    contacts with ids in (`after_id`, `up_to_id`] from their activity (not committed): a GROUP BY
    on the activity's natural-key index, which leads with the contact."""
    engaged = (ActivityAction.OPEN, ActivityAction.CLICK)
    ids = [Contact.workspace_id == workspace_id, Contact.id > after_id]
    kept = [ActivitySummary.workspace_id == workspace_id, ActivitySummary.contact_id > after_id]
    if up_to_id is not None:
        ids.append(Contact.id <= up_to_id)
        kept.append(ActivitySummary.contact_id <= up_to_id)
    rows = (
        select(Activity.contact_id, func.min(Activity.workspace_id),
               func.max(case((Activity.action == ActivityAction.SENT, Activity.occurred_at))),
               func.max(case((Activity.action.in_(engaged), Activity.occurred_at))),
               func.count(case((Activity.action == ActivityAction.SENT, 1))))
        .where(Activity.contact_id.in_(select(Contact.id).where(*ids))).group_by(Activity.contact_id)
    )
    db.session.execute(delete(ActivitySummary).where(*kept))
    db.session.execute(insert(ActivitySummary).from_select(
        ["contact_id", "workspace_id", "last_received_at", "last_engaged_at", "campaigns_received"], rows))


def _summary_may_be_stale(run: SyncRun) -> bool:
    """True unless this run added nothing and the connector's previous import finished (and so
    summarised everything before it): a weekly run that finds nothing new skips the recompute."""
    if int((run.counts or {}).get("added", 0)):
        return True
    previous = db.session.scalar(
        select(SyncRun.status)
        .where(SyncRun.connector_id == run.connector_id, SyncRun.kind == RunKind.ACTIVITY_IMPORT, SyncRun.id < run.id)
        .order_by(SyncRun.id.desc()).limit(1))
    return previous != RunStatus.FINISHED


def _refresh_summaries(run: SyncRun, workspace_id: int, token: str) -> None:
    """:func:`refresh_summary` for every contact of the workspace, :data:`SUMMARY_CHUNK` contacts
    per transaction: at once, 100,000 contacts held SQLite's write lock for over 15 s on a busy
    machine, longer than other writers wait. A crash here redoes it all (the plan is done)."""
    contact_ids = db.session.scalars(select(Contact.id).where(Contact.workspace_id == workspace_id)
                                     .order_by(Contact.id)).all()
    after = 0
    for start in range(0, len(contact_ids), SUMMARY_CHUNK):
        last = contact_ids[min(start + SUMMARY_CHUNK, len(contact_ids)) - 1]
        refresh_summary(workspace_id, after_id=after, up_to_id=last)
        background.checkpoint(run, token)
        db.session.commit()
        after = last


def _import(run: SyncRun, connector: Connector, token: str) -> None:
    with client_for(connector, bulk=True) as client, ThreadPoolExecutor(PREFETCH, thread_name_prefix="activity-page") as pool:
        state = dict(run.result or {})
        if "plan" not in state:
            _plan(run, connector, client, token)
        directory = MemberDirectory(connector)
        while True:
            state = dict(run.result)
            index = int(state.get("index", 0))
            plan = state["plan"]
            if index >= len(plan):
                break
            campaign = db.session.scalar(select(ActivityCampaign).where(
                ActivityCampaign.workspace_id == connector.workspace_id,
                ActivityCampaign.campaign_id == plan[index]))
            if campaign is None:  # cannot happen (campaign rows are never deleted); keep going regardless
                _next_campaign(run, token)
                continue
            try:
                _import_campaign(run, connector, campaign, client, pool, directory, token)
            except MailchimpError as exc:
                if exc.transient or exc.pauses_connector:
                    raise
                _campaign_failed(run, campaign, exc, token)
    # The contacts table's filters read the summary: they see the new activity as the run ends.
    if _summary_may_be_stale(run):
        _refresh_summaries(run, connector.workspace_id, token)
    run.done = run.total
    run.result = {**run.result, "finished": utcnow().isoformat()}


def _plan(run: SyncRun, connector: Connector, client, token: str) -> None:
    """List the campaigns to read, record them, and commit the plan as the run's first checkpoint."""
    known = select(ActivityCampaign).where(ActivityCampaign.connector_id == connector.id,
                                           ActivityCampaign.list_id == connector.audience_id)
    newest = db.session.scalar(select(func.max(ActivityCampaign.send_time)).where(
        ActivityCampaign.connector_id == connector.id, ActivityCampaign.list_id == connector.audience_id))
    # The history bound is a choice about how far back to go, not a window boundary: "now" is fine.
    since = newest - CAMPAIGN_OVERLAP if newest is not None else utcnow() - HISTORY
    listed = [c for c in client.get_campaigns(connector.audience_id, since, fields=CAMPAIGN_FIELDS)
              if (c.get("recipients") or {}).get("list_id") == connector.audience_id and c.get("send_time")]
    existing = {c.campaign_id: c for c in db.session.scalars(select(ActivityCampaign).where(
        ActivityCampaign.workspace_id == connector.workspace_id,
        ActivityCampaign.campaign_id.in_([c["id"] for c in listed])))} if listed else {}
    for item in listed:
        settings = item.get("settings") or {}
        row = existing.get(item["id"])
        if row is None:
            row = ActivityCampaign(workspace_id=connector.workspace_id, campaign_id=item["id"],
                                   recipients_done=False)
            db.session.add(row)
        row.connector_id = connector.id
        row.list_id = connector.audience_id
        row.title = (settings.get("title") or "")[:300]
        row.subject = (settings.get("subject_line") or "")[:300]
        row.send_time = _parse_time(item["send_time"])
        row.emails_sent = int(item.get("emails_sent") or 0)
    db.session.flush()
    follow_from = utcnow() - FOLLOW
    to_read = db.session.scalars(known.where(db.or_(
        ActivityCampaign.send_time >= follow_from, ActivityCampaign.recipients_done.is_(False),
        ActivityCampaign.campaign_id.in_([c["id"] for c in listed] or [""]),
    )).order_by(ActivityCampaign.send_time, ActivityCampaign.id)).all()
    plan = [c.campaign_id for c in to_read]
    run.total = len(plan)
    run.done = 0
    run.counts = {"campaigns": len(plan), "new_campaigns": len([c for c in listed if c["id"] not in existing]),
                  "added": 0, "no_contact": 0}
    run.result = {"plan": plan, "index": 0, "started": None, "step": STEPS[0], "offset": 0, "since": None,
                  "newest": None, "campaigns_since": since.isoformat()}
    background.checkpoint(run, token)
    db.session.commit()


def _import_campaign(run: SyncRun, connector: Connector, campaign: ActivityCampaign, client,
                     pool: ThreadPoolExecutor, directory: MemberDirectory, token: str) -> None:
    """Read the campaign's three reports from the run's cursor, a checkpoint every :data:`BUFFER_ROWS`
    rows; then move its bookmarks (in the campaign's last checkpoint)."""
    # Plain values: the page threads must not touch ORM objects, and commits expire them.
    campaign_id, send_time, emails_sent = campaign.campaign_id, campaign.send_time, campaign.emails_sent
    state = dict(run.result)
    if state.get("started") != campaign_id:
        # Fixed for the whole campaign (offsets are only valid for one `since`); kept across a crash.
        since = campaign.activity_since - ACTIVITY_OVERLAP if campaign.activity_since else None
        state.update(started=campaign_id, step=STEPS[0], offset=0, newest=None,
                     since=since.isoformat() if since else None)
    if state["step"] == "sent-to" and campaign.recipients_done:
        state.update(step="email-activity", offset=0)
    run.result = state
    buffer: list[tuple] = []
    for report in STEPS[STEPS.index(state["step"]):]:
        state = dict(run.result)
        start = int(state.get("offset", 0)) if state.get("step") == report else 0
        fetch = _page_reader(client, campaign_id, report, state.get("since") if report == "email-activity" else None)
        # Recipients are known from the campaign list: sent-to pages are all asked for at once.
        expected = emails_sent if report == "sent-to" else None
        for offset, page in _pages(fetch, start, pool, expected):
            rows, skipped, newest = _rows(report, page["items"], campaign_id, send_time, connector.workspace_id,
                                          directory)
            buffer.extend(rows)
            state = dict(run.result)
            if newest and (state.get("newest") is None or newest > state["newest"]):
                state["newest"] = newest
            run.counts = {**run.counts, "no_contact": int(run.counts.get("no_contact", 0)) + skipped}
            run.result = {**state, "step": report, "offset": offset + len(page["items"])}
            if len(buffer) >= BUFFER_ROWS:
                _write(run, buffer)
                # The rows and the cursor that says they are done, in one transaction.
                background.checkpoint(run, token)
                db.session.commit()
                buffer = []
        following = STEPS.index(report) + 1
        run.result = {**run.result, "step": STEPS[following] if following < len(STEPS) else "done", "offset": 0}
    _write(run, buffer)
    newest = _parse_time(run.result.get("newest"))
    campaign.recipients_done = True
    if newest is not None and (campaign.activity_since is None or newest > campaign.activity_since):
        campaign.activity_since = newest
    campaign.imported_at = utcnow()
    _next_campaign(run, token)


def _write(run: SyncRun, rows: list[tuple]) -> None:
    """Insert buffered rows in the natural key's order (not committed) and count the new ones.

    Report pages come in e-mail order, so their contacts are scattered over the activity indexes,
    which lead with the contact: written sorted, a buffer sweeps each index once instead of
    touching a random page per row (3–4 times faster on SQLite at 100,000 members).
    """
    if not rows:
        return
    rows.sort(key=_natural_order)
    added = _insert(rows)
    run.counts = {**run.counts, "added": int(run.counts.get("added", 0)) + added}


def _natural_order(row: tuple) -> tuple:
    return row[1], row[2], row[4], row[7], row[6], row[8]  # contact, campaign, action, time, link, occurrence


def _page_reader(client, campaign_id: str, report: str, since: str | None) -> Callable[[int], dict]:
    """A function reading one page of a report at an offset (called from the page threads)."""
    fields = REPORT_FIELDS[report]

    def fetch(offset: int) -> dict:
        return client.report_page(campaign_id, report, offset=offset, count=PAGE, fields=fields, since=since)

    return fetch


def _campaign_failed(run: SyncRun, campaign: ActivityCampaign, exc: MailchimpError, token: str) -> None:
    """A campaign Mailchimp refuses to report on (deleted since it was listed…): counted, the run goes on.

    A campaign that no longer exists is not asked for again; another refusal is tried at the next import.
    """
    db.session.rollback()
    log.warning("activity import %s: campaign %s skipped (%s)", run.id, campaign.campaign_id, exc.kind)
    if exc.kind == "not_found":
        campaign.recipients_done = True
        campaign.imported_at = utcnow()
    run.error_count = int(run.error_count or 0) + 1
    errors = list((run.result or {}).get("errors") or [])[-19:]
    errors.append({"campaign_id": campaign.campaign_id, "kind": exc.kind})
    run.result = {**run.result, "errors": errors}
    _next_campaign(run, token)


def _next_campaign(run: SyncRun, token: str) -> None:
    state = dict(run.result)
    index = int(state.get("index", 0)) + 1
    run.done = index
    run.result = {**state, "index": index, "started": None, "step": STEPS[0], "offset": 0, "since": None,
                  "newest": None}
    background.checkpoint(run, token)
    db.session.commit()


def _pages(fetch: Callable[[int], dict], start: int, pool: ThreadPoolExecutor,
           expected: int | None = None) -> Iterator[tuple[int, dict]]:
    """Yield ``(offset, page)`` from `start`, in order, while the pool reads ahead.

    Up to :data:`READ_AHEAD` pages are asked for ahead of the one being written (the pool runs
    :data:`PREFETCH` at a time), so that the connections keep working while rows are written.
    Without an `expected` total the first page is read alone and gives it; a report that grows
    while it is read (new activity) is read to its new end.
    """
    pending: dict[int, Future] = {}
    next_offset = start
    total = expected

    def ask() -> None:
        nonlocal next_offset
        end = total if total is not None else start + 1
        while len(pending) < READ_AHEAD and next_offset < end:
            pending[next_offset] = pool.submit(fetch, next_offset)
            next_offset += PAGE

    try:
        ask()
        while pending:
            offset = min(pending)
            page = pending.pop(offset).result()
            if not page["items"]:
                return
            total = max(total or 0, page["total_items"])
            ask()
            yield offset, page
    finally:
        for future in pending.values():
            future.cancel()
        for future in pending.values():
            if not future.cancelled():
                future.exception()  # wait: the client must not be closed under a running call


def _rows(report: str, items: list[dict], campaign_id: str, send_time: datetime, workspace_id: int,
          directory: MemberDirectory) -> tuple[list[tuple], int, str | None]:
    """The activity rows of one report page (tuples in :data:`ACTIVITY_COLUMNS` order), the
    activities skipped (no contact), and the newest event time."""
    rows: list[tuple] = []
    skipped = 0
    newest: str | None = None
    for item in items:
        contact_id = directory.contact_for(item.get("email_id"), item.get("email_address"))
        if report == "sent-to":
            if item.get("status") != "sent":
                continue  # a bounce: email-activity has it, with its time
            events = [(ActivityAction.SENT, send_time, "")]
        elif report == "unsubscribed":
            events = [(ActivityAction.UNSUBSCRIBE, _parse_time(item.get("timestamp")), "")]
        else:
            events = []
            for event in item.get("activity") or []:
                stamp = event.get("timestamp")
                if stamp and (newest is None or stamp > newest):
                    newest = stamp
                action = event.get("action")
                if action == "open":
                    events.append((ActivityAction.OPEN, _parse_time(stamp), ""))
                elif action == "click":
                    events.append((ActivityAction.CLICK, _parse_time(stamp), event.get("url") or ""))
                elif action == "bounce":
                    events.append((_BOUNCES.get(event.get("type"), ActivityAction.HARD_BOUNCE), _parse_time(stamp),
                                   ""))
        if contact_id is None:
            skipped += len(events)
            continue
        seen: dict[tuple, int] = {}
        for action, at, url in events:
            if at is None:
                continue
            # The same event twice in one second: numbered in report order, which a re-read repeats
            # (a `since` keeps or drops a whole second), so each stays one activity.
            occurrence = seen.get((action, at, url), 0)
            seen[(action, at, url)] = occurrence + 1
            rows.append((workspace_id, contact_id, campaign_id, "", str(action), url, _url_key(url), at, occurrence))
    return rows, skipped, _normal_time(newest)


def _insert(rows: list[tuple]) -> int:
    """Insert activity rows (tuples in :data:`ACTIVITY_COLUMNS` order), ignoring those already
    there (the natural key); how many were new.

    Written through the driver: SQLAlchemy's per-row parameter processing cost a third of the
    import's time at 100,000 members. The datetime is given to SQLite in the text form
    SQLAlchemy stores (UTC, no zone), so rows written either way compare equal.
    """
    if not rows:
        return 0
    connection = db.session.connection()
    names = ", ".join(ACTIVITY_COLUMNS)
    if connection.dialect.name == "sqlite":
        marks = ", ".join("?" for _ in ACTIVITY_COLUMNS)
        at = ACTIVITY_COLUMNS.index("occurred_at")
        rows = [row[:at] + (row[at].astimezone(timezone.utc).strftime(_SQLITE_TIME),) + row[at + 1:] for row in rows]
    else:
        marks = ", ".join("%s" for _ in ACTIVITY_COLUMNS)
    result = connection.exec_driver_sql(
        f"INSERT INTO activity ({names}) VALUES ({marks}) ON CONFLICT DO NOTHING", rows)
    return max(int(result.rowcount or 0), 0)


_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"


def _url_key(url: str) -> str:
    """A short digest of a link, so that the natural key stays small ("" when no link)."""
    return hashlib.blake2b(url.encode("utf-8"), digest_size=8).hexdigest() if url else ""


def _parse_time(value: str | None) -> datetime | None:
    """A Mailchimp timestamp (``2026-11-27T08:24:52+00:00``) as aware UTC, or None when empty."""
    if not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def _normal_time(value: str | None) -> str | None:
    parsed = _parse_time(value)
    return parsed.isoformat() if parsed else None


class MemberDirectory:
    """Which contact a report's recipient is, by subscriber hash (loaded once per run).

    In order of precedence: the member a contact's sync row says it was sent as
    (``member_hash``, then the hash of ``member_email``), then a live contact's current e-mail
    (when only one live contact has it), then an address the contact had before a rename. A sync row keeps naming the member until the contact's
    new e-mail reaches Mailchimp, so activity lands on the right contact while it changes; what
    was imported before stays on the contact whatever its e-mail becomes.
    """

    def __init__(self, connector: Connector) -> None:
        by_hash: dict[str, int | None] = {}
        live = (Contact.workspace_id == connector.workspace_id) & Contact.deleted_at.is_(None)
        for contact_id, email in db.session.execute(
                select(Contact.id, Contact.email_normalized).where(live, Contact.email_normalized.is_not(None))):
            key = subscriber_hash(email)
            by_hash[key] = None if key in by_hash else contact_id  # shared by two contacts: nobody's
        synced: dict[str, int] = {}
        for contact_id, member_hash, member_email in db.session.execute(
                select(ContactSync.contact_id, ContactSync.member_hash, ContactSync.member_email)
                .join(Contact, Contact.id == ContactSync.contact_id)
                .where(ContactSync.connector_id == connector.id, Contact.deleted_at.is_(None))):
            if member_email:
                synced.setdefault(subscriber_hash(member_email), contact_id)
            if member_hash:
                synced[member_hash.lower()] = contact_id
        # The addresses a contact had before a rename of ours: a campaign sent (or reported) under
        # the old address still belongs to the contact. Current addresses take precedence.
        for contact_id, data in db.session.execute(
                select(SyncEvent.contact_id, SyncEvent.data)
                .where(SyncEvent.connector_id == connector.id, SyncEvent.kind == SyncEventKind.RENAMED)
                .order_by(SyncEvent.id.desc())):
            old_email = (data or {}).get("old_email")
            if old_email:
                synced.setdefault(subscriber_hash(old_email), contact_id)
        by_hash.update(synced)
        self._by_hash = by_hash

    def contact_for(self, email_id: str | None, email: str | None) -> int | None:
        """The contact of a recipient (its subscriber hash, else its address), or None."""
        if email_id:
            found = self._by_hash.get(email_id.lower())
            if found is not None:
                return found
        if email:
            return self._by_hash.get(subscriber_hash(email))
        return None

