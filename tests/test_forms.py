"""Forms (issue 7): the login form's messages, and how a form carries the domain's verdict.

Each area's forms are also tested with their pages (test_contacts, test_csv_import,
test_connector_views, test_support_validation) and in Chromium (tests/browser).
"""
from __future__ import annotations

import re

ENGLISH = {"Accept-Language": "en"}


def _token(client) -> str:
    return client.refresh_csrf("/login")


def test_empty_login_form_says_what_is_missing_next_to_each_field(client):
    token = _token(client)
    response = client.post("/login", data={"email": "", "password": "", "csrf_token": token}, headers=ENGLISH)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert re.search(r'<input aria-describedby="err-email" aria-invalid="true"[^>]*name="email"[^>]*>\s*'
                     r'<span class="error-text" id="err-email">Type the e-mail address you log in with.</span>', html)
    assert re.search(r'<input aria-describedby="err-password" aria-invalid="true"[^>]*name="password"[^>]*>\s*'
                     r'<span class="error-text" id="err-password">Type your password.</span>', html)


def test_login_messages_are_french_by_default(client):
    token = _token(client)
    response = client.post("/login", data={"email": "camille@ardent.test", "password": "", "csrf_token": token})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Saisissez votre mot de passe." in html
    assert 'value="camille@ardent.test"' in html  # what was typed is kept


def test_wrong_password_is_said_above_the_form_and_logs_nobody_in(client, customer):
    response = client.login(customer.email, "not-the-password")
    assert response.status_code == 401
    assert '<div class="flash flash-error" role="alert">E-mail ou mot de passe incorrect.</div>' in (
        response.get_data(as_text=True))
    assert client.get("/contacts/").status_code == 302


def test_a_form_puts_the_domains_messages_on_the_fields_it_names(app):
    from portal.crm.contacts import validate_contact_data
    from portal.crm.errors import ValidationFailed
    from portal.views.forms import ContactForm

    with app.test_request_context("/contacts/", method="POST", data={"email": "ines@", "first_name": "x" * 101},
                                  headers=ENGLISH):
        form = ContactForm()
        try:
            validate_contact_data(form.posted())
        except ValidationFailed as exc:
            form.add_errors({**exc.errors, "elsewhere": "A message for no field."})
        assert form.email.errors == ["This is not a valid e-mail address."]
        assert form.first_name.errors == ["At most 100 characters."]
        assert form.form_errors == ["A message for no field."]
        assert form.messages == ["A message for no field.", "This is not a valid e-mail address.",
                                 "At most 100 characters."]
        assert form.posted() == {"email": "ines@", "first_name": "x" * 101}  # only what was posted
