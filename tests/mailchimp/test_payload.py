"""What anaba sends for a contact, foreseen failures, diffs, fingerprints and tag changes."""
from __future__ import annotations

import datetime as dt
import json
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portal.mailchimp.payload import (
    FieldMapping, address_line, build_member, default_mappings, email_syntax_ok, french_region, member_diff,
    payload_fingerprint, predict_errors, subscriber_hash, tag_changes,
)

MAPPINGS = default_mappings()

ALICE = {
    "email": " Alice@Example.fr ", "first_name": "Alice", "last_name": "Martin", "phone": "+33 6 12 34 56 78",
    "company": "", "street": "12 rue de la Paix", "postal_code": "75002", "city": "Paris", "country": "France",
}

MERGE_FIELDS = [
    {"tag": "FNAME", "type": "text", "required": False},
    {"tag": "LNAME", "type": "text", "required": False},
    {"tag": "PHONE", "type": "phone", "required": False},
    {"tag": "ADDRESS", "type": "address", "required": False},
    {"tag": "COMPANY", "type": "text", "required": False},
]


def test_subscriber_hash_matches_mailchimps_example():
    assert subscriber_hash("Test@Example.COM") == "55502f40dc8b7c769880b10874abc9d0"
    assert subscriber_hash("  test@example.com ") == "55502f40dc8b7c769880b10874abc9d0"


def test_member_carries_anabas_values_and_the_status():
    member = build_member(ALICE, MAPPINGS)
    assert member["email_address"] == "Alice@Example.fr"
    assert member["status"] == "subscribed"
    assert member["merge_fields"]["FNAME"] == "Alice"
    assert member["merge_fields"]["PHONE"] == "+33 6 12 34 56 78"


def test_empty_anaba_value_is_sent_empty_so_it_overwrites_mailchimp():
    member = build_member({**ALICE, "first_name": None, "company": "   "}, MAPPINGS)
    assert member["merge_fields"]["FNAME"] == ""
    assert member["merge_fields"]["COMPANY"] == ""


def test_put_bodies_use_status_if_new_so_existing_members_keep_their_status():
    member = build_member(ALICE, MAPPINGS, status_key="status_if_new")
    assert member["status_if_new"] == "subscribed" and "status" not in member


def test_french_address_becomes_a_complete_mailchimp_address():
    address = build_member(ALICE, MAPPINGS)["merge_fields"]["ADDRESS"]
    assert address == {
        "addr1": "12 rue de la Paix", "addr2": "", "city": "Paris", "state": "Île-de-France", "zip": "75002",
        "country": "FR",
    }


def test_incomplete_address_is_sent_empty_instead_of_failing():
    member = build_member({**ALICE, "postal_code": ""}, MAPPINGS)
    assert member["merge_fields"]["ADDRESS"] == ""
    assert build_member({**ALICE, "street": "", "city": "", "postal_code": ""}, MAPPINGS)["merge_fields"]["ADDRESS"] == ""


def test_country_defaults_to_france_and_codes_pass_through():
    assert build_member({**ALICE, "country": ""}, MAPPINGS)["merge_fields"]["ADDRESS"]["country"] == "FR"
    assert build_member({**ALICE, "country": "be"}, MAPPINGS)["merge_fields"]["ADDRESS"]["country"] == "BE"
    assert build_member({**ALICE, "country": "Belgique"}, MAPPINGS)["merge_fields"]["ADDRESS"]["country"] == "BE"


def test_numbers_and_dates_keep_a_form_mailchimp_reads():
    mappings = [FieldMapping("ltv", "LTV", "number"), FieldMapping("born", "BDAY", "birthday"),
                FieldMapping("since", "SINCE", "date")]
    fields = build_member({"email": "a@b.fr", "ltv": 12.5, "born": dt.date(1990, 3, 7),
                           "since": dt.date(2024, 1, 31)}, mappings)["merge_fields"]
    assert fields == {"LTV": 12.5, "BDAY": "03/07", "SINCE": "2024-01-31"}
    json.dumps(fields)


def test_objects_with_attributes_work_like_mappings():
    class Contact:
        email = "bob@exemple.fr"
        first_name = "Bob"
        last_name = street = postal_code = city = country = phone = company = ""

    member = build_member(Contact(), MAPPINGS)
    assert member["email_address"] == "bob@exemple.fr" and member["merge_fields"]["FNAME"] == "Bob"


def test_mapping_round_trips_through_json():
    for mapping in MAPPINGS:
        assert FieldMapping.from_dict(json.loads(json.dumps(mapping.to_dict()))) == mapping
    assert FieldMapping("x", " fname ").tag == "FNAME"


def test_a_clean_contact_has_no_predicted_error():
    assert predict_errors(ALICE, MAPPINGS, MERGE_FIELDS) == []


def test_bad_email_syntax_is_predicted_but_a_missing_email_is_not_an_error():
    kinds = [e.kind for e in predict_errors({**ALICE, "email": "alice@@exemple"}, MAPPINGS, MERGE_FIELDS)]
    assert kinds == ["invalid_email"]
    assert predict_errors({**ALICE, "email": ""}, MAPPINGS, MERGE_FIELDS) == []


def test_too_long_value_is_predicted_with_its_field_and_message():
    errors = predict_errors({**ALICE, "company": "x" * 256}, MAPPINGS, MERGE_FIELDS)
    assert [(e.kind, e.field) for e in errors] == [("value_too_long", "COMPANY")]
    assert "COMPANY" in errors[0].message
    assert predict_errors({**ALICE, "company": "x" * 255}, MAPPINGS, MERGE_FIELDS) == []
    short = [FieldMapping("company", "COMPANY", max_length=10)]
    assert predict_errors({**ALICE, "company": "x" * 11}, short, MERGE_FIELDS)[0].kind == "value_too_long"


def test_required_merge_field_anaba_cannot_fill_is_predicted():
    fields = MERGE_FIELDS + [{"tag": "MMERGE7", "type": "text", "required": True}]
    errors = predict_errors(ALICE, MAPPINGS, fields)
    assert [(e.kind, e.field) for e in errors] == [("merge_field_required", "MMERGE7")]
    with_default = MERGE_FIELDS + [{"tag": "MMERGE7", "type": "text", "required": True, "default_value": "n/a"}]
    assert predict_errors(ALICE, MAPPINGS, with_default) == []


def test_required_field_left_empty_by_the_contact_is_predicted():
    fields = {f["tag"]: {**f, "required": f["tag"] == "LNAME"} for f in MERGE_FIELDS}
    errors = predict_errors({**ALICE, "last_name": ""}, MAPPINGS, fields)
    assert [(e.kind, e.field) for e in errors] == [("merge_field_required", "LNAME")]


def test_value_that_is_not_a_number_or_not_a_choice_is_predicted():
    mappings = [FieldMapping("ltv", "LTV", "number"), FieldMapping("size", "SIZE", "dropdown")]
    fields = [{"tag": "LTV", "type": "number"}, {"tag": "SIZE", "type": "dropdown", "options": {"choices": ["S", "M"]}}]
    errors = predict_errors({"email": "a@b.fr", "ltv": "beaucoup", "size": "XL"}, mappings, fields)
    assert [(e.kind, e.field) for e in errors] == [("merge_field_invalid", "LTV"), ("merge_field_invalid", "SIZE")]
    assert predict_errors({"email": "a@b.fr", "ltv": "12,5", "size": "M"}, mappings, fields) == []


def test_email_syntax_check():
    for good in ("a@b.fr", "jean.dupont+news@sous.domaine.com", "O'Brien@exemple.ie"):
        assert email_syntax_ok(good), good
    for bad in ("", None, "AAAAA", "a@b", "a..b@c.fr", ".a@b.fr", "a@b.fr x", "a@-b"):
        assert not email_syntax_ok(bad), bad


def test_diff_lists_only_what_changes():
    payload = build_member(ALICE, MAPPINGS)
    current = {
        "email_address": "alice@example.fr", "status": "subscribed",
        "merge_fields": {"FNAME": "Alicia", "LNAME": "Martin", "PHONE": "+33 6 12 34 56 78", "COMPANY": "ACME",
                         "ADDRESS": {"addr1": "12 rue de la Paix", "addr2": "", "city": "Paris", "state": "Paris",
                                     "zip": "75002", "country": "fr"}},
    }
    assert member_diff(current, payload) == {"FNAME": ("Alicia", "Alice"), "COMPANY": ("ACME", "")}


def test_diff_against_a_new_member_shows_every_value():
    diff = member_diff(None, build_member(ALICE, MAPPINGS))
    assert diff["email_address"] == (None, "Alice@Example.fr")
    assert diff["status"] == (None, "subscribed")
    assert diff["FNAME"] == ("", "Alice")
    assert "COMPANY" not in diff


def test_diff_shows_a_status_change_and_an_address_removal():
    current = {"email_address": "Alice@Example.fr", "status": "unsubscribed",
               "merge_fields": {"ADDRESS": {"addr1": "1 rue", "city": "Lyon", "state": "Lyon", "zip": "69001",
                                            "country": "FR"}}}
    payload = build_member({**ALICE, "street": ""}, [m for m in MAPPINGS if m.tag == "ADDRESS"])
    diff = member_diff(current, payload)
    assert diff["status"] == ("unsubscribed", "subscribed")
    assert diff["ADDRESS"][1] == ""


def test_fingerprint_ignores_order_but_not_content():
    payload = build_member(ALICE, MAPPINGS)
    same = json.loads(json.dumps(payload))
    same["merge_fields"] = dict(reversed(list(same["merge_fields"].items())))
    assert payload_fingerprint(payload, ["b", "a", "a"]) == payload_fingerprint(same, ["a", "b"])
    assert len(payload_fingerprint(payload, [])) == 64
    changed = build_member({**ALICE, "first_name": "Alicia"}, MAPPINGS)
    assert payload_fingerprint(changed, ["a", "b"]) != payload_fingerprint(payload, ["a", "b"])
    assert payload_fingerprint(payload, ["a"]) != payload_fingerprint(payload, ["a", "b"])


def test_fingerprint_is_the_same_whichever_status_key_carried_it():
    assert payload_fingerprint(build_member(ALICE, MAPPINGS), []) == payload_fingerprint(
        build_member(ALICE, MAPPINGS, status_key="status_if_new"), []
    )


def test_tags_anaba_does_not_manage_are_never_removed():
    add, remove = tag_changes(
        current_tags=["VIP", "Newsletter", "Salon 2024"],
        wanted_tags=["Clients", "VIP"],
        managed_tags=["Clients", "VIP", "Newsletter", "Prospects"],
    )
    assert add == ["Clients"]
    assert remove == ["Newsletter"]


def test_tag_names_compare_without_case():
    assert tag_changes(["clients"], ["Clients"], ["Clients"]) == ([], [])


tag_names = st.lists(st.sampled_from(["A", "B", "C", "D", "E", "F"]), max_size=6)


@given(tag_names, tag_names, tag_names)
def test_applying_tag_changes_reaches_the_wanted_tags_and_keeps_foreign_ones(current, wanted, managed):
    managed = set(managed) | set(wanted)
    add, remove = tag_changes(current, wanted, managed)
    after = (set(current) | set(add)) - set(remove)
    assert set(wanted) <= after
    assert {t for t in current if t not in managed} <= after
    assert not (after & managed) - set(wanted)
    assert not set(add) & set(remove)


@given(st.dictionaries(st.sampled_from(["first_name", "last_name", "company", "phone"]),
                       st.text(max_size=20), max_size=4),
       st.lists(st.text(min_size=1, max_size=5), max_size=5))
def test_fingerprint_is_stable_under_shuffling(values, tags):
    contact = {"email": "a@b.fr", **values}
    payload = build_member(contact, MAPPINGS)
    shuffled = list(tags)
    random.Random(1).shuffle(shuffled)
    assert payload_fingerprint(payload, tags) == payload_fingerprint(payload, shuffled)
    assert member_diff(payload, payload) == {}


# --- what decides "nothing to send" (R10) --------------------------------------------------------
# Each of these changes alone must change the fingerprint, or the change would never reach Mailchimp.

def _fp(contact=ALICE, mappings=MAPPINGS, status="subscribed", tags=()):
    return payload_fingerprint(build_member(contact, mappings, status=status), tags)


def test_a_consent_only_change_changes_the_fingerprint():
    assert _fp(status="unsubscribed") != _fp(status="subscribed")


def test_a_single_tag_changes_the_fingerprint():
    assert _fp(tags=["Clients"]) != _fp(tags=["Clients", "VIP"])


@pytest.mark.parametrize("part, value", [("street", "14 rue de la Paix"), ("postal_code", "75003"),
                                         ("city", "Lyon")])
def test_one_address_part_changes_the_fingerprint(part, value):
    assert _fp({**ALICE, part: value}) != _fp()


def test_a_country_changes_the_fingerprint_and_is_sent_as_its_code():
    belgian = {**ALICE, "country": "Belgique"}
    assert _fp(belgian) != _fp()
    assert build_member(belgian, MAPPINGS)["merge_fields"]["ADDRESS"]["country"] == "BE"


def test_the_same_contact_twice_gives_the_same_fingerprint():
    assert _fp(dict(ALICE), tags=["VIP", "Clients"]) == _fp(dict(ALICE), tags=["Clients", "VIP"])


def test_a_french_address_without_state_sends_its_region_as_state_and_an_incomplete_one_sends_nothing():
    # issue 12: the city is not repeated as the state ("Paris, Paris 75002"); the region stands in.
    address = build_member(ALICE, MAPPINGS)["merge_fields"]["ADDRESS"]
    assert address == {"addr1": "12 rue de la Paix", "addr2": "", "city": "Paris", "state": "Île-de-France",
                       "zip": "75002", "country": "FR"}
    assert build_member({**ALICE, "postal_code": ""}, MAPPINGS)["merge_fields"]["ADDRESS"] == ""


@pytest.mark.parametrize("postal_code, region", [
    ("69003", "Auvergne-Rhône-Alpes"), ("13006", "Provence-Alpes-Côte d'Azur"), ("20000", "Corse"),
    ("97400", "La Réunion"), ("59000", "Hauts-de-France"), ("01000", "Auvergne-Rhône-Alpes"),
])
def test_the_region_comes_from_the_postal_code(postal_code, region):
    assert french_region(postal_code) == region


def test_an_address_without_a_region_falls_back_to_the_city_and_reads_once_on_one_line():
    belgian = build_member({**ALICE, "country": "Belgique", "postal_code": "1000", "city": "Bruxelles"},
                           MAPPINGS)["merge_fields"]["ADDRESS"]
    assert belgian["state"] == "Bruxelles"  # Mailchimp wants a state; nothing better is known
    assert address_line(belgian) == "12 rue de la Paix, 1000 Bruxelles, BE"
    assert address_line(build_member(ALICE, MAPPINGS)["merge_fields"]["ADDRESS"]) == \
        "12 rue de la Paix, 75002 Paris, Île-de-France, FR"


def test_a_member_written_with_the_city_as_state_is_not_reported_as_different():
    current = {"email_address": "alice@example.fr", "status": "subscribed", "merge_fields": {
        "ADDRESS": {"addr1": "12 rue de la Paix", "addr2": "", "city": "Paris", "state": "Paris", "zip": "75002",
                    "country": "FR"}}}
    assert "ADDRESS" not in member_diff(current, build_member(ALICE, [m for m in MAPPINGS if m.tag == "ADDRESS"]))


def test_number_and_date_merge_values_are_sent_in_mailchimps_forms():
    mappings = [FieldMapping("score", "SCORE", "number"), FieldMapping("since", "SINCE", "date"),
                FieldMapping("born", "BIRTHDAY", "birthday")]
    contact = {"email": "a@b.fr", "score": 12.0, "since": dt.date(2026, 3, 9), "born": dt.date(1990, 7, 14)}
    fields = build_member(contact, mappings)["merge_fields"]
    assert fields == {"SCORE": 12.0, "SINCE": "2026-03-09", "BIRTHDAY": "07/14"}
    assert _fp(contact, mappings) != _fp({**contact, "score": 13}, mappings)
    assert _fp(contact, mappings) != _fp({**contact, "since": dt.date(2026, 3, 10)}, mappings)
