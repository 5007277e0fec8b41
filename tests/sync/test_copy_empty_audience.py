"""The whole path on an empty audience: submit, consent import, preview, validate, copy (R5–R8)."""
from __future__ import annotations

import re

from sqlalchemy import select

from sync_helpers import add_contacts, members, sync_rows, writes


def _run(connector_id, kind):
    from portal.extensions import db
    from portal.models import SyncRun

    return db.session.scalars(select(SyncRun).where(SyncRun.connector_id == connector_id, SyncRun.kind == kind)
                              .order_by(SyncRun.id.desc())).first()


def test_copy_fills_an_empty_audience_and_activates_the_connector(copy, workspace, mc, audience):
    ids = add_contacts(workspace, 30)
    connector = copy()
    assert connector.status == "active" and connector.activated_at is not None
    audience_now = members(mc, audience[1])
    assert len(audience_now) == 30
    first = audience_now["person0@ardent-clients.fr"]
    assert first["status"] == "subscribed"
    assert first["merge_fields"]["FNAME"] == "Prénom0" and first["merge_fields"]["COMPANY"] == "Ardent"
    assert {t["name"] for t in first["tags"]} == {"Clients", "VIP"}
    assert {t["name"] for t in audience_now["person3@ardent-clients.fr"]["tags"]} == {"Clients"}
    assert audience_now["person1@ardent-clients.fr"]["tags"] == []
    rows = sync_rows(connector.id)
    assert set(rows) == set(ids) and {r.state for r in rows.values()} == {"synced"}
    assert all(r.member_hash and r.fingerprint and r.last_synced_at for r in rows.values())
    run = _run(connector.id, "initial_copy")
    assert run.status == "finished" and run.counts["created"] == 30 and run.done == run.total == 30


def test_copy_creates_the_missing_merge_field_before_the_members(copy, workspace, mc, audience):
    add_contacts(workspace, 3)
    copy()
    tags = {f["tag"] for f in mc.get_merge_fields(audience[1])}
    assert "COMPANY" in tags


def test_calls_stay_at_the_minimum_the_api_allows(copy, workspace, sim, audience):
    add_contacts(workspace, 1200, tags_every=2)
    copy()
    log = sim.control.requests_log()
    batch = [r for r in log if r["method"] == "POST" and r["path_template"].endswith("/lists/{list_id}")]
    tag_calls = [r for r in log if r["method"] == "POST" and "/segments" in r["path_template"]]
    assert len(batch) == 3  # 1200 members, 500 per call
    # Clients: 600 members → 2 calls; VIP: 300 → 1 call; both tags created by their first call.
    assert len(tag_calls) == 3
    assert not [r for r in log if "/members/" in r["path_template"]]


def test_customers_get_an_email_with_counts_and_the_error_link(copy, workspace, mailbox):
    add_contacts(workspace, 5)
    add_contacts(workspace, 2, start=100, consent="unknown")
    copy()
    finished = [m for m in mailbox if m["To"] == "camille@ardent.test"]
    assert len(finished) == 1
    body = finished[0].get_body(("plain",)).get_content()
    # created, updated, up to date, not synced, of which "consent unknown", errors
    assert [int(n) for n in re.findall(r":\s*(\d+)\s*$", body, re.M)] == [5, 0, 0, 2, 2, 0]
    assert "http://portal.localhost:5000/mailchimp/errors" in body


def test_support_is_emailed_when_a_connector_is_submitted(submit, workspace, mailbox):
    add_contacts(workspace, 2)
    connector = submit()
    to_support = [m for m in mailbox if m["To"] == "support@anaba.localhost"]
    assert len(to_support) == 1
    assert f"/support/connectors/{connector.id}" in to_support[0].get_body(("plain",)).get_content()
    assert "Boulangerie Ardent" in to_support[0]["Subject"]


def test_nothing_is_written_to_mailchimp_before_validation(submit, workspace, sim, mc, audience):
    add_contacts(workspace, 40)
    mc.batch_subscribe(audience[1], [{"email_address": "person1@ardent-clients.fr", "status": "subscribed",
                                      "merge_fields": {"FNAME": "Ancien"}}])
    sim.control.clear_requests()
    connector = submit()
    assert connector.status == "pending_validation"
    assert writes(sim) == []
    preview = _run(connector.id, "preview")
    assert preview.status == "finished"
    assert preview.result["to_create"] == 39 and preview.result["to_update"] == 1
    sample = preview.result["update_samples"][0]
    assert sample["email"] == "person1@ardent-clients.fr" and sample["changes"]["FNAME"] == ["Ancien", "Prénom1"]


def test_sent_back_connector_shows_and_mails_the_reason(submit, workspace, support_user, mailbox):
    from portal.sync import lifecycle

    add_contacts(workspace, 2)
    connector = submit()
    mailbox.clear()
    lifecycle.send_back(connector.id, support_user, "Le champ TELEPHONE est obligatoire dans votre audience.")
    assert connector.status == "sent_back"
    assert connector.sent_back_reason.startswith("Le champ TELEPHONE")
    customer_mail = [m for m in mailbox if m["To"] == "camille@ardent.test"]
    assert len(customer_mail) == 1
    assert "TELEPHONE est obligatoire" in customer_mail[0].get_body(("plain",)).get_content()


def test_a_workspace_cannot_have_two_connectors(submit, workspace, customer, audience):
    import pytest

    from portal import jobs
    from portal.sync import ConnectorError

    submit()
    with pytest.raises(ConnectorError) as caught:
        jobs.submit_connector(workspace.id, customer, audience[0], audience[1])
    assert "Delete it first" in caught.value.message or "Supprimez" in caught.value.message


def test_deleting_keeps_the_audience_and_lets_the_customer_start_again(copy, submit, workspace, customer, mc, audience):
    from portal import jobs
    from portal.sync import lifecycle

    add_contacts(workspace, 4)
    connector = copy()
    lifecycle.delete_connector(connector.id, customer)
    assert connector.status == "deleted" and connector.deleted_at is not None
    assert len(members(mc, audience[1])) == 4
    again = jobs.submit_connector(workspace.id, customer, audience[0], audience[1])
    assert again.id != connector.id and again.status == "pending_validation"
