"""The customer's Mailchimp pages: the wizard (R5), the connector page and its live progress (R8),
deletion (R9), the errors page with its fix actions (R19) and the R17 mark and status field.

Everything runs against the Mailchimp simulator (a real HTTP server) with real Redis and SMTP.
Pages are read in English (msgids), so the French catalogue can change without breaking tests.
"""
from __future__ import annotations

import base64
import html as htmllib
import json
import re
import zlib

import pytest
import requests

import factories
from portal.extensions import db
from portal.models import Connector, Contact, ContactSync, SyncRun


# --- helpers ----------------------------------------------------------------------------------

def english(browser):
    """Make a logged-in test browser ask for English pages."""
    browser.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    return browser


def mc(sim, key, method, path, **kw):
    """Call the simulator's Mailchimp API the way Mailchimp's own UI would (outside the portal)."""
    response = requests.request(method, sim.api_base + path.lstrip("/"), auth=("anystring", key), timeout=10, **kw)
    assert response.status_code < 400, response.text
    return response.json() if response.content else None


def audience(sim, key, name="Newsletter", members=()):
    """A simulator audience holding `members` (e-mails, subscribed); returns its id."""
    list_id = sim.control.create_list(key, name)["id"]
    for email in members:
        mc(sim, key, "POST", f"lists/{list_id}/members", json={"email_address": email, "status": "subscribed"})
    return list_id


def htmx(**extra):
    """Headers of an htmx request."""
    return {"HX-Request": "true", **extra}


def text(response) -> str:
    """The response body as text with runs of whitespace collapsed (for phrase assertions)."""
    return re.sub(r"\s+", " ", response.get_data(as_text=True))


def words(response) -> str:
    """What a reader sees: the body without tags, whitespace collapsed."""
    return re.sub(r"\s+", " ", htmllib.unescape(re.sub(r"<[^>]+>", " ", response.get_data(as_text=True))))


def session_of(browser) -> dict:
    """The Flask session cookie of a test browser, decoded (it is signed, not encrypted)."""
    cookie = browser.get_cookie("session")
    assert cookie is not None
    payload = cookie.value
    compressed = payload.startswith(".")
    data = payload.lstrip(".").split(".")[0]
    raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    if compressed:
        raw = zlib.decompress(raw)
    return json.loads(raw)


def walk_wizard(browser, key, list_id, form=None):
    """Steps 1–3 of the wizard with the proposed mapping; returns the submit response."""
    assert browser.post("/mailchimp/setup/key", data={"api_key": key}).status_code == 200
    step3 = browser.post("/mailchimp/setup/audience", data={"audience_id": list_id})
    assert step3.status_code == 200, step3.get_data(as_text=True)
    # The selected option of each select (a select with none selected is left out: not sent).
    chosen = dict(re.findall(r'<select name="(map-[a-z_]+)"[^>]*>(?:(?!</select>).)*?<option value="([A-Z0-9_]*)"\s+selected',
                             step3.get_data(as_text=True), flags=re.S))
    data = {**chosen, "create_missing": "1", **(form or {})}
    return browser.post("/mailchimp/setup/submit", data=data)


def to_mapping_step(browser, sim, key):
    """Steps 1 and 2 of the wizard with a new empty audience; the mapping step is next."""
    list_id = audience(sim, key)
    assert browser.post("/mailchimp/setup/key", data={"api_key": key}).status_code == 200
    assert browser.post("/mailchimp/setup/audience", data={"audience_id": list_id}).status_code == 200
    return list_id


def make_connector(ws, user, key, list_id):
    """A connector created through the service the wizard calls (for tests about later pages)."""
    from portal.jobs import submit_connector as create_connector

    return create_connector(ws.id, user, key, list_id, None, True)


@pytest.fixture
def other_workspace(app):
    """A second customer workspace with one contact and a logged-in user."""
    ws = factories.workspace("Fromagerie Voisine")
    factories.user("leo@voisine.test", "customer", ws)
    contact = factories.contact(ws, email="voisin@courriel.fr", consent="opt_in")
    return ws, contact


# --- the wizard (R5) --------------------------------------------------------------------------

def test_bad_api_key_gets_a_clear_message_and_422(mc_app, sim_key, customer_client):
    english(customer_client)
    bad = "0123456789abcdef0123456789abcdef-us1"
    response = customer_client.post("/mailchimp/setup/key", data={"api_key": bad})
    assert response.status_code == 422
    page = text(response)
    assert "API key" in page and "Mailchimp" in page
    assert bad not in page
    assert 'data-step="key"' in page


def test_empty_api_key_is_asked_again_not_a_server_error(mc_app, sim_key, customer_client):
    english(customer_client)
    response = customer_client.post("/mailchimp/setup/key", data={"api_key": ""}, headers=htmx())
    assert response.status_code == 422
    assert "Paste your Mailchimp API key" in text(response)
    assert "<html" not in response.get_data(as_text=True)  # htmx gets the step only


def test_good_key_lists_audiences_with_member_counts_and_keeps_key_only_encrypted(mc_app, sim, sim_key,
                                                                                  customer_client):
    english(customer_client)
    audience(sim, sim_key, "Newsletter", ["a@courriel.fr", "b@courriel.fr"])
    audience(sim, sim_key, "Clients VIP")
    response = customer_client.post("/mailchimp/setup/key", data={"api_key": sim_key}, headers=htmx())
    assert response.status_code == 200
    page = text(response)
    assert "Newsletter" in page and "2 members" in page
    assert "Clients VIP" in page and "0 members" in page
    assert sim_key not in page and sim_key[-4:] in page  # masked hint only
    stored = json.dumps(session_of(customer_client.client))
    assert sim_key not in stored and sim_key[:24] not in stored


def test_mapping_step_preselects_proposal_and_offers_missing_merge_fields(mc_app, sim, sim_key, customer_client):
    english(customer_client)
    list_id = audience(sim, sim_key)
    customer_client.post("/mailchimp/setup/key", data={"api_key": sim_key})
    response = customer_client.post("/mailchimp/setup/audience", data={"audience_id": list_id}, headers=htmx())
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert re.search(r'name="map-first_name".*?<option value="FNAME"\s+selected', html, re.S)
    assert re.search(r'name="map-phone".*?<option value="PHONE"\s+selected', html, re.S)
    # COMPANY is not in the audience: proposed for creation, created only at validation.
    assert re.search(r'<option value="COMPANY"\s+selected>New merge field COMPANY', html)
    assert "created at validation" in html


def test_required_merge_field_anaba_cannot_fill_is_flagged(mc_app, sim, sim_key, customer_client):
    english(customer_client)
    list_id = audience(sim, sim_key)
    mc(sim, sim_key, "POST", f"lists/{list_id}/merge-fields",
       json={"tag": "LOYALTY", "name": "Loyalty card", "type": "text", "required": True})
    customer_client.post("/mailchimp/setup/key", data={"api_key": sim_key})
    page = text(customer_client.post("/mailchimp/setup/audience", data={"audience_id": list_id}))
    assert "required in your audience and anaba has nothing to put in them" in page
    assert "<code>LOYALTY</code>" in page


def test_submitting_the_wizard_creates_a_connector_waiting_for_validation_and_writes_nothing(
        mc_app, sim, sim_key, customer_client, customer, workspace):
    english(customer_client)
    factories.contact(workspace, email="jeanne@courriel.fr", consent="opt_in")
    list_id = audience(sim, sim_key, members=["jeanne@courriel.fr"])
    sim.control.clear_requests()
    response = walk_wizard(customer_client, sim_key, list_id)
    assert response.status_code == 302 and response.location.endswith("/mailchimp/")
    writes = [r for r in sim.control.requests_log() if r["method"] not in ("GET", "HEAD")]
    assert writes == []
    connector = db.session.scalar(db.select(Connector).where(Connector.workspace_id == workspace.id))
    assert connector.status == "pending_validation"
    assert {m.get("tag") for m in connector.field_mapping} >= {"FNAME", "LNAME", "COMPANY"}
    page = text(customer_client.get("/mailchimp/"))
    assert "waits for anaba's validation" in page
    assert "Nothing has been written to Mailchimp yet" in page
    assert connector.api_key_hint in page and sim_key not in page
    assert "Newsletter" in page
    assert "wizard" not in session_of(customer_client.client).get("mc_wizard", {})


def test_wizard_answers_htmx_submit_with_a_redirect_header(mc_app, sim, sim_key, customer_client):
    to_mapping_step(customer_client, sim, sim_key)
    response = customer_client.post("/mailchimp/setup/submit", headers=htmx(),
                                    data={"map-first_name": "FNAME", "create_missing": "1"})
    assert response.headers.get("HX-Redirect", "").endswith("/mailchimp/")


def test_one_merge_field_cannot_receive_two_anaba_fields(mc_app, sim, sim_key, customer_client):
    english(customer_client)
    to_mapping_step(customer_client, sim, sim_key)
    response = customer_client.post("/mailchimp/setup/submit",
                                    data={"map-first_name": "FNAME", "map-last_name": "FNAME"})
    assert response.status_code == 422
    assert "both go to the merge field FNAME" in text(response)
    assert db.session.scalar(db.select(db.func.count()).select_from(Connector)) == 0


def test_every_mapping_problem_is_shown_at_once_and_the_choices_are_kept(mc_app, sim, sim_key, customer_client):
    english(customer_client)
    to_mapping_step(customer_client, sim, sim_key)
    response = customer_client.post("/mailchimp/setup/submit", headers=htmx(),
                                    data={"map-first_name": "FNAME", "map-last_name": "fname ",
                                          "map-company": "COMPANY"})
    assert response.status_code == 422
    page = text(response)
    assert "<html" not in page and 'data-step="mapping"' in page
    assert "both go to the merge field FNAME" in page and "does not exist in the audience yet" in page
    html = response.get_data(as_text=True)
    assert re.search(r'name="map-last_name".*?<option value="FNAME"\s+selected', html, re.S)
    phone = re.search(r'<select name="map-phone".*?</select>', html, re.S).group(0)
    assert "selected" not in phone  # not posted: not sent
    assert 'name="create_missing" value="1" >' in html  # left unticked, as posted
    assert db.session.scalar(db.select(db.func.count()).select_from(Connector)) == 0


def test_wizard_messages_are_in_the_customers_language(mc_app, sim_key, customer_client):
    response = customer_client.post("/mailchimp/setup/key", data={"api_key": "  "})
    assert response.status_code == 422
    page = text(response)
    assert "<html" in page and "Collez votre clé d&#39;API Mailchimp." in page


def test_missing_merge_field_without_creation_is_refused(mc_app, sim, sim_key, customer_client):
    english(customer_client)
    to_mapping_step(customer_client, sim, sim_key)
    response = customer_client.post("/mailchimp/setup/submit", data={"map-company": "COMPANY"})
    assert response.status_code == 422
    assert "does not exist in the audience yet" in text(response)


def test_audience_of_another_account_cannot_be_picked(mc_app, sim, sim_key, customer_client):
    english(customer_client)
    other_key = sim.control.new_account("Other")
    foreign = audience(sim, other_key, "Not yours")
    customer_client.post("/mailchimp/setup/key", data={"api_key": sim_key})
    response = customer_client.post("/mailchimp/setup/audience", data={"audience_id": foreign})
    assert response.status_code == 422
    assert "Choose one of your audiences" in text(response)


def test_wizard_refuses_a_second_connector_and_says_how_to_change_it(mc_app, sim, sim_key, customer_client,
                                                                   customer, workspace):
    english(customer_client)
    make_connector(workspace, customer, sim_key, audience(sim, sim_key))
    page = text(customer_client.get("/mailchimp/setup"))
    assert "already has a Mailchimp connector" in page
    assert "delete it on the connector page and create a new one" in page
    assert customer_client.post("/mailchimp/setup/key", data={"api_key": sim_key}).status_code == 409


def test_wizard_steps_refuse_posts_without_csrf_token(mc_app, sim_key, app, customer):
    raw = app.test_client()
    with raw:
        raw.post("/login", data={"email": customer.email, "password": "secret-pw"})
    for path in ("/mailchimp/setup/key", "/mailchimp/setup/audience", "/mailchimp/setup/submit",
                 "/mailchimp/setup/cancel", "/mailchimp/delete", "/mailchimp/errors/retry",
                 "/mailchimp/errors/do-not-sync", "/mailchimp/errors/owner"):
        assert raw.post(path, data={"api_key": sim_key, "contact_id": "1"}).status_code == 400, path


def test_support_agent_cannot_open_the_customer_wizard(support_client):
    assert support_client.get("/mailchimp/setup").status_code == 403


# --- the connector page -----------------------------------------------------------------------

def test_connector_page_invites_to_connect_when_there_is_none(customer_client):
    english(customer_client)
    page = text(customer_client.get("/mailchimp/"))
    assert "Connect your Mailchimp audience" in page
    assert 'href="/mailchimp/setup"' in page


def test_connector_page_shows_mapping_consent_import_result_and_history(mc_app, sim, sim_key, customer_client,
                                                                        customer, workspace, run_jobs):
    english(customer_client)
    kept = factories.contact(workspace, email="jeanne@courriel.fr")
    list_id = audience(sim, sim_key, members=["jeanne@courriel.fr"])
    make_connector(workspace, customer, sim_key, list_id)
    run_jobs()
    db.session.expire_all()
    assert db.session.get(Contact, kept.id).consent == "opt_in"
    response = customer_client.get("/mailchimp/")
    page = words(response)
    assert "FNAME" in page and "First name" in page
    assert "Consent import" in page
    assert "1 now opt-in" in page
    assert 'data-run-kind="consent_import"' in response.get_data(as_text=True)


def test_delete_explains_r9_stops_replication_and_keeps_contacts(mc_app, sim, sim_key, customer_client,
                                                                  customer, workspace):
    english(customer_client)
    contact = factories.contact(workspace, email="jeanne@courriel.fr", consent="opt_in")
    list_id = audience(sim, sim_key, members=["jeanne@courriel.fr"])
    make_connector(workspace, customer, sim_key, list_id)
    page = text(customer_client.get("/mailchimp/"))
    assert "Replication stops at once" in page
    assert "stay in anaba" in page
    assert "The Mailchimp audience is left as it is" in page
    response = customer_client.post("/mailchimp/delete", data={"confirm": "1"}, follow_redirects=True)
    assert response.status_code == 200
    assert "Connect your Mailchimp audience" in text(response)
    db.session.expire_all()
    connector = db.session.scalar(db.select(Connector).where(Connector.workspace_id == workspace.id))
    assert connector.status == "deleted" and connector.deleted_at is not None
    assert db.session.get(Contact, contact.id).deleted_at is None
    members = mc(sim, sim_key, "GET", f"lists/{list_id}/members")["members"]
    assert [m["email_address"] for m in members] == ["jeanne@courriel.fr"]
    # and the wizard is open again
    assert 'data-step="key"' in customer_client.get("/mailchimp/setup").get_data(as_text=True)


def test_sent_back_connector_shows_the_reason_to_the_customer(mc_app, sim, sim_key, customer_client, customer,
                                                              workspace, support_user):
    from portal.sync.lifecycle import send_back

    english(customer_client)
    connector = make_connector(workspace, customer, sim_key, audience(sim, sim_key))
    send_back(connector.id, support_user, "Please map the company to COMPANY, not to FNAME.")
    page = text(customer_client.get("/mailchimp/"))
    assert "sent your connector back" in page
    assert "Please map the company to COMPANY, not to FNAME." in page


def test_paused_connector_says_to_reconnect_with_a_button(mc_app, sim, sim_key, customer_client, customer,
                                                          workspace):
    english(customer_client)
    connector = make_connector(workspace, customer, sim_key, audience(sim, sim_key))
    connector.status = "paused"
    connector.paused_reason = "api_key_invalid"
    db.session.commit()
    page = text(customer_client.get("/mailchimp/"))
    assert "The connector is paused" in page
    assert "it was revoked or is wrong" in page
    assert 'href="/mailchimp/delete?next=setup"' in page
    confirm = text(customer_client.get("/mailchimp/delete?next=setup"))
    assert "Reconnect Mailchimp" in confirm and "The Mailchimp audience is left as it is" in confirm
    response = customer_client.post("/mailchimp/delete", data={"next": "setup", "confirm": "1"})
    assert response.location.endswith("/mailchimp/setup")


def test_delete_without_confirmation_deletes_nothing(mc_app, sim, sim_key, customer_client, customer, workspace):
    english(customer_client)
    connector = make_connector(workspace, customer, sim_key, audience(sim, sim_key))
    response = customer_client.post("/mailchimp/delete", data={})
    assert response.status_code == 422
    assert "Tick the box to confirm the deletion" in text(response)
    db.session.expire_all()
    assert db.session.get(Connector, connector.id).status == "pending_validation"


def test_refused_reconnect_deletion_stays_on_the_reconnect_path(mc_app, sim, sim_key, customer_client, customer,
                                                                 workspace):
    english(customer_client)
    make_connector(workspace, customer, sim_key, audience(sim, sim_key))
    response = customer_client.post("/mailchimp/delete", data={"next": "setup"})
    assert response.status_code == 422
    page = text(response)
    assert "Reconnect Mailchimp" in page and "Tick the box to confirm the deletion" in page
    assert 'name="next" value="setup"' in page


def test_revoked_key_during_the_copy_pauses_with_the_reconnect_message(mc_app, sim, sim_key, customer_client,
                                                                       customer, workspace, support_user,
                                                                       run_jobs):
    from portal.jobs import validate_connector as validate

    english(customer_client)
    factories.contact(workspace, email="jeanne@courriel.fr", consent="opt_in")
    connector = make_connector(workspace, customer, sim_key, audience(sim, sim_key))
    run_jobs()
    copy = validate(connector.id, support_user)
    sim.control.revoke_key(sim_key)
    run_jobs()
    response = customer_client.get("/mailchimp/")
    page = words(response)
    assert "The connector is paused" in page and "Reconnect and resume" in page
    assert "Mailchimp refuses the API key: it was revoked or is wrong." in page  # in the reader's language
    partial = customer_client.get(f"/mailchimp/runs/{copy.id}/progress", headers=htmx())
    assert "hx-trigger" not in partial.get_data(as_text=True)  # a paused run does not move: polling stops
    db.session.expire_all()
    assert db.session.scalar(db.select(db.func.count()).select_from(ContactSync)
                             .where(ContactSync.state == "error")) == 0


def test_reconnecting_after_the_key_is_repaired_resumes_the_copy_to_active(mc_app, sim, sim_key, customer_client,
                                                                          customer, workspace, support_user,
                                                                          run_jobs):
    from portal.jobs import validate_connector as validate

    english(customer_client)
    factories.contact(workspace, email="jeanne@courriel.fr", consent="opt_in")
    connector = make_connector(workspace, customer, sim_key, audience(sim, sim_key))
    run_jobs()
    validate(connector.id, support_user)
    sim.control.revoke_key(sim_key)
    run_jobs()
    refused = customer_client.post("/mailchimp/reconnect", data={"api_key": "not-a-key"}, follow_redirects=True)
    assert "The connector is paused" in words(refused)
    sim.control.restore_key(sim_key)
    response = customer_client.post("/mailchimp/reconnect", data={"api_key": ""}, follow_redirects=True)
    assert "Reconnected" in words(response)
    run_jobs()
    db.session.expire_all()
    assert db.session.get(Connector, connector.id).status == "active"
    assert db.session.scalar(db.select(ContactSync.state)) == "synced"


def test_contact_history_says_in_words_what_the_copy_did(mc_app, sim, sim_key, customer_client, customer,
                                                       workspace, support_user, run_jobs):
    from portal.jobs import validate_connector as validate

    english(customer_client)
    sent = factories.contact(workspace, email="jeanne@courriel.fr", consent="opt_in")
    refused = factories.contact(workspace, email="paul@test.com", first_name="Paul", consent="opt_in")
    connector = make_connector(workspace, customer, sim_key, audience(sim, sim_key))
    run_jobs()
    validate(connector.id, support_user)
    run_jobs()
    history = text(customer_client.get(f"/contacts/{sent.id}/history", headers=htmx()))
    assert "Sent to Mailchimp: new member" in history
    history = text(customer_client.get(f"/contacts/{refused.id}/history", headers=htmx()))
    assert "Refused by Mailchimp" in history and "fake_email" not in history


# --- progress partial (R8) --------------------------------------------------------------------

def _run(connector, **fields):
    fields = {"counts": {}, "result": {}, **fields}
    run = SyncRun(connector_id=connector.id, workspace_id=connector.workspace_id, kind="initial_copy", **fields)
    db.session.add(run)
    db.session.commit()
    return run


def test_a_failed_run_tells_the_customer_in_plain_words_and_support_the_technical_cause(
        mc_app, sim, sim_key, customer_client, support_client, customer, workspace):
    english(customer_client)
    english(support_client)
    connector = make_connector(workspace, customer, sim_key, audience(sim, sim_key))
    run = _run(connector, status="failed", total=10, done=4, message="KeyError: 'merge_fields'")
    customer_view = text(customer_client.get(f"/mailchimp/runs/{run.id}/progress", headers=htmx()))
    assert "unexpected error" in customer_view and "KeyError" not in customer_view
    support_view = support_client.get(f"/support/connectors/runs/{run.id}/progress", headers=htmx())
    assert "KeyError" in text(support_view)


def test_progress_partial_polls_every_second_while_the_run_moves(mc_app, sim, sim_key, customer_client, customer,
                                                                 workspace):
    english(customer_client)
    connector = make_connector(workspace, customer, sim_key, audience(sim, sim_key))
    from portal.models import utcnow

    run = _run(connector, status="running", total=200, done=50, error_count=3, started_at=utcnow())
    response = customer_client.get(f"/mailchimp/runs/{run.id}/progress", headers=htmx())
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in html
    assert f'hx-get="/mailchimp/runs/{run.id}/progress"' in html
    assert 'hx-trigger="every 1s"' in html and 'hx-swap="outerHTML"' in html
    page = text(response)
    assert "50 of 200 contacts" in page and "25" in page and "3 errors so far" in page
    assert 'aria-valuenow="25"' in html
    assert "HX-Trigger" not in response.headers


def test_finished_progress_partial_carries_no_polling_and_tells_the_page(mc_app, sim, sim_key, customer_client,
                                                                         customer, workspace):
    english(customer_client)
    connector = make_connector(workspace, customer, sim_key, audience(sim, sim_key))
    run = _run(connector, status="finished", total=200, done=200, error_count=2,
               counts={"created": 143, "updated": 48, "errors": 2, "error_kinds": {"invalid_email": 2},
                       "skipped": {"no_email": 7}})
    response = customer_client.get(f"/mailchimp/runs/{run.id}/progress", headers=htmx())
    html = response.get_data(as_text=True)
    assert "hx-trigger" not in html and "hx-get" not in html
    assert response.headers.get("HX-Trigger") == "run-over"
    page = words(response)
    # issue 12: the figures every page shows, each contact counted once (143 + 48 + 7 + 2 = 200)
    assert "100 %" in page and "Contacts 200 Created in Mailchimp 143 Updated in Mailchimp 48" in page
    assert "Not synced 7 7 no e-mail address Refused by Mailchimp 2 2 Invalid e-mail addresses" in page


def test_run_progress_of_another_workspace_is_404(mc_app, sim, sim_key, customer_client, other_workspace):
    ws, _contact = other_workspace
    from portal.models import User

    leo = db.session.scalar(db.select(User).where(User.email == "leo@voisine.test"))
    connector = make_connector(ws, leo, sim_key, audience(sim, sim_key))
    run = _run(connector, status="running", total=10, done=1)
    assert customer_client.get(f"/mailchimp/runs/{run.id}/progress").status_code == 404
    assert customer_client.get("/mailchimp/runs/999999/progress").status_code == 404


# --- errors and fix actions (R19) -------------------------------------------------------------

def _error_row(connector, contact, **fields):
    """The contact's sync row as a push would have left it (contacts created on an active connector
    already have one, waiting for their push)."""
    row = db.session.scalar(db.select(ContactSync).where(ContactSync.connector_id == connector.id,
                                                         ContactSync.contact_id == contact.id))
    if row is None:
        row = ContactSync(connector_id=connector.id, workspace_id=connector.workspace_id, contact_id=contact.id)
        db.session.add(row)
    for name, value in {"synced_tags": [], "dirty_at": None, **fields}.items():
        setattr(row, name, value)
    db.session.commit()
    return row


@pytest.fixture
def errors_setup(mc_app, sim, sim_key, customer, workspace):
    """An active connector with contacts in error of several kinds, and two contacts sharing an e-mail."""
    connector = make_connector(workspace, customer, sim_key, audience(sim, sim_key))
    connector.status = "active"
    connector.subscribe_url = "https://eepurl.example/abc"
    db.session.commit()
    long_name = factories.contact(workspace, email="long@courriel.fr", consent="opt_in", company="X" * 150)
    locked = factories.contact(workspace, email="gone@courriel.fr", consent="opt_in")
    shared_a = factories.contact(workspace, email="famille@courriel.fr", first_name="Anne", consent="opt_in")
    shared_b = factories.contact(workspace, email="famille@courriel.fr", first_name="Bruno", consent="opt_in")
    _error_row(connector, long_name, state="error", error_kind="value_too_long", error_field="COMPANY",
               error_fix="edit_contact_and_retry", error_message="too long")
    _error_row(connector, locked, state="error", error_kind="compliance_state", error_fix="resubscribe_guidance")
    _error_row(connector, shared_a, state="not_synced", reason="shared_email")
    _error_row(connector, shared_b, state="synced")
    live_queue().empty()  # every change above has been pushed: nothing waits
    return {"connector": connector, "long": long_name, "locked": locked, "shared_a": shared_a,
            "shared_b": shared_b}


def test_errors_page_groups_errors_in_plain_words_with_their_fixes(errors_setup, customer_client):
    english(customer_client)
    response = customer_client.get("/mailchimp/errors")
    page = text(response)
    assert "Value too long for Mailchimp" in page
    assert "The value of the field COMPANY is too long" in page
    assert "Edit the contact" in page and "Retry" in page
    assert "Unsubscribed or blocked in Mailchimp" in page
    assert 'href="https://eepurl.example/abc"' in page
    assert "E-mail address shared by several contacts" in page
    assert "This contact owns the e-mail" in page
    assert "Do not sync this contact" in page
    html = response.get_data(as_text=True)
    assert 'hx-post="/mailchimp/errors/retry"' in html


def live_queue():
    """The `live` RQ queue (replication and retries)."""
    from portal import jobs

    return jobs.queue("live")


def test_retry_one_contact_queues_it_on_the_live_queue(errors_setup, customer_client):
    english(customer_client)
    contact = errors_setup["long"]
    response = customer_client.post("/mailchimp/errors/retry", data={"contact_id": contact.id}, headers=htmx())
    assert response.status_code == 200
    assert "will be sent to Mailchimp again" in text(response)
    rows = {r.contact_id: r for r in db.session.scalars(db.select(ContactSync))}
    assert rows[contact.id].state == "pending" and rows[contact.id].dirty_at is not None
    assert rows[errors_setup["locked"].id].state == "error"  # only the one asked for
    queued = live_queue().jobs
    assert [job.func_name for job in queued] == ["portal.jobs.replicate"]


def test_retry_all_queues_every_contact_in_error(errors_setup, customer_client):
    response = customer_client.post("/mailchimp/errors/retry", data={})
    assert response.status_code == 302 and response.location.endswith("/mailchimp/errors")
    rows = {r.contact_id: r for r in db.session.scalars(db.select(ContactSync))}
    assert {rows[errors_setup[k].id].state for k in ("long", "locked")} == {"pending"}
    assert [job.func_name for job in live_queue().jobs] == ["portal.jobs.replicate"]


def test_do_not_sync_excludes_the_contact(errors_setup, customer_client):
    contact = errors_setup["long"]
    customer_client.post("/mailchimp/errors/do-not-sync", data={"contact_id": contact.id})
    db.session.expire_all()
    assert db.session.get(Contact, contact.id).do_not_sync is True


def test_choosing_the_owner_of_a_shared_email(errors_setup, customer_client):
    english(customer_client)
    a = errors_setup["shared_a"]
    response = customer_client.post("/mailchimp/errors/owner", data={"contact_id": a.id}, headers=htmx())
    assert response.status_code == 200
    assert "now owns the e-mail address" in text(response)
    db.session.expire_all()
    rows = {r.contact_id: r for r in db.session.scalars(db.select(ContactSync))}
    assert rows[a.id].owner_chosen is True
    assert rows[errors_setup["shared_b"].id].owner_chosen is False


def test_fix_actions_on_another_workspace_contact_are_404(errors_setup, customer_client, other_workspace):
    _ws, foreign = other_workspace
    for path in ("/mailchimp/errors/retry", "/mailchimp/errors/do-not-sync", "/mailchimp/errors/owner"):
        assert customer_client.post(path, data={"contact_id": foreign.id}).status_code == 404, path
    db.session.expire_all()
    assert db.session.get(Contact, foreign.id).do_not_sync is False
    assert live_queue().count == 0


def test_errors_page_does_not_show_other_workspaces_errors(errors_setup, customer_client, other_workspace, sim,
                                                           sim_key):
    from portal.models import User

    english(customer_client)
    ws, foreign = other_workspace
    leo = db.session.scalar(db.select(User).where(User.email == "leo@voisine.test"))
    other = make_connector(ws, leo, sim_key, audience(sim, sim_key, "Voisine"))
    _error_row(other, foreign, state="error", error_kind="invalid_email", error_fix="edit_contact_and_retry")
    page = text(customer_client.get("/mailchimp/errors"))
    assert "voisin@courriel.fr" not in page
    assert "Invalid e-mail addresses" not in page


def test_reconnect_fix_for_a_revoked_key(mc_app, sim, sim_key, customer_client, customer, workspace):
    english(customer_client)
    connector = make_connector(workspace, customer, sim_key, audience(sim, sim_key))
    contact = factories.contact(workspace, email="x@courriel.fr", consent="opt_in")
    _error_row(connector, contact, state="error", error_kind="api_key_invalid", error_fix="reconnect")
    page = text(customer_client.get("/mailchimp/errors"))
    assert "API key refused by Mailchimp" in page
    assert "Reconnect Mailchimp" in page


def test_errors_page_without_errors_says_so(errors_setup, customer_client):
    english(customer_client)
    db.session.execute(db.delete(ContactSync))
    db.session.commit()
    assert "No sync error" in text(customer_client.get("/mailchimp/errors"))


# --- R17 partials -----------------------------------------------------------------------------

STATES = [
    ("synced", {}, "Synced", "mc-synced"),
    ("pending", {}, "Pending", "mc-pending"),
    ("not_synced", {"reason": "no_email"}, "No e-mail address", "mc-not_synced"),
    ("not_synced", {"reason": "consent_locked"}, "must re-subscribe", "mc-not_synced"),
    ("error", {"error_kind": "invalid_email"}, "This e-mail address is not valid", "mc-error"),
    ("unsubscribed", {}, "Unsubscribed", "mc-unsubscribed"),
    ("bounced", {}, "Bounced", "mc-bounced"),
    ("archived_in_mc", {}, "Archived in Mailchimp", "mc-archived_in_mc"),
    ("deleted_in_mc", {}, "Deleted in Mailchimp", "mc-deleted_in_mc"),
]


@pytest.mark.parametrize("state,extra,words,css", STATES, ids=[f"{s[0]}-{s[2][:12]}" for s in STATES])
def test_mailchimp_mark_says_the_state_on_hover_and_to_screen_readers(app, state, extra, words, css):
    from flask import render_template

    from portal.models import utcnow

    connector = Connector(status="active", subscribe_url="https://eepurl.example/x")
    sync = ContactSync(state=state, last_synced_at=utcnow(), reason="", error_kind="", error_field="",
                       error_message="")
    for key, value in extra.items():
        setattr(sync, key, value)
    with app.test_request_context(headers={"Accept-Language": "en"}):
        mark = render_template("contacts/_mc_mark.html", sync=sync, connector=connector)
        status = render_template("contacts/_mc_status.html", sync=sync, connector=connector, c=Contact(id=1))
    assert css in mark
    title = re.search(r'title="([^"]*)"', mark).group(1)
    label = re.search(r'aria-label="([^"]*)"', mark).group(1)
    assert words in title and title == label
    # issue 12: "Mailchimp: <state> — <reason>", never "Synced with Mailchimp" over an error
    assert "Mailchimp:" in status and "Synced with Mailchimp" not in status and css in status
    assert words in re.sub(r"\s+", " ", status)
    # While a push is pending the field fetches itself, so it turns "synced" without a reload (R10).
    assert ("hx-trigger=\"every 1s\"" in status) == (state == "pending")
    if state == "error":
        assert 'href="/mailchimp/errors"' in status
        assert "mc-error" in status


def test_status_field_shows_the_time_of_the_last_sync(app):
    from datetime import datetime, timezone

    from flask import render_template

    sync = ContactSync(state="synced", last_synced_at=datetime(2026, 11, 27, 10, 2, tzinfo=timezone.utc))
    with app.test_request_context(headers={"Accept-Language": "en"}):
        status = render_template("contacts/_mc_status.html", sync=sync, connector=Connector(status="active"))
    assert re.search(r"Synced\b.*11/27/26", status)


def test_nothing_is_drawn_without_a_connector(app):
    from flask import render_template

    with app.test_request_context():
        assert render_template("contacts/_mc_mark.html", sync=None, connector=None).strip() == ""
        assert render_template("contacts/_mc_status.html", sync=None, connector=None).strip() == ""


def test_contact_without_sync_row_waits_for_validation(app):
    from flask import render_template

    with app.test_request_context(headers={"Accept-Language": "en"}):
        mark = render_template("contacts/_mc_mark.html", sync=None,
                               connector=Connector(status="pending_validation"))
    assert "waits for anaba&#39;s validation" in mark or "waits for anaba's validation" in mark


# --- live replication on the pages (R12, R13, R17, R22) ------------------------------------------

def test_erase_needs_the_box_ticked_then_queues_the_erasure(errors_setup, customer_client):
    english(customer_client)
    contact = errors_setup["shared_b"]
    page = customer_client.get(f"/contacts/{contact.id}/erase")
    assert page.status_code == 200 and "cannot be undone" in text(page)
    refused = customer_client.post(f"/contacts/{contact.id}/erase", data={})
    assert refused.status_code == 422 and "Tick the box to confirm the erasure" in text(refused)
    row = db.session.scalar(db.select(ContactSync).where(ContactSync.contact_id == contact.id))
    assert row.erase_requested is False
    done = customer_client.post(f"/contacts/{contact.id}/erase", data={"confirm": "y"})
    assert done.status_code == 302
    db.session.expire_all()
    row = db.session.scalar(db.select(ContactSync).where(ContactSync.contact_id == contact.id))
    assert row.erase_requested is True and row.state == "pending"
    assert [job.func_name for job in live_queue().jobs] == ["portal.jobs.replicate"]


def test_erase_push_again_and_the_state_field_refuse_another_workspaces_contact(errors_setup, customer_client,
                                                                                 other_workspace):
    _ws, foreign = other_workspace
    assert customer_client.get(f"/contacts/{foreign.id}/erase").status_code == 404
    assert customer_client.post(f"/contacts/{foreign.id}/erase", data={"confirm": "y"}).status_code == 404
    assert customer_client.post(f"/contacts/{foreign.id}/push-again").status_code == 404
    assert customer_client.get(f"/contacts/{foreign.id}/mailchimp-state").status_code == 404
    assert live_queue().count == 0


def test_a_contact_archived_in_mailchimp_offers_to_send_it_again(errors_setup, customer_client):
    english(customer_client)
    contact = errors_setup["long"]
    _error_row(errors_setup["connector"], contact, state="archived_in_mc", member_email="long@courriel.fr")
    page = text(customer_client.get(f"/contacts/{contact.id}"))
    assert "archived in Mailchimp" in page and "Send to Mailchimp again" in page
    customer_client.post(f"/contacts/{contact.id}/push-again")
    db.session.expire_all()
    row = db.session.scalar(db.select(ContactSync).where(ContactSync.contact_id == contact.id))
    assert row.state == "pending" and row.dirty_at is not None


def test_the_table_filters_on_the_mailchimp_state(errors_setup, customer_client):
    in_error = text(customer_client.get("/contacts/?mailchimp=error"))
    assert "long@courriel.fr" in in_error and "gone@courriel.fr" in in_error
    assert "famille@courriel.fr" not in in_error
    synced = text(customer_client.get("/contacts/?mailchimp=synced"))
    assert "famille@courriel.fr" in synced and "long@courriel.fr" not in synced


def test_support_can_start_a_reconciliation_from_the_connector_page(errors_setup, support_client):
    connector = errors_setup["connector"]
    page = text(support_client.get(f"/support/connectors/{connector.id}"))
    assert "Reconcile now" in page or "Vérifier maintenant" in page
    response = support_client.post(f"/support/connectors/{connector.id}/reconcile")
    assert response.status_code == 302
    from portal import jobs

    assert "portal.jobs.reconcile" in [job.func_name for job in jobs.queue("bulk").jobs]
