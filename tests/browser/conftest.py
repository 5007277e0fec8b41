"""Browser-test fixtures: logging in through the real form."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from portal.extensions import db


@pytest.fixture
def log_in(page, live_server):
    """A function that logs `user` in through the login form, interface in English; it returns the page."""

    def log_in_as(user, timeout_ms: int = 15_000):
        user.locale = "en"
        db.session.commit()
        page.set_default_timeout(timeout_ms)
        page.goto(live_server + "/login")
        page.get_by_label("E-mail").fill(user.email)
        page.get_by_label("Password").fill("secret-pw")
        page.get_by_role("button", name="Log in").click()
        expect(page).not_to_have_url(re.compile(r"/login"))
        return page

    return log_in_as
