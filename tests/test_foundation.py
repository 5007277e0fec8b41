"""The skeleton: login, roles, scoping, CSRF, config errors, e-mail logging."""
from __future__ import annotations

import pytest



def test_login_with_wrong_password_is_refused_with_a_message(client, customer):
    response = client.login(customer.email, "wrong")
    assert response.status_code == 401
    assert "mot de passe" in response.get_data(as_text=True).lower()


def test_customer_lands_on_contacts_and_support_on_its_area(customer_client, support_client):
    assert customer_client.get("/").location.endswith("/contacts/")
    assert support_client.get("/").location.endswith("/support/")


def test_customer_cannot_open_support_pages(customer_client):
    assert customer_client.get("/support/outbox").status_code == 403


def test_anonymous_user_is_sent_to_login(client):
    response = client.get("/contacts/")
    assert response.status_code == 302 and "/login" in response.location


def test_post_without_csrf_token_is_rejected(app, customer):
    raw = app.test_client()
    response = raw.post("/login", data={"email": customer.email, "password": "secret-pw"})
    assert response.status_code == 400


def test_english_is_served_when_the_browser_prefers_it(client):
    html = client.get("/login", headers={"Accept-Language": "en-GB,en;q=0.9"}).get_data(as_text=True)
    assert "Log in to anaba" in html


def test_french_is_the_default_language(client):
    html = client.get("/login").get_data(as_text=True)
    assert "Se connecter" in html


def test_bad_database_url_stops_the_app_with_a_clear_message():
    from portal.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match="DATABASE_URL"):
        load_settings({"DATABASE_URL": "mysql://x"}, "/tmp")


def test_production_refuses_to_start_without_secrets():
    from portal.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match="SECRET_KEY"):
        load_settings({"ANABA_ENV": "production"}, "/tmp")


def test_sent_email_reaches_smtp_and_is_logged_for_the_outbox(app, mailbox, support_client, workspace):
    from portal.notify import send_email

    send_email("test", "someone@example.org", "Bonjour", template="test", workspace_id=workspace.id, name="Jeanne")
    assert mailbox[0]["Subject"] == "Bonjour"
    page = support_client.get("/support/outbox").get_data(as_text=True)
    assert "Bonjour" in page and "someone@example.org" in page


def test_failed_smtp_delivery_is_logged_not_raised(app, workspace):
    from portal.models import EmailLog
    from portal.notify import send_email

    state = app.extensions["mail"]
    old, state.port = state.port, 1
    try:
        entry = send_email("test", "x@example.org", "Hello", template="test", name="X")
    finally:
        state.port = old
    assert entry.status == "failed" and EmailLog.query.count() == 1


def _explode(message):
    raise RuntimeError(message)


def test_a_failing_job_is_listed_for_support(app, support_client, run_jobs):
    from portal.jobs import enqueue

    enqueue("bulk", _explode, "the disk is on fire")
    run_jobs(["bulk"])
    page = support_client.get("/support/").get_data(as_text=True)
    assert "the disk is on fire" in page and "_explode" in page


def test_cli_creates_a_workspace_with_a_working_api_token_and_a_customer_who_can_log_in(app, client):
    runner = app.test_cli_runner()
    created = runner.invoke(args=["workspace", "create", "Fromagerie Bel-Air"])
    assert created.exit_code == 0, created.output
    token = created.output.strip().rsplit(" ", 1)[-1]
    user = runner.invoke(args=["create-user", "luc@belair.test", "--role", "customer",
                               "--workspace", "Fromagerie Bel-Air", "--password", "fromage-42"])
    assert user.exit_code == 0, user.output
    assert client.login("luc@belair.test", "fromage-42").status_code == 302
    api = app.test_client().get("/api/v1/contacts", headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 200


def test_cli_refuses_a_customer_without_an_existing_workspace(app):
    result = app.test_cli_runner().invoke(args=["create-user", "x@y.test", "--role", "customer",
                                                "--workspace", "Nowhere"])
    assert result.exit_code != 0 and "no workspace named" in result.output


def test_seed_demo_can_run_twice_without_duplicating_contacts(app):
    from portal.models import Contact

    runner = app.test_cli_runner()
    assert runner.invoke(args=["seed-demo", "--contacts", "50"]).exit_code == 0
    assert runner.invoke(args=["seed-demo", "--contacts", "50"]).exit_code == 0
    assert Contact.query.count() == 50
