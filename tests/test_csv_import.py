"""CSV import: upload, column guessing, preview, background import, report (issue 2)."""
from __future__ import annotations

import csv
import io
import re

import pytest
from sqlalchemy import func, select

import factories
from portal.crm import csv_import
from portal.extensions import db
from portal.models import ConsentEvent, Contact, CsvImport, Tag


def upload(client, content: bytes | str, name: str = "contacts.csv"):
    """Post a file to the upload form."""
    if isinstance(content, str):
        content = content.encode("utf-8")
    return client.post("/contacts/import", data={"file": (io.BytesIO(content), name)},
                       content_type="multipart/form-data")


def latest_import() -> CsvImport:
    return db.session.scalar(select(CsvImport).order_by(CsvImport.id.desc()))


def start(client, imp: CsvImport, columns: list[str] | None = None):
    """Confirm the mapping (the guessed one unless `columns` is given)."""
    columns = imp.mapping["columns"] if columns is None else columns
    return client.post(f"/contacts/import/{imp.id}/start", data={f"col-{i}": c for i, c in enumerate(columns)})


def import_file(client, run_jobs, content, name="contacts.csv") -> CsvImport:
    """Upload, confirm the guessed mapping, run the job; the finished import."""
    response = upload(client, content, name)
    assert response.status_code == 302, response.get_data(as_text=True)
    imp = latest_import()
    assert start(client, imp).status_code == 302
    run_jobs()
    db.session.expire_all()
    return db.session.get(CsvImport, imp.id)


def live_contacts(ws) -> list[Contact]:
    return list(db.session.scalars(
        select(Contact).where(Contact.workspace_id == ws.id, Contact.deleted_at.is_(None)).order_by(Contact.id)))


GOOD = (
    "Prénom,Nom,Courriel,Société,Téléphone,Ville,Code postal,Tags,Consentement\n"
    "Élodie,Moreau,elodie.moreau@example.org,Atelier Nacre,01 23 45 67 89,Lyon,69003,\"Clients, VIP\",oui\n"
    "Hugo,Garnier,hugo.garnier@example.org,,,Paris,75011,Prospects,non\n"
    "Zoé,Lambert,zoe.lambert@example.org,Maison Carrel,,,,,\n"
)


# --------------------------------------------------------------------------- reading files

def test_french_and_english_headers_are_matched_to_fields():
    header = ["E-mail", "Prénom", "NOM", "Téléphone", "Entreprise", "Fonction", "Adresse", "Code postal",
              "Ville", "Pays", "Étiquettes", "Consentement", "Notes"]
    assert csv_import.guess_columns(header) == [
        "email", "first_name", "last_name", "phone", "company", "job_title", "street", "postal_code",
        "city", "country", "tags", "consent", "",
    ]
    english = ["First Name", "Last name", "Email Address", "Company", "Job Title", "Zip", "City", "Country"]
    assert csv_import.guess_columns(english) == [
        "first_name", "last_name", "email", "company", "job_title", "postal_code", "city", "country",
    ]


def test_a_field_is_guessed_for_one_column_only():
    assert csv_import.guess_columns(["Courriel", "E-mail"]) == ["email", ""]


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_delimiter_is_detected(delimiter):
    text = "\n".join([delimiter.join(["nom", "prénom", "email"]), delimiter.join(["Dupont, fils", "Jean", "j@x.fr"])])
    if delimiter == ",":
        text = 'nom,prénom,email\n"Dupont, fils",Jean,j@x.fr\n'
    assert csv_import.sniff_delimiter(text) == delimiter


@pytest.mark.parametrize("text, delimiter", [
    ("email\nanne@example.org\nbruno@example.org\n", ","),        # one column: nothing to split on
    ("Prénom\nAnne\n", ","),
    ("nom;société\nDupont;Durand, Fils & Cie\nMartin;Atelier, Nacre\n", ";"),
    ('nom;société\n"Dupont";"Durand, Fils"\n', ";"),
    ("nom;prénom;email\n", ";"),                                     # a header alone says it
])
def test_delimiter_of_files_the_sniffer_finds_hard(text, delimiter):
    assert csv_import.sniff_delimiter(text) == delimiter


def test_lines_full_of_quotes_do_not_stall_the_upload():
    import time

    text = 'nom; "abc' * 20_000 + "\nx\n"  # csv.Sniffer is quadratic on such a line: 13 s on 64 KB of it
    started = time.perf_counter()
    assert csv_import.sniff_delimiter(text) == ";"
    assert time.perf_counter() - started < 5


def test_utf8_with_bom_is_read_without_the_bom():
    text, encoding, notice = csv_import.decode("Prénom;Nom\nÉlodie;Moreau\n".encode("utf-8-sig"))
    assert text.startswith("Prénom") and notice == ""


FRENCH = ("Prénom;Nom;Société;Ville\n"
          "Élodie;Lefèvre;Hôtel des Cèdres;Besançon\n"
          "Noël;Guérin;Brasserie l'Écluse;Nîmes\n")


@pytest.mark.parametrize("encoding, shown, notice", [
    ("utf-8", "UTF-8", False),
    ("utf-16", "UTF-16", False),
    ("utf-32", "UTF-32", False),
    ("cp1252", "Windows-1252", True),
    ("mac_roman", "Mac Roman", True),
    ("cp850", "DOS (CP850)", True),
])
def test_encodings_french_files_come_in_are_read_with_their_accents(app, encoding, shown, notice):
    with app.test_request_context(headers={"Accept-Language": "en"}):
        text, used, message = csv_import.decode(FRENCH.encode(encoding))
        assert text == FRENCH
        assert csv_import.encoding_name(used) == shown
        assert ("not in UTF-8" in message and shown in message) is notice
        assert bool(message) is notice


def test_consent_words_people_write_are_understood():
    assert [csv_import.parse_consent(v) for v in ("Oui", "opt-in", "NON", "Opt_out", "inconnu", "1")] == [
        "opt_in", "opt_in", "opt_out", "opt_out", "unknown", "opt_in"]
    with pytest.raises(csv_import.RowRejected, match="peut-être|not understood"):
        csv_import.parse_consent("peut-être")


# --------------------------------------------------------------------------- the whole flow

def test_good_file_imports_every_row_with_tags_and_consent(ui, run_jobs, workspace, customer):
    response = upload(ui, GOOD)
    imp = latest_import()
    mapping_page = ui.get(response.location).get_data(as_text=True)
    assert "3 rows to import" in mapping_page
    assert "How rows are matched" in mapping_page
    assert mapping_page.count('class="preview-new"') == 3

    assert start(ui, imp).status_code == 302
    run_jobs()
    db.session.expire_all()
    imp = db.session.get(CsvImport, imp.id)
    assert (imp.status, imp.imported, imp.updated, imp.rejected) == ("finished", 3, 0, 0)

    report = ui.get(f"/contacts/import/{imp.id}").get_data(as_text=True)
    assert re.search(r'count-imported">3<', report) and re.search(r'count-rejected">0<', report)

    elodie, hugo, zoe = live_contacts(workspace)
    assert (elodie.first_name, elodie.company, elodie.city, elodie.postal_code) == (
        "Élodie", "Atelier Nacre", "Lyon", "69003")
    assert elodie.tag_names == ["Clients", "VIP"] and elodie.consent == "opt_in"
    assert hugo.consent == "opt_out" and zoe.consent == "unknown" and zoe.tag_names == []
    events = db.session.scalars(select(ConsentEvent).order_by(ConsentEvent.id)).all()
    assert [(e.new, e.channel, e.actor) for e in events] == [
        ("opt_in", "csv_import", customer.email), ("opt_out", "csv_import", customer.email)]
    table = ui.get("/contacts/?q=elodie").get_data(as_text=True)
    assert "Élodie Moreau" in table and "VIP" in table


def test_one_bad_row_never_loses_the_good_ones_and_is_reported(ui, run_jobs, workspace):
    content = (
        "email,first_name,last_name,consent\n"
        "anne@example.org,Anne,Roux,yes\n"
        "not-an-address,Bad,Row,yes\n"
        "paul@example.org,Paul,Henry,maybe\n"
        "marc@example.org,Marc,Simon,no\n"
    )
    imp = import_file(ui, run_jobs, content)
    assert (imp.imported, imp.rejected) == (2, 2)
    assert [c.first_name for c in live_contacts(workspace)] == ["Anne", "Marc"]

    report = ui.get(f"/contacts/import/{imp.id}").get_data(as_text=True)
    assert "not a valid e-mail address" in report and "maybe" in report
    rows = re.findall(r'<tr><td class="num">(\d+)</td><td>([^<]+)</td></tr>', report)
    assert [line for line, _ in rows] == ["3", "4"]

    download = ui.get(f"/contacts/import/{imp.id}/rejects.csv")
    assert download.status_code == 200 and download.mimetype == "text/csv"
    assert "attachment" in download.headers["Content-Disposition"]
    lines = list(csv.reader(io.StringIO(download.get_data(as_text=True).lstrip("\ufeff"))))
    assert lines[0] == ["Line", "Reason", "email", "first_name", "last_name", "consent"]
    assert lines[1][0] == "3" and "valid e-mail" in lines[1][1]
    assert lines[1][2:] == ["not-an-address", "Bad", "Row", "yes"]
    assert lines[2][0] == "4" and lines[2][2] == "paul@example.org"


def test_semicolon_windows_file_with_accents_is_imported_with_a_notice(ui, run_jobs, workspace):
    content = ("Prénom;Nom;E-mail;Société\n"
               "Élodie;Lefèvre;elodie@example.fr;Hôtel des Cèdres\n"
               "Noël;Guérin;noel@example.fr;Brasserie l'Écluse\n")
    response = upload(ui, content.encode("cp1252"))
    page = ui.get(response.location).get_data(as_text=True)
    assert "not in UTF-8" in page and "semicolon" in page and "Windows-1252" in page
    assert "Lefèvre" in page  # the preview shows the accents decoded
    imp = latest_import()
    start(ui, imp)
    run_jobs()
    names = [(c.first_name, c.last_name, c.company) for c in live_contacts(workspace)]
    assert names == [("Élodie", "Lefèvre", "Hôtel des Cèdres"), ("Noël", "Guérin", "Brasserie l'Écluse")]


def test_utf16_file_from_excel_unicode_text_is_read(ui, run_jobs, workspace):
    content = "email\tprénom\nines@example.org\tInès\n"
    imp = import_file(ui, run_jobs, content.encode("utf-16"))
    assert imp.imported == 1 and live_contacts(workspace)[0].first_name == "Inès"


@pytest.mark.parametrize("content, message", [
    (b"", "The file is empty"),
    (b"\n\r\n  \n", "The file is empty"),
    (bytes(range(256)) * 20, "not text"),
    (b"PK\x03\x04\x14\x00\x06\x00" + b"\x00" * 200, "spreadsheet"),
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "not a CSV file"),
    ("email;prénom\n".encode("utf-8"), "only has a header line"),
    (b"\xef\xbb\xbfemail,name\n\xff\xfe\xfa,x\n", "some of its bytes are not"),
    (b"<html><body>Hello</body></html>", "web page"),
    (b'{"contacts": []}', "JSON"),
    (bytes(range(128, 256)) * 20, "cannot be read"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 50, "not a CSV file"),
])
def test_broken_file_gets_a_clear_message_and_changes_nothing(ui, workspace, content, message):
    response = upload(ui, content)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(CsvImport)) == 0
    assert db.session.scalar(select(func.count()).select_from(Contact)) == 0


def test_upload_without_a_file_asks_for_one(ui):
    response = ui.post("/contacts/import", data={}, content_type="multipart/form-data")
    assert response.status_code == 422 and "Choose a CSV file" in response.get_data(as_text=True)


def test_too_large_file_is_refused_with_a_message(app, ui):
    old = app.config["MAX_CONTENT_LENGTH"]
    app.config["MAX_CONTENT_LENGTH"] = 1000
    try:
        response = upload(ui, "email\n" + "a@example.org\n" * 200)
    finally:
        app.config["MAX_CONTENT_LENGTH"] = old
    assert response.status_code == 413 and "too large" in response.get_data(as_text=True)


# --------------------------------------------------------------------------- matching by e-mail

def test_row_with_an_existing_email_updates_that_contact(ui, run_jobs, workspace):
    existing = factories.contact(workspace, email="Jeanne.Martin@Example.org", phone="01 02 03 04 05",
                                 company="Ancienne SARL", tags=["Clients"])
    content = "email,company,phone,tags\njeanne.martin@example.org,Nouvelle SAS,,\"VIP, clients\"\n"
    page = ui.get(upload(ui, content).location).get_data(as_text=True)
    assert "Updates Jeanne Martin" in page
    imp = latest_import()
    start(ui, imp)
    run_jobs()
    db.session.expire_all()
    imp = db.session.get(CsvImport, imp.id)
    assert (imp.imported, imp.updated) == (0, 1)
    contact = db.session.get(Contact, existing.id)
    assert contact.company == "Nouvelle SAS"
    assert contact.phone == "01 02 03 04 05"  # an empty cell never erases
    assert contact.tag_names == ["Clients", "VIP"]  # tags are added, never removed
    assert "count-updated\">1<" in ui.get(f"/contacts/import/{imp.id}").get_data(as_text=True)


def test_existing_tags_are_reused_whatever_their_case_and_accents(ui, run_jobs, workspace):
    factories.contact(workspace, email="a@example.org", tags=["Île-de-France"])
    import_file(ui, run_jobs, "email,tags\nb@example.org,île-de-france\na@example.org,ÎLE-DE-FRANCE; Presse\n")
    assert sorted(t.name for t in db.session.scalars(select(Tag))) == ["Presse", "Île-de-France"]
    assert [c.tag_names for c in live_contacts(workspace)] == [["Presse", "Île-de-France"], ["Île-de-France"]]


def test_email_shared_by_several_contacts_is_rejected(ui, run_jobs, workspace):
    factories.contact(workspace, email="accueil@example.org", first_name="Anne")
    factories.contact(workspace, email="ACCUEIL@example.org", first_name="Bruno")
    imp = import_file(ui, run_jobs, "email,first_name\naccueil@example.org,Chloé\nnew@example.org,Nina\n")
    assert (imp.imported, imp.updated, imp.rejected) == (1, 0, 1)
    assert imp.rejects == [[2, "several contacts share this e-mail"]]
    assert sorted(c.first_name for c in live_contacts(workspace)) == ["Anne", "Bruno", "Nina"]


def test_same_email_twice_in_a_file_makes_one_contact(ui, run_jobs, workspace):
    imp = import_file(ui, run_jobs, "email,first_name,tags\nlea@example.org,Léa,A\nLEA@example.org,,B\n")
    assert (imp.imported, imp.updated) == (1, 1)
    [lea] = live_contacts(workspace)
    assert lea.first_name == "Léa" and lea.tag_names == ["A", "B"]


def test_import_cannot_opt_in_a_contact_whose_consent_is_locked(ui, run_jobs, workspace):
    from portal.crm.contacts import set_consent

    locked = factories.contact(workspace, email="parti@example.org")
    set_consent(workspace.id, locked.id, "opt_out", actor="mailchimp", channel="mailchimp_webhook", locked=True,
                lock_reason="self_unsubscribe")
    imp = import_file(ui, run_jobs, "email,consent,city\nparti@example.org,oui,Lyon\n")
    assert imp.rejected == 1 and "subscribe again" in imp.rejects[0][1]
    db.session.expire_all()
    contact = db.session.get(Contact, locked.id)
    assert contact.consent == "opt_out" and contact.consent_locked and contact.city == ""


def test_deleted_contact_does_not_capture_an_imported_email(ui, run_jobs, workspace):
    from portal.crm.contacts import delete_contact

    gone = factories.contact(workspace, email="old@example.org")
    delete_contact(workspace.id, gone.id, actor="test", channel="ui")
    imp = import_file(ui, run_jobs, "email\nold@example.org\n")
    assert imp.imported == 1 and len(live_contacts(workspace)) == 1


# --------------------------------------------------------------------------- the preview says what the import does

MIXED = (
    "email,first_name,consent\n"
    "nouvelle@example.org,Nina,\n"          # 2: new
    "jeanne@example.org,Jeanne,\n"          # 3: updates Jeanne
    "accueil@example.org,Chloé,\n"          # 4: rejected, two contacts share the address
    "parti@example.org,,oui\n"              # 5: rejected, consent locked by Mailchimp (R16)
    "pas-une-adresse,Bad,\n"                # 6: rejected, invalid e-mail
    "NOUVELLE@example.org,,non\n"           # 7: updates the contact line 2 creates
    ",Sans,\n"                              # 8: new (no e-mail)
    "parti@example.org,Paul,non\n"          # 9: updates the locked contact (opt-out is allowed)
)


def test_the_preview_shows_exactly_what_the_import_then_does(ui, run_jobs, workspace):
    from portal.crm.contacts import set_consent

    factories.contact(workspace, email="jeanne@example.org", first_name="J.")
    factories.contact(workspace, email="accueil@example.org", first_name="Anne")
    factories.contact(workspace, email="accueil@example.org", first_name="Bruno")
    locked = factories.contact(workspace, email="parti@example.org", first_name="Paul")
    set_consent(workspace.id, locked.id, "opt_out", actor="mailchimp", channel="mailchimp_webhook", locked=True)

    page = ui.get(upload(ui, MIXED).location).get_data(as_text=True)
    shown = re.findall(r'<tr class="preview-(\w+)">\s*<td class="num">(\d+)</td>', page)
    assert shown == [("new", "2"), ("update", "3"), ("reject", "4"), ("reject", "5"), ("reject", "6"),
                     ("update", "7"), ("new", "8"), ("update", "9")]
    assert "Updates J. Martin" in page and "Updates the contact of an earlier row" in page
    assert "several contacts share this e-mail" in page and "consent is locked" in page

    imp = latest_import()
    start(ui, imp)
    run_jobs()
    db.session.expire_all()
    imp = db.session.get(CsvImport, imp.id)
    assert (imp.imported, imp.updated, imp.rejected) == (2, 3, 3)
    assert [line for line, _reason in imp.rejects] == [4, 5, 6]
    nina = db.session.scalar(select(Contact).where(Contact.email_normalized == "nouvelle@example.org"))
    assert nina.first_name == "Nina" and nina.consent == "opt_out"


# --------------------------------------------------------------------------- the rejects file in a spreadsheet

FORMULAS = (
    "email;first_name;company;phone;city\n"
    "bad-1;\"=HYPERLINK(\"\"http://evil.example\"\";\"\"click\"\")\";+33 6 12 34 56 78;-2+3;@SUM(A1)\n"
    "bad-2;\"\tTabulé\";\"\rRetour\";Normal;Lyon\n"
)


def test_rejects_file_neutralises_cells_a_spreadsheet_would_run_as_formulas(ui, run_jobs, workspace):
    imp = import_file(ui, run_jobs, FORMULAS)
    assert imp.rejected == 2
    download = ui.get(f"/contacts/import/{imp.id}/rejects.csv").get_data(as_text=True).lstrip("\ufeff")
    lines = list(csv.reader(io.StringIO(download), delimiter=";"))
    assert lines[1][2:] == ["bad-1", "'=HYPERLINK(\"http://evil.example\";\"click\")", "'+33 6 12 34 56 78", "'-2+3",
                            "'@SUM(A1)"]
    assert lines[2][2:] == ["bad-2", "'\tTabulé", "'\rRetour", "Normal", "Lyon"]
    dangerous = [cell for row in lines for cell in row if cell[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert dangerous == []


def test_a_fixed_rejects_file_imports_its_values_as_they_were(ui, run_jobs, workspace):
    imp = import_file(ui, run_jobs, FORMULAS)
    rejects = ui.get(f"/contacts/import/{imp.id}/rejects.csv").get_data(as_text=True)
    fixed = rejects.replace("bad-1", "ok@example.org").replace("bad-2", "ok2@example.org")
    again = import_file(ui, run_jobs, fixed.encode("utf-8"), name="contacts-rejected.csv")
    assert (again.imported, again.rejected) == (2, 0)
    first, second = live_contacts(workspace)
    assert (first.first_name, first.company, first.phone) == (
        '=HYPERLINK("http://evil.example";"click")', "+33 6 12 34 56 78", "-2+3")
    assert (second.first_name, second.company) == ("Tabulé", "Retour")


# --------------------------------------------------------------------------- mapping and preview

def test_mapping_without_a_name_or_email_column_cannot_start(ui, workspace):
    upload(ui, "Ville,Pays\nLyon,France\n")
    imp = latest_import()
    response = start(ui, imp, ["city", "country"])
    assert response.status_code == 422
    assert "at least one column for the e-mail" in response.get_data(as_text=True)
    assert latest_import().status == "uploaded"


def test_choosing_one_field_for_two_columns_is_refused(ui, workspace):
    upload(ui, "a,b\nx@example.org,y@example.org\n")
    response = start(ui, latest_import(), ["email", "email"])
    assert response.status_code == 422 and "chosen for several columns" in response.get_data(as_text=True)


def test_mapping_page_proposes_the_guessed_fields_and_a_post_is_taken_as_sent(ui, run_jobs, workspace):
    upload(ui, "Prénom,Nom,Ville\nAnne,Roux,Lyon\n")
    imp = latest_import()
    page = ui.get(f"/contacts/import/{imp.id}").get_data(as_text=True)
    assert re.search(r'name="col-2".*?<option value="city" selected>', page, re.S)
    ui.post(f"/contacts/import/{imp.id}/start", data={"col-0": "first_name", "col-1": "not-a-field"})
    run_jobs()
    [anne] = live_contacts(workspace)
    assert (anne.first_name, anne.last_name, anne.city) == ("Anne", "", "")  # only the column chosen


def test_preview_follows_the_mapping_being_edited(ui, workspace):
    upload(ui, "col1,col2\nanne@example.org,Anne\nnot-an-email,Bob\n")
    imp = latest_import()
    response = ui.post(f"/contacts/import/{imp.id}/preview", data={"col-0": "email", "col-1": "first_name"},
                       headers={"HX-Request": "true"})
    fragment = response.get_data(as_text=True)
    assert "<html" not in fragment and 'id="import-preview"' in fragment
    assert 'class="preview-new"' in fragment and 'class="preview-reject"' in fragment
    assert "not a valid e-mail address" in fragment


def test_progress_polls_itself_until_the_import_is_over(ui, run_jobs, workspace):
    upload(ui, GOOD)
    imp = latest_import()
    start(ui, imp)
    waiting = ui.get(f"/contacts/import/{imp.id}/progress").get_data(as_text=True)
    assert 'hx-trigger="every 1s"' in waiting and "Queued" in waiting
    run_jobs()
    done = ui.get(f"/contacts/import/{imp.id}/progress").get_data(as_text=True)
    assert "hx-trigger" not in done and "Report" in done and "Finished" in done


def test_confirming_twice_imports_once(ui, run_jobs, workspace):
    upload(ui, GOOD)
    imp = latest_import()
    start(ui, imp)
    start(ui, imp)
    run_jobs()
    assert len(live_contacts(workspace)) == 3


def test_uploaded_file_and_recent_imports_are_listed(ui, run_jobs, workspace):
    import_file(ui, run_jobs, GOOD, name="salon-2026.csv")
    page = ui.get("/contacts/import").get_data(as_text=True)
    assert "salon-2026.csv" in page and "Finished" in page


# --------------------------------------------------------------------------- large files

def test_import_commits_and_announces_chunk_by_chunk(app, ui, run_jobs, workspace, monkeypatch):
    monkeypatch.setattr(csv_import, "CHUNK_SIZE", 3)
    from portal.crm.events import contacts_changed

    calls = []

    def receiver(ws, *, contact_ids, change):
        calls.append((ws, len(contact_ids), change))

    content = "email\n" + "".join(f"p{i}@example.org\n" for i in range(8))
    with contacts_changed.connected_to(receiver):
        imp = import_file(ui, run_jobs, content)
    assert imp.imported == 8 and imp.done == 8
    assert calls == [(workspace.id, 3, "imported"), (workspace.id, 3, "imported"), (workspace.id, 2, "imported")]


def _die_after_first_chunk(imp) -> None:
    """As a worker would: claim the import, commit its first chunk, then die (its heartbeat goes stale)."""
    from datetime import timedelta

    from portal import background
    from portal.models import utcnow

    token = background.claim(CsvImport, imp.id)
    csv_import._import_chunk(imp, token, list(csv_import.data_records(imp))[:2], imp.mapping["columns"], "test")
    imp.heartbeat_at = utcnow() - timedelta(hours=1)
    db.session.commit()


def test_restarted_import_resumes_after_the_last_committed_chunk(ui, run_jobs, workspace, monkeypatch):
    from portal import jobs

    monkeypatch.setattr(csv_import, "CHUNK_SIZE", 2)
    upload(ui, "first_name\nA\nB\nC\nD\nE\n")
    imp = latest_import()
    start(ui, imp)
    from portal.extensions import redis_store
    redis_store.redis.flushdb()  # its job went with the worker
    _die_after_first_chunk(imp)
    assert jobs.resume_stale_runs() == [imp.id]  # what the cron process does every minute
    run_jobs()
    assert [c.first_name for c in live_contacts(workspace)] == ["A", "B", "C", "D", "E"]
    db.session.refresh(imp)
    assert (imp.status, imp.imported, imp.done) == ("finished", 5, 5)


def test_an_import_whose_worker_died_says_so_and_resumes_on_its_own_without_duplicates(ui, run_jobs, workspace,
                                                                                       monkeypatch):
    from portal import jobs
    from portal.extensions import redis_store

    monkeypatch.setattr(csv_import, "CHUNK_SIZE", 2)
    upload(ui, "first_name\nA\nB\nC\nD\nE\n")
    imp = latest_import()
    start(ui, imp)
    redis_store.redis.flushdb()
    progress = ui.get(f"/contacts/import/{imp.id}/progress").get_data(as_text=True)
    assert "interrupted" not in progress and "hx-trigger" in progress
    _die_after_first_chunk(imp)

    progress = ui.get(f"/contacts/import/{imp.id}/progress").get_data(as_text=True)
    assert "interrupted" in progress and "hx-trigger" in progress  # it keeps watching: the import comes back
    assert "Resume the import" not in progress
    jobs.resume_stale_runs()
    jobs.resume_stale_runs()  # twice (two cron ticks, or two workers starting): queued once
    run_jobs()
    assert [c.first_name for c in live_contacts(workspace)] == ["A", "B", "C", "D", "E"]
    db.session.refresh(imp)
    assert (imp.status, imp.imported) == ("finished", 5)


def test_finished_import_cannot_be_resumed(ui, run_jobs, workspace):
    imp = import_file(ui, run_jobs, GOOD)
    ui.post(f"/contacts/import/{imp.id}/resume")
    run_jobs()
    assert len(live_contacts(workspace)) == 3
    assert "Resume the import" not in ui.get(f"/contacts/import/{imp.id}").get_data(as_text=True)


def test_rejects_kept_in_the_report_are_capped(ui, run_jobs, workspace, monkeypatch):
    monkeypatch.setattr(csv_import, "MAX_STORED_REJECTS", 2)
    imp = import_file(ui, run_jobs, "email\nbad1\nbad2\nbad3\nok@example.org\n")
    assert (imp.imported, imp.rejected, len(imp.rejects)) == (1, 3, 2)
    assert "Only the first 2 rejected rows are kept" in ui.get(f"/contacts/import/{imp.id}").get_data(as_text=True)


def test_a_failing_import_is_marked_failed_and_keeps_committed_rows(ui, run_jobs, workspace, monkeypatch):
    monkeypatch.setattr(csv_import, "CHUNK_SIZE", 2)
    real = csv_import._import_chunk
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(csv_import, "_import_chunk", flaky)
    imp = import_file(ui, run_jobs, "first_name\nA\nB\nC\nD\n")
    assert imp.status == "failed" and imp.done == 2
    assert [c.first_name for c in live_contacts(workspace)] == ["A", "B"]
    page = ui.get(f"/contacts/import/{imp.id}").get_data(as_text=True)
    assert "unexpected error" in page and "Resume the import" in page
    monkeypatch.setattr(csv_import, "_import_chunk", real)
    ui.post(f"/contacts/import/{imp.id}/resume")
    run_jobs()
    db.session.refresh(imp)
    assert imp.status == "finished" and [c.first_name for c in live_contacts(workspace)] == ["A", "B", "C", "D"]


# --------------------------------------------------------------------------- scoping

@pytest.mark.parametrize("method, path", [
    ("get", "/contacts/import/{id}"),
    ("post", "/contacts/import/{id}/preview"),
    ("post", "/contacts/import/{id}/start"),
    ("get", "/contacts/import/{id}/progress"),
    ("get", "/contacts/import/{id}/rejects.csv"),
    ("post", "/contacts/import/{id}/resume"),
])
def test_another_workspaces_import_is_not_found(ui, workspace, method, path):
    other = factories.workspace("Concurrent SARL")
    imp = CsvImport(workspace_id=other.id, filename="theirs.csv", content=b"email\nx@example.org\n",
                    mapping={"header": ["email"], "columns": ["email"]}, total=1)
    db.session.add(imp)
    db.session.commit()
    response = getattr(ui, method)(path.format(id=imp.id))
    assert response.status_code == 404
    db.session.refresh(imp)
    assert imp.status == "uploaded"
