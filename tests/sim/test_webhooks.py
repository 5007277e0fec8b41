"""Audience webhooks as Mailchimp delivers them (API-NOTES §6, §14.9)."""

from __future__ import annotations

import re
import time

import pytest
import requests
from mailchimp3.mailchimpclient import MailChimpError

ALL_EVENTS = {"subscribe": True, "unsubscribe": True, "profile": True, "cleaned": True,
              "upemail": True, "campaign": True}


def wait_for(predicate, timeout=10.0):
    """Poll until ``predicate()`` is truthy (deliveries come from a background thread)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


def register(mc, list_id, receiver, sources=None, events=None):
    """Register a webhook to the receiver."""
    return mc.lists.webhooks.create(list_id, {
        "url": receiver.url(), "events": events or ALL_EVENTS,
        "sources": sources or {"user": True, "admin": True, "api": False}})


def nothing_queued(sim):
    """True when no delivery was attempted or is waiting."""
    doc = requests.get(sim.root_url + "/_sim/webhook-deliveries", timeout=10).json()
    return doc["pending"] == 0 and doc["deliveries"] == []


def test_creation_sends_the_validator_get(mc, list_id, receiver):
    hook = register(mc, list_id, receiver)
    assert hook["url"] == receiver.url() and hook["list_id"] == list_id
    call = receiver.calls[0]
    assert call["method"] == "GET" and call["path"] == "/webhooks/mailchimp/s3cret"
    assert call["headers"]["User-Agent"] == "MailChimp.com WebHook Validator"
    assert call["headers"]["Host"] == f"portal.localhost:{receiver.port}"
    assert [h["id"] for h in mc.lists.webhooks.all(list_id)["webhooks"]] == [hook["id"]]


def test_creation_fails_when_the_validator_is_not_answered_2xx(mc, list_id, receiver):
    receiver.statuses = [403]
    with pytest.raises(MailChimpError) as info:
        register(mc, list_id, receiver)
    err = info.value.args[0]
    assert err["status"] == 400
    assert err["detail"] == ("We couldn't verify the URL is working. Please double check and try "
                             "again. HTTP Code: 403")
    assert mc.lists.webhooks.all(list_id)["total_items"] == 0


def test_mailchimp3_refuses_loopback_urls_client_side(mc, list_id):
    for url in ("http://127.0.0.1:5000/hook", "http://localhost:5000/hook"):
        with pytest.raises(ValueError):
            mc.lists.webhooks.create(list_id, {"url": url})


def test_unsubscribe_via_form_is_posted_form_encoded_with_bracket_keys(mc, control, list_id, receiver):
    mc.lists.members.create(list_id, {"email_address": "ana@anaba.fr", "status": "subscribed",
                                      "merge_fields": {"FNAME": "Ana"}})
    register(mc, list_id, receiver)
    control.member_action(list_id, "ana@anaba.fr", "unsubscribe-via-form")
    posts = wait_for(receiver.posts)
    assert len(posts) == 1
    call = posts[0]
    assert call["content_type"] == "application/x-www-form-urlencoded"
    assert call["headers"]["User-Agent"] == "MailChimp.com"
    form = dict(call["form"])
    assert form["type"] == "unsubscribe"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", form["fired_at"])
    assert form["data[action]"] == "unsub" and form["data[reason]"] == "manual"
    assert form["data[email]"] == "ana@anaba.fr" and form["data[list_id]"] == list_id
    assert form["data[merges][FNAME]"] == "Ana" and form["data[merges][EMAIL]"] == "ana@anaba.fr"
    assert "X-Mailchimp-Signature" not in call["headers"]


def test_api_writes_are_not_delivered_unless_source_api_is_selected(sim, mc, list_id, receiver):
    register(mc, list_id, receiver)
    mc.lists.members.create(list_id, {"email_address": "ana@anaba.fr", "status": "subscribed"})
    assert nothing_queued(sim)


def test_api_writes_are_delivered_with_source_api(mc, list_id, receiver):
    register(mc, list_id, receiver, sources={"user": False, "admin": False, "api": True})
    member = mc.lists.members.create(list_id, {"email_address": "ana@anaba.fr", "status": "subscribed"})
    mc.lists.members.update(list_id, member["id"], {"status": "unsubscribed"})
    posts = wait_for(lambda: len(receiver.posts()) >= 2 and receiver.posts())
    assert sorted(dict(p["form"])["type"] for p in posts) == ["subscribe", "unsubscribe"]


def test_only_selected_events_and_sources_are_delivered(sim, mc, control, list_id, receiver):
    mc.lists.members.create(list_id, {"email_address": "ana@anaba.fr", "status": "subscribed"})
    register(mc, list_id, receiver, sources={"user": False, "admin": True, "api": False},
             events=dict(ALL_EVENTS, profile=False))
    control.member_action(list_id, "ana@anaba.fr", "edit-profile", merge_fields={"FNAME": "A"})
    control.member_action(list_id, "ana@anaba.fr", "unsubscribe-via-form")
    assert nothing_queued(sim)
    control.member_action(list_id, "ana@anaba.fr", "resubscribe-via-form")
    assert nothing_queued(sim)


def test_upemail_cleaned_and_profile_payloads(mc, control, list_id, receiver):
    mc.lists.members.create(list_id, {"email_address": "old@anaba.fr", "status": "subscribed"})
    register(mc, list_id, receiver)
    control.member_action(list_id, "old@anaba.fr", "change-email", new_email="new@anaba.fr")
    control.member_action(list_id, "new@anaba.fr", "edit-profile", merge_fields={"LNAME": "Roy"})
    control.member_action(list_id, "new@anaba.fr", "bounce")
    posts = wait_for(lambda: len(receiver.posts()) >= 3 and receiver.posts())
    by_type = {dict(p["form"])["type"]: dict(p["form"]) for p in posts}
    assert by_type["upemail"]["data[old_email]"] == "old@anaba.fr"
    assert by_type["upemail"]["data[new_email]"] == "new@anaba.fr"
    assert by_type["upemail"]["data[new_id]"] == mc.lists.members.get(list_id, "new@anaba.fr")["id"]
    assert by_type["profile"]["data[merges][LNAME]"] == "Roy"
    assert by_type["cleaned"]["data[reason]"] == "hard"
    assert by_type["cleaned"]["data[email]"] == "new@anaba.fr"


def test_archive_fires_no_webhook_but_permanent_delete_sends_action_delete(
        sim, mc, control, list_id, receiver):
    for email in ("a@anaba.fr", "b@anaba.fr", "c@anaba.fr"):
        mc.lists.members.create(list_id, {"email_address": email, "status": "subscribed"})
    register(mc, list_id, receiver, sources={"user": True, "admin": True, "api": True})
    control.member_action(list_id, "a@anaba.fr", "archive")
    mc.lists.members.delete(list_id, "b@anaba.fr")
    assert nothing_queued(sim)
    control.member_action(list_id, "c@anaba.fr", "delete-permanently")
    posts = wait_for(receiver.posts)
    assert [(dict(p["form"])["type"], dict(p["form"])["data[action]"],
             dict(p["form"])["data[email]"]) for p in posts] == [
        ("unsubscribe", "delete", "c@anaba.fr")]
    assert mc.lists.members.get(list_id, "a@anaba.fr")["status"] == "archived"
    assert mc.lists.members.get(list_id, "b@anaba.fr")["status"] == "archived"


def test_unsubscribe_payload_carries_ip_opt_and_every_merge_field(mc, control, list_id, receiver):
    mc.lists.members.create(list_id, {
        "email_address": "ana@anaba.fr", "status": "subscribed", "ip_opt": "198.51.100.9",
        "merge_fields": {"FNAME": "Ana", "LNAME": "Roy", "PHONE": "0102030405",
                         "ADDRESS": {"addr1": "1 rue", "city": "Paris", "state": "IDF",
                                     "zip": "75002", "country": "FR"}}})
    register(mc, list_id, receiver)
    control.member_action(list_id, "ana@anaba.fr", "complain")
    form = dict(wait_for(receiver.posts)[0]["form"])
    assert form["data[ip_opt]"] == "198.51.100.9"
    assert form["data[reason]"] == "abuse"
    assert (form["data[merges][FNAME]"], form["data[merges][LNAME]"],
            form["data[merges][PHONE]"], form["data[merges][ADDRESS][city]"]) == (
        "Ana", "Roy", "0102030405", "Paris")


def test_campaign_caused_events_carry_campaign_id_and_reason(mc, control, list_id, receiver):
    mc.lists.update_members(list_id, {"members": [
        {"email_address": f"c{i:02d}@anaba.fr", "status": "subscribed",
         "merge_fields": {"FNAME": f"C{i}"}} for i in range(40)]})
    register(mc, list_id, receiver)
    campaign = control.send_campaign(list_id, seed=9, bounce_rate=0.2, unsubscribe_rate=0.2)
    sim_counts = campaign["simulation"]
    expected = 1 + sim_counts["unsubscribes"] + sim_counts["hard_bounces"]
    forms = [dict(p["form"]) for p in wait_for(lambda: len(receiver.posts()) >= expected
                                               and receiver.posts())]
    unsub = [f for f in forms if f["type"] == "unsubscribe"]
    cleaned = [f for f in forms if f["type"] == "cleaned"]
    [sent] = [f for f in forms if f["type"] == "campaign"]
    assert unsub and cleaned
    assert all(f["data[campaign_id]"] == campaign["id"] and f["data[reason]"] == "manual"
               and f["data[action]"] == "unsub" and "data[ip_opt]" in f
               and f["data[merges][FNAME]"].startswith("C") for f in unsub)
    assert all(f["data[campaign_id]"] == campaign["id"] and f["data[reason]"] == "hard"
               for f in cleaned)
    assert (sent["data[id]"], sent["data[status]"], sent["data[reason]"]) == (
        campaign["id"], "sent", "")


def test_failed_delivery_is_retried(mc, control, list_id, receiver):
    mc.lists.members.create(list_id, {"email_address": "ana@anaba.fr", "status": "subscribed"})
    register(mc, list_id, receiver)
    receiver.statuses = [500]
    control.member_action(list_id, "ana@anaba.fr", "unsubscribe-by-admin")
    posts = wait_for(lambda: len(receiver.posts()) >= 2 and receiver.posts())
    assert [p["status"] for p in posts] == [500, 200]
    assert posts[0]["form"] == posts[1]["form"]
    deliveries = control.wait_for_deliveries(2)  # logged once the receiver has answered
    assert [(d["attempt"], d["outcome"]) for d in deliveries] == [(1, "retry"), (2, "delivered")]
    assert deliveries[0]["retry_in_s"] == pytest.approx(5 * 60 * 0.004)  # 5 minutes, scaled


def test_410_disables_the_webhook(sim, mc, control, list_id, receiver):
    for email in ("a@anaba.fr", "b@anaba.fr"):
        mc.lists.members.create(list_id, {"email_address": email, "status": "subscribed"})
    hook = register(mc, list_id, receiver)
    receiver.statuses = [410]
    control.member_action(list_id, "a@anaba.fr", "unsubscribe-by-admin")
    assert wait_for(lambda: control.webhook_deliveries())[0]["outcome"] == "disabled"
    control.member_action(list_id, "b@anaba.fr", "unsubscribe-by-admin")
    assert nothing_after_first(sim)
    assert [h["id"] for h in mc.lists.webhooks.all(list_id)["webhooks"]] == [hook["id"]]
    assert len(receiver.posts()) == 1


def nothing_after_first(sim):
    """True when exactly one delivery was attempted and none waits."""
    doc = requests.get(sim.root_url + "/_sim/webhook-deliveries", timeout=10).json()
    return doc["pending"] == 0 and len(doc["deliveries"]) == 1


def test_deleted_webhook_gets_nothing(sim, mc, control, list_id, receiver):
    mc.lists.members.create(list_id, {"email_address": "a@anaba.fr", "status": "subscribed"})
    hook = register(mc, list_id, receiver)
    mc.lists.webhooks.delete(list_id, hook["id"])
    control.member_action(list_id, "a@anaba.fr", "unsubscribe-via-form")
    assert nothing_queued(sim)


def test_payload_quirks_missing_action_and_repeated_reason(mc, control, list_id, receiver):
    for email in ("a@anaba.fr", "b@anaba.fr"):
        mc.lists.members.create(list_id, {"email_address": email, "status": "subscribed"})
    register(mc, list_id, receiver)
    control.member_action(list_id, "a@anaba.fr", "unsubscribe-via-form", omit_action=True)
    control.member_action(list_id, "b@anaba.fr", "unsubscribe-by-admin", repeat_reason=True)
    posts = wait_for(lambda: len(receiver.posts()) >= 2 and receiver.posts())
    by_email = {dict(p["form"])["data[email]"]: p["form"] for p in posts}
    assert "data[action]" not in dict(by_email["a@anaba.fr"])
    assert [v for k, v in by_email["b@anaba.fr"] if k == "data[reason]"] == ["manual", "hard"]


def test_a_delivery_can_be_sent_again_unchanged(mc, control, list_id, receiver):
    mc.lists.members.create(list_id, {"email_address": "a@anaba.fr", "status": "subscribed"})
    register(mc, list_id, receiver)
    control.member_action(list_id, "a@anaba.fr", "unsubscribe-via-form")
    first = control.wait_for_deliveries(1)[0]
    control.redeliver(first["seq"])
    posts = wait_for(lambda: len(receiver.posts()) >= 2 and receiver.posts())
    assert posts[0]["form"] == posts[1]["form"]


def test_a_delayed_event_arrives_after_a_later_one(mc, control, list_id, receiver):
    mc.lists.members.create(list_id, {"email_address": "a@anaba.fr", "status": "subscribed"})
    register(mc, list_id, receiver)
    control.member_action(list_id, "a@anaba.fr", "unsubscribe-via-form", webhook_delay_s=1.5)
    control.member_action(list_id, "a@anaba.fr", "resubscribe-via-form")
    posts = wait_for(lambda: len(receiver.posts()) >= 2 and receiver.posts())
    assert [dict(p["form"])["type"] for p in posts] == ["subscribe", "unsubscribe"]


def test_events_left_out_of_a_given_object_are_off(mc, list_id, receiver):
    hook = mc.lists.webhooks.create(list_id, {"url": receiver.url(), "events": {
        "subscribe": True, "unsubscribe": True}, "sources": {"user": True}})
    assert hook["events"] == {"subscribe": True, "unsubscribe": True, "profile": False,
                              "cleaned": False, "upemail": False, "campaign": False}
    assert hook["sources"] == {"user": True, "admin": False, "api": False}
    patched = mc.lists.webhooks.update(list_id, hook["id"], {"events": {"profile": True}})
    assert patched["events"]["subscribe"] is True and patched["events"]["profile"] is True
