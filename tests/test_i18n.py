"""The French catalog: complete for the current source, placeholders intact, and pages that
speak French by default and English when the browser asks for it."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
CATALOG = ROOT / "translations" / "fr" / "LC_MESSAGES" / "messages.po"
# Same keywords as the extraction command in UPDATE_COMMANDS.
KEYWORDS = {**DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None, "N_": None}
# Only these top-level folders hold UI text; the simulator, benchmarks and tests never reach users.
SOURCE_DIRS = {"portal", "templates"}
UPDATE_COMMANDS = (
    ".venv/bin/pybabel extract -F babel.cfg -k _l -k lazy_gettext -k N_ -o translations/messages.pot "
    "--ignore-dirs='.venv tests mailchimp_sim bench' . && "
    ".venv/bin/pybabel update -i translations/messages.pot -d translations -l fr --no-fuzzy-matching"
)

# printf-style placeholders (%(name)s, %d, %%) and str.format ones ({field}).
PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(?:\d+|\*)?(?:\.(?:\d+|\*))?[diouxXeEfFgGcrsa%]")
BRACES = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")


def _source_messages() -> dict[str, tuple[str, str]]:
    """Every msgid the source marks for translation now, with one place it appears."""
    with open(ROOT / "babel.cfg", encoding="utf-8") as fileobj:
        method_map, options_map = parse_mapping_cfg(fileobj, "babel.cfg")

    def wanted(path: str) -> bool:
        parts = Path(path).relative_to(ROOT).parts
        return parts[0] in SOURCE_DIRS and not any(p.startswith((".", "_")) for p in parts)

    found: dict[str, tuple[str, str]] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=KEYWORDS, directory_filter=wanted,
    ):
        msgid = message[0] if isinstance(message, (tuple, list)) else message
        if msgid:
            found.setdefault(msgid, (filename, str(lineno)))
    return found


@pytest.fixture(scope="module")
def catalog():
    """The French catalog as Babel reads it."""
    with open(CATALOG, "rb") as fileobj:
        return read_po(fileobj, locale="fr")


def _singular(message) -> str:
    return message.id[0] if isinstance(message.id, (tuple, list)) else message.id


def _strings(message) -> list[str]:
    return list(message.string) if isinstance(message.string, (tuple, list)) else [message.string]


def _placeholders(text: str) -> tuple[list[str], list[str], str]:
    """printf placeholders, {braces} placeholders, and what is left once both are removed."""
    printf = PRINTF.findall(text)
    braces = BRACES.findall(text)
    return sorted(printf), sorted(braces), BRACES.sub("", PRINTF.sub("", text))


def test_babel_cfg_covers_python_views_templates_and_email_bodies():
    cfg = (ROOT / "babel.cfg").read_text(encoding="utf-8")
    with open(ROOT / "babel.cfg", encoding="utf-8") as fileobj:
        method_map, _ = parse_mapping_cfg(fileobj, "babel.cfg")
    patterns = dict(method_map)
    assert patterns.get("portal/**.py") == "python", cfg
    assert patterns.get("templates/**.html") == "jinja2", cfg
    assert patterns.get("templates/**.txt") == "jinja2", cfg


def test_every_ui_string_in_the_source_has_a_french_translation(catalog):
    source = _source_messages()
    assert len(source) > 100, "extraction found almost nothing: is babel.cfg right?"
    by_id = {_singular(m): m for m in catalog if m.id}
    missing = [f"{where}:{line}: {msgid!r}" for msgid, (where, line) in source.items() if msgid not in by_id]
    untranslated = [
        f"{source[msgid][0]}:{source[msgid][1]}: {msgid!r}"
        for msgid in source
        if msgid in by_id and not all(_strings(by_id[msgid]))
    ]
    fuzzy = [repr(_singular(m)) for m in catalog if m.id and m.fuzzy]
    fix = f"run `{UPDATE_COMMANDS}`, then translate translations/fr/LC_MESSAGES/messages.po"
    assert not missing, f"strings missing from the catalog ({fix}):\n" + "\n".join(missing)
    assert not untranslated, "strings without a French translation:\n" + "\n".join(untranslated)
    assert not fuzzy, "fuzzy (unchecked) translations:\n" + "\n".join(fuzzy)


def test_plural_entries_have_every_french_form(catalog):
    short = [
        repr(_singular(m)) for m in catalog
        if m.id and m.pluralizable and len(_strings(m)) != catalog.num_plurals
    ]
    assert not short, f"plural entries need {catalog.num_plurals} forms:\n" + "\n".join(short)


def test_translations_keep_the_placeholders_of_their_english_text(catalog):
    wrong = []
    for message in catalog:
        if not message.id:
            continue
        ids = list(message.id) if message.pluralizable else [message.id]
        expected_printf, expected_braces, _ = _placeholders(ids[-1])
        for text in _strings(message):
            if not text:
                continue
            printf, braces, rest = _placeholders(text)
            if printf != expected_printf or braces != expected_braces or "%" in rest:
                wrong.append(f"{ids[0]!r} -> {text!r}")
    assert not wrong, "placeholders changed (or a bare % that would break formatting):\n" + "\n".join(wrong)


def test_compiled_catalog_is_up_to_date_with_the_po_file():
    mo = CATALOG.with_suffix(".mo")
    if not mo.exists():
        pytest.fail("translations are not compiled: run `pybabel compile -d translations` (scripts/setup.sh does)")
    assert os.path.getmtime(mo) >= os.path.getmtime(CATALOG), (
        "messages.po changed after messages.mo was built: run `pybabel compile -d translations`"
    )


# --- pages, as a French customer and as an English-speaking one --------------------------------

ENGLISH = {"Accept-Language": "en-GB,en;q=0.9"}


def _page(client, path: str, headers: dict | None = None) -> str:
    response = client.get(path, headers=headers or {})
    assert response.status_code == 200, f"{path}: {response.status_code}"
    return response.get_data(as_text=True)


def test_login_page_speaks_french_by_default_and_english_on_request(client):
    french = _page(client, "/login")
    english = _page(client, "/login", ENGLISH)
    assert 'lang="fr"' in french and "Mot de passe" in french and "Rester connecté" in french
    assert "Password" not in french
    assert 'lang="en"' in english and "Password" in english and "Keep me logged in" in english
    assert "Mot de passe" not in english


def test_contacts_page_speaks_french_by_default_and_english_on_request(customer_client):
    french = _page(customer_client, "/contacts/")
    english = _page(customer_client, "/contacts/", ENGLISH)
    for words in ("Rechercher", "Importer un fichier CSV", "Tous les tags", "Se déconnecter"):
        assert words in french
    for words in ("Search", "Import a CSV file", "All tags", "Log out"):
        assert words in english
        assert words not in french
    assert "Rechercher" not in english


def test_connector_setup_page_speaks_french_by_default_and_english_on_request(customer_client):
    french = _page(customer_client, "/mailchimp/setup")
    english = _page(customer_client, "/mailchimp/setup", ENGLISH)
    assert "Votre clé d&#39;API Mailchimp" in french or "Votre clé d'API Mailchimp" in french
    assert "Vérifier la clé" in french and "Connecter Mailchimp" in french
    assert "Your Mailchimp API key" in english and "Check the key" in english
    assert "Check the key" not in french and "Vérifier la clé" not in english


def test_saved_language_choice_wins_over_the_browser(customer_client):
    customer_client.post("/language", data={"locale": "en", "next": "/contacts/"})
    html = _page(customer_client, "/contacts/", {"Accept-Language": "fr-FR,fr;q=0.9"})
    assert "Search" in html and "Rechercher" not in html


def test_email_bodies_follow_the_recipient_language(app, mailbox):
    from portal.notify import send_email

    french = send_email("test", "camille@ardent.test", "Test", name="Camille", locale="fr")
    english = send_email("test", "camille@ardent.test", "Test", name="Camille", locale="en")
    assert "Bonjour Camille," in french.body_text and "message de test" in french.body_text
    assert "Hello Camille," in english.body_text and "test message" in english.body_text
