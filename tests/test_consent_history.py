"""A contact's consent history (R15): every change, whatever made it, with Mailchimp's evidence — on the
History tab, through the API, and as a file customers and support can hand to a regulator."""
from __future__ import annotations

import csv
import io
from datetime import datetime, timezone

import pytest
from sqlalchemy import select

import factories
from portal.extensions import db


@pytest.fixture
def jeanne(workspace):
    """A contact opted in from the portal, then opted out by a Mailchimp self-unsubscribe (locked)."""
    from portal.crm.contacts import ConsentEvidence, set_consent
    from portal.models import WebhookEvent

    person = factories.contact(workspace, email="jeanne@ardent.fr", consent="opt_in", first_name="=HYPERLINK(1)")
    event = WebhookEvent(connector_id=_connector(workspace).id, workspace_id=workspace.id, type="unsubscribe",
                         body="type=unsubscribe", natural_key="k1")
    db.session.add(event)
    db.session.commit()
    set_consent(workspace.id, person.id, "opt_out", actor="Mailchimp", channel="mailchimp_webhook", locked=True,
                lock_reason="self_unsubscribe", note="N/A (Unsubscribed by user)",
                evidence=ConsentEvidence(at=datetime(2026, 11, 30, 9, 15, 2, tzinfo=timezone.utc), ip="203.0.113.7",
                                         webhook_event_id=event.id, details={"campaign_id": "cb398d21d2"}))
    return person, event


def _connector(workspace):
    from portal.models import Connector

    connector = db.session.scalar(select(Connector).where(Connector.workspace_id == workspace.id))
    if connector is None:
        connector = Connector(workspace_id=workspace.id, status="active", api_key_encrypted="x", api_key_hint="…-us1",
                              audience_id="aud1", subscribe_url="https://ardent.us1.list-manage.com/subscribe?u=1&id=2")
        db.session.add(connector)
        db.session.commit()
    return connector


def rows_of(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text.lstrip("\ufeff")), delimiter=";"))


def test_the_history_tab_shows_a_webhook_change_with_its_evidence(ui, jeanne):
    person, event = jeanne
    html = ui.get(f"/contacts/{person.id}/history").get_data(as_text=True)
    assert "Consent: Opt-in → Opt-out" in html and "Mailchimp (webhook)" in html
    assert "unsubscribed themself through a Mailchimp form or unsubscribe link" in html
    assert "IP address 203.0.113.7" in html and f"webhook event no. {event.id}" in html
    assert "Consent: Unknown → Opt-in" in html and "Portal" in html  # the first change, from the portal


def test_the_consent_history_downloads_as_a_csv_file_safe_to_open_in_a_spreadsheet(ui, jeanne):
    person, event = jeanne
    response = ui.get(f"/contacts/{person.id}/consent-history.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    header, first, second = rows_of(response.get_data(as_text=True))
    assert header[:6] == ["Contact", "E-mail", "When (UTC)", "Before", "After", "Locked"]
    assert first[0].startswith("'=")  # a name a spreadsheet would run as a formula is neutralised
    assert (first[3], first[4], first[7]) == ("Unknown", "Opt-in", "Portal")
    assert (second[3], second[4], second[5], second[7], second[8]) == ("Opt-in", "Opt-out", "yes",
                                                                       "Mailchimp (webhook)", "Mailchimp")
    assert second[10] == "2026-11-30T09:15:02+00:00" and second[11] == "203.0.113.7" and second[12] == str(event.id)
    assert "campaign_id=cb398d21d2" in second[13]


def test_another_workspaces_contact_history_is_404(ui, app):
    other = factories.workspace("Autre Boutique")
    stranger = factories.contact(other, email="x@autre.fr", consent="opt_in")
    assert ui.get(f"/contacts/{stranger.id}/consent-history.csv").status_code == 404
    assert ui.get(f"/contacts/{stranger.id}/history").status_code == 404


def test_the_api_returns_a_contacts_consent_history_with_the_evidence(app, jeanne, workspace):
    from portal.crm.accounts import new_api_token

    person, event = jeanne
    token = new_api_token(workspace)
    response = app.test_client().get(f"/api/v1/contacts/{person.id}/consent-history",
                                     headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    first, second = response.get_json()["data"]
    assert (first["channel"], first["new"], first["evidence"]["webhook_event_id"]) == ("ui", "opt_in", None)
    assert second == {
        "id": second["id"], "at": second["at"], "old": "opt_in", "new": "opt_out", "locked": True,
        "lock_reason": "self_unsubscribe", "channel": "mailchimp_webhook", "actor": "Mailchimp",
        "note": "N/A (Unsubscribed by user)",
        "evidence": {"at": "2026-11-30T09:15:02Z", "ip": "203.0.113.7", "webhook_event_id": event.id,
                     "details": {"campaign_id": "cb398d21d2"}}}
    other = factories.workspace("Autre Boutique")
    stranger = factories.contact(other, email="x@autre.fr")
    assert app.test_client().get(f"/api/v1/contacts/{stranger.id}/consent-history",
                                 headers={"Authorization": f"Bearer {token}"}).status_code == 404


def test_the_api_consent_history_matches_the_spec(app, jeanne, workspace):
    from test_api_openapi import CheckedClient, OpenAPI, DOCS

    from portal.crm.accounts import new_api_token

    person, _event = jeanne
    checked = CheckedClient(app, OpenAPI.from_file_path(str(DOCS / "openapi.yaml")), new_api_token(workspace))
    assert checked.call("GET", f"/api/v1/contacts/{person.id}/consent-history").status_code == 200
    assert checked.call("GET", "/api/v1/contacts/999999/consent-history").status_code == 404


def test_support_finds_a_person_in_every_workspace_and_exports_their_history(support_client, support_user, jeanne):
    person, _event = jeanne
    support_user.locale = "en"
    db.session.commit()
    other = factories.workspace("Autre Boutique")
    factories.contact(other, email="jeanne@ardent.fr", consent="unknown")
    page = support_client.get("/support/consent?email=JEANNE@ardent.fr").get_data(as_text=True)
    assert "Boulangerie Ardent" in page and "Autre Boutique" in page
    assert "the contact unsubscribed themself" in page
    export = support_client.get(f"/support/consent/{person.id}.csv")
    assert export.status_code == 200 and len(rows_of(export.get_data(as_text=True))) == 3
    assert support_client.get("/support/consent/999999.csv").status_code == 404


def test_customers_cannot_use_supports_export(ui, jeanne):
    person, _event = jeanne
    assert ui.get(f"/support/consent/{person.id}.csv").status_code == 403


def test_every_channel_records_a_consent_event(app, workspace, customer_client, run_jobs):
    """UI, API, CSV import and the consent import each leave their event (the webhook and the
    reconciliation are covered with the simulator in tests/sync/test_webhooks_consent.py)."""
    from portal.crm.accounts import new_api_token
    from portal.crm.contacts import consent_history

    person = factories.contact(workspace, email="tous@ardent.fr")
    customer_client.post(f"/contacts/{person.id}/consent", data={"consent": "opt_in"})
    app.test_client().patch(f"/api/v1/contacts/{person.id}", json={"consent": "opt_out"},
                            headers={"Authorization": f"Bearer {new_api_token(workspace)}"})
    customer_client.post("/contacts/import", data={"file": (io.BytesIO(b"email,consent\ntous@ardent.fr,oui\n"),
                                                            "c.csv")}, content_type="multipart/form-data")
    from portal.models import CsvImport

    imp = db.session.scalar(select(CsvImport).order_by(CsvImport.id.desc()))
    customer_client.post(f"/contacts/import/{imp.id}/start",
                         data={f"col-{i}": c for i, c in enumerate(imp.mapping["columns"])})
    run_jobs()
    db.session.expire_all()
    assert [e.channel for e in consent_history(workspace.id, person.id)] == ["ui", "api", "csv_import"]
