"""Issue 13: every portal route, fed what nobody should send — ids out of range or not numbers,
query strings with control characters and huge values, forms whose every field holds NUL, an RTL
override, 100,000 characters… — as a customer, as support and anonymously: never a 5xx.

The routes are read from the app's URL map, so a route added later is fuzzed too.
"""
from __future__ import annotations

import re
from urllib.parse import quote

import pytest

import factories

IDS = ("0", "-1", "2147483647", "2147483648", "99999999999999999999999", "abc", "1%00", "%D9%A3", "1.5")
QUERIES = (
    "?q=%00%1b%7f", "?q=" + "x" * 5000, "?tag=99999999999999999999&page=-1", "?tag=2147483648&page=99999999999999999999",
    "?page=1e9&sort=%ff%fe", "?next=%0d%0a//evil.example", "?next=/%09/evil.example", "?row=1&done=1",
    "?status=%00&mailchimp=%00&consent=%00", "?q=%E2%80%AE%EF%BB%BF", "?" + "a=1&" * 500,
)
VALUES = ("\x00", "A\x00B", "\x1b[31m", "x" * 100_000, "2147483648", "99999999999999999999999", "-1", "\u202e\ufeff",
          "%s%n%x", "<script>alert(1)</script>", "=HYPERLINK(\"http://evil.example\")", "é" * 300, "\r\nBcc: x@y")
FIELDS = ("email", "first_name", "last_name", "phone", "company", "job_title", "street", "postal_code", "city",
          "country", "tags", "consent", "row", "add", "remove", "contact_id", "api_key", "keep", "audience_id",
          "create_missing", "reason", "confirm", "next", "locale", "col-0", "col-1", "col-2", "map-first_name",
          "map-company", "password", "remember", "csrf_token")
LAST = ("/logout", "/mailchimp/delete", "/mailchimp/setup/cancel")  # they end what the others need
HTMX = ({}, {"HX-Request": "true"}, {"HX-Request": "true", "HX-Current-URL": "http://[::1/%zz"},
        {"HX-Request": "true", "HX-Current-URL": "//evil.example/%0d%0a"}, {"HX-Request": "true", "HX-Target": "#x"})
ARG = re.compile(r"<(?:[a-z]+:)?([a-z_]+)>")


@pytest.fixture
def world(mc_app, sim, sim_key, workspace, customer, support_user, run_jobs):
    """A workspace with contacts, an import, a connector waiting for validation and its runs."""
    from portal.crm import csv_import
    from portal.extensions import db
    from portal.models import SyncRun
    from test_connector_views import audience, make_connector

    contact = factories.contact(workspace, email="ada@example.org", first_name="Ada", tags=["VIP"])
    other_ws = factories.workspace("Autre Atelier")
    stranger = factories.contact(other_ws, email="autre@example.org", first_name="Autre")
    imp = csv_import.upload(workspace.id, customer.id, "clients.csv", b"email,first_name\nb@example.org,B\n")
    connector = make_connector(workspace, customer, sim_key, audience(sim, sim_key))
    run_jobs()
    run = db.session.scalars(db.select(SyncRun).where(SyncRun.connector_id == connector.id)).first()
    return {"contact_id": contact.id, "import_id": imp.id, "connector_id": connector.id, "run_id": run.id,
            "email_id": 1, "stranger": stranger.id}


def _rules(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.rule.startswith("/api/"):
            continue  # the API has its own fuzzing (tests/test_api.py, tests/test_api_openapi.py)
        yield rule


def _url(rule, world, value: str | None = None) -> str:
    return ARG.sub(lambda m: value if value is not None else str(world.get(m.group(1), 1)), rule.rule)


def _clients(app, browser_class, customer, support_user):
    customer_client, support_client, anonymous = browser_class(app), browser_class(app), browser_class(app)
    customer_client.login(customer.email)
    support_client.login(support_user.email)
    anonymous.refresh_csrf("/login")
    return {"customer": customer_client, "support": support_client, "anonymous": anonymous}


def test_no_portal_route_answers_5xx_to_malformed_input(app, world, client, customer, support_user, monkeypatch):
    monkeypatch.setitem(app.config, "MAILCHIMP_WEB_TIMEOUT", 2.0)
    monkeypatch.setitem(app.config, "LOGIN_MAX_FAILURES_PER_ADDRESS", 10**6)
    clients = _clients(app, type(client), customer, support_user)  # conftest's Browser
    rules = sorted(_rules(app), key=lambda r: any(r.rule == last for last in LAST))
    failures, count, statuses = [], 0, {}

    def check(who: str, method: str, url: str, **kwargs) -> None:
        nonlocal count
        count += 1
        response = clients[who].open(url, method=method, **kwargs)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        if response.status_code >= 500:
            failures.append(f"{who} {method} {url[:120]} {sorted(kwargs.get('data', {}))[:3]} → {response.status_code}")

    for rule in rules:
        methods = sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
        has_args = bool(ARG.search(rule.rule))
        for who in clients:
            if "GET" in methods:
                urls = [_url(rule, world, quote(v, safe="%")) for v in IDS] if has_args else []
                urls += [_url(rule, world) + query for query in QUERIES]
                for url in urls:
                    check(who, "GET", url, headers=HTMX[len(url) % len(HTMX)])
            if "POST" in methods and rule.rule not in LAST:
                for value in VALUES:
                    data = {name: value for name in FIELDS if name != "csrf_token"}
                    check(who, "POST", _url(rule, world) + "?next=%0d%0a//x", data=data)
                if has_args:
                    for bad in IDS[:5]:
                        check(who, "POST", _url(rule, world, bad), data={"first_name": "x"})
    for rule in rules:  # the ones that end the session or the connector, last
        if rule.rule in LAST:
            for who in clients:
                for value in VALUES[:4]:
                    check(who, "POST", rule.rule, data={name: value for name in FIELDS if name != "csrf_token"})
    print(count, sorted(statuses.items()))
    assert count > 2000
    assert failures == [], f"{len(failures)} of {count} requests answered 5xx:\n" + "\n".join(failures[:40])
