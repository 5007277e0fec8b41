"""The control API's own contract (docs/simulator.md): accounts, actions, reset."""

from __future__ import annotations

import time

import pytest
import requests
from mailchimp3.mailchimpclient import MailChimpError


def add(mc, list_id, email, status="subscribed"):
    """Add a member through mailchimp3."""
    return mc.lists.members.create(list_id, {"email_address": email, "status": status})


def test_new_account_with_a_fixed_key_is_idempotent(sim, control):
    key = "0" * 31 + "1-us1"
    assert control.new_account("Demo", api_key=key) == key
    assert control.new_account("Demo", api_key=key) == key


def test_malformed_fixed_key_is_refused(sim, control):
    response = requests.post(sim.root_url + "/_sim/accounts", json={"api_key": "nope"}, timeout=10)
    assert response.status_code == 400


def test_reset_forgets_accounts(sim, control, api_key, client_for):
    control.reset()
    with pytest.raises(MailChimpError) as info:
        client_for(api_key).ping.get()
    assert info.value.args[0]["status"] == 401


def test_unknown_action_is_refused(control, mc, list_id):
    add(mc, list_id, "a@anaba.fr")
    with pytest.raises(RuntimeError, match="unknown action"):
        control.member_action(list_id, "a@anaba.fr", "teleport")


def test_action_on_unknown_member_is_404(control, list_id):
    with pytest.raises(RuntimeError, match="404"):
        control.member_action(list_id, "ghost@anaba.fr", "unsubscribe-via-form")


def test_resubscribe_via_form_brings_back_a_permanently_deleted_contact(mc, control, list_id):
    member = add(mc, list_id, "back@anaba.fr")
    mc.lists.members.delete_permanent(list_id, member["id"])
    result = control.member_action(list_id, "back@anaba.fr", "resubscribe-via-form")
    assert result["member"]["status"] == "subscribed"
    assert mc.lists.members.get(list_id, "back@anaba.fr")["status"] == "subscribed"


def test_actions_return_the_member_and_delete_returns_none(mc, control, list_id):
    add(mc, list_id, "a@anaba.fr")
    out = control.member_action(list_id, "a@anaba.fr", "unsubscribe-by-admin")
    assert out["member"]["unsubscribe_reason"] == "N/A (Unsubscribed by admin)"
    assert control.member_action(list_id, "a@anaba.fr", "delete-permanently")["member"] is None


def test_edit_profile_in_mailchimp_changes_merge_fields(mc, control, list_id):
    member = add(mc, list_id, "a@anaba.fr")
    control.member_action(list_id, member["id"], "edit-profile", merge_fields={"FNAME": "Edited"})
    assert mc.lists.members.get(list_id, member["id"])["merge_fields"]["FNAME"] == "Edited"


def test_change_email_onto_an_existing_address_is_refused(mc, control, list_id):
    add(mc, list_id, "a@anaba.fr")
    add(mc, list_id, "b@anaba.fr")
    with pytest.raises(RuntimeError, match="Member Exists"):
        control.member_action(list_id, "a@anaba.fr", "change-email", new_email="b@anaba.fr")


def test_accounts_summary_counts_members_by_status(mc, control, api_key, list_id):
    add(mc, list_id, "a@anaba.fr")
    add(mc, list_id, "b@anaba.fr", status="unsubscribed")
    [account] = control.accounts()
    assert account["api_key"] == api_key
    assert account["audiences"][0]["members"] == {"subscribed": 1, "unsubscribed": 1}


def test_control_errors_carry_status_and_document(control, list_id):
    from mailchimp_sim.testing import SimControlError

    with pytest.raises(SimControlError) as info:
        control.member_action(list_id, "ghost@anaba.fr", "bounce")
    assert info.value.status == 404
    assert info.value.document["title"] == "Resource Not Found"


def test_edit_profile_changes_tags_and_merge_fields_and_moves_last_changed(mc, control, list_id):
    member = add(mc, list_id, "a@anaba.fr")
    time.sleep(1.05)  # last_changed is shown to the second
    out = control.member_action(list_id, "a@anaba.fr", "edit-profile",
                                merge_fields={"LNAME": "Roy"},
                                tags=[{"name": "VIP", "status": "active"}])["member"]
    assert out["merge_fields"]["LNAME"] == "Roy" and [t["name"] for t in out["tags"]] == ["VIP"]
    assert out["last_changed"] > member["last_changed"]
    time.sleep(1.05)
    tags_only = control.member_action(list_id, "a@anaba.fr", "edit-profile",
                                      tags=[{"name": "VIP", "status": "inactive"}])["member"]
    assert tags_only["tags"] == [] and tags_only["last_changed"] > out["last_changed"]


def test_bulk_actions_apply_many_edits_in_one_call(mc, control, list_id, receiver):
    mc.lists.update_members(list_id, {"members": [
        {"email_address": f"b{i}@anaba.fr", "status": "subscribed"} for i in range(5)]})
    mc.lists.webhooks.create(list_id, {"url": receiver.url(), "events": {"profile": True},
                                       "sources": {"user": False, "admin": True, "api": False}})
    before = mc.lists.members.get(list_id, "b0@anaba.fr")["last_changed"]
    time.sleep(1.05)
    actions = [{"email": f"b{i}@anaba.fr", "action": "edit-profile",
                "data": {"merge_fields": {"FNAME": f"Edited{i}"},
                         "tags": [{"name": "Admin", "status": "active"}]}} for i in range(4)]
    actions.append({"email": "ghost@anaba.fr", "action": "edit-profile", "data": {}})
    actions.append({"email": "b4@anaba.fr", "action": "teleport"})
    result = control.bulk_member_actions(list_id, actions)
    assert (result["done"], result["failed"]) == (4, 2)
    assert [r["ok"] for r in result["results"]] == [True] * 4 + [False, False]
    assert result["results"][4]["status"] == 404
    changed = mc.lists.members.all(list_id, since_last_changed=before, count=1000,
                                   fields="members.email_address,members.merge_fields.FNAME,"
                                          "members.tags,total_items")
    assert sorted(m["email_address"] for m in changed["members"]) == [f"b{i}@anaba.fr" for i in range(4)]
    assert all(m["tags"] == [{"id": m["tags"][0]["id"], "name": "Admin"}] for m in changed["members"])
    deadline = time.monotonic() + 10
    while len(receiver.posts()) < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sorted(dict(p["form"])["data[merges][FNAME]"] for p in receiver.posts()) == [
        f"Edited{i}" for i in range(4)]


def test_lookup_reads_members_without_the_keys_latency(mc, control, list_id, api_key):
    mc.lists.update_members(list_id, {"members": [
        {"email_address": "vu@anaba.fr", "status": "subscribed", "merge_fields": {"FNAME": "Vu"}}]})
    control.set_faults(api_key, latency_ms=2000)
    started = time.monotonic()
    found = control.lookup_members(list_id, ["vu@anaba.fr", "absent@anaba.fr"])
    assert time.monotonic() - started < 1.5
    assert found["vu@anaba.fr"]["status"] == "subscribed" and found["vu@anaba.fr"]["merge_fields"]["FNAME"] == "Vu"
    assert found["absent@anaba.fr"] is None
