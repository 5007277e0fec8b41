"""The connector in Debian's Chromium: the customer's wizard, support's validation page, and the
live progress bar of the first copy reaching 100 % while the page polls (R5, R7, R8)."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

import factories
from portal.extensions import db
from portal.models import Connector
from test_connector_views import audience, make_connector

pytestmark = pytest.mark.browser


def test_customer_connects_mailchimp_through_the_wizard(mc_app, sim, sim_key, page, live_server, log_in, customer,
                                                        workspace):
    factories.contact(workspace, email="jeanne@courriel.fr", consent="opt_in")
    list_id = audience(sim, sim_key, "Newsletter", ["jeanne@courriel.fr"])
    log_in(customer)
    page.goto(live_server + "/mailchimp/")
    page.get_by_role("link", name="Connect Mailchimp").click()

    page.get_by_label("API key").fill("0" * 32 + "-us1")
    page.get_by_role("button", name="Check the key").click()
    expect(page.locator(".wizard-error")).to_contain_text("API key")  # the 422 answer is swapped in
    expect(page.locator("#wizard")).to_have_attribute("data-step", "key")

    page.get_by_label("API key").fill(sim_key)
    page.get_by_role("button", name="Check the key").click()
    choice = page.locator(".audience-choice", has_text="Newsletter")
    expect(choice).to_contain_text("1 member")
    expect(page.locator("#wizard")).not_to_contain_text(sim_key)
    choice.click()
    page.get_by_role("button", name="Continue").click()

    expect(page.get_by_label("First name")).to_have_value("FNAME")
    expect(page.get_by_label("Company", exact=True)).to_have_value("COMPANY")
    page.get_by_role("button", name="Submit for validation").click()

    expect(page).to_have_url(re.compile(r"/mailchimp/$"))
    expect(page.locator("#connector-status")).to_contain_text("waits for anaba's validation")
    expect(page.locator("#connector-status")).to_contain_text("Nothing has been written to Mailchimp yet")
    connector = db.session.scalar(db.select(Connector).where(Connector.workspace_id == workspace.id))
    assert connector is not None and connector.audience_id == list_id


def test_support_validates_and_watches_the_copy_reach_100_percent(mc_app, sim, sim_key, page, live_server, log_in,
                                                                  customer, workspace, support_user, run_jobs):
    for i in range(40):
        factories.contact(workspace, email=f"client{i}@courriel.fr", first_name=f"Client{i}", consent="opt_in",
                          tags=["Clients"] if i % 3 == 0 else [])
    factories.contact(workspace, email=None, first_name="Sans", last_name="Adresse")
    connector = make_connector(workspace, customer, sim_key, audience(sim, sim_key, "Newsletter"))
    run_jobs()  # consent import and preview

    log_in(support_user)
    page.goto(live_server + "/support/connectors/")
    page.get_by_role("link", name="Review").click()
    expect(page.locator(".audience-checks")).to_contain_text("Merge fields present")
    expect(page.locator("#preview-figures [data-figure=created] .figure-n")).to_have_text("40")
    expect(page.locator(".preview-skipped-list")).to_contain_text("no e-mail address")

    page.get_by_label("I checked the configuration and the preview").check()
    page.get_by_role("button", name="Validate and start the copy").click()
    bar = page.locator("#decision .run-progress")
    expect(bar).to_have_attribute("hx-trigger", "every 1s")  # polling while the copy is queued

    run_jobs()  # the copy runs here while Chromium keeps polling the live server

    expect(page.locator("#decision .run-progress")).to_have_attribute("data-percent", "100")
    expect(page.locator("#decision .run-progress .progress")).to_have_attribute("aria-valuenow", "100")
    expect(page.locator("#decision .run-progress")).not_to_have_attribute("hx-trigger", re.compile(".*"))
    expect(page.locator("#decision .badge").first).to_have_text("Active")  # the page was told the run ended
    db.session.expire_all()
    assert db.session.get(Connector, connector.id).status == "active"
