"""Forms in Debian's Chromium: a refused form shows its messages where the person is looking,
also on the pages that used to answer 422 with nothing visible (issue 7)."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

import factories

pytestmark = pytest.mark.browser


def test_empty_login_form_shows_what_is_missing(page, live_server):
    page.set_default_timeout(10_000)
    page.set_extra_http_headers({"Accept-Language": "en"})
    page.goto(live_server + "/login")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#err-email")).to_have_text("Type the e-mail address you log in with.")
    expect(page.locator("#err-password")).to_have_text("Type your password.")
    expect(page.get_by_label("E-mail")).to_have_attribute("aria-invalid", "true")
    expect(page).to_have_url(re.compile(r"/login$"))


def test_new_contact_page_opened_directly_shows_the_messages_then_creates(page, log_in, live_server, workspace):
    log_in(factories.user("ines@atelier.example.org", "customer", workspace), timeout_ms=10_000)
    page.goto(live_server + "/contacts/new")
    panel = page.locator(".create-panel")
    panel.get_by_label("First name").fill("Inès")
    panel.get_by_label("E-mail").fill("ines@")
    panel.get_by_role("button", name="Create the contact").click()
    expect(panel.locator("#err-email")).to_have_text("This is not a valid e-mail address.")  # the 422 is shown
    expect(panel.get_by_label("First name")).to_have_value("Inès")
    panel.get_by_label("E-mail").fill("ines@example.org")
    panel.get_by_role("button", name="Create the contact").click()
    expect(page.get_by_text("Inès was created.")).to_be_visible()
