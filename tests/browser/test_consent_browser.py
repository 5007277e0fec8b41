"""Consent in Debian's Chromium (R15, R16, R21): a person who unsubscribed through a Mailchimp form is
locked, the record says why and links the audience's sign-up form; the History tab shows the
webhook's change with Mailchimp's evidence; the health panel shows the webhook registered."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

import factories
from portal import jobs
from portal.extensions import db
from test_connector_views import audience, make_connector
from webhook_helpers import delivered, public_base_on

pytestmark = pytest.mark.browser


@pytest.fixture
def hooked(mc_app, sim, sim_key, customer, workspace, support_user, run_jobs, live_server):
    """An active connector over three opt-in contacts, its webhook registered with the live server's URL."""
    with public_base_on(mc_app, live_server):
        contacts = [factories.contact(workspace, email=f"client{i}@courriel.fr", first_name=f"Client{i}",
                                      consent="opt_in") for i in range(3)]
        list_id = audience(sim, sim_key, "Newsletter")
        connector = make_connector(workspace, customer, sim_key, list_id)
        run_jobs()
        jobs.validate_connector(connector.id, support_user)
        run_jobs()
        db.session.expire_all()
        assert connector.status == "active" and connector.webhook_id
        yield connector, contacts, list_id


def unsubscribe_through_the_form(sim, list_id, email, run_jobs):
    delivered(sim, lambda: sim.control.member_action(list_id, email, "unsubscribe-via-form"))
    db.session.rollback()
    run_jobs()


def test_a_locked_consent_is_explained_with_the_sign_up_link(hooked, sim, page, live_server, log_in, customer,
                                                             run_jobs):
    connector, contacts, list_id = hooked
    unsubscribe_through_the_form(sim, list_id, "client0@courriel.fr", run_jobs)
    log_in(customer)
    page.goto(f"{live_server}/contacts/{contacts[0].id}")
    card = page.locator(".consent-card")
    explained = card.locator(".consent-locked")
    expect(explained).to_contain_text("Consent locked by Mailchimp")
    expect(explained).to_contain_text("unsubscribed themself through a Mailchimp form or unsubscribe link")
    expect(explained).to_contain_text("re-subscription campaign")
    link = explained.locator("a.subscribe-link")
    expect(link).to_have_attribute("href", connector.subscribe_url)
    expect(card.locator("option[value=opt_in]")).to_be_disabled()
    page.get_by_role("link", name="Edit").first.click()  # the edit form does not offer it either
    page.locator("select[name=consent]").select_option("opt_out")
    expect(page.locator(".record-edit option[value=opt_in]")).to_be_disabled()
    expect(page.locator("#mc-status")).to_have_attribute("data-mc-state", re.compile("unsubscribed|not_synced"))


def test_the_history_tab_shows_the_webhooks_change_with_its_evidence(hooked, sim, page, live_server, log_in,
                                                                    customer, run_jobs):
    _connector, contacts, list_id = hooked
    unsubscribe_through_the_form(sim, list_id, "client1@courriel.fr", run_jobs)
    log_in(customer)
    page.goto(f"{live_server}/contacts/{contacts[1].id}")
    page.get_by_role("tab", name="History").click()
    row = page.locator(".history-table tr[data-event-kind=consent]").first
    expect(row).to_contain_text("Consent: Opt-in → Opt-out")
    expect(row).to_contain_text("(locked)")
    expect(row).to_contain_text("Mailchimp (webhook)")
    expect(row.locator(".consent-evidence")).to_contain_text("recorded by Mailchimp at")
    expect(row.locator(".webhook-event-ref")).to_contain_text("webhook event no.")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the consent history (CSV)").click()
    assert download.value.suggested_filename == f"consent-history-{contacts[1].id}.csv"


def test_the_health_panel_shows_the_webhook_registered_and_offers_to_register_it_again(hooked, sim, page,
                                                                                       live_server, log_in,
                                                                                       customer, run_jobs):
    _connector, _contacts, list_id = hooked
    unsubscribe_through_the_form(sim, list_id, "client2@courriel.fr", run_jobs)
    log_in(customer)
    page.goto(f"{live_server}/mailchimp/")
    health = page.locator("#connector-health")
    webhook = health.locator(".health-webhook")
    expect(webhook).to_have_attribute("data-webhook-registered", "yes")
    expect(webhook).to_contain_text("registered as expected")
    expect(webhook).to_contain_text("subscribe, unsubscribe, profile, upemail, cleaned")
    expect(webhook).to_contain_text("sources: user, admin")
    expect(health.locator(".health-webhook-last")).not_to_contain_text("none yet")
    page.get_by_role("button", name="Register the webhook again").click()
    expect(page.locator(".flash")).to_contain_text("being registered again")
    run_jobs()
    page.reload()
    expect(page.locator(".health-webhook")).to_have_attribute("data-webhook-registered", "yes")
