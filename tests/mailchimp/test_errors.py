"""Mailchimp's problem documents become typed errors with a customer message and a fix (R19)."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portal.mailchimp.errors import KINDS, MESSAGES_EN, MailchimpError, classify, classify_batch_error, message_for

MEMBER = {"path": "lists/abc123/members/0123456789abcdef0123456789abcdef"}
LIST = {"path": "lists/abc123"}


def test_every_kind_has_a_message_without_placeholders_left():
    assert set(KINDS) == set(MESSAGES_EN)
    for kind in KINDS:
        assert "{" not in message_for(kind)


def test_field_name_appears_in_the_message():
    assert "LTV" in message_for("merge_field_invalid", field="LTV")
    assert "PHONE" in message_for("value_too_long", field="PHONE")


def test_unknown_kind_reads_as_unknown():
    assert message_for("no-such-kind") == MESSAGES_EN["unknown"]
    assert MailchimpError("no-such-kind").kind == "unknown"


@pytest.mark.parametrize(
    ("status", "title", "detail", "errors", "context", "kind", "field"),
    [
        (400, "Invalid Resource", "bob@gmail.con looks fake or invalid, please enter a real email address.",
         None, MEMBER, "fake_email", None),
        (400, "Invalid Resource", "Please provide a valid email address.", None, MEMBER, "invalid_email", None),
        (400, "Member In Compliance State",
         "a@b.fr is in a compliance state due to unsubscribe, bounce, or compliance review and cannot be subscribed.",
         None, MEMBER, "compliance_state", None),
        (400, "Forgotten Email Not Subscribed",
         "a@b.fr was permanently deleted and cannot be re-imported. The contact must re-subscribe to get back on the list.",
         None, MEMBER, "forgotten_email", None),
        (400, "Member Exists", "a@b.fr is already a list member. Use PUT to insert or update list members.",
         None, MEMBER, "member_exists", None),
        (400, "Invalid Resource", "Your merge fields were invalid.",
         [{"field": "LTV", "message": "Please enter a number"}], MEMBER, "merge_field_invalid", "LTV"),
        (400, "Invalid Resource", "Your merge fields were invalid.",
         [{"field": "LNAME", "message": "Please enter a value"}], MEMBER, "merge_field_required", "LNAME"),
        (400, "Invalid Resource", "Your merge fields were invalid.",
         [{"field": "ADDRESS", "message": "Please enter a complete address"}], MEMBER, "merge_field_invalid", "ADDRESS"),
        (400, "Invalid Resource", "Your merge fields were invalid.",
         [{"field": "COMPANY", "message": "Value must be 255 characters or fewer"}], MEMBER, "value_too_long", "COMPANY"),
        (400, "Invalid Resource",
         "The resource submitted could not be validated. For field-specific details, see the 'errors' array.",
         [{"field": "merge_fields.FNAME", "message": "Data did not match any of the schemas described in anyOf."}],
         MEMBER, "merge_field_invalid", "FNAME"),
        (400, "Invalid Resource",
         "The resource submitted could not be validated. For field-specific details, see the 'errors' array.",
         [{"field": "email_address", "message": "This value should not be blank."}], MEMBER, "invalid_email", None),
        (400, "Invalid Resource",
         "The resource submitted could not be validated. For field-specific details, see the 'errors' array.",
         [{"field": "", "message": "Required fields were not provided: email_address"}], MEMBER, "invalid_email", None),
        (400, "Invalid Resource",
         "a@b.fr has signed up to a lot of lists very recently; we're not allowing more signups for now",
         None, MEMBER, "signup_throttled", None),
        (404, "Resource Not Found", "The requested resource could not be found.", None, MEMBER, "not_found", None),
        (404, "Resource Not Found", "The requested resource could not be found.", None, LIST, "audience_gone", None),
        (404, "Resource Not Found", "The requested resource could not be found.", None,
         {"path": "lists/abc123/merge-fields"}, "audience_gone", None),
        (401, "API Key Invalid", "Your API key may be invalid, or you've attempted to access the wrong datacenter.",
         None, LIST, "api_key_invalid", None),
        (429, "Too Many Requests", "You have exceeded the limit of 10 simultaneous connections.",
         None, LIST, "rate_limited", None),
        (500, "Internal Server Error", "A deep, internal error has occurred during the processing of your request.",
         None, LIST, "unavailable", None),
        (503, "Service Unavailable", "", None, LIST, "unavailable", None),
        (502, None, None, None, LIST, "unavailable", None),
        (400, "Invalid Resource",
         "We couldn't verify the URL is working. Please double check and try again. HTTP Code: 400",
         None, {"path": "lists/abc123/webhooks"}, "webhook_unverified", None),
        (400, "JSON Parse Error", "We encountered an unspecified JSON parsing error.", None, LIST, "unknown", None),
    ],
)
def test_problem_documents_are_classified(status, title, detail, errors, context, kind, field):
    error = classify(status, title, detail, errors, context)
    assert error.kind == kind
    assert error.field == field
    assert error.status == status


def test_title_wins_over_a_misleading_detail():
    error = classify(400, "Member Exists", "Please provide a valid email address.", None, MEMBER)
    assert error.kind == "member_exists"


def test_transient_errors_are_never_the_contacts_fault():
    for kind in ("rate_limited", "unavailable", "timeout", "signup_throttled"):
        error = MailchimpError(kind)
        assert error.transient and not error.contact_fault and error.fix == "retry"


def test_contact_errors_carry_the_fix_the_customer_needs():
    assert classify(400, "Invalid Resource", "Please provide a valid email address.", None).fix == "edit_contact_and_retry"
    assert classify(400, "Member In Compliance State", "x", None).fix == "resubscribe_guidance"
    assert classify(400, "Member Exists", "x", None).fix == "choose_owner"
    assert MailchimpError("duplicate_email").fix == "choose_owner"


def test_revoked_key_and_deleted_audience_pause_the_connector():
    for error in (classify(401, "API Key Invalid", "", None), classify(404, "Resource Not Found", "", None, LIST)):
        assert error.pauses_connector and error.fix == "reconnect" and not error.transient
        assert not error.contact_fault


def test_retry_after_from_a_429_is_kept_and_the_throttle_has_a_long_hint():
    assert classify(429, "Too Many Requests", "", None, {"retry_after": 7}).retry_after == 7
    throttled = classify(400, "Invalid Resource", "x has signed up to a lot of lists very recently", None)
    assert throttled.retry_after >= 600 and not throttled.retry_in_client


def test_error_text_never_contains_more_than_it_was_given():
    error = classify(401, "API Key Invalid", "Your API key may be invalid.", None, LIST)
    assert "API Key Invalid" in str(error)
    assert error.as_dict()["kind"] == "api_key_invalid"
    assert error.message == MESSAGES_EN["api_key_invalid"]


@pytest.mark.parametrize(
    ("item", "kind", "field"),
    [
        ({"email_address": "x@y.fr", "error": "x@y.fr looks fake or invalid, please enter a real email address.",
          "error_code": "ERROR_GENERIC"}, "fake_email", None),
        ({"email_address": "AAAA", "error": "Please provide a valid email address.", "error_code": "ERROR_GENERIC"},
         "invalid_email", None),
        ({"email_address": "x@y.fr", "error": "x@y.fr is already a list member, do you want to update? please provide update_existing:true in the request body",
          "error_code": "ERROR_CONTACT_EXISTS"}, "member_exists", None),
        ({"email_address": "x@y.fr",
          "error": "x@y.fr is in a compliance state due to unsubscribe, bounce, or compliance review and cannot be subscribed.",
          "error_code": "ERROR_GENERIC"}, "compliance_state", None),
        ({"email_address": "x@y.fr",
          "error": "x@y.fr was permanently deleted and cannot be re-imported. The contact must re-subscribe to get back on the list.",
          "error_code": "ERROR_GENERIC"}, "forgotten_email", None),
        ({"email_address": "x@y.fr", "error": "Your merge fields were invalid.", "error_code": "ERROR_GENERIC",
          "field": "LTV", "field_message": "Please enter a number"}, "merge_field_invalid", "LTV"),
        ({"email_address": "x@y.fr", "error": "Your merge fields were invalid.", "error_code": "ERROR_GENERIC",
          "field": "LNAME", "field_message": "Please enter a value"}, "merge_field_required", "LNAME"),
        ({"email_address": "x@y.fr", "error": "Your merge fields were invalid.", "error_code": "ERROR_GENERIC",
          "field": "COMPANY", "field_message": "Value must be 255 characters or fewer"}, "value_too_long", "COMPANY"),
        ({"email_address": "x@y.fr", "error": "Please enter a complete address", "error_code": "ERROR_GENERIC"},
         "merge_field_invalid", "ADDRESS"),
        ({"email_address": "x@y.fr", "error": "x@y.fr has signed up to a lot of lists very recently; we're not allowing more signups for now",
          "error_code": "ERROR_GENERIC"}, "signup_throttled", None),
        ({"email_address": "x@y.fr", "error": "Something odd happened", "error_code": "ERROR_GENERIC"}, "unknown", None),
    ],
)
def test_batch_subscribe_errors_are_classified_from_their_text(item, kind, field):
    error = classify_batch_error(item)
    assert error.kind == kind
    assert error.field == field
    assert error.email == item["email_address"]


def test_errors_survive_pickling_with_their_kind_and_field():
    import pickle

    error = classify(400, "Invalid Resource", "Your merge fields were invalid.",
                     [{"field": "LTV", "message": "Please enter a number"}], MEMBER)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.kind, copy.field, copy.status, copy.message) == ("merge_field_invalid", "LTV", 400, error.message)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=10,
)


@given(
    st.one_of(st.none(), st.integers(min_value=100, max_value=599)),
    st.one_of(st.none(), st.text(max_size=40)),
    st.one_of(st.none(), st.text(max_size=120)),
    st.lists(st.dictionaries(st.sampled_from(["field", "message"]), json_values, max_size=2), max_size=3),
    st.one_of(st.none(), st.fixed_dictionaries({"path": st.text(max_size=60)})),
)
def test_any_problem_document_classifies_to_a_known_kind(status, title, detail, errors, context):
    error = classify(status, title, detail, errors, context)
    assert error.kind in KINDS
    assert error.message and error.fix


@given(st.dictionaries(st.sampled_from(["email_address", "error", "error_code", "field", "field_message"]),
                       json_values, max_size=5))
def test_any_batch_error_item_classifies_to_a_known_kind(item):
    assert classify_batch_error(item).kind in KINDS
