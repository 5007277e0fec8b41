"""Issue 13 in Debian's Chromium: the pages and htmx work under the Content-Security-Policy (no
violation reported), and a session that expired during an htmx request takes the whole page to
the login page, then back."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

import factories

pytestmark = pytest.mark.browser


@pytest.fixture
def logged_in(page, log_in, workspace):
    """A customer (interface in English) logged in through the login form, with CSP violations recorded."""
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text)
            if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text else None)
    log_in(factories.user("ines@atelier.example.org", "customer", workspace), timeout_ms=10_000)
    page.violations = violations
    return page


def test_the_pages_and_htmx_work_under_the_content_security_policy(logged_in, live_server, workspace):
    page = logged_in
    factories.contact(workspace, email="hugo.petit@example.org", first_name="Hugo", last_name="Petit")
    page.reload()

    page.get_by_role("link", name="New contact").click()  # htmx fragment
    panel = page.locator(".create-panel")
    panel.get_by_label("E-mail").fill("not-an-address")
    panel.get_by_role("button", name="Create the contact").click()
    expect(panel.get_by_text("This is not a valid e-mail address.")).to_be_visible()  # a 422 swapped in
    panel.get_by_role("button", name="Close").first.click()  # data-remove-closest, no inline handler
    expect(page.locator(".create-panel")).to_have_count(0)

    page.get_by_label("Search").fill("petit")  # htmx search with its indicator
    expect(page.locator("tr.contact-row")).to_have_count(1)
    page.locator("tr.contact-row a", has_text="Hugo Petit").first.click()
    expect(page).to_have_url(re.compile(r"/contacts/\d+$"))
    page.goto(live_server + "/mailchimp/setup")
    expect(page.get_by_label("API key")).to_be_visible()
    assert page.violations == []


def test_a_session_that_expired_takes_the_whole_page_to_login_and_back(logged_in, live_server, workspace):
    page = logged_in
    factories.contact(workspace, email="hugo.petit@example.org", first_name="Hugo", last_name="Petit")
    page.goto(live_server + "/contacts/")
    page.context.clear_cookies()  # the session is gone (expired, or ended on another device)

    page.get_by_label("Search").fill("petit")  # an htmx request without a session
    expect(page).to_have_url(re.compile(r"/login\?next="))
    expect(page.locator(".contacts-area")).to_have_count(0)  # the login page, not a fragment inside the table
    page.get_by_label("E-mail").fill("ines@atelier.example.org")
    page.get_by_label("Password").fill("secret-pw")
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/contacts/"))
    assert page.violations == []
