"""Member behaviours of API-NOTES §1 and §14.1–14.5, driven through mailchimp3."""

from __future__ import annotations

import hashlib
import time

import pytest
import requests
from mailchimp3.helpers import get_subscriber_hash
from mailchimp3.mailchimpclient import MailChimpError


def error_of(call, *args, **kwargs) -> dict:
    """The problem document of a call that must fail."""
    with pytest.raises(MailChimpError) as info:
        call(*args, **kwargs)
    return info.value.args[0]


def add(mc, list_id, email, status="subscribed", **extra):
    """Add a member through mailchimp3."""
    return mc.lists.members.create(list_id, dict(email_address=email, status=status, **extra))


def test_member_id_is_md5_of_lowercased_email(mc, list_id):
    member = add(mc, list_id, "Alice.Martin@Anaba.FR")
    assert member["id"] == hashlib.md5(b"alice.martin@anaba.fr").hexdigest()
    assert member["email_address"] == "Alice.Martin@Anaba.FR"


def test_member_object_has_mailchimp_fields_with_empty_strings(mc, list_id):
    member = add(mc, list_id, "alice@anaba.fr", merge_fields={"FNAME": "Alice"})
    for key in ("id", "email_address", "unique_email_id", "contact_id", "full_name", "web_id",
                "email_type", "status", "merge_fields", "stats", "ip_signup", "timestamp_signup",
                "timestamp_opt", "member_rating", "last_changed", "language", "vip", "location",
                "source", "tags_count", "tags", "list_id", "_links"):
        assert key in member
    assert member["timestamp_signup"] == ""
    assert member["merge_fields"] == {"FNAME": "Alice", "LNAME": "", "ADDRESS": "", "PHONE": ""}
    assert member["last_changed"].endswith("+00:00") and "T" in member["last_changed"]


def test_get_accepts_email_or_contact_id_in_hash_slot(mc, list_id):
    member = add(mc, list_id, "bob@anaba.fr")
    by_email = mc._get(f"lists/{list_id}/members/bob@anaba.fr")
    by_contact = mc._get(f"lists/{list_id}/members/{member['contact_id']}")
    assert by_email["id"] == by_contact["id"] == member["id"]


def test_unknown_member_is_404_resource_not_found(mc, list_id):
    err = error_of(mc.lists.members.get, list_id, get_subscriber_hash("nobody@anaba.fr"))
    assert (err["status"], err["title"]) == (404, "Resource Not Found")
    assert err["detail"] == "The requested resource could not be found."


def test_unknown_list_is_404(mc):
    err = error_of(mc.lists.members.all, "0000000000")
    assert err["status"] == 404


# ----- §14.1 DELETE archives ----------------------------------------------------------------
def test_archived_member_is_still_readable(mc, list_id):
    member = add(mc, list_id, "carol@anaba.fr")
    assert mc.lists.members.delete(list_id, member["id"]) is None
    assert mc.lists.members.get(list_id, member["id"])["status"] == "archived"


def test_second_delete_is_405_with_allow_header(mc, list_id):
    member = add(mc, list_id, "carol@anaba.fr")
    mc.lists.members.delete(list_id, member["id"])
    err = error_of(mc.lists.members.delete, list_id, member["id"])
    assert err["status"] == 405 and err["title"] == "Method Not Allowed"
    assert err["detail"] == ("This list member cannot be removed. Can not archive a contact that "
                             "is bounced, pending or archived")
    assert err["response"].headers["Allow"] == "GET, PUT"


def test_delete_of_pending_or_cleaned_member_is_405(mc, list_id):
    pending = add(mc, list_id, "pending@anaba.fr", status="pending")
    cleaned = add(mc, list_id, "cleaned@anaba.fr", status="cleaned")
    for member in (pending, cleaned):
        assert error_of(mc.lists.members.delete, list_id, member["id"])["status"] == 405


def test_post_re_adds_an_archived_member(mc, list_id):
    member = add(mc, list_id, "dan@anaba.fr")
    mc.lists.members.delete(list_id, member["id"])
    again = add(mc, list_id, "dan@anaba.fr")
    assert again["status"] == "subscribed" and again["id"] == member["id"]


def test_put_re_adds_an_archived_member(mc, list_id):
    member = add(mc, list_id, "dan@anaba.fr")
    mc.lists.members.delete(list_id, member["id"])
    again = mc.lists.members.create_or_update(list_id, member["id"], {
        "email_address": "dan@anaba.fr", "status_if_new": "subscribed"})
    assert again["status"] == "subscribed"


def test_archived_members_are_left_out_of_the_default_listing(mc, list_id):
    add(mc, list_id, "a1@anaba.fr")
    gone = add(mc, list_id, "a2@anaba.fr")
    mc.lists.members.delete(list_id, gone["id"])
    default = mc.lists.members.all(list_id)
    archived = mc.lists.members.all(list_id, status="archived")
    assert [m["email_address"] for m in default["members"]] == ["a1@anaba.fr"]
    assert [m["email_address"] for m in archived["members"]] == ["a2@anaba.fr"]


# ----- §14.2 delete-permanent is forever ----------------------------------------------------
FORGOTTEN = ("erin@anaba.fr was permanently deleted and cannot be re-imported. The contact "
             "must re-subscribe to get back on the list.")


def test_permanently_deleted_member_is_gone_and_cannot_come_back(mc, list_id):
    member = add(mc, list_id, "erin@anaba.fr")
    assert mc.lists.members.delete_permanent(list_id, member["id"]) is None
    assert error_of(mc.lists.members.get, list_id, member["id"])["status"] == 404
    err = error_of(add, mc, list_id, "erin@anaba.fr")
    assert (err["status"], err["title"], err["detail"]) == (400, "Forgotten Email Not Subscribed",
                                                            FORGOTTEN)
    err = error_of(mc.lists.members.create_or_update, list_id, member["id"],
                   {"email_address": "erin@anaba.fr", "status_if_new": "subscribed"})
    assert err["title"] == "Forgotten Email Not Subscribed"
    result = mc.lists.update_members(list_id, {"members": [
        {"email_address": "erin@anaba.fr", "status": "subscribed"}]})
    assert result["errors"][0]["error"] == FORGOTTEN
    assert result["errors"][0]["error_code"] == "ERROR_GENERIC"


def test_delete_permanent_of_unknown_member_is_404(mc, list_id):
    err = error_of(mc.lists.members.delete_permanent, list_id, get_subscriber_hash("x@anaba.fr"))
    assert err["status"] == 404


# ----- §14.3 resubscribing depends on who unsubscribed --------------------------------------
def test_admin_unsubscribe_can_be_reversed_through_the_api(mc, list_id):
    member = add(mc, list_id, "fay@anaba.fr")
    out = mc.lists.members.update(list_id, member["id"], {"status": "unsubscribed"})
    assert out["unsubscribe_reason"] == "N/A (Unsubscribed by admin)"
    back = mc.lists.members.update(list_id, member["id"], {"status": "subscribed"})
    assert back["status"] == "subscribed" and "unsubscribe_reason" not in back


COMPLIANCE = ("{} is in a compliance state due to unsubscribe, bounce, or compliance review and "
              "cannot be subscribed.")


@pytest.mark.parametrize("action", ["unsubscribe-via-form", "bounce", "complain"])
def test_self_unsubscribed_bounced_or_complaining_member_cannot_be_resubscribed(
        mc, control, list_id, action):
    member = add(mc, list_id, "gus@anaba.fr")
    control.member_action(list_id, "gus@anaba.fr", action)
    err = error_of(mc.lists.members.update, list_id, member["id"], {"status": "subscribed"})
    assert (err["status"], err["title"]) == (400, "Member In Compliance State")
    assert err["detail"] == COMPLIANCE.format("gus@anaba.fr")
    assert "type" not in err
    err = error_of(mc.lists.members.create_or_update, list_id, member["id"], {
        "email_address": "gus@anaba.fr", "status_if_new": "subscribed", "status": "subscribed"})
    assert err["title"] == "Member In Compliance State"


def test_pending_is_the_accepted_way_back_from_compliance(mc, control, list_id):
    member = add(mc, list_id, "gus@anaba.fr")
    control.member_action(list_id, "gus@anaba.fr", "unsubscribe-via-form")
    assert mc.lists.members.update(list_id, member["id"], {"status": "pending"})["status"] == "pending"
    control.member_action(list_id, "gus@anaba.fr", "resubscribe-via-form")
    assert mc.lists.members.get(list_id, member["id"])["status"] == "subscribed"


@pytest.mark.parametrize("action", ["unsubscribe-via-form", "bounce", "complain"])
def test_compliance_state_survives_an_api_unsubscribe(sim, mc, control, list_id, api_key, action):
    member = add(mc, list_id, "gus@anaba.fr")
    control.member_action(list_id, "gus@anaba.fr", action)
    mc.lists.members.update(list_id, member["id"], {"status": "unsubscribed"})
    err = error_of(mc.lists.members.update, list_id, member["id"], {"status": "subscribed"})
    assert err["title"] == "Member In Compliance State"
    url = f"{sim.api_base}lists/{list_id}/members/{member['id']}"
    put = requests.put(url, json={"status": "unsubscribed"}, auth=("x", api_key), timeout=10)
    assert put.status_code == 200
    again = requests.put(url, json={"status": "subscribed"}, auth=("x", api_key), timeout=10)
    assert (again.status_code, again.json()["title"]) == (400, "Member In Compliance State")
    batch = mc.lists.update_members(list_id, {"update_existing": True, "members": [
        {"email_address": "gus@anaba.fr", "status": "subscribed"}]})
    assert batch["error_count"] == 1
    assert batch["errors"][0]["error"] == COMPLIANCE.format("gus@anaba.fr")


def test_only_a_form_signup_lifts_the_compliance_state(mc, control, list_id):
    member = add(mc, list_id, "gus@anaba.fr")
    control.member_action(list_id, "gus@anaba.fr", "unsubscribe-via-form")
    mc.lists.members.update(list_id, member["id"], {"status": "pending"})
    err = error_of(mc.lists.members.update, list_id, member["id"], {"status": "subscribed"})
    assert err["title"] == "Member In Compliance State"
    out = mc.lists.members.update(list_id, member["id"], {"status": "unsubscribed"})
    assert out["unsubscribe_reason"] == "N/A (Unsubscribed by user)"  # still the person's own
    control.member_action(list_id, "gus@anaba.fr", "resubscribe-via-form")
    mc.lists.members.update(list_id, member["id"], {"status": "unsubscribed"})
    back = mc.lists.members.update(list_id, member["id"], {"status": "subscribed"})
    assert back["status"] == "subscribed"


def test_compliance_state_survives_archive(mc, control, list_id):
    member = add(mc, list_id, "gus@anaba.fr")
    control.member_action(list_id, "gus@anaba.fr", "unsubscribe-via-form")
    mc.lists.members.delete(list_id, member["id"])
    assert error_of(add, mc, list_id, "gus@anaba.fr")["title"] == "Member In Compliance State"


# ----- §14.4 rename through PUT on the old hash ---------------------------------------------
def test_put_on_old_hash_with_new_email_renames_the_member(mc, list_id):
    old = add(mc, list_id, "old@anaba.fr", merge_fields={"FNAME": "Hugo"})
    renamed = mc.lists.members.create_or_update(list_id, old["id"], {
        "email_address": "new@anaba.fr", "status_if_new": "subscribed"})
    assert renamed["id"] == get_subscriber_hash("new@anaba.fr")
    assert renamed["contact_id"] == old["contact_id"]
    assert renamed["merge_fields"]["FNAME"] == "Hugo"
    assert error_of(mc.lists.members.get, list_id, old["id"])["status"] == 404


def test_repeating_the_rename_put_is_member_exists(mc, list_id):
    old = add(mc, list_id, "old@anaba.fr")
    body = {"email_address": "new@anaba.fr", "status_if_new": "subscribed"}
    mc.lists.members.create_or_update(list_id, old["id"], body)
    err = error_of(mc.lists.members.create_or_update, list_id, old["id"], body)
    assert (err["status"], err["title"]) == (400, "Member Exists")
    assert err["detail"] == ("new@anaba.fr is already a list member. Use PUT to insert or "
                             "update list members.")
    assert "type" not in err


def test_rename_onto_an_existing_address_is_member_exists(mc, list_id):
    first = add(mc, list_id, "one@anaba.fr")
    add(mc, list_id, "two@anaba.fr")
    err = error_of(mc.lists.members.update, list_id, first["id"], {"email_address": "two@anaba.fr"})
    assert err["title"] == "Member Exists"


# ----- §14.5 PUT on an existing member ------------------------------------------------------
def test_put_on_existing_member_needs_neither_email_nor_status_if_new(sim, mc, list_id, api_key):
    member = add(mc, list_id, "ida@anaba.fr")
    url = f"{sim.api_base}lists/{list_id}/members/{member['id']}"
    response = requests.put(url, json={"merge_fields": {"FNAME": "Ida"}}, auth=("x", api_key),
                            timeout=10)
    assert response.status_code == 200
    assert response.json()["merge_fields"]["FNAME"] == "Ida"
    assert requests.put(url, json={}, auth=("x", api_key), timeout=10).status_code == 200


def test_mailchimp3_insists_on_email_and_status_if_new_for_put(mc, list_id):
    member = add(mc, list_id, "ida@anaba.fr")
    with pytest.raises(KeyError):
        mc.lists.members.create_or_update(list_id, member["id"], {"status": "subscribed"})


def test_status_if_new_is_ignored_for_existing_members_but_status_is_not(mc, list_id):
    member = add(mc, list_id, "jo@anaba.fr", status="unsubscribed")
    kept = mc.lists.members.create_or_update(list_id, member["id"], {
        "email_address": "jo@anaba.fr", "status_if_new": "subscribed"})
    assert kept["status"] == "unsubscribed"
    changed = mc.lists.members.create_or_update(list_id, member["id"], {
        "email_address": "jo@anaba.fr", "status_if_new": "subscribed", "status": "subscribed"})
    assert changed["status"] == "subscribed"


def test_put_that_creates_uses_status_if_new_over_status(sim, mc, list_id, api_key):
    created = mc.lists.members.create_or_update(list_id, get_subscriber_hash("new@anaba.fr"), {
        "email_address": "new@anaba.fr", "status_if_new": "pending", "status": "subscribed"})
    assert created["status"] == "pending"
    response = requests.put(f"{sim.api_base}lists/{list_id}/members/{get_subscriber_hash('raw@anaba.fr')}",
                            json={"email_address": "raw@anaba.fr", "status": "unsubscribed",
                                  "status_if_new": "subscribed"}, auth=("x", api_key), timeout=10)
    assert response.status_code == 200 and response.json()["status"] == "subscribed"


def test_put_creates_a_missing_member_with_status_if_new(mc, list_id):
    created = mc.lists.members.create_or_update(list_id, get_subscriber_hash("kim@anaba.fr"), {
        "email_address": "kim@anaba.fr", "status_if_new": "pending"})
    assert created["status"] == "pending"


def test_patch_does_not_create_and_refuses_transactional(mc, list_id):
    err = error_of(mc.lists.members.update, list_id, get_subscriber_hash("no@anaba.fr"),
                   {"status": "subscribed"})
    assert err["status"] == 404
    member = add(mc, list_id, "lea@anaba.fr")
    err = error_of(mc.lists.members.update, list_id, member["id"], {"status": "transactional"})
    assert err["status"] == 400 and err["errors"][0]["field"] == "status"


def test_since_last_changed_is_exclusive_at_one_second_precision(mc, list_id):
    member = add(mc, list_id, "max@anaba.fr")
    time.sleep(1.1)  # timestamps are shown to the second
    after = mc.lists.members.update(list_id, member["id"], {"merge_fields": {"FNAME": "Max"}})
    assert after["last_changed"] > member["last_changed"]
    since_created = mc.lists.members.all(list_id, since_last_changed=member["last_changed"])
    assert [m["id"] for m in since_created["members"]] == [member["id"]]
    since_edit = mc.lists.members.all(list_id, since_last_changed=after["last_changed"])
    assert since_edit["members"] == []


# ----- §1.7 e-mail and schema errors --------------------------------------------------------
def test_fake_looking_address_is_refused(mc, list_id):
    err = error_of(add, mc, list_id, "someone@example.com")
    assert (err["status"], err["title"]) == (400, "Invalid Resource")
    assert err["detail"] == ("someone@example.com looks fake or invalid, please enter a real "
                             "email address.")


def test_syntactically_bad_address_is_refused(sim, list_id, api_key):
    response = requests.post(f"{sim.api_base}lists/{list_id}/members", auth=("x", api_key),
                             json={"email_address": "AAAAA", "status": "subscribed"}, timeout=10)
    assert response.status_code == 400
    assert response.json()["detail"] == "Please provide a valid email address."


@pytest.mark.parametrize("body, field, message", [
    ({"status": "subscribed"}, "", "Required fields were not provided: email_address"),
    ({"email_address": None, "status": "subscribed"}, "email_address",
     "Schema describes string, NULL found instead"),
    ({"email_address": "", "status": "subscribed"}, "email_address",
     "This value should not be blank."),
    ({"email_address": "nia@anaba.fr", "status": "subscribed", "marketing_permissions": {}},
     "marketing_permissions", "This value should be of type array"),
    ({"email_address": "nia@anaba.fr", "status": "subscribed", "merge_fields": {"FNAME": ["x"]}},
     "merge_fields.FNAME", "Data did not match any of the schemas described in anyOf."),
    ({"email_address": "nia@anaba.fr", "status": "subscribed", "merge_fields": {"FNAME": {"a": 1}}},
     "merge_fields.FNAME", "Data did not match any of the schemas described in anyOf."),
    ({"email_address": "nia@anaba.fr", "status": "subscribed", "merge_fields": ["Nia"]},
     "merge_fields", "Schema describes object, array found instead"),
    ({"email_address": "nia@anaba.fr", "status": "member"}, "status",
     "Data presented is not one of the accepted values"),
    ({"email_address": {"v": "nia@anaba.fr"}, "status": "subscribed"}, "email_address",
     "Schema describes string, object found instead"),
    ({"email_address": "nia@anaba.fr", "status": "subscribed", "vip": "yes"}, "vip",
     "Schema describes boolean, string found instead"),
])
def test_schema_errors_list_the_field(sim, list_id, api_key, body, field, message):
    response = requests.post(f"{sim.api_base}lists/{list_id}/members", auth=("x", api_key),
                             json=body, timeout=10)
    doc = response.json()
    assert response.status_code == 400 and doc["title"] == "Invalid Resource"
    assert doc["detail"].startswith("The resource submitted could not be validated.")
    assert doc["errors"] == [{"field": field, "message": message}]


def test_listing_pages_with_total_items_and_fields(mc, list_id):
    mc.lists.update_members(list_id, {"members": [
        {"email_address": f"p{i}@anaba.fr", "status": "subscribed"} for i in range(25)]})
    first = mc.lists.members.all(list_id)
    assert len(first["members"]) == 10 and first["total_items"] == 25
    page = mc.lists.members.all(list_id, count=10, offset=20,
                                fields="members.email_address,total_items")
    assert page == {"members": [{"email_address": f"p{i}@anaba.fr"} for i in range(20, 25)],
                    "total_items": 25}
    lean = mc.lists.members.all(list_id, count=1, exclude_fields="members._links,_links")
    assert "_links" not in lean and "_links" not in lean["members"][0]


def test_status_filter(mc, list_id):
    add(mc, list_id, "s@anaba.fr")
    add(mc, list_id, "u@anaba.fr", status="unsubscribed")
    unsub = mc.lists.members.all(list_id, status="unsubscribed")
    assert [m["email_address"] for m in unsub["members"]] == ["u@anaba.fr"]


def test_throttled_address_cannot_sign_up_until_released(mc, control, list_id):
    control.throttle_address("busy@anaba.fr")
    err = error_of(add, mc, list_id, "busy@anaba.fr")
    assert (err["status"], err["title"]) == (400, "Invalid Resource")
    assert err["detail"] == ("busy@anaba.fr has signed up to a lot of lists very recently; "
                             "we're not allowing more signups for now")
    batch = mc.lists.update_members(list_id, {"members": [
        {"email_address": "busy@anaba.fr", "status": "subscribed"}]})
    assert batch["errors"][0]["error_code"] == "ERROR_GENERIC"
    control.release_address("busy@anaba.fr")
    assert add(mc, list_id, "busy@anaba.fr")["status"] == "subscribed"


def test_identical_write_does_not_move_last_changed(mc, list_id):
    member = add(mc, list_id, "same@anaba.fr", merge_fields={"FNAME": "Sam"})
    time.sleep(1.1)  # last_changed has a one-second resolution
    again = mc.lists.members.update(list_id, member["id"], {"merge_fields": {"FNAME": "Sam"},
                                                            "status": "subscribed"})
    assert again["last_changed"] == member["last_changed"]
    changed = mc.lists.members.update(list_id, member["id"], {"merge_fields": {"FNAME": "Samuel"}})
    assert changed["last_changed"] > member["last_changed"]


def test_no_error_message_names_a_python_type(sim, list_id, api_key):
    bodies = [{"email_address": v, "status": "subscribed"} for v in (None, 3, 2.5, True, [], {})]
    bodies += [{"email_address": "py@anaba.fr", "status": "subscribed", "merge_fields": v}
               for v in ([], "x", 3)]
    bodies += [{"email_address": "py@anaba.fr", "status": v} for v in (None, 1, [])]
    python_names = ("dict", "list", "NoneType", "str", "int", "float", "bool")
    for body in bodies:
        doc = requests.post(f"{sim.api_base}lists/{list_id}/members", auth=("x", api_key),
                            json=body, timeout=10).json()
        assert doc["status"] == 400, body
        words = set(str(doc).replace(",", " ").replace("'", " ").split())
        assert not words & set(python_names), doc


# ----- §7 marketing permissions (GDPR fields) ------------------------------------------------
@pytest.fixture
def gdpr_list(control, api_key):
    """An audience with marketing permissions enabled."""
    return control.create_list(api_key, name="GDPR", marketing_permissions=True)["id"]


def test_gdpr_audience_members_carry_its_marketing_permissions(mc, gdpr_list):
    member = add(mc, gdpr_list, "gdpr@anaba.fr")
    permissions = mc.lists.members.get(gdpr_list, member["id"])["marketing_permissions"]
    assert [p["text"] for p in permissions] == ["Email", "Direct Mail",
                                                "Customized Online Advertising"]
    assert all(p["enabled"] is False and p["marketing_permission_id"] for p in permissions)
    email_id = permissions[0]["marketing_permission_id"]
    updated = mc.lists.members.update(gdpr_list, member["id"], {"marketing_permissions": [
        {"marketing_permission_id": email_id, "enabled": True}]})
    assert [(p["text"], p["enabled"]) for p in updated["marketing_permissions"]] == [
        ("Email", True), ("Direct Mail", False), ("Customized Online Advertising", False)]


def test_unknown_marketing_permission_id_is_refused(mc, gdpr_list):
    member = add(mc, gdpr_list, "gdpr@anaba.fr")
    err = error_of(mc.lists.members.update, gdpr_list, member["id"], {"marketing_permissions": [
        {"marketing_permission_id": "nope", "enabled": True}]})
    assert (err["status"], err["title"]) == (400, "Invalid Resource")
    assert err["errors"][0]["field"] == "marketing_permissions.item:0.marketing_permission_id"
    assert "nope" in err["errors"][0]["message"]
    kept = mc.lists.members.get(gdpr_list, member["id"])["marketing_permissions"]
    assert all(p["enabled"] is False for p in kept)


def test_audience_without_gdpr_fields_shows_no_marketing_permissions(mc, list_id):
    member = add(mc, list_id, "plain@anaba.fr")
    assert "marketing_permissions" not in mc.lists.members.get(list_id, member["id"])
