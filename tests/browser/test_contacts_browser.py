"""The contacts area driven through Debian's Chromium: what a customer does in a real browser."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

import factories

pytestmark = pytest.mark.browser

BAD_ROW_CSV = (
    "Prénom;Nom;Courriel;Tags\n"
    "Anne;Roux;anne.roux@example.org;Clients\n"
    "Bruno;Faure;pas-une-adresse;Clients\n"
    "Chloé;Morel;chloe.morel@example.org;VIP\n"
).encode("utf-8")


@pytest.fixture
def logged_in(page, log_in, workspace):
    """A customer (interface in English) logged in through the login form; returns the page."""
    log_in(factories.user("ines@atelier.example.org", "customer", workspace), timeout_ms=10_000)
    expect(page).to_have_url(re.compile(r"/contacts/$"))
    return page


def test_customer_creates_a_contact_edits_its_tags_and_finds_it(logged_in, live_server, workspace):
    page = logged_in
    factories.contact(workspace, email="hugo.petit@example.org", first_name="Hugo", last_name="Petit")
    page.reload()

    page.get_by_role("link", name="New contact").click()
    panel = page.locator(".create-panel")
    panel.get_by_label("First name").fill("Inès")
    panel.get_by_label("Last name").fill("Moreau")
    panel.get_by_label("E-mail").fill("ines.moreau@example.org")
    panel.get_by_role("button", name="Create the contact").click()
    expect(page.get_by_text("Inès Moreau was created.")).to_be_visible()
    row = page.locator("tr.contact-row", has_text="Inès Moreau")
    expect(row).to_be_visible()  # the table refreshed itself

    row.get_by_role("button", name="Edit tags of Inès Moreau").click()
    row.get_by_label("Add tags").fill("VIP, Salon 2026")
    row.get_by_role("button", name="Add", exact=True).click()
    expect(row.locator(".tag-editor")).to_contain_text("Salon 2026")
    row.get_by_role("button", name="Remove tag VIP").click()
    expect(row.get_by_role("button", name="Remove tag VIP")).to_have_count(0)
    row.get_by_role("button", name="Done").click()
    expect(row.locator(".tags-view .tag")).to_have_text(["Salon 2026"])

    page.get_by_label("Search").fill("moreau")
    expect(page.locator("tr.contact-row")).to_have_count(1)
    expect(page.locator("tr.contact-row")).to_contain_text("Inès Moreau")
    expect(page).to_have_url(re.compile(r"[?&]q=moreau"))
    page.reload()  # the URL carries the search, so a reload shows the same table
    expect(page.locator("tr.contact-row")).to_have_count(1)
    expect(page.get_by_label("Search")).to_have_value("moreau")


def test_customer_edits_a_contact_inline_and_sees_validation_messages(logged_in, workspace):
    page = logged_in
    factories.contact(workspace, email="hugo.petit@example.org", first_name="Hugo", last_name="Petit")
    page.reload()
    row = page.locator("tr.contact-row", has_text="Hugo Petit")
    row.get_by_role("button", name="Edit Hugo Petit").click()
    editing = page.locator("tr.editing")
    editing.get_by_label("E-mail").fill("hugo at example")
    editing.get_by_role("button", name="Save").click()
    expect(editing.locator(".error-text#err-email")).to_have_text("This is not a valid e-mail address.")
    editing.get_by_label("E-mail").fill("hugo@example.org")
    editing.get_by_label("City").fill("Dijon")
    editing.get_by_role("button", name="Save").click()
    expect(page.locator("tr.contact-row", has_text="hugo@example.org")).to_be_visible()
    expect(page.locator("tr.editing")).to_have_count(0)


def test_customer_imports_a_csv_with_one_bad_row_and_reads_the_report(logged_in, live_server, run_jobs, workspace):
    page = logged_in
    page.get_by_role("link", name="Import a CSV file").click()
    page.get_by_label("CSV file").set_input_files(
        files=[{"name": "salon.csv", "mimeType": "text/csv", "buffer": BAD_ROW_CSV}])
    page.get_by_role("button", name="Upload and check").click()

    expect(page.get_by_text("3 rows to import")).to_be_visible()
    expect(page.locator("tr.preview-reject")).to_contain_text("not a valid e-mail address")
    page.get_by_role("button", name="Import the rows").click()
    expect(page.locator("#import-progress")).to_be_visible()

    run_jobs()
    report = page.locator(".import-report")
    expect(report).to_be_visible()  # the progress partial polled itself and turned into the report
    expect(report.locator(".count-imported")).to_have_text("2")
    expect(report.locator(".count-rejected")).to_have_text("1")
    expect(report.locator(".rejects-table")).to_contain_text("3")
    expect(report.locator(".rejects-table")).to_contain_text("not a valid e-mail address")
    with page.expect_download() as download:
        report.get_by_role("link", name="Download the rejected rows (CSV)").click()
    with open(download.value.path(), encoding="utf-8-sig") as handle:
        content = handle.read()
    assert "pas-une-adresse" in content and content.splitlines()[1].startswith("3;")

    page.get_by_role("link", name="See the contacts").click()
    expect(page.locator("tr.contact-row")).to_have_count(2)
