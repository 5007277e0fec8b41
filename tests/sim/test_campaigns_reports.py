"""Simulated campaigns and the reports endpoints (API-NOTES §8)."""

from __future__ import annotations

import time

import pytest
from mailchimp3.mailchimpclient import MailChimpError


@pytest.fixture
def populated(mc, list_id):
    """An audience of 60 subscribed members."""
    mc.lists.update_members(list_id, {"members": [
        {"email_address": f"p{i:02d}@anaba.fr", "status": "subscribed"} for i in range(60)]})
    return list_id


def send(control, list_id, seed=1, **kw):
    """Send a simulated campaign with visible rates."""
    rates = dict(open_rate=0.5, click_rate=0.2, bounce_rate=0.05, unsubscribe_rate=0.05)
    rates.update(kw)
    return control.send_campaign(list_id, seed=seed, **rates)


def test_sent_campaign_is_listed_with_filters(mc, control, populated):
    campaign = send(control, populated)
    listed = mc.campaigns.all(list_id=populated, status="sent")
    assert [c["id"] for c in listed["campaigns"]] == [campaign["id"]]
    assert listed["campaigns"][0]["emails_sent"] == 60
    assert mc.campaigns.all(list_id="nope")["total_items"] == 0
    later = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() + 3600))
    assert mc.campaigns.all(since_send_time=later)["total_items"] == 0


def test_activity_is_deterministic_for_a_seed(mc, control, populated, client_for):
    first = send(control, populated, seed=42)
    assert first["simulation"]["recipients"] == 60
    acts = mc.reports.email_activity.all(first["id"], get_all=True)
    summary = sorted((e["email_address"], tuple(a["action"] for a in e["activity"]))
                     for e in acts["emails"])
    assert any("open" in actions for _, actions in summary)
    assert any("click" in actions for _, actions in summary)
    control.reset()
    key = control.new_account()
    lst = control.create_list(key)
    client = client_for(key)
    client.lists.update_members(lst["id"], {"members": [
        {"email_address": f"p{i:02d}@anaba.fr", "status": "subscribed"} for i in range(60)]})
    again = send(control, lst["id"], seed=42)
    acts2 = client.reports.email_activity.all(again["id"], get_all=True)
    summary2 = sorted((e["email_address"], tuple(a["action"] for a in e["activity"]))
                      for e in acts2["emails"])
    assert summary2 == summary


def test_email_activity_pages_and_filters_by_since(mc, control, populated):
    campaign = send(control, populated, seed=3, open_rate=0.9, send_time="2026-11-01T10:00:00+00:00")
    everything = mc.reports.email_activity.all(campaign["id"], get_all=False, count=1000)
    assert everything["total_items"] == len(everything["emails"]) > 10
    page = mc.reports.email_activity.all(campaign["id"], get_all=False, count=5, offset=5)
    assert [e["email_id"] for e in page["emails"]] == [e["email_id"] for e in everything["emails"][5:10]]
    stamps = sorted(a["timestamp"] for e in everything["emails"] for a in e["activity"])
    middle = stamps[len(stamps) // 2]
    recent = mc.reports.email_activity.all(campaign["id"], get_all=False, count=1000, since=middle)
    recent_stamps = [a["timestamp"] for e in recent["emails"] for a in e["activity"]]
    assert recent_stamps and all(s > middle for s in recent_stamps)


def test_sent_to_lists_every_recipient_with_bounce_status(mc, control, populated):
    campaign = send(control, populated, seed=5, bounce_rate=0.2)
    sent = mc.reports.sent_to.all(campaign["id"], get_all=True)
    assert len(sent["sent_to"]) == 60
    statuses = {s["status"] for s in sent["sent_to"]}
    assert "sent" in statuses and "hard" in statuses


def test_hard_bounce_cleans_the_member_and_unsubscribe_is_self(mc, control, populated):
    campaign = send(control, populated, seed=9, bounce_rate=0.2, unsubscribe_rate=0.2)
    sent = mc.reports.sent_to.all(campaign["id"], get_all=True)["sent_to"]
    bounced = next(s for s in sent if s["status"] == "hard")
    assert mc.lists.members.get(populated, bounced["email_id"])["status"] == "cleaned"
    unsubs = mc.reports.unsubscribes.all(campaign["id"], get_all=True)["unsubscribes"]
    assert unsubs
    member = mc.lists.members.get(populated, unsubs[0]["email_id"])
    assert member["status"] == "unsubscribed"
    with pytest.raises(MailChimpError) as info:
        mc.lists.members.update(populated, member["id"], {"status": "subscribed"})
    assert info.value.args[0]["title"] == "Member In Compliance State"


def test_member_activity_shows_sent_and_opens(mc, control, populated):
    campaign = send(control, populated, seed=11, open_rate=1.0, bounce_rate=0, unsubscribe_rate=0)
    first = mc.reports.sent_to.all(campaign["id"], get_all=False, count=1)["sent_to"][0]
    activity = mc.lists.members.activity.all(populated, first["email_id"])
    actions = {a["action"] for a in activity["activity"]}
    assert {"sent", "open"} <= actions
    assert all(a["campaign_id"] == campaign["id"] for a in activity["activity"])


def test_member_activity_keeps_the_last_50_events(mc, control, list_id):
    mc.lists.members.create(list_id, {"email_address": "fan@anaba.fr", "status": "subscribed"})
    for seed in range(30):
        send(control, list_id, seed=seed, open_rate=1.0, bounce_rate=0, unsubscribe_rate=0)
    activity = mc.lists.members.activity.all(list_id, "fan@anaba.fr")
    assert len(activity["activity"]) == 50


def test_campaign_fires_webhooks_for_unsubscribes(mc, control, populated, receiver):
    mc.lists.webhooks.create(populated, {"url": receiver.url(), "events": {
        "unsubscribe": True, "cleaned": True, "campaign": True, "subscribe": False,
        "profile": False, "upemail": False}, "sources": {"user": True, "admin": True, "api": False}})
    campaign = send(control, populated, seed=9, bounce_rate=0.2, unsubscribe_rate=0.2)
    expected = 1 + campaign["simulation"]["unsubscribes"] + campaign["simulation"]["hard_bounces"]
    deadline = time.monotonic() + 10
    while len(receiver.posts()) < expected and time.monotonic() < deadline:
        time.sleep(0.02)
    forms = [dict(p["form"]) for p in receiver.posts()]
    assert len(forms) == expected
    assert {f["type"] for f in forms} == {"campaign", "unsubscribe", "cleaned"}
    assert all(f["data[campaign_id]"] == campaign["id"] for f in forms if f["type"] != "campaign")


def test_unknown_campaign_report_is_404(mc, control):
    with pytest.raises(MailChimpError) as info:
        mc.reports.sent_to.all("nope", get_all=False)
    assert info.value.args[0]["status"] == 404


def _epoch(stamp):
    """Epoch seconds of a Mailchimp timestamp."""
    from datetime import datetime
    return datetime.fromisoformat(stamp).timestamp()


def test_activity_lies_between_the_send_time_and_now(mc, control, populated):
    sent_at = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() - 3 * 86400))
    campaign = send(control, populated, seed=21, open_rate=0.9, send_time=sent_at)
    now = time.time()
    acts = mc.reports.email_activity.all(campaign["id"], get_all=False, count=1000)["emails"]
    stamps = [_epoch(a["timestamp"]) for e in acts for a in e["activity"]]
    assert stamps and all(_epoch(sent_at) <= s <= now + 1 for s in stamps)
    assert max(stamps) - min(stamps) > 3600  # spread, not all at the send time


def test_since_filters_are_exclusive(mc, control, populated):
    campaign = send(control, populated, seed=3, open_rate=0.9,
                    send_time=time.strftime("%Y-%m-%dT%H:%M:%S+00:00",
                                            time.gmtime(time.time() - 86400)))
    everything = mc.reports.email_activity.all(campaign["id"], get_all=False, count=1000)
    latest = max(a["timestamp"] for e in everything["emails"] for a in e["activity"])
    after = mc.reports.email_activity.all(campaign["id"], get_all=False, count=1000, since=latest)
    assert after["total_items"] == 0 and after["emails"] == []
    assert mc.campaigns.all(since_send_time=campaign["send_time"])["total_items"] == 0
    assert mc.campaigns.all(before_send_time=campaign["send_time"])["total_items"] == 0


def test_report_summary_counts_what_the_other_reports_list(mc, control, populated):
    campaign = send(control, populated, seed=13, bounce_rate=0.1, unsubscribe_rate=0.1)
    report = mc.reports.get(campaign["id"])
    assert (report["id"], report["list_id"], report["emails_sent"]) == (
        campaign["id"], populated, 60)
    assert report["campaign_title"] == campaign["settings"]["title"]
    assert report["subject_line"] == campaign["settings"]["subject_line"]
    assert report["send_time"] == campaign["send_time"]
    acts = mc.reports.email_activity.all(campaign["id"], get_all=True)["emails"]
    events = [a for e in acts for a in e["activity"]]
    assert report["opens"]["opens_total"] == sum(a["action"] == "open" for a in events)
    assert report["opens"]["unique_opens"] == sum(
        any(a["action"] == "open" for a in e["activity"]) for e in acts)
    assert report["clicks"]["clicks_total"] == sum(a["action"] == "click" for a in events)
    sent = mc.reports.sent_to.all(campaign["id"], get_all=True)["sent_to"]
    assert report["bounces"]["hard_bounces"] == sum(s["status"] == "hard" for s in sent)
    assert report["bounces"]["soft_bounces"] == sum(s["status"] == "soft" for s in sent)
    assert report["unsubscribed"] == mc.reports.unsubscribes.all(
        campaign["id"], get_all=False)["total_items"]


def test_recipients_limit_sends_to_the_first_members(mc, control, populated):
    campaign = send(control, populated, seed=2, recipients_limit=7)
    sent = mc.reports.sent_to.all(campaign["id"], get_all=True)["sent_to"]
    assert [s["email_address"] for s in sent] == [f"p{i:02d}@anaba.fr" for i in range(7)]


def test_report_pages_are_consistent_across_offsets(mc, control, populated):
    campaign = send(control, populated, seed=8, open_rate=0.9)
    whole = mc.reports.sent_to.all(campaign["id"], get_all=False, count=1000)["sent_to"]
    pages = []
    for offset in range(0, 60, 7):
        pages += mc.reports.sent_to.all(campaign["id"], get_all=False, count=7,
                                        offset=offset)["sent_to"]
    assert pages == whole
