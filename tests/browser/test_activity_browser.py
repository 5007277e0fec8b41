"""Campaign activity in Debian's Chromium (R18): support imports it from the connector page, the
customer filters the contacts table on it and reads a contact's "Marketing communication" tab."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from playwright.sync_api import expect

import factories
from activity_helpers import active_connector, activity, ago, campaign, summarize
from portal.extensions import db

pytestmark = pytest.mark.browser


def test_customer_filters_on_opens_and_reads_a_contacts_campaigns(page, log_in, live_server, customer, workspace):
    connector = active_connector(workspace)
    ines = factories.contact(workspace, email="ines@atelier.example.fr", first_name="Inès", last_name="Moreau")
    hugo = factories.contact(workspace, email="hugo@atelier.example.fr", first_name="Hugo", last_name="Petit")
    factories.contact(workspace, email="zoe@atelier.example.fr", first_name="Zoé", last_name="Roux")
    for n in range(12):  # Inès received twelve weekly letters and opened the last one twice
        campaign(workspace, connector, f"lettre-{n:02d}", days_ago=84 - 7 * n, title=f"Lettre n°{n + 1}",
                 subject=f"Les nouvelles de la semaine {n + 1}")
        activity(ines, f"lettre-{n:02d}", "sent", ago(84 - 7 * n))
    activity(ines, "lettre-11", "open", ago(6.5))
    activity(ines, "lettre-11", "open", ago(6))
    activity(ines, "lettre-11", "click", ago(6), url="https://atelier.example.fr/atelier-de-noel")
    activity(hugo, "lettre-11", "sent", ago(7))  # Hugo received it and never opened anything
    summarize(workspace)

    log_in(customer)
    expect(page.locator("tr.contact-row")).to_have_count(3)
    page.get_by_label("Campaigns").select_option(label="Opened in the last 2 weeks")
    expect(page.locator("tr.contact-row")).to_have_count(1)
    expect(page.locator("tr.contact-row")).to_contain_text("Inès Moreau")
    expect(page).to_have_url(re.compile(r"[?&]opened=2"))
    page.get_by_label("Campaigns").select_option(label="Received campaigns, never opened one")
    expect(page.locator("tr.contact-row")).to_have_count(1)
    expect(page.locator("tr.contact-row")).to_contain_text("Hugo Petit")
    page.reload()  # the URL carries the filter
    expect(page.get_by_label("Campaigns")).to_have_value("never")
    expect(page.locator("tr.contact-row")).to_have_count(1)

    page.goto(f"{live_server}/contacts/{ines.id}")
    page.get_by_role("tab", name="Marketing communication").click()
    rows = page.locator("tr.campaign-row")
    expect(rows).to_have_count(10)  # ten campaigns a page, newest first
    newest = rows.first
    expect(newest).to_contain_text("Lettre n°12")
    expect(newest).to_contain_text("Subject: Les nouvelles de la semaine 12")
    expect(newest).to_contain_text("Received")
    expect(newest).to_contain_text("Opened 2 times")
    expect(newest.get_by_role("link", name="https://atelier.example.fr/atelier-de-noel")).to_be_visible()
    expect(rows.nth(1)).to_contain_text("Not opened")
    expect(page).to_have_url(re.compile(rf"/contacts/{ines.id}/activity$"))
    page.get_by_role("link", name="Older campaigns ›").click()
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("Lettre n°2")
    expect(rows.last).to_contain_text("Lettre n°1")
    expect(page).to_have_url(re.compile(r"/activity\?page=2$"))


def test_empty_tab_says_when_the_next_import_runs(page, log_in, live_server, customer, workspace):
    active_connector(workspace)
    zoe = factories.contact(workspace, email="zoe@atelier.example.fr", first_name="Zoé", last_name="Roux")
    log_in(customer)
    page.goto(f"{live_server}/contacts/{zoe.id}/activity")
    empty = page.locator(".activity-empty")
    expect(empty).to_contain_text("No campaign activity yet.")
    expect(empty).to_contain_text(re.compile(r"the next import runs on Saturday, .+ at 2:00\s?AM \(Paris time\)"))


def test_support_imports_now_and_the_customer_sees_the_campaign(mc_app, sim, sim_key, page, live_server,
                                                                support_user, customer, workspace, run_jobs, log_in):
    from portal import jobs
    from portal.models import Contact

    for name in ("ines", "hugo"):
        factories.contact(workspace, email=f"{name}@atelier.example.fr", first_name=name.title(), consent="opt_in")
    list_id = sim.control.create_list(sim_key, "Clients")["id"]
    connector = jobs.submit_connector(workspace.id, customer, sim_key, list_id)
    run_jobs()
    jobs.validate_connector(connector.id, support_user)
    run_jobs()
    send_time = (datetime.now(timezone.utc) - timedelta(days=2)).replace(microsecond=0).isoformat()
    sim.control.send_campaign(list_id, seed=3, send_time=send_time, title="Portes ouvertes",
                              subject="Venez nous voir samedi", open_rate=1.0, bounce_rate=0, soft_bounce_rate=0,
                              unsubscribe_rate=0)

    log_in(support_user)
    page.goto(f"{live_server}/support/connectors/{connector.id}")
    card = page.locator("#activity-imports")
    expect(card).to_contain_text("No import yet.")
    card.get_by_role("button", name="Import campaign activity now").click()
    expect(card).to_contain_text("Campaign activity import started.")
    expect(card.locator(".activity-runs tbody tr")).to_have_count(1)
    run_jobs()
    # The progress partial polls, sees the run over and tells the page, which reloads the card.
    expect(card.locator(".activity-runs tbody tr").first).to_contain_text("Finished")
    expect(card).to_contain_text("1 campaign known.")

    page.get_by_role("button", name="Log out").click()
    log_in(customer)
    ines = db.session.scalar(db.select(Contact).where(Contact.email == "ines@atelier.example.fr"))
    page.goto(f"{live_server}/contacts/{ines.id}/activity")
    row = page.locator("tr.campaign-row")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Portes ouvertes")
    expect(row).to_contain_text("Venez nous voir samedi")
    expect(row).to_contain_text(re.compile(r"Opened (once|\d times)"))
