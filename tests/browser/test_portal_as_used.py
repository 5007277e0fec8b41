"""The portal as customers and support agents use it (issue 12), in Debian's Chromium and in French:
figures that agree from the preview to the e-mail, fixes that resolve, states you can see, forms that
always answer, an overview for support. Each test does what a person did and checks what they see."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

import every_kind
import factories
from portal.extensions import db
from portal.models import Connector, SyncRun
from test_connector_views import _error_row, audience, make_connector, mc

pytestmark = pytest.mark.browser

NB = "\u00a0"  # the non-breaking space of French typography
NUMBER_SPACE = "\u202f"  # Babel groups French thousands with a narrow non-breaking space


# --- helpers ------------------------------------------------------------------------------------

@pytest.fixture
def browser_context_args(browser_context_args):
    """A French browser: pages before login speak French too."""
    return {**browser_context_args, "locale": "fr-FR"}


@pytest.fixture
def connexion(live_server):
    """A function that logs `user` in on `page` through the login form, in French; returns the page."""

    def log_in(user, page: Page, base: str | None = None) -> Page:
        user.locale = "fr"
        db.session.commit()
        page.set_default_timeout(15_000)
        page.goto((base or live_server) + "/login")
        page.get_by_label("E-mail").fill(user.email)
        page.get_by_label("Mot de passe").fill("secret-pw")
        page.get_by_role("button", name="Se connecter").click()
        expect(page).not_to_have_url(re.compile(r"/login"))
        return page

    return log_in


@pytest.fixture
def support_page(browser):
    """A second browser (its own cookies) for the support agent."""
    context = browser.new_context(locale="fr-FR")
    yield context.new_page()
    context.close()


def figures_in(block) -> dict[str, int]:
    """The figures a block shows (portal.sync.counts through templates/connector/_figures.html)."""
    found = {}
    for key in ("contacts", "created", "updated", "unchanged", "not_synced", "errors", "synced"):
        cell = block.locator(f"[data-figure={key}] > dd > strong.figure-n")
        if cell.count():
            found[key] = int(re.sub(r"\D", "", cell.inner_text()))
    return found


def copy_figures(found: dict[str, int]) -> dict[str, int]:
    """The figures every_kind.EXPECTED names."""
    return {key: found[key] for key in every_kind.EXPECTED}


def email_numbers(body: str) -> dict[str, int]:
    """'Label : 4' lines of an e-mail, by label."""
    return {label.strip(" -"): int(re.sub(r"\D", "", n)) for label, n in
            re.findall(r"^(.+?)\s*:\s*(\d[\d\u202f\u00a0 ]*?)\s*$", body, re.M)}


def copied(workspace, customer, support_user, sim, sim_key, run_jobs, list_id=None):
    """A connector submitted, validated and copied (its consent import, preview and copy run here)."""
    from portal import jobs

    connector = make_connector(workspace, customer, sim_key, list_id or audience(sim, sim_key, "Newsletter"))
    run_jobs()
    jobs.validate_connector(connector.id, support_user)
    run_jobs()
    db.session.expire_all()
    assert db.session.get(Connector, connector.id).status == "active"
    return connector


# --- figures that agree ------------------------------------------------------------------------

def test_les_memes_chiffres_de_l_apercu_a_l_e_mail_pour_chaque_sorte_de_contact(
        mc_app, sim, sim_key, page, support_page, connexion, live_server, workspace, customer, support_user,
        run_jobs):
    world = every_kind.build(workspace, sim, sim_key, mc_request=lambda m, p, **kw: mc(sim, sim_key, m, p, **kw))
    connector = make_connector(workspace, customer, sim_key, world["list_id"])
    run_jobs()  # consent import, then the preview

    # The customer, while the connector waits: what the copy will do, and why 1 contact would fail.
    connexion(customer, page)
    page.goto(live_server + "/mailchimp/")
    preview_card = page.locator("#first-copy-preview")
    expect(preview_card).to_contain_text("Rien n'a encore été envoyé à Mailchimp.")
    expect(preview_card).to_contain_text("1 contact serait refusé par Mailchimp.")
    expect(preview_card).to_contain_text(f"Ce ne sont pas encore des erreurs{NB}: rien n'a été envoyé.")
    expect(preview_card.get_by_role("link", name="Fanny")).to_have_attribute(
        "href", f"/contacts/{world['Fanny'].id}/edit")
    customer_preview = figures_in(preview_card)
    expect(page.locator(".runs-table tr[data-run-kind=preview]")).to_contain_text(f"Un aperçu{NB}: rien n'a été envoyé")

    # Support: the same preview on the validation page; the address is written once, with its region.
    connexion(support_user, support_page)
    support_page.goto(f"{live_server}/support/connectors/{connector.id}")
    support_preview = figures_in(support_page.locator("#preview-figures"))
    expect(support_page.locator(".preview-updates")).to_contain_text("3 rue Mercière, 69002 Lyon, Auvergne-Rhône-Alpes, FR")
    expect(support_page.locator(".preview-updates")).not_to_contain_text("Lyon, Lyon")
    expect(support_page.locator("#preview")).to_contain_text("dont 1 contient déjà les valeurs d'anaba")
    expect(support_page.locator("#preview")).to_contain_text("L'audience compte 4 membres")
    support_page.get_by_label(re.compile("J'ai vérifié la configuration")).check()
    support_page.get_by_role("button", name="Valider et lancer la copie").click()
    # The validation is an HTMX post: its answer swaps the decision in; the copy is queued by then.
    expect(support_page.locator("#decision")).to_have_class(re.compile(r"\bstatus-copying\b"))
    run_jobs()  # the copy, while both pages are open
    copy_block = support_page.locator("#decision [data-figures=copy]")
    expect(copy_block).to_be_visible()
    support_copy = figures_in(copy_block)
    support_standing = figures_in(support_page.locator("#support-standing"))

    # The customer's connector page: the copy's figures and where the contacts are now.
    page.reload()
    customer_copy = figures_in(page.locator("#connector-status [data-figures=copy]"))
    standing = figures_in(page.locator("#connector-standing"))

    # The e-mail the customer received, as support reads it in the outbox.
    support_page.goto(live_server + "/support/outbox")
    support_page.get_by_role("link", name="Vos contacts sont dans Mailchimp").first.click()
    expect(support_page.locator(".email-status")).to_have_text("envoyé")
    mail = email_numbers(support_page.locator("pre.mail").inner_text())

    # Support's home: the workspace's errors, as the error list counts them.
    support_page.goto(live_server + "/support/")
    expect(support_page.locator("#overview-errors")).to_contain_text(
        "1 contact en erreur · 1 adresse partagée à départager")

    expected = every_kind.EXPECTED
    assert copy_figures(customer_preview) == expected
    assert copy_figures(support_preview) == expected
    assert copy_figures(support_copy) == expected
    assert copy_figures(customer_copy) == expected
    assert {k: mail[v] for k, v in (("created", "Créés dans Mailchimp"), ("updated", "Mis à jour dans Mailchimp"),
                                    ("unchanged", "Déjà à jour"), ("not_synced", "Non synchronisés"),
                                    ("errors", "Refusés par Mailchimp"))} == {
        k: expected[k] for k in ("created", "updated", "unchanged", "not_synced", "errors")}
    for now in (standing, support_standing):
        assert now["contacts"] == expected["contacts"]
        assert now["synced"] == expected["created"] + expected["updated"] + expected["unchanged"]
        assert (now["not_synced"], now["errors"]) == (expected["not_synced"], expected["errors"])


def test_nombres_dates_et_ponctuation_a_la_francaise(mc_app, sim, sim_key, page, support_page, connexion,
                                                       live_server, workspace, customer, support_user):
    from portal.crm.contacts import insert_contacts

    insert_contacts(workspace.id, [{"email": f"client{i}@courriel.fr", "first_name": f"Client{i}"}
                                   for i in range(2003)])
    unknown = factories.contact(workspace, email="inconnu@courriel.fr", first_name="Yves")
    db.session.commit()
    connector = make_connector(workspace, customer, sim_key, audience(sim, sim_key, "Newsletter"))
    connector.status = "active"
    db.session.commit()
    _error_row(connector, unknown, state="not_synced", reason="no_consent")

    connexion(customer, page)
    page.goto(live_server + "/contacts/")
    expect(page.locator(".result-count")).to_have_text(f"2{NUMBER_SPACE}004 contacts")
    page.goto(live_server + "/mailchimp/")
    expect(page.locator(".connector-status-head")).to_contain_text(f"Audience{NB}: Newsletter")
    expect(page.locator("#connector-standing [data-figure=contacts]")).to_contain_text(f"2{NUMBER_SPACE}004")
    page.goto(f"{live_server}/contacts/{unknown.id}")
    header = page.locator("#mc-status")
    expect(header).to_contain_text(f"Mailchimp{NB}: Non synchronisé — consentement pas encore donné")
    assert "(inconnu))" not in page.content() and "(inconnu)" not in header.inner_text()
    created = page.locator(".meta dd").filter(has_text=re.compile(r"^\d\d/\d\d/\d{4} \d\d:\d\d$"))
    expect(created.first).to_be_visible()  # one date format: 30/11/2026 08:30

    connexion(support_user, support_page)
    support_page.goto(live_server + "/support/")
    row = support_page.locator(f"tr[data-workspace-id='{workspace.id}']")
    expect(row).to_contain_text(f"2{NUMBER_SPACE}004")
    expect(row.locator("td").last).to_have_text(re.compile(r"^\d\d/\d\d/\d{4} \d\d:\d\d$"))
    assert not re.search(r"\d{1,2} (janv|févr|mars|avr|mai|juin|juil|août|sept|oct|nov|déc)\.? \d{4}",
                         support_page.content())


# --- fixes that resolve ---------------------------------------------------------------------------

def test_corriger_un_contact_depuis_la_liste_des_erreurs_met_fin_a_l_erreur(
        mc_app, sim, sim_key, page, connexion, live_server, workspace, customer, support_user, run_jobs):
    for i in range(2):
        factories.contact(workspace, email=f"client{i}@courriel.fr", first_name=f"Client{i}", consent="opt_in")
    jeanne = factories.contact(workspace, email="jeanne@example.com", first_name="Jeanne", last_name="Vrai",
                               consent="opt_in")
    copied(workspace, customer, support_user, sim, sim_key, run_jobs)

    connexion(customer, page)
    page.goto(live_server + "/mailchimp/errors")
    row = page.locator(f"#error-contact-{jeanne.id}")
    expect(row).to_contain_text("adresse jugée fausse par Mailchimp")
    row.get_by_role("link", name="Modifier le contact").click()
    # The fix opens the edit form directly, with what Mailchimp refused.
    expect(page).to_have_url(re.compile(rf"/contacts/{jeanne.id}/edit"))
    expect(page.locator(".fix-hint")).to_contain_text(f"Refusé par Mailchimp{NB}:")
    page.get_by_label("E-mail", exact=True).fill("jeanne.vrai@ardent-clients.fr")
    page.get_by_role("button", name="Enregistrer").click()
    expect(page.locator(".flash-success")).to_contain_text("Le contact est de nouveau envoyé à Mailchimp")
    status = page.locator("#mc-status")
    expect(status).to_have_attribute("data-mc-state", "pending")
    # The error list and the record agree at once: no longer an error, it is being sent.
    run_jobs()  # the replication job, as a worker runs it
    expect(status).to_have_attribute("data-mc-state", "synced", timeout=10_000)
    expect(status).to_contain_text(f"Mailchimp{NB}: Synchronisé")
    page.get_by_role("tab", name="Historique").click()
    history = page.locator(".history-table")
    expect(history).to_contain_text(f"Erreur corrigée{NB}: contact modifié (E-mail)")
    expect(history).to_contain_text(f"Envoyé à Mailchimp{NB}: nouveau membre")
    expect(history.locator("tbody tr").first).to_contain_text("Envoyé à Mailchimp")  # the new result, newest first
    page.goto(live_server + "/mailchimp/errors")
    expect(page.locator("#errors-list")).to_contain_text("Aucune erreur de synchro")


def test_une_adresse_partagee_se_choisit_une_fois_et_quitte_la_liste(
        mc_app, sim, sim_key, page, support_page, connexion, live_server, workspace, customer, support_user,
        run_jobs):
    paul = factories.contact(workspace, email="famille.durand@courriel.fr", first_name="Paul", last_name="Durand",
                             consent="opt_in")
    lucie = factories.contact(workspace, email="famille.durand@courriel.fr", first_name="Lucie",
                              last_name="Durand", company="Atelier Durand", consent="opt_in")
    factories.contact(workspace, email="autre@courriel.fr", first_name="Autre", consent="opt_in")
    copied(workspace, customer, support_user, sim, sim_key, run_jobs)

    connexion(customer, page)
    page.goto(live_server + "/mailchimp/")
    expect(page.locator("#connector-standing .shared-to-decide")).to_contain_text("1 adresse est partagée")
    page.goto(live_server + "/mailchimp/errors")
    expect(page.locator(".errors-summary")).to_contain_text("1 adresse partagée à départager")
    group = page.locator("#errors-duplicate_email")
    addresses = group.locator(".shared-address")
    expect(addresses).to_have_count(1)  # the address once…
    expect(addresses.locator("tbody tr")).to_have_count(2)  # …with both contacts side by side
    expect(addresses.locator(f"tr[data-contact-id='{paul.id}']")).to_contain_text(
        f"titulaire actuel{NB}: envoyé à Mailchimp")
    expect(addresses.locator(f"tr[data-contact-id='{lucie.id}']")).to_contain_text("Atelier Durand")
    addresses.locator(f"tr[data-contact-id='{lucie.id}']").get_by_role(
        "button", name="Ce contact est titulaire de l'e-mail").click()
    expect(page.locator("#errors-list .flash-success")).to_contain_text("titulaire")
    expect(page.locator("#errors-duplicate_email")).to_have_count(0)  # the address leaves the list
    expect(page.locator("#errors-list")).to_contain_text("Aucune erreur de synchro")
    run_jobs()

    page.goto(f"{live_server}/contacts/{paul.id}")
    expect(page.locator("#mc-status")).to_contain_text(
        f"Mailchimp{NB}: Non synchronisé — adresse utilisée par Lucie Durand")
    expect(page.locator("#mc-status")).not_to_have_class(re.compile("mc-error"))
    page.goto(f"{live_server}/contacts/{lucie.id}/history")
    expect(page.locator(".history-table")).to_contain_text("Choisi comme titulaire de son adresse e-mail partagée")
    page.goto(live_server + "/mailchimp/")
    expect(page.locator("#connector-standing .shared-to-decide")).to_have_count(0)  # the counts went down
    connexion(support_user, support_page)
    support_page.goto(live_server + "/support/")
    expect(support_page.locator("#overview-errors")).to_contain_text("Aucune erreur de synchro")


def test_un_connecteur_en_pause_le_dit_sur_la_liste_et_a_chaque_correction(
        mc_app, sim, sim_key, page, connexion, live_server, workspace, customer, support_user, run_jobs):
    from portal.crm.contacts import update_contact

    factories.contact(workspace, email="famille@courriel.fr", first_name="Paul", consent="opt_in")
    lucie = factories.contact(workspace, email="famille@courriel.fr", first_name="Lucie", consent="opt_in")
    faux = factories.contact(workspace, email="jeanne@example.com", first_name="Jeanne", consent="opt_in")
    autre = factories.contact(workspace, email="autre@courriel.fr", first_name="Autre", consent="opt_in")
    connector = copied(workspace, customer, support_user, sim, sim_key, run_jobs)
    sim.control.revoke_key(sim_key)  # the customer revoked the key in Mailchimp
    update_contact(workspace.id, autre.id, {"company": "Durand & fils"}, actor="test", channel="ui")
    run_jobs()  # the push meets "API Key Invalid": the connector pauses
    db.session.expire_all()
    assert db.session.get(Connector, connector.id).status == "paused"

    connexion(customer, page)
    page.goto(live_server + "/mailchimp/errors")
    banner = page.locator(".paused-banner")
    expect(banner).to_contain_text(f"Le connecteur est en pause{NB}: rien n'est envoyé à Mailchimp")
    expect(banner.get_by_role("link", name="Reconnecter Mailchimp")).to_have_attribute("href", "/mailchimp/#reconnect")
    page.locator(f"tr[data-contact-id='{lucie.id}']").get_by_role(
        "button", name="Ce contact est titulaire de l'e-mail").click()
    notice = page.locator("#errors-list .flash-success")
    expect(notice).to_contain_text("Ce sera envoyé dès que le connecteur sera reconnecté.")
    expect(notice.get_by_role("link", name="Reconnecter Mailchimp")).to_be_visible()
    page.locator(f"#error-contact-{faux.id}").get_by_role("button", name="Réessayer").click()
    expect(page.locator("#errors-list .flash-success")).to_contain_text("dès que le connecteur sera reconnecté")
    page.get_by_role("link", name="Reconnecter Mailchimp").first.click()
    expect(page.locator("#reconnect")).to_be_visible()

    # A value that is not a key is refused before any call; the repaired key resumes everything.
    seq = sim.control.requests_log()[-1]["seq"]
    page.locator("#reconnect input[name=api_key]").fill("bonjour")
    page.get_by_role("button", name="Reconnecter et reprendre").click()
    expect(page.locator(".flash-error").first).to_contain_text("Ce n'est pas une clé d'API Mailchimp")
    assert sim.control.requests_log(seq) == []
    sim.control.restore_key(sim_key)
    page.get_by_role("button", name="Reconnecter et reprendre").click()
    expect(page.locator("#connector-status .badge").first).to_have_text("Actif")


# --- states you can see ---------------------------------------------------------------------------

@pytest.fixture
def active_connector(mc_app, sim, sim_key, workspace, customer):
    """An active connector whose contacts' rows each test sets as a push would have."""
    connector = make_connector(workspace, customer, sim_key, audience(sim, sim_key, "Newsletter"))
    connector.status = "active"
    db.session.commit()
    return connector


def test_le_tableau_et_la_fiche_disent_l_etat_mailchimp_en_toutes_lettres(
        active_connector, page, connexion, live_server, workspace, customer):
    ok = factories.contact(workspace, email="ok@courriel.fr", first_name="Odile", consent="opt_in")
    bad = factories.contact(workspace, email="jeanne@example.com", first_name="Jeanne", consent="opt_in")
    out = factories.contact(workspace, email=None, first_name="Hugo", consent="opt_in")
    _error_row(active_connector, ok, state="synced")
    _error_row(active_connector, bad, state="error", error_kind="fake_email", error_fix="edit_contact_and_retry")
    _error_row(active_connector, out, state="not_synced", reason="no_email")

    connexion(customer, page)
    page.goto(live_server + "/contacts/")
    label = page.locator(f"#contact-{bad.id} td.mailchimp .mc-label")
    expect(label).to_have_text(re.compile(r"Erreur$"))
    expect(label).to_have_class(re.compile("mc-error"))  # its colour
    expect(label).to_have_attribute("title", re.compile(f"^Mailchimp{NB}: Erreur — Mailchimp juge cette adresse e-mail fausse"))
    expect(page.locator(f"#contact-{ok.id} td.mailchimp")).to_contain_text("Synchronisé")
    expect(page.locator(f"#contact-{out.id} td.mailchimp .mc-label")).to_have_attribute(
        "title", re.compile("Pas d'adresse e-mail"))
    mailchimp_filter = page.get_by_role("combobox", name="Mailchimp")
    options = mailchimp_filter.locator("option")
    for name in ("En erreur", "En attente", "Non synchronisé", "Synchronisé"):
        expect(options.filter(has_text=re.compile(f"^{name}$"))).to_have_count(1)
    mailchimp_filter.select_option(label="En erreur")
    expect(page.locator(".contacts-table tbody tr")).to_have_count(1)
    expect(page.locator(".contacts-table tbody")).to_contain_text("Jeanne")

    page.goto(f"{live_server}/contacts/{bad.id}")
    header = page.locator("#mc-status")
    expect(header).to_contain_text(f"Mailchimp{NB}: Erreur — adresse jugée fausse par Mailchimp")
    expect(header).not_to_contain_text("Synchronisé avec Mailchimp")


def test_une_valeur_tres_longue_ne_deforme_pas_les_pages(active_connector, page, connexion, live_server, workspace,
                                                         customer):
    company = "Établissements" + "x" * 186  # 200 characters in one word
    long_one = factories.contact(workspace, email="long@courriel.fr", first_name="Z" * 100, last_name="Durand",
                                 company=company, consent="opt_in")
    _error_row(active_connector, long_one, state="error", error_kind="value_too_long", error_field="COMPANY",
               error_fix="edit_contact_and_retry")
    page.set_viewport_size({"width": 1280, "height": 800})
    connexion(customer, page)

    def fits() -> None:
        width = page.evaluate("document.documentElement.scrollWidth")
        wide = page.evaluate("""() => [...document.querySelectorAll('body, body *')].filter(e => e.scrollWidth > 1280 || e.getBoundingClientRect().right > 1280)
            .slice(0, 12).map(e => e.tagName + '.' + e.className + ' ' + e.scrollWidth + ' ' + Math.round(e.getBoundingClientRect().right))""")
        assert width <= 1280, f"the page is {width} px wide: {wide}"

    page.goto(live_server + "/contacts/")
    fits()
    table, main = (page.locator(sel).bounding_box() for sel in (".contacts-table", "main"))
    assert table["x"] + table["width"] <= main["x"] + main["width"], "the table is wider than the page"
    row = page.locator(f"#contact-{long_one.id}")
    expect(row.locator("td.company .cut")).to_have_attribute("title", company)  # the whole value on hover
    for button in (row.locator(".row-actions button").first, row.locator(".row-actions button").last):
        box = button.bounding_box()
        assert box and box["x"] + box["width"] <= 1280, "the row's actions are pushed off-screen"
    page.goto(f"{live_server}/contacts/{long_one.id}")
    fits()
    page.goto(live_server + "/mailchimp/errors")
    fits()
    expect(page.locator(f"#error-contact-{long_one.id} .cut").first).to_have_attribute(
        "title", re.compile("^Z{100} Durand$"))


# --- forms that always answer ---------------------------------------------------------------------

def test_chaque_formulaire_repond_en_page_complete_comme_en_ligne(browser, live_server, connexion, workspace,
                                                                  customer, mc_app, sim):
    contact = factories.contact(workspace, email="ines@courriel.fr", first_name="Inès", consent="opt_in")
    plain = browser.new_context(java_script_enabled=False, locale="fr-FR")  # every form as a plain page, no htmx
    page = plain.new_page()
    page.set_default_timeout(15_000)
    try:
        page.goto(live_server + "/login")
        page.get_by_role("button", name="Se connecter").click()
        expect(page.locator("#err-email")).to_have_text("Saisissez l'adresse e-mail avec laquelle vous vous connectez.")
        expect(page.locator("#err-password")).to_have_text("Saisissez votre mot de passe.")
        connexion(customer, page)

        page.goto(live_server + "/contacts/new")
        page.get_by_label("E-mail").fill("ines@")
        page.get_by_role("button", name="Créer le contact").click()
        expect(page.locator("#err-email")).to_have_text("Cette adresse e-mail n'est pas valide.")

        page.goto(f"{live_server}/contacts/{contact.id}/edit")
        page.get_by_label("E-mail", exact=True).fill("ines@")
        page.get_by_role("button", name="Enregistrer").click()
        expect(page.locator("#err-email")).to_have_text("Cette adresse e-mail n'est pas valide.")

        page.goto(live_server + "/mailchimp/setup")
        page.get_by_label("Clé d'API").fill("bonjour")
        page.get_by_role("button", name="Vérifier la clé").click()
        expect(page.locator(".wizard-error")).to_contain_text("Ce n'est pas une clé d'API Mailchimp")
    finally:
        plain.close()


def test_l_assistant_refuse_une_fausse_cle_garde_son_etape_et_propose_chaque_champ(
        mc_app, sim, sim_key, page, connexion, live_server, workspace, customer):
    list_id = audience(sim, sim_key, "Newsletter")
    connexion(customer, page)
    page.goto(live_server + "/mailchimp/setup")
    seq = sim.control.requests_log()[-1]["seq"] if sim.control.requests_log() else 0

    page.get_by_label("Clé d'API").fill("bonjour")
    page.get_by_role("button", name="Vérifier la clé").click()
    expect(page.locator(".wizard-error")).to_have_text(
        f"Ce n'est pas une clé d'API Mailchimp{NB}: elle se présente comme 32{NB}caractères, un tiret et un centre "
        "de données comme us6 (0123456789abcdef0123456789abcdef-us6).")
    assert sim.control.requests_log(seq) == []  # refused before any call

    page.get_by_label("Clé d'API").fill("0123456789abcdef0123456789abcdef-us1")  # well formed, unknown
    page.get_by_role("button", name="Vérifier la clé").click()
    expect(page.locator(".wizard-error")).to_contain_text("Mailchimp refuse cette clé d'API. Vérifiez")
    expect(page.locator(".wizard-error")).not_to_contain_text("Reconnect")  # no connector to reconnect yet

    page.get_by_label("Clé d'API").fill(sim_key)
    page.get_by_role("button", name="Vérifier la clé").click()
    expect(page.locator("#wizard")).to_have_attribute("data-step", "audience")
    expect(page).to_have_url(re.compile(r"/mailchimp/setup/audience$"))
    page.reload()
    expect(page.locator("#wizard")).to_have_attribute("data-step", "audience")  # still where it was
    page.locator(".audience-choice", has_text="Newsletter").click()
    page.get_by_role("button", name="Continuer").click()
    expect(page.locator("#wizard")).to_have_attribute("data-step", "mapping")
    page.reload()
    expect(page.locator("#wizard")).to_have_attribute("data-step", "mapping")
    page.goto(live_server + "/mailchimp/setup")  # coming back later: the wizard opens where it was left
    expect(page.locator("#wizard")).to_have_attribute("data-step", "mapping")

    mapping = page.locator(".mapping-form")
    expect(mapping.locator("label")).to_have_text(["Prénom", "Nom", "Téléphone", "Société", "Fonction",
                                                   "Adresse · Code postal · Ville · Pays"])
    job = page.get_by_label("Fonction")
    expect(job).to_have_value("")
    job.select_option(label="Nouveau champ de fusion JOBTITLE (text), créé à la validation")
    address_options = page.get_by_label("Adresse · Code postal · Ville · Pays").locator("option")
    expect(address_options).to_contain_text(["— non envoyé —", "ADDRESS · Address (address)"])
    page.get_by_role("button", name="Soumettre pour validation").click()
    expect(page).to_have_url(re.compile(r"/mailchimp/$"))
    connector = db.session.scalar(db.select(Connector).where(Connector.workspace_id == workspace.id))
    assert ("job_title", "JOBTITLE") in [(m["source"], m["tag"]) for m in connector.field_mapping]
    assert "JOBTITLE" in [m["tag"] for m in connector.merge_fields_to_create]
    assert connector.audience_id == list_id


# --- an overview for support ----------------------------------------------------------------------

def test_l_accueil_du_support_montre_ce_qui_attend_quelqu_un_avec_ses_liens(
        mc_app, sim, sim_key, page, connexion, live_server, support_user):
    from portal.models import utcnow

    def workspace_with_connector(name: str, status: str, **fields):
        ws = factories.workspace(name)
        owner = factories.user(f"{name.split()[0].lower()}@client.fr", "customer", ws)
        contact = factories.contact(ws, email=f"contact@{name.split()[0].lower()}.fr", consent="opt_in")
        connector = make_connector(ws, owner, sim_key, audience(sim, sim_key, name))
        connector.status = status
        for key, value in fields.items():
            setattr(connector, key, value)
        db.session.commit()
        return ws, connector, contact

    waiting, waiting_c, _ = workspace_with_connector("Boulangerie Attente", "pending_validation")
    paused, paused_c, _ = workspace_with_connector("Cave En-Pause", "paused", paused_reason="api_key_invalid")
    copying, copying_c, _ = workspace_with_connector("Librairie Copie", "copying")
    db.session.add(SyncRun(connector_id=copying_c.id, workspace_id=copying.id, kind="initial_copy", status="running",
                           total=10, done=4, counts={}, result={}, started_at=utcnow()))
    failing, failing_c, bad = workspace_with_connector("Fromagerie Erreur", "active")
    _error_row(failing_c, bad, state="error", error_kind="fake_email", error_fix="edit_contact_and_retry")

    connexion(support_user, page)
    page.goto(live_server + "/support/")
    expect(page.locator("#overview-waiting")).to_contain_text("Boulangerie Attente")
    expect(page.locator("#overview-paused")).to_contain_text("Cave En-Pause")
    expect(page.locator("#overview-paused")).to_contain_text("clé d'API refusée")
    expect(page.locator("#overview-copying")).to_contain_text("4 contacts sur 10")
    expect(page.locator("#overview-errors")).to_contain_text("1 contact en erreur")

    page.locator("#overview-waiting").get_by_role("link", name="Boulangerie Attente").click()
    expect(page).to_have_url(re.compile(rf"/support/connectors/{waiting_c.id}$"))
    page.go_back()
    page.locator("#overview-copying").get_by_role("link", name="Librairie Copie").click()
    expect(page).to_have_url(re.compile(rf"/support/connectors/{copying_c.id}$"))
    page.go_back()
    page.locator("#overview-paused").get_by_role("link", name="Cave En-Pause").click()
    expect(page).to_have_url(re.compile(rf"/support/connectors/{paused_c.id}$"))
    page.go_back()
    page.locator("#overview-errors").get_by_role("link", name="Fromagerie Erreur").click()
    expect(page).to_have_url(re.compile(rf"/support/connectors/errors\?workspace={failing.id}$"))
    expect(page.locator("h1")).to_have_text("Erreurs de synchro de Fromagerie Erreur")

    page.goto(live_server + "/support/")
    row = page.locator(f"tr[data-workspace-id='{failing.id}']")
    row.locator("td.num a").first.click()  # its contacts
    expect(page.locator("h1")).to_have_text("Contacts de Fromagerie Erreur")
    expect(page.locator(".support-contacts")).to_contain_text("contact@fromagerie.fr")
    expect(page.locator(".support-contacts .mc-label")).to_have_text(re.compile("Erreur"))
    page.go_back()
    row.get_by_role("link", name="Actif").click()  # its connector
    expect(page).to_have_url(re.compile(rf"/support/connectors/{failing_c.id}$"))


def test_la_liste_des_erreurs_du_support_offre_ses_propres_actions(
        mc_app, sim, sim_key, page, support_page, connexion, live_server, workspace, customer, support_user,
        run_jobs, mailbox):
    bad = factories.contact(workspace, email="jeanne@example.com", first_name="Jeanne", consent="opt_in")
    factories.contact(workspace, email="paul@example.net", first_name="Paul", consent="opt_in")
    factories.contact(workspace, email="ok@courriel.fr", first_name="Odile", consent="opt_in")
    connector = copied(workspace, customer, support_user, sim, sim_key, run_jobs)

    connexion(support_user, support_page)
    support_page.goto(f"{live_server}/support/connectors/errors?workspace={workspace.id}")
    row = support_page.locator(f"#error-contact-{bad.id}")
    expect(row).not_to_contain_text("Modifier le contact")  # the customer's instructions are not support's
    row.get_by_role("button", name="Réessayer").click()
    expect(support_page.locator(".flash-success")).to_contain_text("Le contact sera renvoyé à Mailchimp")
    concerned = support_page.locator(f".support-connectors-in-error tr[data-connector-id='{connector.id}']")
    concerned.get_by_role("button", name="Mettre le connecteur en pause").click()
    expect(support_page.locator(".flash-success")).to_contain_text("Connecteur en pause")
    db.session.expire_all()
    assert db.session.get(Connector, connector.id).status == "paused"
    assert any("en pause" in m["Subject"] for m in mailbox)  # the customer is told

    connexion(customer, page)
    page.goto(live_server + "/mailchimp/")
    expect(page.locator("#connector-status")).to_contain_text("Le support anaba a mis le connecteur en pause")
    expect(page.locator("#reconnect")).to_have_count(0)  # only support resumes it

    concerned.get_by_role("button", name="Relancer le connecteur").click()
    expect(support_page.locator(".flash-success")).to_contain_text("Connecteur relancé")
    concerned.get_by_role("link", name="Ouvrir le connecteur du client").click()
    expect(support_page).to_have_url(re.compile(rf"/support/connectors/{connector.id}$"))
    expect(support_page.locator("#decision .badge").first).to_have_text("Actif")


def test_un_lien_d_e_mail_ouvre_le_portail_sans_nouvelle_connexion_et_la_boite_d_envoi_est_traduite(
        mc_app, sim, sim_key, page, support_page, connexion, live_server, workspace, customer, support_user,
        mailbox):
    from portal.sync import lifecycle

    public = live_server.replace("127.0.0.1", "portal.localhost")  # as make run prints it
    before = mc_app.config["PUBLIC_BASE_URL"]
    mc_app.config["PUBLIC_BASE_URL"] = public
    try:
        connector = make_connector(workspace, customer, sim_key, audience(sim, sim_key, "Newsletter"))
        connexion(customer, page, base=public)
        lifecycle.send_back(connector.id, support_user, "Associez la société à COMPANY, s'il vous plaît.")
        mail = [m for m in mailbox if m["To"] == customer.email][-1]
        link = re.search(r"https?://\S+/mailchimp/", mail.get_body(("plain",)).get_content()).group(0)
        assert link.startswith(public)
        page.goto(link)  # the link of the e-mail, in the browser already logged in
        expect(page).to_have_url(link)
        expect(page.locator("blockquote.sent-back-reason")).to_contain_text("Associez la société à COMPANY")

        connexion(support_user, support_page, base=public)
        support_page.goto(public + "/support/outbox")
        support_page.get_by_role("link", name="Votre connecteur Mailchimp est à modifier").first.click()
        meta = support_page.locator("dl.meta")
        expect(meta).to_contain_text("Destinataire")
        expect(meta.locator("dt").nth(2)).to_have_text("État")
        expect(meta.locator(".email-status")).to_have_text("envoyé")
        assert "sent" not in meta.inner_text().split()
    finally:
        mc_app.config["PUBLIC_BASE_URL"] = before
