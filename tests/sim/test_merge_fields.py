"""Merge fields and value validation on writes (API-NOTES §1.7, §5)."""

from __future__ import annotations

import pytest
from mailchimp3.mailchimpclient import MailChimpError


def error_of(call, *args, **kwargs):
    """The problem document of a call that must fail."""
    with pytest.raises(MailChimpError) as info:
        call(*args, **kwargs)
    return info.value.args[0]


def add(mc, list_id, email="a@anaba.fr", **merge):
    """Add a member through mailchimp3."""
    return mc.lists.members.create(list_id, {"email_address": email, "status": "subscribed",
                                             "merge_fields": merge})


def test_new_audience_has_the_default_merge_fields(mc, list_id):
    fields = mc.lists.merge_fields.all(list_id, get_all=False)
    assert [(f["tag"], f["type"]) for f in fields["merge_fields"]] == [
        ("FNAME", "text"), ("LNAME", "text"), ("ADDRESS", "address"), ("PHONE", "phone")]
    assert fields["total_items"] == 4


def test_created_merge_field_appears_on_members(mc, list_id):
    member = add(mc, list_id)
    field = mc.lists.merge_fields.create(list_id, {"name": "City", "type": "text", "tag": "CITY"})
    assert field["merge_id"] > 0 and field["tag"] == "CITY"
    assert mc.lists.members.get(list_id, member["id"])["merge_fields"]["CITY"] == ""


def test_merge_tag_longer_than_10_characters_is_refused(mc, list_id):
    err = error_of(mc.lists.merge_fields.create, list_id,
                   {"name": "Long", "type": "text", "tag": "ELEVENCHARS"})
    assert err["status"] == 400


def test_an_audience_holds_at_most_30_merge_fields(mc, list_id):
    for i in range(26):
        mc.lists.merge_fields.create(list_id, {"name": f"F{i}", "type": "text", "tag": f"F{i}"})
    err = error_of(mc.lists.merge_fields.create, list_id, {"name": "One more", "type": "text"})
    assert err["status"] == 400 and "maximum" in err["detail"]


def test_duplicate_tag_is_refused(mc, list_id):
    err = error_of(mc.lists.merge_fields.create, list_id, {"name": "F", "type": "text", "tag": "FNAME"})
    assert err["status"] == 400


def test_number_field_wants_a_number(mc, list_id):
    mc.lists.merge_fields.create(list_id, {"name": "Lifetime value", "type": "number", "tag": "LTV"})
    err = error_of(add, mc, list_id, "a@anaba.fr", LTV="a lot")
    assert (err["status"], err["title"], err["detail"]) == (400, "Invalid Resource",
                                                            "Your merge fields were invalid.")
    assert err["errors"] == [{"field": "LTV", "message": "Please enter a number"}]
    assert add(mc, list_id, "b@anaba.fr", LTV=12.5)["merge_fields"]["LTV"] == 12.5


def test_required_field_missing_is_please_enter_a_value(mc, list_id):
    fields = mc.lists.merge_fields.all(list_id, get_all=False)["merge_fields"]
    lname = next(f for f in fields if f["tag"] == "LNAME")
    mc.lists.merge_fields.update(list_id, lname["merge_id"], {"name": "Last Name", "required": True})
    err = error_of(add, mc, list_id, "a@anaba.fr", FNAME="Ana")
    assert err["errors"] == [{"field": "LNAME", "message": "Please enter a value"}]


def test_skip_merge_validation_accepts_missing_required_values(mc, list_id):
    fields = mc.lists.merge_fields.all(list_id, get_all=False)["merge_fields"]
    lname = next(f for f in fields if f["tag"] == "LNAME")
    mc.lists.merge_fields.update(list_id, lname["merge_id"], {"name": "Last Name", "required": True})
    member = mc._post(f"lists/{list_id}/members?skip_merge_validation=true",
                      {"email_address": "a@anaba.fr", "status": "subscribed"})
    assert member["status"] == "subscribed"


def test_incomplete_address_is_refused(mc, list_id):
    err = error_of(add, mc, list_id, "a@anaba.fr", ADDRESS={"addr1": "1 rue de la Paix", "city": "Paris"})
    assert err["errors"] == [{"field": "ADDRESS", "message": "Please enter a complete address"}]
    full = {"addr1": "1 rue de la Paix", "addr2": "", "city": "Paris", "state": "IDF",
            "zip": "75002", "country": "FR"}
    assert add(mc, list_id, "b@anaba.fr", ADDRESS=full)["merge_fields"]["ADDRESS"] == full


def test_text_longer_than_255_characters_is_refused(mc, list_id):
    err = error_of(add, mc, list_id, "a@anaba.fr", FNAME="x" * 256)
    assert err["errors"] == [{"field": "FNAME", "message": "Value must be 255 characters or fewer"}]
    assert add(mc, list_id, "b@anaba.fr", FNAME="x" * 255)["merge_fields"]["FNAME"] == "x" * 255


def test_phone_with_the_default_format_takes_any_text(mc, list_id):
    fields = mc.lists.merge_fields.all(list_id, get_all=False)["merge_fields"]
    phone = next(f for f in fields if f["tag"] == "PHONE")
    assert phone["options"]["phone_format"] == "none"
    for i, value in enumerate(("000", "call me maybe", "+33 1 23 45 67 89")):
        member = add(mc, list_id, f"p{i}@anaba.fr", PHONE=value)
        assert member["merge_fields"]["PHONE"] == value


def test_us_phone_format_validates_phone_numbers(mc, list_id):
    mc.lists.merge_fields.create(list_id, {"name": "US phone", "type": "phone", "tag": "USPHONE",
                                           "options": {"phone_format": "US"}})
    for bad in ("000", "call me maybe", "+33 1 23 45 67 89"):
        err = error_of(add, mc, list_id, "a@anaba.fr", USPHONE=bad)
        assert err["errors"] == [{"field": "USPHONE", "message": "Please enter a valid phone number"}]
    assert add(mc, list_id, "b@anaba.fr", USPHONE="(555) 123-4567")["merge_fields"]["USPHONE"]


def test_wrong_value_in_a_number_field_is_still_refused(mc, list_id):
    mc.lists.merge_fields.create(list_id, {"name": "Age", "type": "number", "tag": "AGE"})
    assert error_of(add, mc, list_id, "a@anaba.fr", AGE="000x")["errors"] == [
        {"field": "AGE", "message": "Please enter a number"}]


def test_dropdown_value_must_be_a_choice(mc, list_id):
    mc.lists.merge_fields.create(list_id, {"name": "Plan", "type": "dropdown", "tag": "PLAN",
                                           "options": {"choices": ["Basic", "Pro"]}})
    assert error_of(add, mc, list_id, "a@anaba.fr", PLAN="Gold")["errors"][0]["field"] == "PLAN"
    assert add(mc, list_id, "b@anaba.fr", PLAN="Pro")["merge_fields"]["PLAN"] == "Pro"


def test_unknown_merge_tags_are_ignored(mc, list_id):
    member = add(mc, list_id, "a@anaba.fr", NOPE="x")
    assert "NOPE" not in member["merge_fields"]


def test_deleting_a_merge_field_drops_its_values(mc, list_id):
    field = mc.lists.merge_fields.create(list_id, {"name": "City", "type": "text", "tag": "CITY"})
    member = add(mc, list_id, "a@anaba.fr", CITY="Paris")
    mc.lists.merge_fields.delete(list_id, field["merge_id"])
    assert "CITY" not in mc.lists.members.get(list_id, member["id"])["merge_fields"]
