"""Support's side of a new connector (R7, R8, R19): the queue, the validation page with its audience
checks and dry-run preview, sending back with a reason, validating and watching the copy, and the
errors of every workspace — end to end with the customer's wizard, the simulator, real jobs and
a real SMTP sink. Pages are read in English (msgids).
"""
from __future__ import annotations

import re

import factories
from portal.extensions import db
from portal.models import Connector, SyncRun
from test_connector_views import audience, english, htmx, make_connector, mc, text, walk_wizard, words


def _connector(workspace) -> Connector:
    db.session.expire_all()
    return db.session.scalar(db.select(Connector).where(Connector.workspace_id == workspace.id,
                                                        Connector.deleted_at.is_(None)))


def _mails_to(mailbox, address):
    return [m for m in mailbox if address in (m["To"] or "")]


def _body(message) -> str:
    part = message.get_body(("plain",)) or message.get_body(("html",))
    return part.get_content()


def test_from_wizard_to_validation_send_back_then_copy_to_active(mc_app, sim, sim_key, customer_client,
                                                                 support_client, customer, workspace,
                                                                 support_user, run_jobs, mailbox):
    english(customer_client)
    english(support_client)
    factories.contact(workspace, email="jeanne@courriel.fr", first_name="Jeanne", consent="opt_in",
                      tags=["Clients"])
    factories.contact(workspace, email="paul@courriel.fr", first_name="Paul", consent="opt_in")
    factories.contact(workspace, email=None, first_name="Sans", last_name="Adresse", company="Nulle part")
    factories.contact(workspace, email="famille@courriel.fr", first_name="Anne", consent="opt_in")
    factories.contact(workspace, email="famille@courriel.fr", first_name="Bruno", consent="opt_in")
    list_id = audience(sim, sim_key, "Newsletter", ["jeanne@courriel.fr"])
    sim.control.clear_requests()

    # The customer: a bad key first, then the good one, the audience, the mapping.
    bad = customer_client.post("/mailchimp/setup/key", data={"api_key": "f" * 32 + "-us1"})
    assert bad.status_code == 422
    submitted = walk_wizard(customer_client, sim_key, list_id)
    assert submitted.status_code == 302
    assert "waits for anaba's validation" in text(customer_client.get("/mailchimp/"))
    connector = _connector(workspace)
    support_mail = _mails_to(mailbox, mc_app.config["SUPPORT_EMAIL"])
    assert support_mail and f"/support/connectors/{connector.id}" in _body(support_mail[0])

    # Support: the queue, then the validation page while the preview is still to compute.
    queue = text(support_client.get("/support/connectors/"))
    assert workspace.name in queue and f'href="/support/connectors/{connector.id}"' in queue
    page = support_client.get(f"/support/connectors/{connector.id}")
    html = page.get_data(as_text=True)
    # The audience checks run in the background too (issue 13): the page never waits on Mailchimp.
    assert "Checking the audience in Mailchimp" in html
    assert f'hx-get="/support/connectors/{connector.id}/checks"' in html
    assert connector.api_key_hint in html and sim_key not in html
    assert 'id="preview"' in html and f'hx-get="/support/connectors/{connector.id}/preview"' in html
    assert "Computing the preview" in html

    run_jobs()  # consent import, then the preview chained after it; the audience checks
    checks = text(support_client.get(f"/support/connectors/{connector.id}/checks", headers=htmx()))
    assert "Merge fields present" in checks and "Webhook" in checks and "Required merge fields" in checks
    preview = support_client.get(f"/support/connectors/{connector.id}/preview", headers=htmx())
    seen = words(preview)
    assert "hx-trigger" not in preview.get_data(as_text=True)
    assert re.search(r"To create in Mailchimp 2\b", seen)    # paul, and Anne who owns the shared e-mail
    assert re.search(r"To update in Mailchimp 1\b", seen)    # jeanne: FNAME and the tag differ
    assert "Jeanne" in seen and "FNAME" in seen and "+ Clients" in seen
    assert "no e-mail address" in seen
    # issue 12: a shared address is "not synced" (as the copy counts it), with the contact sent instead
    assert "1 address is shared by several contacts" in seen and "address used by Anne" in seen
    # Nothing was written to Mailchimp before validation: key check, audience, consent, preview only read.
    assert {r["method"] for r in sim.control.requests_log()} <= {"GET"}

    # Send back: a reason is required, then the customer reads it on the page and by e-mail.
    assert support_client.post(f"/support/connectors/{connector.id}/send-back",
                               data={"reason": "  "}).status_code == 422
    reason = "Map the company to COMPANY, please."
    response = support_client.post(f"/support/connectors/{connector.id}/send-back", data={"reason": reason})
    assert response.status_code == 302
    assert reason in text(customer_client.get("/mailchimp/"))
    customer_mail = _mails_to(mailbox, customer.email)
    assert customer_mail and reason in _body(customer_mail[-1])

    # The customer deletes it and connects again; support validates; the copy runs to the end.
    customer_client.post("/mailchimp/delete", data={"confirm": "1"})
    walk_wizard(customer_client, sim_key, list_id)
    connector = _connector(workspace)
    run_jobs()
    assert support_client.post(f"/support/connectors/{connector.id}/validate", data={}).status_code == 422
    assert _connector(workspace).status == "pending_validation"
    validated = support_client.post(f"/support/connectors/{connector.id}/validate", data={"confirm": "1"},
                                    headers=htmx())
    assert validated.status_code == 200
    copy = db.session.scalar(db.select(SyncRun).where(SyncRun.connector_id == connector.id,
                                                      SyncRun.kind == "initial_copy"))
    live = validated.get_data(as_text=True)
    assert "the first copy has started" in live
    assert f'hx-get="/support/connectors/runs/{copy.id}/progress"' in live and 'hx-trigger="every 1s"' in live
    customer_view = customer_client.get(f"/mailchimp/runs/{copy.id}/progress").get_data(as_text=True)
    assert 'hx-trigger="every 1s"' in customer_view

    run_jobs()
    done = support_client.get(f"/support/connectors/runs/{copy.id}/progress", headers=htmx())
    assert "hx-trigger" not in done.get_data(as_text=True)
    assert 'data-percent="100"' in done.get_data(as_text=True)
    assert _connector(workspace).status == "active"
    home = text(customer_client.get("/mailchimp/"))
    assert "Active: every change in anaba is sent to Mailchimp" in home
    summary = words(customer_client.get("/mailchimp/"))
    assert "2 created in Mailchimp" in summary and "1 updated in Mailchimp" in summary
    members = {m["email_address"] for m in mc(sim, sim_key, "GET", f"lists/{list_id}/members")["members"]}
    assert {"jeanne@courriel.fr", "paul@courriel.fr", "famille@courriel.fr"} <= members


def test_copy_errors_show_on_both_errors_pages_with_workspace_names(mc_app, sim, sim_key, customer_client,
                                                                    support_client, customer, workspace,
                                                                    support_user, run_jobs):
    from portal.jobs import validate_connector as validate

    english(customer_client)
    english(support_client)
    fake = factories.contact(workspace, email="test@courriel.fr", first_name="Faux", consent="opt_in")
    factories.contact(workspace, email="vraie@courriel.fr", consent="opt_in")
    connector = make_connector(workspace, customer, sim_key, audience(sim, sim_key))
    run_jobs()
    validate(connector.id, support_user)
    run_jobs()
    customer_page = customer_client.get("/mailchimp/errors")
    seen = words(customer_page)
    assert "Addresses Mailchimp considers fake" in seen
    assert "test@courriel.fr" in seen and "vraie@courriel.fr" not in seen
    assert f'href="/contacts/{fake.id}"' in customer_page.get_data(as_text=True)
    support_response = support_client.get("/support/connectors/errors")
    assert f'href="/support/connectors/{connector.id}"' in support_response.get_data(as_text=True)
    support_page = words(support_response)
    assert "Addresses Mailchimp considers fake" in support_page
    assert workspace.name in support_page and "test@courriel.fr" in support_page


def test_recompute_starts_a_fresh_preview_that_polls_until_computed(mc_app, sim, sim_key, support_client, customer,
                                                                    workspace, run_jobs):
    english(support_client)
    connector = make_connector(workspace, customer, sim_key, audience(sim, sim_key))
    run_jobs()
    before = db.session.scalar(db.select(db.func.count()).select_from(SyncRun).where(SyncRun.kind == "preview"))
    response = support_client.post(f"/support/connectors/{connector.id}/preview", headers=htmx())
    assert response.status_code == 200
    assert 'hx-trigger="every 1s"' in response.get_data(as_text=True)
    assert "Computing the preview" in text(response)
    after = db.session.scalar(db.select(db.func.count()).select_from(SyncRun).where(SyncRun.kind == "preview"))
    assert after == before + 1
    run_jobs()
    computed = support_client.get(f"/support/connectors/{connector.id}/preview", headers=htmx())
    assert "hx-trigger" not in computed.get_data(as_text=True)
    assert "To create in Mailchimp" in text(computed)


def test_queue_lists_oldest_submission_first_and_filters_by_status(mc_app, sim, sim_key, support_client, customer,
                                                                   workspace):
    from datetime import timedelta

    from portal.models import User, utcnow

    english(support_client)
    second_ws = factories.workspace("Cave Récente")
    second_user = factories.user("zoe@cave.test", "customer", second_ws)
    older = make_connector(workspace, customer, sim_key, audience(sim, sim_key, "A"))
    newer = make_connector(second_ws, second_user, sim_key, audience(sim, sim_key, "B"))
    older.submitted_at = utcnow() - timedelta(days=2)
    newer.submitted_at = utcnow() - timedelta(hours=1)
    db.session.commit()
    page = support_client.get("/support/connectors/").get_data(as_text=True)
    assert page.index(workspace.name) < page.index("Cave Récente")
    newer.status = "active"
    db.session.commit()
    waiting = support_client.get("/support/connectors/").get_data(as_text=True)
    assert "Cave Récente" not in waiting
    active = support_client.get("/support/connectors/?status=active", headers=htmx()).get_data(as_text=True)
    assert "Cave Récente" in active and workspace.name not in active and "<html" not in active
    assert db.session.scalar(db.select(User).where(User.email == "zoe@cave.test")) is not None


def test_customers_cannot_reach_support_connector_pages(mc_app, sim, sim_key, customer_client, customer, workspace):
    connector = make_connector(workspace, customer, sim_key, audience(sim, sim_key))
    for path in ("/support/connectors/", f"/support/connectors/{connector.id}", "/support/connectors/errors",
                 f"/support/connectors/{connector.id}/preview"):
        assert customer_client.get(path).status_code == 403, path
    for path in (f"/support/connectors/{connector.id}/validate", f"/support/connectors/{connector.id}/send-back",
                 f"/support/connectors/{connector.id}/preview"):
        assert customer_client.post(path, data={"confirm": "1", "reason": "x"}).status_code == 403, path
    assert _connector(workspace).status == "pending_validation"


def test_support_posts_need_the_csrf_token(mc_app, sim, sim_key, app, support_user, customer, workspace):
    connector = make_connector(workspace, customer, sim_key, audience(sim, sim_key))
    raw = app.test_client()
    raw.post("/login", data={"email": support_user.email, "password": "secret-pw"})
    for action in ("validate", "send-back", "preview"):
        response = raw.post(f"/support/connectors/{connector.id}/{action}", data={"confirm": "1", "reason": "x"})
        assert response.status_code == 400, action
    assert _connector(workspace).status == "pending_validation"


def test_unknown_connector_or_run_is_404_for_support(support_client):
    assert support_client.get("/support/connectors/424242").status_code == 404
    assert support_client.get("/support/connectors/runs/424242/progress").status_code == 404


def test_refused_decisions_show_their_message_by_their_form(mc_app, sim, sim_key, support_client, customer,
                                                            workspace):
    english(support_client)
    connector = make_connector(workspace, customer, sim_key, audience(sim, sim_key))
    url = f"/support/connectors/{connector.id}"
    blank = support_client.post(f"{url}/send-back", data={"reason": " \n "}, headers=htmx())
    assert blank.status_code == 422
    fragment = blank.get_data(as_text=True)
    assert "<html" not in fragment and fragment.lstrip().startswith('<div id="decision-area"')
    send_back_form = re.search(r'<form[^>]*class="send-back-form".*?</form>', fragment, re.S).group(0)
    assert "Write the reason the customer will read." in send_back_form
    unticked = support_client.post(f"{url}/validate", data={})  # without htmx: the whole page
    assert unticked.status_code == 422
    page = unticked.get_data(as_text=True)
    assert "<html" in page
    validate_form = re.search(r'<form[^>]*class="validate-form".*?</form>', page, re.S).group(0)
    assert "Tick the box to confirm that the first copy may start." in validate_form
    assert _connector(workspace).status == "pending_validation"


def test_validating_twice_says_it_is_no_longer_waiting(mc_app, sim, sim_key, support_client, customer, workspace,
                                                       support_user):
    from portal.jobs import validate_connector as validate

    english(support_client)
    connector = make_connector(workspace, customer, sim_key, audience(sim, sim_key))
    validate(connector.id, support_user)
    response = support_client.post(f"/support/connectors/{connector.id}/validate", data={"confirm": "1"})
    assert response.status_code == 409
    assert "Only a connector waiting for validation can be validated" in text(response)
    late = support_client.post(f"/support/connectors/{connector.id}/send-back", data={"reason": "Trop tard"})
    assert late.status_code == 409 and _connector(workspace).status != "sent_back"
    from portal import jobs as job_queues
    assert job_queues.queue("bulk").count >= 1
