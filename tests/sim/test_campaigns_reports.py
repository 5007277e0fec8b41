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
