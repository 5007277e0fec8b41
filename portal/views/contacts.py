"""Contacts area: the contacts table, a contact's record, and CSV import.

Every route reads the customer's workspace from `workspace_id()` and goes through
`portal.crm` for reads and writes, so another workspace's id is a 404 everywhere.
Forms (`portal.views.forms`) read the posts; `portal.crm` judges the values, and its
`ValidationFailed` comes back as 422 with the form and the messages on their fields, in the
htmx fragment as in the full page; a refused opt-in on a locked contact comes back as 409
with the R16 explanation.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user

from portal import htmx, jobs
from portal.crm import contacts as crm
from portal.crm import csv_import
from portal.crm.errors import ConsentLocked, ValidationFailed
from portal.models import CONSENT_VALUES, Channel, Contact, CsvImport, NotSyncedReason, RunStatus, SyncState
from portal.sync import ConnectorError, contact_state, error_fixes
from portal.sync.activity_import import next_import_at
from portal.sync.lifecycle import live_connector
from portal.security import id_arg, int_arg, without_control_characters
from portal.views.access import customer_required, workspace_id
from portal.views.forms import ColumnsForm, ContactForm, EraseMemberForm, UploadForm, same_tags

bp = Blueprint("contacts", __name__, url_prefix="/contacts")

PER_PAGE = 50
ACTIVITY_PER_PAGE = 10


# --------------------------------------------------------------------------- helpers

def _actor() -> str:
    return current_user.email


def _filters() -> dict:
    """The table's filters from the query string, cleaned (unknown values fall back to defaults)."""
    args = request.args
    consent = args.get("consent", "")
    sort = args.get("sort", "name")
    mailchimp = args.get("mailchimp", "")
    return {
        "q": without_control_characters(args.get("q", "")).strip()[:200],
        "tag": id_arg("tag"),
        "consent": consent if consent in CONSENT_VALUES else "",
        "mailchimp": mailchimp if mailchimp in tuple(SyncState) else "",
        "sort": sort if sort in crm.SORTS else "name",
        "page": int_arg("page", 1, 1, 10**6),
        "opened": crm.valid_opened_filter(args.get("opened")),
    }


def _query_args(filters: dict, **changes: Any) -> dict:
    """URL arguments for the table with some filters changed (defaults left out so URLs stay short)."""
    merged = {**filters, **changes}
    args = {k: v for k, v in merged.items() if v not in (None, "", 0)}
    if args.get("sort") == "name":
        args.pop("sort")
    if args.get("page") == 1:
        args.pop("page")
    return args


def _row_texts() -> dict[str, str]:
    """The table rows' words, translated once per request (a gettext per cell per row is too slow).

    Texts with `%(name)s` are filled in the template with the `format` filter.
    """
    return {
        "edit": _("Edit"), "delete": _("Delete"), "edit_of": _("Edit %(name)s"), "delete_of": _("Delete %(name)s"),
        "edit_tags": _("Edit tags"), "edit_tags_of": _("Edit tags of %(name)s"), "add_tags": _("Add tags"),
        "shared_title": _("Several contacts use this e-mail; Mailchimp keeps one member per address."),
        "shared_by": _("shared by %(n)s contacts"), "locked": _("Locked"),
        "opt_in": _("Opt-in"), "opt_out": _("Opt-out"), "unknown": _("Unknown"),
        "mailchimp_is": _("%(label)s: %(value)s", label="Mailchimp", value="%(state)s"),
    }


def _rows_context(contacts: list[Contact]) -> dict:
    """What rows need beyond the contacts: R17 sync rows, the owner of each shared address left out,
    shared e-mail counts, translated words."""
    ws = workspace_id()
    connector = live_connector(ws)
    ids = [c.id for c in contacts]
    states = contact_state.states_for(connector.id, ids) if connector else {}
    return {
        "connector": connector,
        "states": states,
        "owners": _owners(connector, contacts, states),
        "shared": crm.shared_email_counts(ws, [c.email_normalized for c in contacts if c.email_normalized]),
        "T": _row_texts(),
        "contacts_url": url_for("contacts.index"),
    }


def _owners(connector: Any, contacts: list[Contact], states: dict) -> dict[int, Contact]:
    """For the contacts left out because another contact owns their address, that owner (R19)."""
    shared = [c for c in contacts if (row := states.get(c.id)) is not None
              and row.state == SyncState.NOT_SYNCED and row.reason == NotSyncedReason.SHARED_EMAIL]
    return error_fixes.owners_of(workspace_id(), connector.id, shared) if shared else {}


def _contact(contact_id: int) -> Contact:
    return crm.get_contact(workspace_id(), contact_id)


def _subscribe_url() -> str:
    connector = live_connector(workspace_id())
    return connector.subscribe_url if connector else ""


def _common() -> dict:
    return {
        "field_names": csv_import.field_labels(),
        "ws_tags": crm.workspace_tags(workspace_id()),
        "subscribe_url": _subscribe_url(),
    }


# --------------------------------------------------------------------------- the table

@bp.get("/")
@customer_required
def index() -> ResponseReturnValue:
    """The contacts table: search, filters, sort, pages; htmx gets only the results block."""
    ws = workspace_id()
    filters = _filters()
    connector = live_connector(ws)
    state = (connector.id, filters["mailchimp"]) if connector and filters["mailchimp"] else None
    page = crm.search_contacts(ws, q=filters["q"], tag_id=filters["tag"], consent=filters["consent"],
                               sync_state=state, sort=filters["sort"], page=filters["page"], per_page=PER_PAGE,
                               opened=filters["opened"])
    if not page.items and page.page > page.pages:
        filters["page"] = page.pages
        page = crm.search_contacts(ws, q=filters["q"], tag_id=filters["tag"], consent=filters["consent"],
                                   sync_state=state, sort=filters["sort"], page=page.pages, per_page=PER_PAGE,
                                   opened=filters["opened"])
    return htmx.render(
        "contacts/index.html", "results", page=page, filters=filters, args=_query_args,
        **_rows_context(page.items), **_common(),
    )


@bp.get("/new")
@customer_required
def new() -> ResponseReturnValue:
    """The inline create form (htmx) or a page with it."""
    return htmx.render("contacts/new.html", "create_form", form=ContactForm(), **_common())


@bp.post("/")
@customer_required
def create() -> ResponseReturnValue:
    """Create a contact from the inline form or the page; 422 with the messages on their fields."""
    form = ContactForm()
    contact = None
    if form.validate_on_submit():
        try:
            contact = crm.create_contact(workspace_id(), form.posted(), actor=_actor(), channel=Channel.UI)
        except ValidationFailed as exc:
            form.add_errors(exc.errors)
    if contact is None:
        return htmx.render("contacts/new.html", "create_form", form=form, **_common()), 422
    if htmx.is_htmx():
        response = Response(htmx.render("contacts/new.html", "create_done", created=contact, **_common()))
        response.headers["HX-Trigger"] = "contactsChanged"
        return response
    flash(_("Contact created."), "success")
    return redirect(url_for("contacts.record", contact_id=contact.id))


@bp.get("/<id:contact_id>/row")
@customer_required
def row(contact_id: int) -> ResponseReturnValue:
    """One table row (used by "Cancel" on an inline edit)."""
    contact = _contact(contact_id)
    return htmx.render("contacts/_row.html", None, c=contact, **_rows_context([contact]))


@bp.get("/<id:contact_id>/edit")
@customer_required
def edit(contact_id: int) -> ResponseReturnValue:
    """The edit form: a table row (`?row=1`), the record's details panel, or the record page."""
    contact = _contact(contact_id)
    form = ContactForm.of(contact)
    if request.args.get("row") and htmx.is_htmx():
        return htmx.render("contacts/_row_edit.html", None, c=contact, form=form, **_common())
    return _record_page(contact, "details", editing=True, form=form)


@bp.post("/<id:contact_id>/edit")
@customer_required
def update(contact_id: int) -> ResponseReturnValue:
    """Save the edit form; 422 with the messages when a field is wrong, 409 when consent is locked."""
    contact = _contact(contact_id)
    form = ContactForm.of(contact)
    in_row = bool(form.row.data) and htmx.is_htmx()
    status, locked = 422, ""
    fixed = False
    if form.validate_on_submit():
        try:
            contact, fixed = error_fixes.save_contact(workspace_id(), contact_id, form.changes(contact),
                                                      actor=_actor(), channel=Channel.UI)
            status = 200
        except ValidationFailed as exc:
            form.add_errors(exc.errors)
        except ConsentLocked as exc:
            status, locked = 409, exc.message
    if status != 200:
        contact = _contact(contact_id)  # the refused write was rolled back
        if in_row:
            return htmx.render("contacts/_row_edit.html", None, c=contact, form=form, locked_message=locked,
                               **_common()), status
        return _record_page(contact, "details", editing=True, form=form, locked_message=locked, status=status)
    if in_row:
        return htmx.render("contacts/_row.html", None, c=contact, **_rows_context([contact]))
    if htmx.is_htmx():
        return _record_page(contact, "details", saved=True, fixed=fixed)
    flash(_("Changes saved. The contact is sent to Mailchimp again: its state at the top of the record shows "
            "the result.") if fixed else _("Changes saved."), "success")
    return redirect(url_for("contacts.record", contact_id=contact.id, fixed=1 if fixed else None))


@bp.get("/<id:contact_id>/delete")
@customer_required
def confirm_delete(contact_id: int) -> ResponseReturnValue:
    """Ask for confirmation: a table row (`?row=1`) or a page."""
    contact = _contact(contact_id)
    if request.args.get("row") and htmx.is_htmx():
        return htmx.render("contacts/_row_delete.html", None, c=contact)
    return htmx.render("contacts/delete.html", None, c=contact)


@bp.post("/<id:contact_id>/delete")
@customer_required
def delete(contact_id: int) -> ResponseReturnValue:
    """Delete (soft) a contact after confirmation."""
    contact = _contact(contact_id)
    crm.delete_contact(workspace_id(), contact.id, actor=_actor(), channel=Channel.UI)
    message = _("%(name)s was deleted.", name=contact.full_name)
    if htmx.is_htmx() and request.form.get("row"):
        response = Response(htmx.render("contacts/_row_deleted.html", None, message=message))
        response.headers["HX-Trigger"] = "contactsChanged"
        return response
    flash(message, "success")
    if htmx.is_htmx():
        response = Response("")
        response.headers["HX-Redirect"] = url_for("contacts.index")
        return response
    return redirect(url_for("contacts.index"))


# --------------------------------------------------------------------------- tags

@bp.get("/<id:contact_id>/tags")
@customer_required
def tags(contact_id: int) -> ResponseReturnValue:
    """The tag editor of a contact, or (`?done=1`) its tags as shown in the table."""
    contact = _contact(contact_id)
    if request.args.get("done"):
        return htmx.render("contacts/_tags_cell.html", None, c=contact, T=_row_texts(),
                           contacts_url=url_for("contacts.index"))
    return htmx.render("contacts/_tags_editor.html", None, c=contact, errors={}, **_common())


@bp.post("/<id:contact_id>/tags")
@customer_required
def edit_tags(contact_id: int) -> ResponseReturnValue:
    """Add tags (comma-separated `add`) and/or remove one (`remove`)."""
    contact = _contact(contact_id)
    names = contact.tag_names
    remove = request.form.get("remove", "").strip().lower()
    if remove:
        names = [n for n in names if n.lower() != remove]
    names += [n for n in request.form.get("add", "").split(",") if n.strip()]
    if same_tags(names, contact.tag_names):
        return _tags_response(contact)
    try:
        contact = crm.update_contact(workspace_id(), contact.id, {"tags": names}, actor=_actor(), channel=Channel.UI)
    except ValidationFailed as exc:
        contact = _contact(contact_id)
        return htmx.render("contacts/_tags_editor.html", None, c=contact, errors=exc.errors,
                           typed=request.form.get("add", ""), **_common()), 422
    return _tags_response(contact)


def _tags_response(contact: Contact) -> ResponseReturnValue:
    if htmx.is_htmx():
        return htmx.render("contacts/_tags_editor.html", None, c=contact, errors={}, **_common())
    return redirect(url_for("contacts.record", contact_id=contact.id))


# --------------------------------------------------------------------------- the record

def _record_page(contact: Contact, tab: str, *, status: int = 200, **extra: Any) -> ResponseReturnValue:
    ws = workspace_id()
    connector = live_connector(ws)
    sync = contact_state.states_for(connector.id, [contact.id]).get(contact.id) if connector else None
    context = {
        "c": contact, "tab": tab, "connector": connector, "sync": sync, "editing": False, "form": None,
        "errors": {}, "locked_message": "", "saved": False, "fixed": bool(request.args.get("fixed")),
        "owner": _owners(connector, [contact], {contact.id: sync} if sync else {}).get(contact.id),
        "shared": crm.shared_email_counts(ws, [contact.email_normalized] if contact.email_normalized else []),
        **_common(), **extra,
    }
    if tab == "activity":
        context["timeline"] = crm.contact_campaign_timeline(ws, contact.id, page=extra.get("activity_page", 1),
                                                            per_page=ACTIVITY_PER_PAGE)
        context["next_import_at"] = next_import_at() if connector is not None and connector.is_live else None
    elif tab == "history":
        context["history"] = crm.contact_history(ws, contact.id)
    return htmx.render("contacts/record.html", "record_tabs", **context), status


@bp.get("/<id:contact_id>")
@customer_required
def record(contact_id: int) -> ResponseReturnValue:
    """A contact's record, Details tab."""
    return _record_page(_contact(contact_id), "details")


@bp.get("/<id:contact_id>/activity")
@customer_required
def activity(contact_id: int) -> ResponseReturnValue:
    """A contact's record, Marketing communication tab (R18): its campaigns, newest first, paged."""
    return _record_page(_contact(contact_id), "activity", activity_page=int_arg("page", 1, 1, 10**6))


@bp.get("/<id:contact_id>/history")
@customer_required
def history(contact_id: int) -> ResponseReturnValue:
    """A contact's record, History tab: consent changes and sync events (R15)."""
    return _record_page(_contact(contact_id), "history")


@bp.get("/<id:contact_id>/consent-history.csv")
@customer_required
def consent_history_csv(contact_id: int) -> ResponseReturnValue:
    """The contact's consent history as a CSV file (R15): what a customer answers a regulator with."""
    body = "\ufeff" + crm.consent_history_csv(workspace_id(), contact_id)
    return Response(body.encode("utf-8"), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="consent-history-{contact_id}.csv"',
        "Cache-Control": "no-store"})


@bp.get("/<id:contact_id>/mailchimp-state")
@customer_required
def mailchimp_state(contact_id: int) -> ResponseReturnValue:
    """The record's "Synced with Mailchimp" field; it polls itself while a push is pending (R17)."""
    contact = _contact(contact_id)
    connector = live_connector(workspace_id())
    sync = contact_state.states_for(connector.id, [contact.id]).get(contact.id) if connector else None
    owner = _owners(connector, [contact], {contact.id: sync} if sync else {}).get(contact.id)
    return htmx.render("contacts/_mc_status.html", None, c=contact, connector=connector, sync=sync, owner=owner)


@bp.route("/<id:contact_id>/erase", methods=["GET", "POST"])
@customer_required
def erase(contact_id: int) -> ResponseReturnValue:
    """Erase the contact's member from Mailchimp for good (GDPR, R12), after a confirmation."""
    contact = _contact(contact_id)
    form = EraseMemberForm()
    if request.method == "POST":
        if not form.validate():
            return htmx.render("contacts/erase.html", None, c=contact, form=form), 422
        try:
            jobs.erase_from_mailchimp(workspace_id(), contact.id)
        except ConnectorError as exc:
            form.add_errors([exc.message])
            return htmx.render("contacts/erase.html", None, c=contact, form=form), 409
        flash(_("The member of %(name)s is being erased from Mailchimp. The History tab will record it.",
                name=contact.full_name), "success")
        return _redirect(url_for("contacts.record", contact_id=contact.id))
    return htmx.render("contacts/erase.html", None, c=contact, form=form)


@bp.post("/<id:contact_id>/push-again")
@customer_required
def push_again(contact_id: int) -> ResponseReturnValue:
    """Send a contact archived or deleted in Mailchimp again (R13: someone acts)."""
    contact = _contact(contact_id)
    try:
        jobs.push_again(workspace_id(), contact.id)
    except ConnectorError as exc:
        flash(exc.message, "error")
    else:
        flash(_("%(name)s will be sent to Mailchimp again in a few seconds.", name=contact.full_name), "success")
    return _redirect(url_for("contacts.record", contact_id=contact.id))


def _redirect(url: str) -> ResponseReturnValue:
    if htmx.is_htmx():
        return "", 204, {"HX-Redirect": url}
    return redirect(url)


@bp.post("/<id:contact_id>/consent")
@customer_required
def consent(contact_id: int) -> ResponseReturnValue:
    """Change consent from the record (channel "ui", actor the user); 409 with the R16 text when locked."""
    contact = _contact(contact_id)
    value = request.form.get("consent", "")
    try:
        contact = crm.set_consent(workspace_id(), contact.id, value, actor=_actor(), channel=Channel.UI)
    except ValidationFailed as exc:
        return _record_page(_contact(contact_id), "details", errors=exc.errors, status=422)
    except ConsentLocked as exc:
        return _record_page(_contact(contact_id), "details", locked_message=exc.message, status=409)
    if htmx.is_htmx():
        return _record_page(contact, "details", saved=True)
    flash(_("Consent changed."), "success")
    return redirect(url_for("contacts.record", contact_id=contact.id))


# --------------------------------------------------------------------------- CSV import

def _import(import_id: int, *, light: bool = False) -> CsvImport:
    """The workspace's import (404 otherwise); `light` leaves the file and the rejects unloaded."""
    imp = csv_import.get_import(workspace_id(), import_id, light=light)
    if imp is None:
        abort(404)
    return imp


def _upload_page(form: UploadForm, status: int = 200) -> ResponseReturnValue:
    limit_mb = (request.max_content_length or 0) // (1024 * 1024)
    return htmx.render("contacts/import_upload.html", None, form=form, limit_mb=limit_mb,
                       imports=csv_import.recent_imports(workspace_id())), status


@bp.get("/import")
@customer_required
def import_form() -> ResponseReturnValue:
    """Upload a CSV file."""
    return _upload_page(UploadForm())


@bp.post("/import")
@customer_required
def import_upload() -> ResponseReturnValue:
    """Read the uploaded file; a broken file is explained (422) and nothing is stored."""
    form = UploadForm()
    if form.validate_on_submit():
        upload = form.file.data
        try:
            imp = csv_import.upload(workspace_id(), current_user.id, upload.filename, upload.read())
        except csv_import.BrokenFile as exc:
            form.add_errors({"file": exc.message})
        else:
            return redirect(url_for("contacts.import_status", import_id=imp.id))
    return _upload_page(form, 422)


def _columns_form(imp: CsvImport, *, guessed: bool = False) -> ColumnsForm:
    """The mapping form of an uploaded file: what was posted, or (`guessed`) the columns guessed at upload."""
    mapping = imp.mapping or {}
    return ColumnsForm.for_import(mapping.get("header", []), mapping.get("columns", []) if guessed else ())


def _mapping_page(imp: CsvImport, form: ColumnsForm, status: int = 200,
                  block: str | None = None) -> ResponseReturnValue:
    rows = csv_import.preview(imp, form.columns) if not form.form_errors else []
    return htmx.render(
        "contacts/import_mapping.html", block, imp=imp, columns=form.columns, problems=form.messages, rows=rows,
        field_names=csv_import.field_labels(), header=imp.mapping.get("header", []),
        samples=imp.mapping.get("samples", []), encoding_name=csv_import.encoding_name(imp.encoding),
        delimiter_name={",": _("comma"), ";": _("semicolon"), "\t": _("tab")}.get(imp.delimiter, imp.delimiter),
    ), status


@bp.get("/import/<id:import_id>")
@customer_required
def import_status(import_id: int) -> ResponseReturnValue:
    """An import's page: mapping and preview before it starts, progress while it runs, then the report."""
    imp = _import(import_id)
    if imp.status == RunStatus.UPLOADED:
        form = _columns_form(imp, guessed=True)
        form.check()
        return _mapping_page(imp, form)
    return htmx.render("contacts/import_status.html", None, imp=imp, stalled=csv_import.is_stalled(imp))


@bp.post("/import/<id:import_id>/preview")
@customer_required
def import_preview(import_id: int) -> ResponseReturnValue:
    """Re-compute the preview for the mapping being edited (htmx, on every change)."""
    imp = _import(import_id)
    form = _columns_form(imp)
    form.validate_on_submit()
    return _mapping_page(imp, form, block="preview")


@bp.post("/import/<id:import_id>/start")
@customer_required
def import_start(import_id: int) -> ResponseReturnValue:
    """Save the mapping and queue the import job; 422 when the mapping cannot work."""
    imp = _import(import_id)
    if imp.status != RunStatus.UPLOADED:
        return redirect(url_for("contacts.import_status", import_id=imp.id))
    form = _columns_form(imp)
    if not form.validate_on_submit():
        return _mapping_page(imp, form, status=422)
    jobs.start_csv_import(imp, form.columns)
    return redirect(url_for("contacts.import_status", import_id=imp.id))


@bp.get("/import/<id:import_id>/progress")
@customer_required
def import_progress(import_id: int) -> ResponseReturnValue:
    """The progress partial; it polls itself until the import is over, then shows the report."""
    imp = _import(import_id, light=True)
    if imp.is_over:
        imp = _import(import_id)
    return htmx.render("contacts/_import_progress.html", None, imp=imp, stalled=csv_import.is_stalled(imp))


@bp.post("/import/<id:import_id>/resume")
@customer_required
def import_resume(import_id: int) -> ResponseReturnValue:
    """Queue a failed import again; it continues after its last committed chunk."""
    imp = _import(import_id, light=True)
    jobs.resume_csv_import(imp)
    return redirect(url_for("contacts.import_status", import_id=imp.id))


@bp.get("/import/<id:import_id>/rejects.csv")
@customer_required
def import_rejects(import_id: int) -> ResponseReturnValue:
    """The rejected rows, each with its line number and reason, as a CSV file."""
    imp = _import(import_id)
    body = "\ufeff" + csv_import.rejects_csv(imp)
    name = imp.filename.rsplit(".", 1)[0] or "import"
    return Response(
        body.encode("utf-8"), mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{_ascii_name(name)}-rejected.csv"'},
    )


def _ascii_name(name: str) -> str:
    return "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_") else "_" for ch in name)[:80] or "import"
