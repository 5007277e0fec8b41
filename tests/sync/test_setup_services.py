"""What the setup wizard and the validation page read from Mailchimp (R5, R7): reads only."""
from __future__ import annotations

import pytest

from sync_helpers import writes


def test_a_good_key_lists_its_audiences_and_a_bad_one_says_why(mc_app, sim, audience):
    from portal.mailchimp import MailchimpError
    from portal.sync import mailchimp_access

    found = mailchimp_access.check_api_key(audience[0])
    assert [a["name"] for a in found["audiences"]] == ["Clients Ardent"]
    assert audience[0] not in found["account"]
    sim.control.revoke_key(audience[0])
    with pytest.raises(MailchimpError) as caught:
        mailchimp_access.check_api_key(audience[0])
    assert caught.value.kind == "api_key_invalid" and caught.value.message


def test_proposed_mapping_marks_missing_and_required_fields(mc_app, sim, audience, mc):
    import requests

    from portal.sync import audience as audiences

    code = mc.create_merge_field(audience[1], "CODE", "Code client", "text")
    requests.patch(f"{sim.api_base}lists/{audience[1]}/merge-fields/{code['merge_id']}", json={"required": True},
                   auth=("x", audience[0]), timeout=10)
    fields = audiences.audience_fields(audience[0], audience[1])
    by_field = {p["field"]: p for p in fields["proposed_mapping"]}
    assert by_field["first_name"]["tag"] == "FNAME" and by_field["first_name"]["exists"]
    assert by_field["company"]["tag"] == "COMPANY" and not by_field["company"]["exists"]
    assert fields["unfillable_required"] == ["CODE"]
    assert "company" in [name for name, _label in fields["anaba_fields"]]


def test_audience_checks_read_without_writing(submit, workspace, sim, audience):
    from portal.sync import audience as audiences

    connector = submit()
    seq = sim.control.requests_log()[-1]["seq"]
    checks = audiences.audience_checks(connector)
    assert writes(sim, seq) == []
    by_name = {c["name"]: c for c in checks}
    assert len(checks) == 5
    assert any(c["ok"] is True and "FNAME" in c["detail"] for c in checks)
    assert any("COMPANY" in c["detail"] for c in checks)  # to be created at validation
    assert all(c["detail"] for c in by_name.values())
