"""The weekly campaign activity import (R18): what it brings onto each contact, that it never
duplicates, what it skips, how it survives crashes and failures, and when it is scheduled."""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from sync_helpers import add_contacts, last_seq

DAY = timedelta(days=1)


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

    emails = dict(db.session.execute(select(Contact.id, Contact.email).where(Contact.workspace_id == workspace_id)).all())
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
    assert run.counts["skipped"] == 0 and run.error_count == 0
    assert run.started_at and run.finished_at
    campaigns = {c.campaign_id: c for c in db.session.scalars(select(ActivityCampaign))}
    assert campaigns[first["id"]].title == "Soldes 2026" and campaigns[first["id"]].subject == "Soldes d'hiver"
    assert campaigns[first["id"]].send_time.isoformat() == first["send_time"]
    clicks = [a for a in _activities() if a.action == "click"]
    assert clicks and all(a.url.startswith("https://anaba.example/") for a in clicks)


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
    seq = last_seq(sim)

    run = _import(connector.id, run_jobs)

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

    assert 1 < sim.control.peak_concurrency()[audience[0][-8:]] <= PREFETCH + 1
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
    rows = [{"workspace_id": workspace.id, "contact_id": contact.id, "campaign_id": "c1", "campaign_title": "",
             "action": "open", "occurred_at": at + timedelta(seconds=i), "url": "", "url_key": ""} for i in range(3)]
    assert _insert(rows) == 3
    db.session.commit()
    assert _insert(rows + [dict(rows[0], occurred_at=at + timedelta(seconds=9))]) == 1
    db.session.commit()


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
    assert of_strangers and run.counts["skipped"] == of_strangers
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
