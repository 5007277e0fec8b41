"""Live replication in Debian's Chromium (R10, R12, R17, R19): the record's Mailchimp field turns from
pending to synced without a reload, the mark explains an error on hover, the erasure asks for a
confirmation, and the connector page shows the sync's health."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

import factories
from portal import jobs
from portal.extensions import db
from portal.models import ContactSync
from test_connector_views import audience, make_connector

pytestmark = pytest.mark.browser


@pytest.fixture
def active(mc_app, sim, sim_key, customer, workspace, support_user, run_jobs):
    """An active connector whose copy is done, over three opt-in contacts; returns (connector, contacts)."""
    contacts = [factories.contact(workspace, email=f"client{i}@courriel.fr", first_name=f"Client{i}",
                                  consent="opt_in") for i in range(3)]
    connector = make_connector(workspace, customer, sim_key, audience(sim, sim_key, "Newsletter"))
    run_jobs()
    jobs.validate_connector(connector.id, support_user)
    run_jobs()
    db.session.expire_all()
    assert connector.status == "active"
    return connector, contacts


def test_the_record_turns_synced_without_a_reload_after_an_edit(active, page, live_server, log_in, customer,
                                                                run_jobs):
    _connector, contacts = active
    log_in(customer)
    page.goto(f"{live_server}/contacts/{contacts[0].id}")
    page.get_by_role("link", name="Edit").first.click()
    page.get_by_label("First name").fill("Clémence")
    page.get_by_role("button", name="Save").click()
    status = page.locator("#mc-status")
    expect(status).to_have_attribute("data-mc-state", "pending")
    expect(status).to_contain_text("Pending")
    run_jobs()  # the replication job, as a worker runs it
    expect(status).to_have_attribute("data-mc-state", "synced", timeout=10_000)
    expect(status).to_contain_text("Synced")
    page.get_by_role("tab", name="History").click()
    expect(page.locator(".history-table")).to_contain_text("Fields: First name")


def test_the_mark_explains_an_error_on_hover(active, page, live_server, log_in, customer):
    connector, contacts = active
    row = db.session.scalar(db.select(ContactSync).where(ContactSync.contact_id == contacts[1].id))
    row.state, row.error_kind, row.error_field = "error", "value_too_long", "COMPANY"
    db.session.commit()
    log_in(customer)
    page.goto(f"{live_server}/contacts/")
    mark = page.locator("tr", has_text="Client1").locator(".mc-mark")
    expect(mark).to_have_attribute("data-mc-state", "error")
    expect(mark).to_have_attribute("title", re.compile(r"The value of the field COMPANY is too long"))


def test_erasing_from_mailchimp_asks_for_a_confirmation_then_erases(active, page, live_server, log_in, customer,
                                                                     run_jobs, sim, sim_key):
    connector, contacts = active
    log_in(customer)
    page.goto(f"{live_server}/contacts/{contacts[2].id}")
    page.get_by_role("link", name="Erase from Mailchimp…").click()
    expect(page.locator("h1")).to_contain_text("Erase Client2")
    expect(page.locator(".erase-confirm")).to_contain_text("cannot be undone")
    page.get_by_role("button", name="Erase from Mailchimp").click()  # the box is not ticked: refused
    expect(page).to_have_url(re.compile(r"/erase$"))
    page.get_by_label(re.compile("I understand")).check()
    page.get_by_role("button", name="Erase from Mailchimp").click()
    expect(page.locator(".flash")).to_contain_text("being erased from Mailchimp")
    run_jobs()
    page.reload()
    expect(page.locator("#mc-status")).to_have_attribute("data-mc-state", "deleted_in_mc")
    page.get_by_role("tab", name="History").click()
    expect(page.locator(".history-table")).to_contain_text("erased from Mailchimp for good")


def test_the_connector_page_shows_the_health_of_the_sync(active, page, live_server, log_in, customer, sim, sim_key,
                                                         run_jobs, workspace):
    connector, contacts = active
    sim.control.set_faults(sim_key, error_rate=1.0, statuses=(503,))
    factories.contact(workspace, email="nouveau@courriel.fr", first_name="Nouveau", consent="opt_in")
    run_jobs()  # Mailchimp does not answer: the change waits
    log_in(customer)
    page.goto(f"{live_server}/mailchimp/")
    health = page.locator("#connector-health")
    expect(health).to_contain_text("Health of the sync")
    expect(health.locator(".health-pending")).to_contain_text("1")
    expect(health.locator(".mailchimp-down")).to_contain_text("Mailchimp does not answer right now")
    expect(health.locator(".health-mailchimp")).to_contain_text("does not answer")
