"""The contacts table and a contact's record: what a customer sees and can do (issue 2, R15–R17)."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

import factories
from portal.crm.contacts import set_consent
from portal.extensions import db
from portal.models import Activity, ConsentEvent, Contact, SyncEvent, Tag, utcnow

HX = {"HX-Request": "true"}


def text(response) -> str:
    return response.get_data(as_text=True)


def row_names(html: str) -> list[str]:
    """The names in the table's rows, in order."""
    return re.findall(r'<a href="/contacts/\d+">([^<]+)</a>', html)


def lock(workspace, contact):
    """Lock a contact's consent as a Mailchimp unsubscribe would (R16)."""
    return set_consent(workspace.id, contact.id, "opt_out", actor="Mailchimp", channel="mailchimp_webhook",
                       locked=True, lock_reason="self_unsubscribe")


# --------------------------------------------------------------------------- the table

def test_table_shows_each_contact_with_email_company_tags_and_consent(ui, workspace):
    factories.contact(workspace, email="elodie@example.org", first_name="Élodie", last_name="Moreau",
                      company="Atelier Nacre", tags=["VIP", "Clients"], consent="opt_in")
    html = text(ui.get("/contacts/"))
    assert "1 contact" in html
    assert row_names(html) == ["Élodie Moreau"]
    assert "elodie@example.org" in html and "Atelier Nacre" in html
    assert '<span class="tag">Clients</span><span class="tag">VIP</span>' in html
    assert "Opt-in" in html


def test_shared_email_is_flagged_on_every_contact_using_it(ui, workspace):
    factories.contact(workspace, email="accueil@example.org", first_name="Anne")
    factories.contact(workspace, email="Accueil@Example.org", first_name="Bruno")
    factories.contact(workspace, email="seule@example.org", first_name="Chloé")
    html = text(ui.get("/contacts/"))
    assert html.count("shared by 2 contacts") == 2


def test_search_matches_name_email_or_company_without_accents(ui, workspace):
    factories.contact(workspace, email="a@example.org", first_name="Élodie", last_name="Moreau")
    factories.contact(workspace, email="b@example.org", first_name="Hugo", last_name="Petit",
                      company="Hôtel des Cèdres")
    factories.contact(workspace, email="zoe.lambert@orange.fr", first_name="Zoé", last_name="Lambert")
    assert row_names(text(ui.get("/contacts/?q=elodie"))) == ["Élodie Moreau"]
    assert row_names(text(ui.get("/contacts/?q=hotel cedres"))) == ["Hugo Petit"]
    assert row_names(text(ui.get("/contacts/?q=orange.fr"))) == ["Zoé Lambert"]
    empty = text(ui.get("/contacts/?q=personne"))
    assert row_names(empty) == [] and "No contact matches these filters." in empty


def test_search_follows_renames_and_deletions_and_takes_wildcards_literally(ui, workspace):
    """On SQLite the search reads a full-text index kept by the database itself: a renamed contact
    is found under the new name only, a deleted one no longer, and % or _ typed in a word match
    themselves, not any character."""
    from portal.crm import contacts as crm

    zoe = factories.contact(workspace, email="zoe@example.org", first_name="Zoé", last_name="Fontaine")
    factories.contact(workspace, email="jean_pierre@example.org", first_name="Jean", last_name="Pierre")
    factories.contact(workspace, email="jeanxpierre@example.org", first_name="Jeanx", last_name="Pierre")
    factories.contact(workspace, email="remise@example.org", first_name="Remise", last_name="Dix", company="10% Club")
    factories.contact(workspace, email="cent@example.org", first_name="Cent", last_name="Dix", company="100 Club")
    assert row_names(text(ui.get("/contacts/?q=fontaine"))) == ["Zoé Fontaine"]
    crm.update_contact(workspace.id, zoe.id, {"last_name": "Fontenelle"}, actor="test", channel="ui")
    assert row_names(text(ui.get("/contacts/?q=fontaine"))) == []
    assert row_names(text(ui.get("/contacts/?q=zoe fontenelle"))) == ["Zoé Fontenelle"]
    assert row_names(text(ui.get("/contacts/?q=jean_pierre"))) == ["Jean Pierre"]
    assert row_names(text(ui.get("/contacts/?q=10%25 club"))) == ["Remise Dix"]
    crm.delete_contact(workspace.id, zoe.id, actor="test", channel="ui")
    assert row_names(text(ui.get("/contacts/?q=fontenelle"))) == []


def test_tag_and_consent_filters_narrow_the_table(ui, workspace):
    factories.contact(workspace, email="a@example.org", first_name="Anne", tags=["VIP"], consent="opt_in")
    factories.contact(workspace, email="b@example.org", first_name="Bruno", tags=["VIP"], consent="opt_out")
    factories.contact(workspace, email="c@example.org", first_name="Chloé", consent="opt_in")
    vip = db.session.scalar(select(Tag).where(Tag.name == "VIP"))
    assert row_names(text(ui.get(f"/contacts/?tag={vip.id}"))) == ["Anne Martin", "Bruno Martin"]
    assert row_names(text(ui.get("/contacts/?consent=opt_in"))) == ["Anne Martin", "Chloé Martin"]
    assert row_names(text(ui.get(f"/contacts/?tag={vip.id}&consent=opt_out"))) == ["Bruno Martin"]


def test_sorting_by_name_and_by_creation(ui, workspace):
    for first, last in (("Camille", "Bernard"), ("Arthur", "Dubois"), ("Léa", "Amiel")):
        factories.contact(workspace, email=f"{first.lower()}@example.org", first_name=first, last_name=last)
    assert row_names(text(ui.get("/contacts/"))) == ["Léa Amiel", "Camille Bernard", "Arthur Dubois"]
    assert row_names(text(ui.get("/contacts/?sort=-name"))) == ["Arthur Dubois", "Camille Bernard", "Léa Amiel"]
    assert row_names(text(ui.get("/contacts/?sort=-created"))) == ["Léa Amiel", "Arthur Dubois", "Camille Bernard"]


def test_pages_hold_fifty_contacts_and_show_the_total(ui, workspace):
    from portal.crm.demo import insert_contacts

    insert_contacts(workspace.id, 120, bad_email_rate=0, duplicate_rate=0)
    first = text(ui.get("/contacts/"))
    assert len(row_names(first)) == 50 and "120 contacts" in first and "1–50 of 120" in first
    assert "Page 1 of 3" in first and 'href="/contacts/?page=2"' in first
    last = text(ui.get("/contacts/?page=3"))
    assert len(row_names(last)) == 20 and "101–120 of 120" in last
    beyond = text(ui.get("/contacts/?page=99"))
    assert "Page 3 of 3" in beyond and len(row_names(beyond)) == 20


def _names_in_list_order(workspace, ids) -> list[str]:
    wanted = set(ids)
    return [c.full_name for c in db.session.scalars(select(Contact).where(Contact.workspace_id == workspace.id)
                                                     .order_by(Contact.sort_name, Contact.id)) if c.id in wanted]


def _all_pages(ui, url: str) -> list[str]:
    names, page = [], 1
    while True:
        html = text(ui.get(f"{url}&page={page}", headers=HX))
        names += row_names(html)
        if f'page={page + 1}"' not in html:
            return names
        page += 1


def test_a_large_filtered_result_says_more_than_and_still_pages_through_every_match(ui, workspace, monkeypatch):
    """A filtered table counts up to a cap (10,000; 30 here) and says "more than": its pages still
    hold every match once, in order, whether the filter's set is read whole or checked row by row."""
    from portal.crm import contacts as crm
    from portal.crm.demo import insert_contacts

    monkeypatch.setattr(crm, "COUNT_CAP", 30)
    insert_contacts(workspace.id, 120, bad_email_rate=0, duplicate_rate=0)
    ids = list(db.session.scalars(select(Contact.id).where(Contact.workspace_id == workspace.id).order_by(Contact.id)))
    crm.add_tag_to(workspace.id, ids, "Salon 2026", actor="test", channel="ui")
    crm.add_tag_to(workspace.id, ids[::12], "Rare", actor="test", channel="ui")
    big = db.session.scalar(select(Tag.id).where(Tag.name == "Salon 2026"))
    rare = db.session.scalar(select(Tag.id).where(Tag.name == "Rare"))

    assert "120 contacts" in text(ui.get("/contacts/"))  # the whole table is always counted exactly
    first = text(ui.get(f"/contacts/?tag={big}", headers=HX))
    assert "More than 30 contacts" in first and "1–50 of more than 30" in first
    assert "Page 1" in first and "Page 1 of" not in first and "Last »" not in first
    assert _all_pages(ui, f"/contacts/?tag={big}") == _names_in_list_order(workspace, ids)
    last = text(ui.get(f"/contacts/?tag={big}&page=3", headers=HX))
    assert "101–120 of more than 30" in last and 'rel="next"' not in last

    small = text(ui.get(f"/contacts/?tag={rare}", headers=HX))
    assert "10 contacts" in small and "Page 1 of 1" in small
    assert row_names(small) == _names_in_list_order(workspace, ids[::12])

    opted_in = [c.id for c in db.session.scalars(select(Contact).where(Contact.workspace_id == workspace.id))
                if c.consent == "opt_in"]
    assert len(opted_in) > 30
    assert _all_pages(ui, f"/contacts/?tag={big}&consent=opt_in") == _names_in_list_order(workspace, opted_in)
    both = text(ui.get(f"/contacts/?tag={big}&consent=opt_in&q=@", headers=HX))
    assert "More than 30 contacts" in both


def test_a_page_past_the_end_of_a_capped_result_shows_the_last_counted_page(ui, workspace, monkeypatch):
    from portal.crm import contacts as crm
    from portal.crm.demo import insert_contacts

    monkeypatch.setattr(crm, "COUNT_CAP", 30)
    insert_contacts(workspace.id, 80, bad_email_rate=0, duplicate_rate=0)
    html = text(ui.get("/contacts/?q=@&page=40", headers=HX))
    # Where the matches end is unknown past the cap: the last page counted (here the first) is shown.
    assert "More than 30 contacts" in html and "1–50 of more than 30" in html and len(row_names(html)) == 50


def test_filters_stay_in_the_links_so_reload_and_back_work(ui, workspace):
    factories.contact(workspace, tags=["VIP"])
    vip = db.session.scalar(select(Tag).where(Tag.name == "VIP"))
    html = text(ui.get(f"/contacts/?q=martin&tag={vip.id}&consent=opt_in&sort=-name", headers=HX))
    assert f'hx-get="/contacts/?q=martin&amp;tag={vip.id}&amp;consent=opt_in&amp;sort=-name"' in html
    full = text(ui.get(f"/contacts/?q=martin&tag={vip.id}&consent=opt_in"))
    assert 'value="martin"' in full and f'<option value="{vip.id}" selected>' in full
    assert '<option value="opt_in" selected>' in full and 'hx-push-url="true"' in full


def test_htmx_gets_only_the_table_block(ui, workspace):
    factories.contact(workspace)
    response = ui.get("/contacts/?q=jeanne", headers=HX)
    html = text(response)
    assert "<html" not in html and html.lstrip().startswith('<div id="contacts-results"')
    assert row_names(html) == ["Jeanne Martin"]
    assert "HX-Request" in response.headers.get("Vary", "")


def test_table_renders_with_a_mailchimp_connector(ui, workspace):
    from portal.models import Connector, ContactSync

    contact = factories.contact(workspace)
    connector = Connector(workspace_id=workspace.id, status="active", api_key_encrypted="x", api_key_hint="…-us1",
                          audience_id="aud1")
    db.session.add(connector)
    db.session.flush()
    db.session.add(ContactSync(connector_id=connector.id, workspace_id=workspace.id, contact_id=contact.id,
                               state="error"))
    db.session.commit()
    table = ui.get("/contacts/")
    record = ui.get(f"/contacts/{contact.id}")
    assert table.status_code == 200 and row_names(text(table)) == ["Jeanne Martin"]
    assert record.status_code == 200 and "Jeanne Martin" in text(record)


# --------------------------------------------------------------------------- create, edit, delete

def test_inline_create_adds_the_contact_and_refreshes_the_table(ui, workspace):
    form = text(ui.get("/contacts/new", headers=HX))
    assert "<html" not in form and 'name="first_name"' in form
    response = ui.post("/contacts/", data={"first_name": "Inès", "last_name": "Roux", "email": "ines@example.org",
                                           "tags": "Salon 2026, VIP", "consent": "opt_in"}, headers=HX)
    assert response.status_code == 200
    assert "Inès Roux was created." in text(response)
    assert response.headers["HX-Trigger"] == "contactsChanged"
    contact = db.session.scalar(select(Contact))
    assert contact.tag_names == ["Salon 2026", "VIP"] and contact.consent == "opt_in"
    assert row_names(text(ui.get("/contacts/"))) == ["Inès Roux"]


def test_create_with_a_bad_email_shows_the_message_next_to_the_field(ui, workspace):
    response = ui.post("/contacts/", data={"first_name": "Inès", "email": "ines@"}, headers=HX)
    assert response.status_code == 422
    html = text(response)
    assert re.search(r'name="email" value="ines@" aria-invalid="true" aria-describedby="err-email"[^>]*>\s*'
                     r'<span class="error-text" id="err-email">This is not a valid e-mail address.</span>', html)
    assert 'value="Inès"' in html  # what was typed is kept
    assert db.session.scalar(select(func.count()).select_from(Contact)) == 0


def test_create_without_name_email_or_company_is_refused(ui, workspace):
    response = ui.post("/contacts/", data={"phone": "01 02 03 04 05"})
    assert response.status_code == 422
    assert "Give at least an e-mail, a name or a company." in text(response)


def test_new_contact_page_opened_directly_shows_the_messages_of_a_refused_form(ui, workspace):
    page = text(ui.get("/contacts/new"))
    assert "<html" in page and 'name="first_name"' in page
    response = ui.post("/contacts/", data={"first_name": "Inès", "email": "ines@", "consent": "opt_in"})
    assert response.status_code == 422
    html = text(response)
    assert "<html" in html and "Some fields need fixing." in html
    assert '<span class="error-text" id="err-email">This is not a valid e-mail address.</span>' in html
    assert 'value="Inès"' in html and '<option value="opt_in" selected>' in html  # what was chosen is kept
    assert db.session.scalar(select(func.count()).select_from(Contact)) == 0


def test_form_messages_are_in_the_customers_language(customer_client, workspace):
    response = customer_client.post("/contacts/", data={"email": "ines@"}, headers=HX)
    html = text(response)
    assert response.status_code == 422
    assert "Certains champs sont à corriger." in html and "Cette adresse e-mail n&#39;est pas valide." in html


def test_too_long_field_is_refused_not_a_server_error(ui, workspace):
    response = ui.post("/contacts/", data={"first_name": "A" * 500})
    assert response.status_code == 422 and "At most 100 characters." in text(response)


def test_inline_edit_saves_and_shows_the_updated_row(ui, workspace):
    contact = factories.contact(workspace)
    form = text(ui.get(f"/contacts/{contact.id}/edit?row=1", headers=HX))
    assert form.lstrip().startswith(f'<tr id="contact-{contact.id}"') and 'value="Jeanne"' in form
    response = ui.post(f"/contacts/{contact.id}/edit", headers=HX, data={
        "row": "1", "first_name": "Jeanne", "last_name": "Martin-Leroy", "email": "jeanne@example.org",
        "company": "Pépinières Roche", "tags": "Clients", "consent": "unknown"})
    assert response.status_code == 200
    html = text(response)
    assert "Jeanne Martin-Leroy" in html and "Pépinières Roche" in html and "<form" not in html
    db.session.refresh(contact)
    assert contact.email == "jeanne@example.org" and contact.tag_names == ["Clients"]


def test_inline_edit_with_an_invalid_email_keeps_the_form_with_the_message(ui, workspace):
    contact = factories.contact(workspace)
    response = ui.post(f"/contacts/{contact.id}/edit", headers=HX,
                       data={"row": "1", "first_name": "Jeanne", "email": "jeanne at example"})
    assert response.status_code == 422
    html = text(response)
    assert "This is not a valid e-mail address." in html and 'value="jeanne at example"' in html
    db.session.refresh(contact)
    assert contact.email == "jeanne.martin@example.org"


def test_edit_from_the_record_page_redirects_back_with_a_message(ui, workspace):
    contact = factories.contact(workspace)
    page = text(ui.get(f"/contacts/{contact.id}/edit"))
    assert "<html" in page and 'name="postal_code"' in page
    response = ui.post(f"/contacts/{contact.id}/edit", data={"first_name": "Jeanne", "city": "Dijon"})
    assert response.status_code == 302
    assert "Changes saved." in text(ui.get(response.location))
    db.session.refresh(contact)
    assert contact.city == "Dijon"
    assert (contact.email, contact.last_name) == ("jeanne.martin@example.org", "Martin")  # not posted: kept


def test_edit_from_the_record_page_with_an_error_shows_it_on_the_page(ui, workspace):
    contact = factories.contact(workspace)
    response = ui.post(f"/contacts/{contact.id}/edit", data={"first_name": "Jeanne", "postal_code": "6" * 30})
    assert response.status_code == 422
    html = text(response)
    assert "<html" in html and "At most 20 characters." in html and 'value="666666' in html
    db.session.refresh(contact)
    assert contact.postal_code == ""


def test_delete_asks_for_confirmation_then_hides_the_contact(ui, workspace):
    contact = factories.contact(workspace)
    confirm = text(ui.get(f"/contacts/{contact.id}/delete?row=1", headers=HX))
    assert "Delete Jeanne Martin?" in confirm and "Yes, delete" in confirm
    db.session.refresh(contact)
    assert contact.deleted_at is None  # asking is not deleting
    response = ui.post(f"/contacts/{contact.id}/delete", data={"row": "1"}, headers=HX)
    assert response.status_code == 200 and "Jeanne Martin was deleted." in text(response)
    assert row_names(text(ui.get("/contacts/"))) == []
    assert ui.get(f"/contacts/{contact.id}").status_code == 404
    db.session.refresh(contact)
    assert contact.deleted_at is not None  # the row stays for the Mailchimp archive (R12)


def test_delete_without_javascript_has_a_confirmation_page(ui, workspace):
    contact = factories.contact(workspace)
    assert "Delete Jeanne Martin?" in text(ui.get(f"/contacts/{contact.id}/delete"))
    response = ui.post(f"/contacts/{contact.id}/delete")
    assert response.status_code == 302 and response.location.endswith("/contacts/")
    assert "Jeanne Martin was deleted." in text(ui.get("/contacts/"))


# --------------------------------------------------------------------------- tags

def test_tag_editor_suggests_the_workspaces_existing_tags(ui, workspace):
    factories.contact(workspace, email="a@example.org", tags=["Presse", "Revendeurs"])
    contact = factories.contact(workspace, email="b@example.org")
    html = text(ui.get("/contacts/"))
    assert '<datalist id="workspace-tags"><option value="Presse"><option value="Revendeurs"></datalist>' in html
    editor = text(ui.get(f"/contacts/{contact.id}/tags", headers=HX))
    assert 'list="workspace-tags"' in editor and 'name="add"' in editor


def test_adding_tags_reuses_existing_ones_and_creates_new_ones(ui, workspace):
    factories.contact(workspace, email="a@example.org", tags=["Presse"])
    contact = factories.contact(workspace, email="b@example.org")
    response = ui.post(f"/contacts/{contact.id}/tags", data={"add": "presse, Salon 2026"}, headers=HX)
    assert response.status_code == 200
    assert "Presse" in text(response) and "Salon 2026" in text(response)
    db.session.refresh(contact)
    assert contact.tag_names == ["Presse", "Salon 2026"]
    assert db.session.scalar(select(func.count()).select_from(Tag)) == 2


def test_removing_a_tag_keeps_the_others(ui, workspace):
    contact = factories.contact(workspace, tags=["Clients", "VIP", "Presse"])
    response = ui.post(f"/contacts/{contact.id}/tags", data={"remove": "VIP"}, headers=HX)
    assert 'aria-label="Remove tag VIP"' not in text(response)
    db.session.refresh(contact)
    assert contact.tag_names == ["Clients", "Presse"]
    done = text(ui.get(f"/contacts/{contact.id}/tags?done=1", headers=HX))
    assert '<span class="tag">Clients</span><span class="tag">Presse</span>' in done


def test_saving_a_contact_with_an_accented_tag_keeps_it(ui, workspace):
    contact = factories.contact(workspace, tags=["Île-de-France"])
    response = ui.post(f"/contacts/{contact.id}/edit", data={"first_name": "Jeanne", "city": "Paris",
                                                             "tags": "Île-de-France"})
    assert response.status_code == 302
    db.session.refresh(contact)
    assert contact.city == "Paris" and contact.tag_names == ["Île-de-France"]


def test_too_long_tag_is_refused_with_a_message(ui, workspace):
    contact = factories.contact(workspace, tags=["Clients"])
    response = ui.post(f"/contacts/{contact.id}/tags", data={"add": "x" * 150}, headers=HX)
    assert response.status_code == 422 and "A tag has at most 100 characters." in text(response)
    db.session.refresh(contact)
    assert contact.tag_names == ["Clients"]


# --------------------------------------------------------------------------- consent

def test_consent_change_from_the_record_is_recorded_in_history(ui, workspace, customer):
    contact = factories.contact(workspace)
    response = ui.post(f"/contacts/{contact.id}/consent", data={"consent": "opt_in"}, headers=HX)
    assert response.status_code == 200 and "Changes saved." in text(response)
    event = db.session.scalar(select(ConsentEvent))
    assert (event.old, event.new, event.channel, event.actor) == ("unknown", "opt_in", "ui", customer.email)
    history = text(ui.get(f"/contacts/{contact.id}/history"))
    assert "Consent: Unknown → Opt-in" in history and customer.email in history and "Portal" in history


def test_opt_in_on_a_locked_contact_is_refused_with_the_mailchimp_explanation(ui, workspace):
    contact = factories.contact(workspace)
    lock(workspace, contact)
    response = ui.post(f"/contacts/{contact.id}/consent", data={"consent": "opt_in"}, headers=HX)
    assert response.status_code == 409
    html = text(response)
    assert "Consent cannot be set back to opt-in from anaba." in html
    assert "re-subscribe through Mailchimp" in html
    db.session.refresh(contact)
    assert contact.consent == "opt_out" and contact.consent_locked
    assert db.session.scalar(select(func.count()).select_from(ConsentEvent)) == 1


def test_locked_consent_is_explained_when_set_from_the_edit_form_too(ui, workspace):
    from portal.models import Connector

    contact = factories.contact(workspace)
    lock(workspace, contact)
    db.session.add(Connector(workspace_id=workspace.id, status="active", api_key_encrypted="x",
                             api_key_hint="…-us1", audience_id="aud1",
                             subscribe_url="https://example.us1.list-manage.com/subscribe?u=1&id=2"))
    db.session.commit()
    response = ui.post(f"/contacts/{contact.id}/edit", data={"row": "1", "first_name": "Jeanne", "consent": "opt_in"},
                       headers=HX)
    assert response.status_code == 409
    html = text(response)
    assert "re-subscribe through Mailchimp" in html
    assert 'href="https://example.us1.list-manage.com/subscribe?u=1&amp;id=2"' in html


def test_unchanged_consent_on_a_locked_contact_does_not_block_other_edits(ui, workspace):
    contact = factories.contact(workspace)
    lock(workspace, contact)
    response = ui.post(f"/contacts/{contact.id}/edit",
                       data={"first_name": "Jeanne", "city": "Lyon", "consent": "opt_out"})
    assert response.status_code == 302
    db.session.refresh(contact)
    assert contact.city == "Lyon"


def test_lock_is_shown_with_its_reason_in_table_and_record(ui, workspace):
    contact = factories.contact(workspace)
    lock(workspace, contact)
    table = text(ui.get("/contacts/"))
    reason = "the contact unsubscribed themself through a Mailchimp form or unsubscribe link"
    assert re.search(r'class="consent-lock" role="img" aria-label="Locked" '
                     rf'title="Locked: {reason}"><svg class="icon-lock"', table)
    record = text(ui.get(f"/contacts/{contact.id}"))
    assert f"Consent locked by Mailchimp:</strong> {reason}." in record


# --------------------------------------------------------------------------- the record

def test_record_details_show_every_field(ui, workspace):
    contact = factories.contact(workspace, phone="04 72 00 00 00", company="Studio Nacre", job_title="Gérante",
                                street="12 rue du Moulin", postal_code="69003", city="Lyon", country="France",
                                tags=["VIP"], consent="opt_in")
    html = text(ui.get(f"/contacts/{contact.id}"))
    for value in ("Jeanne", "Martin", "jeanne.martin@example.org", "04 72 00 00 00", "Studio Nacre", "Gérante",
                  "12 rue du Moulin", "69003", "Lyon", "France", "VIP", "Opt-in"):
        assert value in html
    assert 'aria-selected="true" class="active"' in html and ">Details<" in html


def test_record_tabs_load_as_fragments(ui, workspace):
    contact = factories.contact(workspace)
    html = text(ui.get(f"/contacts/{contact.id}/history", headers=HX))
    assert "<html" not in html and html.lstrip().startswith('<div id="contact-record"')


def test_marketing_tab_is_empty_until_activity_is_imported(ui, workspace):
    contact = factories.contact(workspace)
    assert "No campaign activity yet." in text(ui.get(f"/contacts/{contact.id}/activity"))


def test_marketing_tab_lists_campaigns_newest_first(ui, workspace):
    # R18: grouped by campaign, newest first; the tab itself is tested in tests/test_activity_views.py.
    contact = factories.contact(workspace)
    now = utcnow()
    db.session.add_all([
        Activity(workspace_id=workspace.id, contact_id=contact.id, campaign_id="c1", action="sent",
                 occurred_at=now - timedelta(days=9)),
        Activity(workspace_id=workspace.id, contact_id=contact.id, campaign_id="c2", action="sent",
                 occurred_at=now - timedelta(days=3)),
        Activity(workspace_id=workspace.id, contact_id=contact.id, campaign_id="c2", action="click",
                 url="https://example.org/soldes", url_key="k", occurred_at=now - timedelta(days=2)),
    ])
    db.session.commit()
    html = text(ui.get(f"/contacts/{contact.id}/activity"))
    assert html.index('data-campaign-id="c2"') < html.index('data-campaign-id="c1"')
    assert "Clicked" in html and "https://example.org/soldes" in html


def test_history_merges_consent_and_sync_events_by_time(ui, workspace):
    contact = factories.contact(workspace, consent="opt_in")
    db.session.add(SyncEvent(workspace_id=workspace.id, contact_id=contact.id, kind="pushed",
                             detail="created", created_at=utcnow() + timedelta(minutes=1)))
    db.session.commit()
    set_consent(workspace.id, contact.id, "opt_out", actor="Mailchimp", channel="mailchimp_webhook")
    db.session.execute(ConsentEvent.__table__.update().where(ConsentEvent.new == "opt_out")
                       .values(created_at=utcnow() + timedelta(minutes=2)))
    db.session.commit()
    html = text(ui.get(f"/contacts/{contact.id}/history"))
    newest, middle, oldest = (html.index("Opt-in → Opt-out"), html.index("Sent to Mailchimp: new member"),
                              html.index("Unknown → Opt-in"))
    assert newest < middle < oldest


# --------------------------------------------------------------------------- scoping and protection

ROUTES = [
    ("get", "/contacts/{id}"),
    ("get", "/contacts/{id}/activity"),
    ("get", "/contacts/{id}/history"),
    ("get", "/contacts/{id}/row"),
    ("get", "/contacts/{id}/edit"),
    ("get", "/contacts/{id}/edit?row=1"),
    ("post", "/contacts/{id}/edit"),
    ("get", "/contacts/{id}/delete"),
    ("post", "/contacts/{id}/delete"),
    ("get", "/contacts/{id}/tags"),
    ("post", "/contacts/{id}/tags"),
    ("post", "/contacts/{id}/consent"),
]


@pytest.mark.parametrize("method, path", ROUTES)
def test_another_workspaces_contact_is_not_found(ui, workspace, method, path):
    other = factories.workspace("Concurrent SARL")
    theirs = factories.contact(other, email="secret@concurrent-sarl.fr", first_name="Secret", tags=["Theirs"])
    data = {"first_name": "Hacked", "consent": "opt_in", "add": "Mine", "remove": "Theirs", "row": "1"}
    response = getattr(ui, method)(path.format(id=theirs.id), **({"data": data} if method == "post" else {}),
                                   headers=HX)
    assert response.status_code == 404
    assert "secret@concurrent-sarl.fr" not in text(response)
    db.session.refresh(theirs)
    assert (theirs.first_name, theirs.consent, theirs.tag_names, theirs.deleted_at) == (
        "Secret", "unknown", ["Theirs"], None)


def test_other_workspaces_contacts_never_appear_in_the_table(ui, workspace):
    factories.contact(factories.workspace("Concurrent SARL"), email="secret@concurrent-sarl.fr", first_name="Secret")
    factories.contact(workspace)
    html = text(ui.get("/contacts/?q=secret"))
    assert "Secret" not in html and row_names(text(ui.get("/contacts/"))) == ["Jeanne Martin"]


def test_post_without_csrf_token_is_refused(ui, workspace):
    contact = factories.contact(workspace)
    del ui.client.environ_base["HTTP_X_CSRFTOKEN"]
    assert ui.post("/contacts/", data={"first_name": "Sans jeton"}).status_code == 400
    assert ui.post(f"/contacts/{contact.id}/delete").status_code == 400
    assert ui.post(f"/contacts/{contact.id}/consent", data={"consent": "opt_out"}).status_code == 400
    assert ui.post("/contacts/import", data={}).status_code == 400
    db.session.refresh(contact)
    assert contact.deleted_at is None and contact.consent == "unknown"
    assert db.session.scalar(select(func.count()).select_from(Contact)) == 1


def test_support_agents_do_not_use_the_customer_contacts_pages(support_client):
    assert support_client.get("/contacts/").status_code == 403


def test_support_reads_one_workspaces_contacts_searched_and_counted_like_the_customers_table(
        support_client, support_user, workspace, monkeypatch):
    from portal.crm import contacts as crm
    from portal.crm.demo import insert_contacts

    support_user.locale = "en"
    db.session.commit()
    monkeypatch.setattr(crm, "COUNT_CAP", 30)
    other = factories.workspace("Autre SARL")
    factories.contact(other, email="zoe@ailleurs.fr", first_name="Zoé", last_name="Ailleurs")
    insert_contacts(workspace.id, 80, bad_email_rate=0, duplicate_rate=0)
    factories.contact(workspace, email="zoe@ardent.fr", first_name="Zoé", last_name="Fontaine")

    everyone = text(support_client.get(f"/support/workspaces/{workspace.id}/contacts"))
    assert "81 contacts" in everyone and "Page 1 of 2" in everyone
    found = text(support_client.get(f"/support/workspaces/{workspace.id}/contacts?q=zoe fontaine"))
    assert "1 contact" in found and "Zoé Fontaine" in found and "Ailleurs" not in found
    many = text(support_client.get(f"/support/workspaces/{workspace.id}/contacts?q=@"))
    assert "More than 30 contacts" in many and "Page 1" in many and "Page 1 of" not in many
