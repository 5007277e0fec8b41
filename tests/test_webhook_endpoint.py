"""The Mailchimp webhook endpoint (R21), with payloads in Mailchimp's own format posted directly: it
answers the validator's GET, stores each event before answering, keeps what it refuses for
inspection, never answers 410 or 500, and is the only form route CSRF does not guard."""
from __future__ import annotations

import logging
import random
import re
import time

import pytest
from sqlalchemy import select

from portal.extensions import db
from webhook_helpers import form

LIST_ID = "a1b2c3d4e5"
SECRET = "s3cr3t-" + "x" * 36


@pytest.fixture
def hook(app, workspace):
    """An active connector of `workspace` whose webhook URL carries SECRET; returns its URL path."""
    from portal.models import Connector
    from portal.sync import webhooks

    db.session.add(Connector(workspace_id=workspace.id, status="active", api_key_encrypted="x", api_key_hint="…-us1",
                             audience_id=LIST_ID, webhook_secret=SECRET, webhook_id="wh1"))
    db.session.commit()
    webhooks.secret_cache.clear()  # the same secret names another connector row in each test
    return f"/webhooks/mailchimp/{SECRET}"


@pytest.fixture
def mailchimp(app):
    """A client that posts like Mailchimp: no cookie, no CSRF token, form-encoded bodies."""
    return app.test_client()


def post(client, url, body: bytes, content_type="application/x-www-form-urlencoded", **kwargs):
    return client.post(url, data=body, content_type=content_type,
                       headers={"User-Agent": "MailChimp.com"}, **kwargs)


def events():
    from portal.models import WebhookEvent

    db.session.expire_all()
    return list(db.session.scalars(select(WebhookEvent).order_by(WebhookEvent.id)))


UNSUBSCRIBE = dict(action="unsub", reason="manual", id="8a25ff1d98", email="api+unsub@mailchimp.com",
                   email_type="html", ip_opt="10.20.10.30", campaign_id="cb398d21d2",
                   merges={"EMAIL": "api+unsub@mailchimp.com", "FNAME": "Mailchimp", "LNAME": "API"})


def test_the_validators_get_is_answered_200_and_an_unknown_url_404(mailchimp, hook):
    assert mailchimp.get(hook, headers={"User-Agent": "MailChimp.com WebHook Validator"}).status_code == 200
    assert mailchimp.get("/webhooks/mailchimp/not-ours").status_code == 404


def test_an_event_in_mailchimps_format_is_stored_and_answered_at_once(mailchimp, hook):
    started = time.monotonic()
    response = post(mailchimp, hook, form("unsubscribe", LIST_ID, **UNSUBSCRIBE))
    assert response.status_code == 200 and time.monotonic() - started < 1.0  # Mailchimp gives up after 10 s
    [event] = events()
    assert (event.status, event.type, event.list_id, event.email) == ("received", "unsubscribe", LIST_ID,
                                                                      "api+unsub@mailchimp.com")
    assert "data%5Bmerges%5D%5BFNAME%5D=Mailchimp" in event.body  # the raw body, as received


def test_fired_at_without_a_time_zone_is_read_as_utc(mailchimp, hook):
    post(mailchimp, hook, form("subscribe", LIST_ID, fired_at="2009-03-26 21:35:57", email="a@ardent.fr", id="x"))
    [event] = events()
    assert event.fired_at.isoformat() == "2009-03-26T21:35:57+00:00"


def test_an_unsubscribe_without_action_and_with_a_repeated_reason_is_accepted(mailchimp, hook):
    body = form("unsubscribe", LIST_ID, email="a@ardent.fr", id="x", reason=["manual", "hard"])
    assert b"action" not in body and body.count(b"reason") == 2
    assert post(mailchimp, hook, body).status_code == 200
    [event] = events()
    assert event.status == "received"


def test_the_same_event_delivered_twice_is_stored_once(mailchimp, hook):
    body = form("unsubscribe", LIST_ID, **UNSUBSCRIBE)
    assert post(mailchimp, hook, body).status_code == 200
    again = post(mailchimp, hook, body)
    assert again.status_code == 200 and again.get_data(as_text=True).strip() == "duplicate"
    assert len(events()) == 1


@pytest.mark.parametrize("body, content_type, reason", [
    (b"", "application/x-www-form-urlencoded", "empty"),
    (b'{"type": "unsubscribe", "data": {"email": "a@ardent.fr"}}', "application/json", "not_form_data"),
    (b"\x00\xff%%%&&&===\xfe", "application/x-www-form-urlencoded", "no_type"),
    (b"fired_at=2026-11-30+09%3A15%3A02&data%5Bemail%5D=a%40ardent.fr", "application/x-www-form-urlencoded",
     "no_type"),
    (form("subscribe_maybe", LIST_ID, email="a@ardent.fr"), "application/x-www-form-urlencoded", "unknown_type"),
    (form("subscribe", LIST_ID, fired_at="yesterday", email="a@ardent.fr"), "application/x-www-form-urlencoded",
     "no_fired_at"),
    (form("upemail", LIST_ID, old_email="a@ardent.fr"), "application/x-www-form-urlencoded", "incomplete"),
])
def test_a_malformed_body_gets_400_and_is_kept_for_inspection(mailchimp, hook, body, content_type, reason, caplog):
    with caplog.at_level(logging.WARNING):
        response = post(mailchimp, hook, body, content_type=content_type)
    assert response.status_code == 400
    [event] = events()
    assert (event.status, event.outcome) == ("rejected", reason)
    assert event.body == body.decode("utf-8", errors="replace").replace("\x00", "\ufffd")
    assert reason in caplog.text


def test_an_event_for_an_audience_the_connector_does_not_own_is_refused(mailchimp, hook):
    response = post(mailchimp, hook, form("unsubscribe", "another-list", **UNSUBSCRIBE))
    assert response.status_code == 400
    [event] = events()
    assert (event.status, event.outcome, event.list_id) == ("rejected", "other_audience", "another-list")


def test_a_wrong_or_missing_secret_gets_404_is_logged_and_stores_nothing(mailchimp, hook, caplog):
    body = form("unsubscribe", LIST_ID, **UNSUBSCRIBE)
    with caplog.at_level(logging.WARNING):
        assert post(mailchimp, "/webhooks/mailchimp/guessed-secret", body).status_code == 404
        assert post(mailchimp, "/webhooks/mailchimp/", body).status_code == 404
    assert "unknown secret" in caplog.text and "guessed-secret" not in caplog.text  # logged, never the secret
    assert events() == []


@pytest.mark.parametrize("secret", ["1%00", "%00", "a%0Db", "sécret", "x" * 65, "a.b"])
def test_a_secret_no_connector_could_have_is_404_on_every_database(mailchimp, hook, secret):
    # a NUL in the URL once reached PostgreSQL, which refuses it in a text comparison: a 500
    assert mailchimp.get("/webhooks/mailchimp/" + secret).status_code == 404
    assert post(mailchimp, "/webhooks/mailchimp/" + secret, form("unsubscribe", LIST_ID, **UNSUBSCRIBE)).status_code == 404
    assert events() == []


def test_a_very_large_body_is_refused_and_kept_in_part(mailchimp, hook):
    body = form("profile", LIST_ID, email="a@ardent.fr", id="x", merges={"NOTES": "z" * 200_000})
    response = post(mailchimp, hook, body)
    assert response.status_code == 413
    [event] = events()
    assert event.status == "rejected" and event.outcome == "too_large"


def test_random_bodies_never_get_410_nor_500(mailchimp, hook):
    rng = random.Random(10)
    pieces = [b"type=", b"subscribe", b"unsubscribe", b"&", b"=", b"data[", b"]", b"%", b"\xff", b"fired_at=",
              b"2026-11-30 09:00:00", LIST_ID.encode(), b"data[list_id]=", b"data[email]=", b"a@b.fr", b"[[", b";"]
    statuses = set()
    pieces += [b"\x00", b"%00", b"data[email]=%00a@b.fr"]
    for _ in range(200):
        body = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        ctype = rng.choice(["application/x-www-form-urlencoded", "text/plain", "application/json", ""])
        statuses.add(post(mailchimp, hook, body, content_type=ctype).status_code)
    assert statuses <= {200, 400}


def test_a_stored_event_is_answered_200_even_when_redis_is_down(mailchimp, hook, monkeypatch):
    from redis.exceptions import ConnectionError as RedisDown

    from portal import jobs

    def down(_connector_id):
        raise RedisDown("redis is down")

    monkeypatch.setattr(jobs, "_wake_webhook_applier", down)
    assert post(mailchimp, hook, form("unsubscribe", LIST_ID, **UNSUBSCRIBE)).status_code == 200
    assert [e.status for e in events()] == ["received"]  # the minute sweep applies it later


def test_csrf_does_not_apply_to_the_webhook_and_to_nothing_else(app, hook, customer):
    """Every other form route refuses a post without its CSRF token (the token API is not a form route)."""
    client = app.test_client()
    assert post(client, hook, form("unsubscribe", LIST_ID, **UNSUBSCRIBE)).status_code == 200
    unguarded = []
    for rule in app.url_map.iter_rules():
        if "POST" not in rule.methods or rule.endpoint.startswith(("api.", "webhooks.", "static")):
            continue
        url = re.sub(r"<\w+>", "x", re.sub(r"<(?:int|id):\w+>", "1", rule.rule))
        response = client.post(url, data={"x": "1"}, headers={"Accept-Language": "en"})
        if response.status_code != 400 or b"expired" not in response.data:
            unguarded.append((rule.rule, response.status_code))
    assert unguarded == []


def test_a_deleted_connectors_url_is_404(mailchimp, hook, support_user):
    from portal.models import Connector
    from portal.sync import webhooks

    connector = db.session.scalar(select(Connector))
    connector.deleted_at, connector.status = connector.created_at, "deleted"
    db.session.commit()
    webhooks.secret_cache.clear()
    assert post(mailchimp, hook, form("unsubscribe", LIST_ID, **UNSUBSCRIBE)).status_code == 404


def test_a_connector_remembered_by_a_web_process_but_gone_is_looked_up_again(mailchimp, hook, workspace):
    """The secret cache may name a connector row that no longer exists: never a 500."""
    from portal.sync import webhooks

    webhooks.secret_cache._found[SECRET] = (time.monotonic(), (999_999, workspace.id, LIST_ID))
    assert post(mailchimp, hook, form("unsubscribe", LIST_ID, **UNSUBSCRIBE)).status_code == 200
    [event] = events()
    assert event.connector_id != 999_999


def test_when_the_database_cannot_store_the_event_the_answer_asks_mailchimp_to_retry(mailchimp, hook, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from portal.sync import webhooks

    def down(values):
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    monkeypatch.setattr(webhooks, "_insert", down)
    response = post(mailchimp, hook, form("unsubscribe", LIST_ID, **UNSUBSCRIBE))
    assert response.status_code == 503 and response.headers["Retry-After"] == "60"


def test_support_reads_what_mailchimp_sent_and_the_refused_requests(app, mailchimp, hook, support_client, support_user,
                                                                    customer_client):
    from portal.models import Connector

    support_user.locale = "en"
    db.session.commit()
    post(mailchimp, hook, form("unsubscribe", LIST_ID, **UNSUBSCRIBE))
    post(mailchimp, hook, b'{"type": "unsubscribe"}', content_type="application/json")
    connector = db.session.scalar(select(Connector))
    page = support_client.get(f"/support/connectors/{connector.id}/webhook-events?status=rejected")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "not_form_data" in html and "api+unsub@mailchimp.com" not in html
    html = support_client.get(f"/support/connectors/{connector.id}/webhook-events").get_data(as_text=True)
    assert "api+unsub@mailchimp.com" in html and "waiting to be applied" in html
    assert customer_client.get(f"/support/connectors/{connector.id}/webhook-events").status_code == 403
