"""Batch subscribe ``POST /lists/{id}`` (API-NOTES §2, §14.6)."""

from __future__ import annotations

import pytest
import requests


def members(*emails, status="subscribed", **extra):
    """Batch subscribe items for these addresses."""
    return [dict(email_address=e, status=status, **extra) for e in emails]


def test_batch_creates_members_and_counts_them(mc, list_id):
    result = mc.lists.update_members(list_id, {"members": members("a@anaba.fr", "b@anaba.fr")})
    assert (result["total_created"], result["total_updated"], result["error_count"]) == (2, 0, 0)
    assert {m["email_address"] for m in result["new_members"]} == {"a@anaba.fr", "b@anaba.fr"}
    assert mc.lists.members.all(list_id)["total_items"] == 2


def test_existing_member_without_update_existing_is_contact_exists_error(mc, list_id):
    mc.lists.update_members(list_id, {"members": members("a@anaba.fr")})
    result = mc.lists.update_members(list_id, {"members": members("a@anaba.fr")})
    assert result["error_count"] == 1 and result["total_created"] == 0
    error = result["errors"][0]
    assert error["email_address"] == "a@anaba.fr"
    assert error["error_code"] == "ERROR_CONTACT_EXISTS"
    assert "already a list member" in error["error"]


def test_update_existing_updates_fields_and_status(mc, list_id):
    mc.lists.update_members(list_id, {"members": members("a@anaba.fr")})
    result = mc.lists.update_members(list_id, {"update_existing": True, "members": members(
        "a@anaba.fr", status="unsubscribed", merge_fields={"FNAME": "Ana"})})
    assert result["total_updated"] == 1
    updated = result["updated_members"][0]
    assert updated["status"] == "unsubscribed" and updated["merge_fields"]["FNAME"] == "Ana"


def test_batch_where_every_member_fails_is_still_http_200(sim, list_id, api_key):
    response = requests.post(f"{sim.api_base}lists/{list_id}", auth=("x", api_key), timeout=10,
                             json={"members": members("x@example.com", "bad@x.y")})
    assert response.status_code == 200
    doc = response.json()
    assert doc["error_count"] == 2 and doc["total_created"] == 0
    codes = {(e["error_code"], e["field"]) for e in doc["errors"]}
    assert codes == {("ERROR_GENERIC", "email_address")}
    assert doc["errors"][1]["error"] == "Please provide a valid email address."


def test_batch_merge_error_names_the_field(mc, control, list_id, api_key):
    mc.lists.merge_fields.create(list_id, {"name": "Score", "type": "number", "tag": "SCORE"})
    result = mc.lists.update_members(list_id, {"members": members(
        "a@anaba.fr", merge_fields={"SCORE": "lots"})})
    error = result["errors"][0]
    assert error["error"] == "Your merge fields were invalid."
    assert (error["field"], error["field_message"]) == ("SCORE", "Please enter a number")


def test_batch_refuses_compliance_members_per_item(mc, control, list_id):
    mc.lists.update_members(list_id, {"members": members("a@anaba.fr", "b@anaba.fr")})
    control.member_action(list_id, "a@anaba.fr", "unsubscribe-via-form")
    result = mc.lists.update_members(list_id, {"update_existing": True,
                                               "members": members("a@anaba.fr", "b@anaba.fr")})
    assert result["total_updated"] == 1 and result["error_count"] == 1
    assert "compliance state" in result["errors"][0]["error"]


def test_more_than_500_members_is_refused(sim, list_id, api_key):
    body = {"members": members(*[f"m{i}@anaba.fr" for i in range(501)])}
    response = requests.post(f"{sim.api_base}lists/{list_id}", auth=("x", api_key), json=body,
                             timeout=10)
    assert response.status_code == 400
    assert "at most 500" in response.json()["detail"]


def test_mailchimp3_refuses_more_than_500_client_side(mc, list_id):
    with pytest.raises(ValueError):
        mc.lists.update_members(list_id, {"members": members(*[f"m{i}@anaba.fr" for i in range(501)])})


def test_tags_in_member_items_are_ignored(sim, mc, list_id, api_key):
    body = {"members": [{"email_address": "t@anaba.fr", "status": "subscribed", "tags": ["VIP"]}]}
    doc = requests.post(f"{sim.api_base}lists/{list_id}", auth=("x", api_key), json=body,
                        timeout=10).json()
    assert doc["total_created"] == 1
    assert doc["new_members"][0]["tags"] == []


def test_archived_member_in_batch_is_re_added(mc, list_id):
    created = mc.lists.update_members(list_id, {"members": members("a@anaba.fr")})
    mc.lists.members.delete(list_id, created["new_members"][0]["id"])
    again = mc.lists.update_members(list_id, {"members": members("a@anaba.fr")})
    assert again["total_created"] == 1 and again["new_members"][0]["status"] == "subscribed"


@pytest.mark.parametrize("bad_item, field, message", [
    ({"email_address": "c@anaba.fr", "status": "member"}, "members.item:1.status",
     "Data presented is not one of the accepted values"),
    ({"email_address": "c@anaba.fr", "status": ""}, "members.item:1.status",
     "Data presented is not one of the accepted values"),
    ({"email_address": None, "status": "subscribed"}, "members.item:1.email_address",
     "Schema describes string, NULL found instead"),
    ({"email_address": "c@anaba.fr", "status": "subscribed", "merge_fields": {"FNAME": {"x": 1}}},
     "members.item:1.merge_fields.FNAME", "Data did not match any of the schemas described in anyOf."),
    ({"email_address": "c@anaba.fr", "status": "subscribed", "merge_fields": ["C"]},
     "members.item:1.merge_fields", "Schema describes object, array found instead"),
    (["c@anaba.fr"], "members.item:1", "Schema describes object, array found instead"),
])
def test_one_schema_invalid_item_refuses_the_whole_batch(sim, mc, list_id, api_key,
                                                         bad_item, field, message):
    body = {"members": [{"email_address": "a@anaba.fr", "status": "subscribed"}, bad_item]}
    response = requests.post(f"{sim.api_base}lists/{list_id}", auth=("x", api_key), json=body,
                             timeout=10)
    doc = response.json()
    assert (response.status_code, doc["title"]) == (400, "Invalid Resource")
    assert doc["errors"] == [{"field": field, "message": message}]
    assert mc.lists.members.all(list_id)["total_items"] == 0


def test_per_member_problems_stay_in_the_errors_of_a_200(mc, list_id):
    mc.lists.merge_fields.create(list_id, {"name": "Score", "type": "number", "tag": "SCORE"})
    result = mc.lists.update_members(list_id, {"members": members("ok@anaba.fr") + members(
        "fake@example.com") + members("n@anaba.fr", merge_fields={"SCORE": "many"})})
    assert (result["total_created"], result["error_count"]) == (1, 2)


def test_transactional_is_accepted_in_batch_items(sim, list_id, api_key):
    body = {"members": members("t@anaba.fr", status="transactional")}
    doc = requests.post(f"{sim.api_base}lists/{list_id}", auth=("x", api_key), json=body,
                        timeout=10).json()
    assert doc["total_created"] == 1 and doc["new_members"][0]["status"] == "transactional"


def test_whole_batch_refusal_reaches_mailchimp3_as_an_error(mc, list_id):
    from mailchimp3.mailchimpclient import MailChimpError

    body = {"update_existing": True, "members": [
        {"email_address": "a@anaba.fr", "status": "subscribed"},
        {"email_address": "b@anaba.fr", "status": "subscribed", "merge_fields": {"FNAME": {"x": 1}}}]}
    with pytest.raises(MailChimpError) as info:
        mc._post(f"lists/{list_id}", body)  # as the connector sends it, past the SDK's checks
    err = info.value.args[0]
    assert (err["status"], err["errors"][0]["field"]) == (400, "members.item:1.merge_fields.FNAME")
