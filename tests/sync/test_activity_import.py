"""The weekly campaign activity import (R18): what it brings onto each contact, that it never
duplicates, what it skips, how it survives crashes and failures, and when it is scheduled."""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select

from sync_helpers import add_contacts, crash_worker, last_seq

DAY = timedelta(days=1)
ROOT = Path(__file__).resolve().parents[2]


def _ago(days: float) -> str:
    return (datetime.now(timezone.utc) - timedelta(days=days)).replace(microsecond=0).isoformat()


def _activities(workspace_id=None) -> list:
    from portal.extensions import db
    from portal.models import Activity

    query = select(Activity).order_by(Activity.id)
    if workspace_id is not None:
        query = query.where(Activity.workspace_id == workspace_id)
    return list(db.session.scalars(query))


def _import(connector_id, run_jobs):
    """Start an import as support does and run the queued jobs; the run, reloaded."""
    from portal import jobs
    from portal.extensions import db
    from portal.sync import runs as sync_runs

    run = jobs.import_activity_now(connector_id)
    run_jobs()
    db.session.expire_all()
    return sync_runs.get(run.id)


def _expected(mc, campaign_id: str) -> Counter:
    """What the campaign's reports say, by (e-mail, action), read independently of the import."""
    expected = Counter()
    for item in mc.iter_sent_to(campaign_id):
        if item["status"] == "sent":
            expected[(item["email_address"], "sent")] += 1
    for item in mc.iter_email_activity(campaign_id):
        for event in item["activity"]:
            action = {"open": "open", "click": "click"}.get(event["action"]) or f"{event['type']}_bounce"
            expected[(item["email_address"], action)] += 1
    for item in mc.iter_unsubscribed(campaign_id):
        expected[(item["email_address"], "unsubscribe")] += 1
    return expected


def _imported(workspace_id) -> Counter:
    from portal.extensions import db
    from portal.models import Contact

    emails = dict(db.session.execute(
        select(Contact.id, Contact.email).where(Contact.workspace_id == workspace_id)).all())
    return Counter((emails[a.contact_id], a.action) for a in _activities(workspace_id))


# --------------------------------------------------------------------------- what it imports

def test_import_brings_every_campaign_event_onto_its_contact(copy, workspace, sim, mc, audience, run_jobs):
    from portal.extensions import db
    from portal.models import ActivityCampaign

    add_contacts(workspace, 300)
    connector = copy()
    first = sim.control.send_campaign(audience[1], seed=3, send_time=_ago(9), subject="Soldes d'hiver",
                                      title="Soldes 2026", open_rate=0.5, click_rate=0.2, bounce_rate=0.05,
                                      soft_bounce_rate=0.05, unsubscribe_rate=0.05)
    second = sim.control.send_campaign(audience[1], seed=4, send_time=_ago(2), subject="Nouveautés")
    expected = _expected(mc, first["id"]) + _expected(mc, second["id"])

    run = _import(connector.id, run_jobs)

    assert run.status == "finished" and run.kind == "activity_import"
    assert _imported(workspace.id) == expected
    assert {k[1] for k in expected} == {"sent", "open", "click", "hard_bounce", "soft_bounce", "unsubscribe"}
    assert run.counts["campaigns"] == 2 and run.counts["added"] == sum(expected.values())
    assert run.counts["no_contact"] == 0 and run.error_count == 0
    assert run.started_at and run.finished_at
    campaigns = {c.campaign_id: c for c in db.session.scalars(select(ActivityCampaign))}
    assert campaigns[first["id"]].title == "Soldes 2026" and campaigns[first["id"]].subject == "Soldes d'hiver"
    assert campaigns[first["id"]].send_time.isoformat() == first["send_time"]
    clicks = [a for a in _activities() if a.action == "click"]
    assert clicks and all(a.url.startswith("https://anaba.example/") for a in clicks)


def test_after_an_import_the_contacts_table_filters_on_it(copy, workspace, sim, mc, audience, run_jobs):
    from portal.crm import contacts as crm

    add_contacts(workspace, 250)
    connector = copy()
    campaign = sim.control.send_campaign(audience[1], seed=17, send_time=_ago(3), open_rate=0.3, click_rate=0.1)
    expected = _expected(mc, campaign["id"])
    engaged = {e for (e, a) in expected if a in ("open", "click")}
    received = {e for (e, a) in expected if a == "sent"}

    _import(connector.id, run_jobs)

    def emails(opened):
        page = crm.search_contacts(workspace.id, opened=opened, per_page=1000)
        return {c.email for c in page.items}

    assert engaged and emails("1") == engaged == emails("4")
    assert emails("never") == received - engaged and emails("never")


def test_reports_are_read_a_thousand_at_a_time_with_fields(copy, workspace, sim, audience, run_jobs, monkeypatch):
    from portal.mailchimp.client import MailchimpClient

    add_contacts(workspace, 2300)
    connector = copy()
    campaign = sim.control.send_campaign(audience[1], seed=5, send_time=_ago(3))
    asked = []
    real = MailchimpClient._get

    def spy(self, path, **params):
        asked.append((path, params))
        return real(self, path, **params)

    monkeypatch.setattr(MailchimpClient, "_get", spy)
    sim.control.set_faults(audience[0], latency_ms=40)  # so that pages read ahead overlap visibly
    sim.control.clear_requests()
    seq = last_seq(sim)

    run = _import(connector.id, run_jobs)

    sim.control.clear_faults(audience[0])
    assert run.status == "finished"
    calls = [r for r in sim.control.requests_log(seq)]
    sent_to = [r for r in calls if r["path_template"].endswith("/sent-to")]
    assert len(sent_to) == 3 and max(r["items"] for r in sent_to) == 1000  # 2,300 recipients
    reads = [p for p in asked if p[0].startswith("reports/")]
    assert reads and all(p[1]["count"] == 1000 and p[1]["fields"].endswith(",total_items") for p in reads)
    assert all(".merge_fields" not in p[1]["fields"] for p in reads)
    listing = [p for p in asked if p[0] == "campaigns"]
    assert listing[0][1]["list_id"] == audience[1] and "since_send_time" in listing[0][1]
    # Pages are read a few ahead, within the key's connection budget (10, shared with replication).
    from portal.sync.activity_import import PREFETCH

    assert 2 <= sim.control.peak_concurrency()[audience[0][-8:]] <= PREFETCH
    assert campaign["id"] in {p[0].split("/")[1] for p in reads}


# --------------------------------------------------------------------------- never twice

def test_importing_again_adds_nothing_and_reads_only_new_activity(copy, workspace, sim, audience, run_jobs):
    from portal.extensions import db
    from portal.models import ActivityCampaign

    add_contacts(workspace, 400)
    connector = copy()
    sim.control.send_campaign(audience[1], seed=6, send_time=_ago(5))
    first = _import(connector.id, run_jobs)
    before = len(_activities())
    seq = last_seq(sim)

    second = _import(connector.id, run_jobs)

    assert second.status == "finished" and second.id != first.id
    assert second.counts["added"] == 0 and len(_activities()) == before == first.counts["added"]
    calls = sim.control.requests_log(seq)
    assert not [r for r in calls if r["path_template"].endswith("/sent-to")]  # recipients are read once
    activity_calls = [r for r in calls if r["path_template"].endswith("/email-activity")]
    assert len(activity_calls) == 1
    campaign = db.session.scalar(select(ActivityCampaign))
    assert campaign.recipients_done and campaign.activity_since is not None


def test_overlapping_windows_never_duplicate_an_activity(copy, workspace, sim, audience, run_jobs, monkeypatch):
    from portal.sync import activity_import

    add_contacts(workspace, 300)
    connector = copy()
    sim.control.send_campaign(audience[1], seed=7, send_time=_ago(4))
    first = _import(connector.id, run_jobs)
    # Windows that overlap by far more than usual: every event is read again.
    monkeypatch.setattr(activity_import, "ACTIVITY_OVERLAP", timedelta(days=30))
    monkeypatch.setattr(activity_import, "CAMPAIGN_OVERLAP", timedelta(days=30))
    again = _import(connector.id, run_jobs)

    assert again.counts["added"] == 0 and len(_activities()) == first.counts["added"]


def test_new_activity_of_a_known_campaign_is_added_on_the_next_import(copy, workspace, sim, mc, audience, run_jobs):
    add_contacts(workspace, 200)
    connector = copy()
    sim.control.send_campaign(audience[1], seed=8, send_time=_ago(6))
    _import(connector.id, run_jobs)
    newer = sim.control.send_campaign(audience[1], seed=9, send_time=_ago(1))

    run = _import(connector.id, run_jobs)

    assert run.counts["new_campaigns"] == 1 and run.counts["campaigns"] == 2
    assert run.counts["added"] == sum(_expected(mc, newer["id"]).values())


def test_two_opens_in_the_same_second_stay_two_activities(copy, workspace, sim, mc, audience, run_jobs):
    from portal.extensions import db
    from portal.models import Activity

    add_contacts(workspace, 200)
    connector = copy()
    # Sent ten minutes ago: later opens are capped at "now", so many fall in the same second.
    campaign = sim.control.send_campaign(audience[1], seed=16, send_time=_ago(0.007), open_rate=0.9)
    first = _import(connector.id, run_jobs)
    assert _imported(workspace.id) == _expected(mc, campaign["id"])
    opens = [(a.contact_id, a.occurred_at) for a in db.session.scalars(select(Activity).where(
        Activity.action == "open"))]
    assert len(opens) > len(set(opens))  # the case is there
    again = _import(connector.id, run_jobs)
    assert again.counts["added"] == 0 and len(_activities()) == first.counts["added"]


@pytest.mark.parametrize("action", ["sent", "click"])
def test_the_natural_key_refuses_a_duplicate_activity(app, workspace, action):
    from sqlalchemy.exc import IntegrityError

    import factories
    from portal.extensions import db
    from portal.models import Activity, utcnow

    contact = factories.contact(workspace)
    at = utcnow().replace(microsecond=0)

    def row():
        return Activity(workspace_id=workspace.id, contact_id=contact.id, campaign_id="abc123", action=action,
                        occurred_at=at, url="https://anaba.example/offre" if action == "click" else "",
                        url_key="k1" if action == "click" else "")

    db.session.add(row())
    db.session.commit()
    db.session.add(row())
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()
    other = row()
    other.occurred_at = at + timedelta(seconds=1)  # another open, a second later: another activity
    db.session.add(other)
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(Activity)) == 2


def test_insert_ignores_rows_already_there_and_counts_only_new_ones(app, workspace):
    import factories
    from portal.extensions import db
    from portal.sync.activity_import import _insert
    from portal.models import utcnow

    contact = factories.contact(workspace)
    at = utcnow().replace(microsecond=0)

    def row(seconds=0, occurrence=0):
        # ACTIVITY_COLUMNS: workspace, contact, campaign, title, action, url, url key, time, occurrence
        return (workspace.id, contact.id, "c1", "", "open", "", "", at + timedelta(seconds=seconds), occurrence)

    rows = [row(i) for i in range(3)]
    assert _insert(rows) == 3
    db.session.commit()
    assert _insert(rows + [row(9)]) == 1
    assert _insert([row(0, occurrence=1)]) == 1  # a second open in the same second
    db.session.commit()
    # Rows written by the import and by the ORM share one natural key: an ORM duplicate is refused.
    from sqlalchemy.exc import IntegrityError

    from portal.models import Activity

    db.session.add(Activity(workspace_id=workspace.id, contact_id=contact.id, campaign_id="c1", action="open",
                            occurred_at=at, url="", url_key="", occurrence=0))
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()
    stored = db.session.scalars(select(Activity).order_by(Activity.occurred_at, Activity.occurrence)).all()
    assert [(a.occurred_at, a.occurrence) for a in stored][:2] == [(at, 0), (at, 1)]


# --------------------------------------------------------------------------- who it lands on

def test_members_without_a_contact_are_counted_and_skipped(copy, workspace, sim, mc, audience, run_jobs):
    add_contacts(workspace, 150)
    connector = copy()
    strangers = [f"inconnu{i}@autre-base.fr" for i in range(40)]
    mc.batch_subscribe(audience[1], [{"email_address": e, "status": "subscribed"} for e in strangers])
    campaign = sim.control.send_campaign(audience[1], seed=10, send_time=_ago(2), open_rate=0.6)
    expected = _expected(mc, campaign["id"])
    of_strangers = sum(n for (email, _a), n in expected.items() if email in strangers)

    run = _import(connector.id, run_jobs)

    assert run.status == "finished" and run.error_count == 0
    assert of_strangers and run.counts["no_contact"] == of_strangers
    assert run.counts["added"] == sum(expected.values()) - of_strangers
    assert not {e for e, _a in _imported(workspace.id)} & set(strangers)


def test_a_campaign_sent_to_another_audience_is_ignored(copy, workspace, sim, mc, audience, run_jobs):
    from portal.extensions import db
    from portal.models import ActivityCampaign

    add_contacts(workspace, 120)
    connector = copy()
    other = sim.control.create_list(audience[0], "Autre liste")
    mc.batch_subscribe(other["id"], [{"email_address": f"person{i}@ardent-clients.fr", "status": "subscribed"}
                                     for i in range(120)])  # the same people, in another audience
    elsewhere = sim.control.send_campaign(other["id"], seed=11, send_time=_ago(2))
    ours = sim.control.send_campaign(audience[1], seed=12, send_time=_ago(1))
    seq = last_seq(sim)

    run = _import(connector.id, run_jobs)

    assert [c.campaign_id for c in db.session.scalars(select(ActivityCampaign))] == [ours["id"]]
    assert {a.campaign_id for a in _activities()} == {ours["id"]}
    assert not [r for r in sim.control.requests_log(seq) if elsewhere["id"] in r["path"]]
    assert run.counts["campaigns"] == 1


def test_a_contact_whose_email_changed_keeps_its_history(copy, workspace, sim, mc, audience, run_jobs):
    from portal.crm import contacts as crm
    from portal.extensions import db
    from portal.models import Activity, Contact

    ids = add_contacts(workspace, 50)
    connector = copy()
    before = sim.control.send_campaign(audience[1], seed=13, send_time=_ago(8), open_rate=1.0)
    _import(connector.id, run_jobs)
    contact = db.session.get(Contact, ids[7])
    history = {(a.campaign_id, a.action) for a in db.session.scalars(select(Activity).where(
        Activity.contact_id == contact.id))}
    assert (before["id"], "sent") in history

    # The contact's e-mail changes in anaba; the member keeps the old one until it is sent again.
    crm.update_contact(workspace.id, contact.id, {"email": "nouvelle.adresse@ardent-clients.fr"},
                       actor="test", channel="ui")
    after = sim.control.send_campaign(audience[1], seed=14, send_time=_ago(1), open_rate=1.0)
    _import(connector.id, run_jobs)

    mine = {(a.campaign_id, a.action) for a in db.session.scalars(select(Activity).where(
        Activity.contact_id == contact.id))}
    assert history <= mine  # nothing lost
    assert (after["id"], "sent") in mine and (after["id"], "open") in mine  # and the new activity found it


def test_campaigns_before_and_after_a_rename_reach_mailchimp_land_on_the_same_contact(copy, workspace, sim, audience,
                                                                                     run_jobs):
    """R11 + R18: the rename is pushed (the member keeps its history under its new address); a
    campaign sent before it, reported under the old address, and one sent after, under the new
    one, are both the contact's."""
    from portal.crm import contacts as crm
    from portal.extensions import db
    from portal.models import Activity

    ids = add_contacts(workspace, 20)
    connector = copy()
    run_jobs()
    clean = {"open_rate": 1.0, "bounce_rate": 0, "soft_bounce_rate": 0, "unsubscribe_rate": 0}
    before = sim.control.send_campaign(audience[1], seed=21, send_time=_ago(5), **clean)
    crm.update_contact(workspace.id, ids[4], {"email": "renommee@ardent-clients.fr"}, actor="test", channel="ui")
    run_jobs()  # the rename reaches Mailchimp
    assert sim.control.lookup_members(audience[1], ["renommee@ardent-clients.fr"])["renommee@ardent-clients.fr"]
    after = sim.control.send_campaign(audience[1], seed=22, send_time=_ago(1), **clean)

    _import(connector.id, run_jobs)

    campaigns = {a.campaign_id for a in db.session.scalars(select(Activity).where(Activity.contact_id == ids[4],
                                                                                     Activity.action == "sent"))}
    assert campaigns == {before["id"], after["id"]}


def test_a_new_contact_reusing_an_old_address_does_not_take_anothers_activity(copy, workspace, sim, audience,
                                                                              run_jobs):
    from portal.crm import contacts as crm
    from portal.extensions import db
    from portal.models import Activity

    ids = add_contacts(workspace, 30)
    connector = copy()
    # Two live contacts share an address that no sync row owns: nobody's activity.
    twin = crm.create_contact(workspace.id, {"email": "person3@ardent-clients.fr", "first_name": "Jumeau"},
                              actor="test", channel="ui")
    sim.control.send_campaign(audience[1], seed=15, send_time=_ago(1))
    _import(connector.id, run_jobs)
    owners = {a.contact_id for a in db.session.scalars(select(Activity))}
    assert ids[3] in owners and twin.id not in owners  # the synced contact owns its member


# --------------------------------------------------------------------------- crashes and failures

class WorkerDied(BaseException):
    """Stands for the process dying: nothing below the job catches it, nothing marks the run failed."""


def test_a_crash_mid_import_resumes_from_its_checkpoint(copy, workspace, sim, mc, audience, run_jobs, monkeypatch,
                                                         short_lease):
    import time

    from portal import jobs
    from portal.extensions import db
    from portal.sync import activity_import
    from portal.sync import runs as sync_runs

    add_contacts(workspace, 2500)
    connector = copy()
    campaigns = [sim.control.send_campaign(audience[1], seed=20 + i, send_time=_ago(5 - i)) for i in range(2)]
    expected = _expected(mc, campaigns[0]["id"]) + _expected(mc, campaigns[1]["id"])
    run_id = activity_import.start_import(connector.id).id
    real_insert = activity_import._insert
    pages = []

    def die_on_the_second_campaigns_second_page(rows):
        pages.append(rows[0][2] if rows else None)  # the campaign id
        if pages.count(campaigns[1]["id"]) == 2:  # its sent-to, second page: mid-campaign
            raise WorkerDied()
        return real_insert(rows)

    monkeypatch.setattr(activity_import, "_insert", die_on_the_second_campaigns_second_page)
    monkeypatch.setattr(activity_import, "BUFFER_ROWS", 1)  # a checkpoint after every page
    with pytest.raises(WorkerDied):
        activity_import.run(run_id)
    db.session.rollback()
    db.session.expire_all()
    run = sync_runs.get(run_id)
    assert run.status == "running" and run.done == 1  # the first campaign is done and committed
    assert run.result["started"] == campaigns[1]["id"] and run.result["step"] == "sent-to"
    assert run.result["offset"] == 1000
    kept = len(_activities())
    assert 0 < kept < sum(expected.values())

    monkeypatch.setattr(activity_import, "_insert", real_insert)
    time.sleep(short_lease + 0.3)
    seq = last_seq(sim)
    assert jobs.resume_stale_runs() == [run_id]
    run_jobs()
    db.session.expire_all()

    run = sync_runs.get(run_id)
    assert run.status == "finished" and run.done == 2
    assert _imported(workspace.id) == expected  # nothing lost, nothing twice
    assert run.counts["added"] == sum(expected.values())
    again = [r for r in sim.control.requests_log(seq) if r["path_template"].endswith("/sent-to")]
    assert len(again) == 2  # the second campaign's last two pages only: 1,000 of 2,500 were committed
    assert {r["path"].split("/")[3] for r in again} == {campaigns[1]["id"]}


def _worker(app_env, sim, lease, log_path):
    """A real worker process on the `reports` queue (RQ forks a work horse per job)."""
    import os
    import subprocess
    import sys

    env = dict(os.environ)
    env.update(app_env)
    env.update({"MAILCHIMP_API_BASE": sim.api_base, "RUN_LEASE_SECONDS": str(lease), "PYTHONPATH": str(ROOT)})
    with open(log_path, "ab") as log:  # a file, not a pipe: a full pipe would block the worker
        return subprocess.Popen([sys.executable, "worker.py", "reports"], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=log)


def _until(predicate, timeout=90.0):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


@pytest.mark.slow
def test_a_worker_killed_mid_import_is_taken_over_by_another(copy, workspace, sim, mc, audience, app_env,
                                                             short_lease, tmp_path):
    import time

    from portal import jobs
    from portal.extensions import db
    from portal.models import SyncRun

    add_contacts(workspace, 3000)
    connector = copy()
    campaigns = [sim.control.send_campaign(audience[1], seed=40 + i, send_time=_ago(3 - i)) for i in range(3)]
    expected = sum((_expected(mc, c["id"]) for c in campaigns), Counter())
    sim.control.set_faults(audience[0], latency_ms=400)
    run_id = jobs.import_activity_now(connector.id).id

    def done():
        db.session.expire_all()
        return db.session.get(SyncRun, run_id).done

    first = _worker(app_env, sim, short_lease, tmp_path / "worker.log")
    try:
        _until(lambda: done() >= 1)  # a campaign committed, the next one under way
    finally:
        crash_worker(first)
    assert db.session.get(SyncRun, run_id).status == "running"
    kept = len(_activities())
    assert 0 < kept < sum(expected.values())

    time.sleep(short_lease + 0.5)
    assert jobs.resume_stale_runs() == [run_id]
    sim.control.clear_faults(audience[0])
    second = _worker(app_env, sim, short_lease, tmp_path / "worker.log")
    try:
        _until(lambda: (db.session.expire_all(), db.session.get(SyncRun, run_id).status)[1] == "finished")
    finally:
        second.terminate()
        second.wait(30)
    assert _imported(workspace.id) == expected
    assert db.session.get(SyncRun, run_id).counts["added"] == sum(expected.values())


def test_a_failed_import_is_retried_later_then_left_failed_for_support(copy, workspace, sim, audience, run_jobs,
                                                                       monkeypatch):
    from rq.registry import ScheduledJobRegistry

    from portal import jobs
    from portal.extensions import db
    from portal.jobs import queue
    from portal.sync import activity_import
    from portal.sync import runs as sync_runs

    add_contacts(workspace, 20)
    connector = copy()
    sim.control.send_campaign(audience[1], seed=30, send_time=_ago(1))

    def broken(rows):
        raise RuntimeError("disk full")

    monkeypatch.setattr(activity_import, "_insert", broken)
    run = jobs.import_activity_now(connector.id)
    run_jobs()
    db.session.expire_all()
    run = sync_runs.get(run.id)
    # Failed, traceback in RQ's failed registry, and queued again from its checkpoint in 5 minutes.
    assert run.status == "queued" and run.result["failed_attempts"] == 1
    assert queue("reports").failed_job_registry.count == 1
    scheduled = ScheduledJobRegistry(queue=queue("reports"))
    assert scheduled.get_job_ids() == [f"run-activity_import-{run.id}-later"]
    for _ in range(3):  # the scheduled retries come, and fail again
        with pytest.raises(RuntimeError):
            jobs.import_activity(run.id)
        db.session.expire_all()
    run = sync_runs.get(run.id)
    assert run.status == "failed" and "disk full" in run.message  # reported, not retried for ever
    assert run.result["failed_attempts"] == 3

    monkeypatch.undo()
    again = jobs.import_activity_now(connector.id)  # support's "import now" starts a fresh one
    run_jobs()
    db.session.expire_all()
    assert again.id != run.id and sync_runs.get(again.id).status == "finished"
    assert len(_activities()) == sync_runs.get(again.id).counts["added"] > 0


def test_a_refused_key_pauses_the_import_and_the_connector(copy, workspace, sim, audience, run_jobs):
    from portal.extensions import db

    add_contacts(workspace, 20)
    connector = copy()
    sim.control.send_campaign(audience[1], seed=31, send_time=_ago(1))
    sim.control.revoke_key(audience[0])

    run = _import(connector.id, run_jobs)

    db.session.refresh(connector)
    assert run.status == "paused" and run.message == "api_key_invalid"
    assert connector.status == "paused"


def test_a_deleted_campaign_is_counted_as_an_error_and_the_others_are_imported(copy, workspace, sim, audience,
                                                                               run_jobs, monkeypatch):
    from portal.mailchimp import MailchimpError
    from portal.mailchimp.client import MailchimpClient

    add_contacts(workspace, 40)
    connector = copy()
    gone = sim.control.send_campaign(audience[1], seed=32, send_time=_ago(3))
    kept = sim.control.send_campaign(audience[1], seed=33, send_time=_ago(2))
    real = MailchimpClient.report_page

    def deleted_meanwhile(self, campaign_id, report, **kwargs):
        if campaign_id == gone["id"]:
            raise MailchimpError("not_found", status=404, title="Resource Not Found")
        return real(self, campaign_id, report, **kwargs)

    monkeypatch.setattr(MailchimpClient, "report_page", deleted_meanwhile)
    run = _import(connector.id, run_jobs)

    assert run.status == "finished" and run.error_count == 1
    assert run.result["errors"] == [{"campaign_id": gone["id"], "kind": "not_found"}]
    assert {a.campaign_id for a in _activities()} == {kept["id"]}


def test_import_now_twice_starts_one_run(copy, workspace, run_jobs):
    from portal import jobs
    from portal.jobs import queue

    add_contacts(workspace, 5)
    connector = copy()
    first = jobs.import_activity_now(connector.id)
    second = jobs.import_activity_now(connector.id)
    assert first.id == second.id and queue("reports").count == 1


def test_only_an_active_connector_imports_activity(submit, workspace):
    from portal import jobs
    from portal.sync import ConnectorError

    add_contacts(workspace, 5)
    connector = submit()  # waiting for validation
    with pytest.raises(ConnectorError):
        jobs.import_activity_now(connector.id)


# --------------------------------------------------------------------------- the schedule

def test_weekly_job_starts_one_import_per_active_connector(copy, workspace, sim, run_jobs):
    import factories
    from portal import jobs
    from portal.extensions import db
    from portal.models import SyncRun

    add_contacts(workspace, 5)
    connector = copy()
    other_ws = factories.workspace("Fleuriste Bleu")
    other_key = sim.control.new_account("Other")
    other_list = sim.control.create_list(other_key, "Bleu")["id"]
    jobs.submit_connector(other_ws.id, None, other_key, other_list)  # waiting for validation: not imported

    ids = jobs.import_activity_weekly()

    runs = db.session.scalars(select(SyncRun).where(SyncRun.kind == "activity_import")).all()
    assert [r.id for r in runs] == ids and [r.connector_id for r in runs] == [connector.id]
    run_jobs()
    db.session.expire_all()
    assert db.session.get(SyncRun, ids[0]).status == "finished"


@pytest.fixture
def paris_clock(monkeypatch):
    """The cron process's local time zone is Europe/Paris (as `make run` and production start it)."""
    import time

    monkeypatch.setenv("TZ", "Europe/Paris")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize(("friday_noon_utc", "saturday_2am_utc"), [
    (datetime(2026, 12, 4, 12, tzinfo=timezone.utc), datetime(2026, 12, 5, 1, tzinfo=timezone.utc)),  # winter, UTC+1
    (datetime(2026, 7, 3, 12, tzinfo=timezone.utc), datetime(2026, 7, 4, 0, tzinfo=timezone.utc)),  # summer, UTC+2
])
def test_the_weekly_import_is_registered_for_saturday_2am_paris(app, redis_conn, paris_clock, friday_noon_utc,
                                                                saturday_2am_utc):
    from unittest import mock

    from rq import Queue
    from rq.cron import CronScheduler

    from portal import jobs
    from portal.schedule import SCHEDULE
    from portal.sync.activity_import import next_import_at

    weekly = [p for p in SCHEDULE if p.func is jobs.import_activity_weekly]
    assert len(weekly) == 1 and weekly[0].queue == "reports" and weekly[0].cron == "0 2 * * 6"
    with mock.patch("rq.cron.now", return_value=friday_noon_utc):
        scheduler = CronScheduler(connection=redis_conn, name="test-cron")
        job = scheduler.register(weekly[0].func, weekly[0].queue, cron=weekly[0].cron)
        assert scheduler.enqueue_jobs() == []
    assert job.next_enqueue_time == saturday_2am_utc
    assert next_import_at(friday_noon_utc) == saturday_2am_utc  # what the empty tab announces
    with mock.patch("rq.cron.now", return_value=saturday_2am_utc - timedelta(seconds=1)):
        assert scheduler.enqueue_jobs() == []
    with mock.patch("rq.cron.now", return_value=saturday_2am_utc + timedelta(seconds=1)):
        assert scheduler.enqueue_jobs() == [job]
    queued = Queue("reports", connection=redis_conn).jobs
    assert [j.func_name for j in queued] == ["portal.jobs.import_activity_weekly"]
    assert job.next_enqueue_time == saturday_2am_utc + timedelta(days=7)


def test_next_import_is_the_coming_saturday_even_late_on_a_saturday(app):
    from portal.sync.activity_import import next_import_at

    saturday_3am_paris = datetime(2026, 12, 5, 2, tzinfo=timezone.utc)
    assert next_import_at(saturday_3am_paris) == datetime(2026, 12, 12, 1, tzinfo=timezone.utc)
    assert next_import_at(saturday_3am_paris).tzname() == "CET"


# --------------------------------------------------------------------------- the command line

def test_flask_activity_import_runs_it_for_a_connector(copy, workspace, sim, audience, app):
    from portal.jobs import queue

    add_contacts(workspace, 30)
    connector_id = copy().id
    sim.control.send_campaign(audience[1], seed=34, send_time=_ago(1))
    cli = app.test_cli_runner()

    done = cli.invoke(args=["activity", "import", "--connector", str(connector_id), "--foreground"])
    assert done.exit_code == 0, done.output
    assert "finished" in done.output and "activities added" in done.output and queue("reports").count == 0
    assert len(_activities()) > 0
    queued = cli.invoke(args=["activity", "import", "--connector", str(connector_id)])
    assert queued.exit_code == 0 and "queued" in queued.output and queue("reports").count == 1
    missing = cli.invoke(args=["activity", "import", "--connector", "999999"])
    assert missing.exit_code == 1 and "Connecteur introuvable" in missing.output  # French, as support reads it


def test_a_run_that_finds_nothing_new_keeps_the_summary_without_recomputing_it(copy, workspace, sim, audience,
                                                                                run_jobs, monkeypatch):
    from portal.sync import activity_import

    add_contacts(workspace, 60)
    connector = copy()
    sim.control.send_campaign(audience[1], seed=18, send_time=_ago(2), open_rate=0.5)
    _import(connector.id, run_jobs)
    calls = []
    monkeypatch.setattr(activity_import, "refresh_summary", lambda *a, **k: calls.append(a))
    _import(connector.id, run_jobs)
    assert calls == []  # nothing added, previous run finished
    sim.control.send_campaign(audience[1], seed=19, send_time=_ago(1), open_rate=0.5)
    _import(connector.id, run_jobs)
    assert calls  # new activity: recomputed
