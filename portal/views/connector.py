"""The customer's Mailchimp area: the set-up wizard (R5), the connector page with the live
progress of its runs (R8), deletion (R9) and the sync errors with their fix actions (R19).

Views stay thin: they read the request, call one function of ``portal.sync``, ``portal.jobs`` (for
actions that start background work) or ``portal.crm``, and render. Each step of the wizard and the
deletion read their post through a form of ``portal.views.forms``; a refused step answers 422 with
the messages, in the htmx fragment as in the full page. Between wizard steps the API key lives
only encrypted in the session (Fernet, app config ``FERNET_KEY``) and is never rendered back whole.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user

from portal import jobs, labels
from portal.crm import contacts as crm
from portal.htmx import is_htmx, render
from portal.mailchimp import MailchimpError, decrypt_secret, encrypt_secret, mask_api_key
from portal.models import Channel, Connector, ConnectorStatus, RunKind, SyncRun
from portal.sync import ConnectorError, audience, counts, error_fixes, health, lifecycle, mailchimp_access
from portal.sync import runs as sync_runs
from portal.sync.lifecycle import live_connector
from portal.security import parse_id
from portal.views.access import customer_required, workspace_id
from portal.views.forms import (ApiKeyForm, AudienceForm, DeleteConnectorForm, MappingForm, PortalForm,
                                api_key_shape_error, new_merge_fields)

bp = Blueprint("connector", __name__, url_prefix="/mailchimp")

WIZARD = "mc_wizard"


# --- helpers shared with the support area --------------------------------------------------------

def error_text(err: Exception) -> str:
    """A Mailchimp or connector error in the reader's language."""
    if isinstance(err, MailchimpError):
        return labels.error_message(err.kind, err.field)
    return getattr(err, "message", "") or str(err)


def progress_context(run: SyncRun | None, poll_url: str) -> dict[str, Any]:
    """What ``connector/_progress.html`` needs: the run, its figures, whether to keep polling."""
    if run is None:
        return {"run": None}
    progress = sync_runs.progress(run)
    return {"run": run, "progress": progress, "poll_url": poll_url, "polling": not progress["is_over"],
            "figures": counts.of_run(run)}


def redirect_to(url: str) -> ResponseReturnValue:
    """A redirect that also works for htmx requests (which would otherwise swap the target page in)."""
    if is_htmx():
        return "", 204, {"HX-Redirect": url}
    return redirect(url)


def _connector_or_404() -> Connector:
    connector = live_connector(workspace_id())
    if connector is None:
        abort(404)
    return connector


# --- connector page ------------------------------------------------------------------------

@bp.get("/")
@customer_required
def index() -> ResponseReturnValue:
    """The connector's status in plain words, its configuration, runs and the delete button."""
    connector = live_connector(workspace_id())
    if connector is None:
        return render("connector/index.html", "main", connector=None)
    runs = sync_runs.history(connector.id)
    copy_run = sync_runs.latest_run(connector.id, RunKind.INITIAL_COPY)
    consent_run = sync_runs.latest_run(connector.id, RunKind.CONSENT_IMPORT)
    standing = standing_context(connector)
    return render(
        "connector/index.html", "main", connector=connector, runs=runs, health=health_context(connector, standing),
        run_figures=counts.of_runs(runs), standing=standing,
        preview=preview_context(connector),
        copy=progress_context(copy_run, url_for("connector.progress", run_id=copy_run.id) if copy_run else ""),
        consent=progress_context(
            consent_run, url_for("connector.progress", run_id=consent_run.id) if consent_run else ""),
    )


def standing_context(connector: Connector) -> counts.Standing | None:
    """Where the contacts are now, once the connector sends them (R17)."""
    if connector.status in (ConnectorStatus.COPYING, ConnectorStatus.ACTIVE, ConnectorStatus.PAUSED):
        return counts.standing(connector)
    return None


def preview_context(connector: Connector) -> dict[str, Any] | None:
    """What the first copy will do, while the connector waits for validation (nothing sent yet)."""
    if connector.status not in (ConnectorStatus.PENDING_VALIDATION, ConnectorStatus.SENT_BACK):
        return None
    run = counts.latest_preview(connector.id)
    figures = counts.from_preview(run)
    if figures is None:
        return {"run": None, "figures": None}
    return {"run": run, "figures": figures, "result": run.result or {}}


def health_context(connector: Connector, standing: counts.Standing | None = None) -> health.Health | None:
    """The health panel's figures once the connector sends contacts (R10, R19, R22)."""
    if connector.status in (ConnectorStatus.COPYING, ConnectorStatus.ACTIVE, ConnectorStatus.PAUSED):
        return health.connector_health(connector, standing)
    return None


@bp.get("/runs/<id:run_id>/progress")
@customer_required
def progress(run_id: int) -> ResponseReturnValue:
    """The progress bar of one of the workspace's runs; it polls itself until the run is over."""
    run = sync_runs.get(run_id)
    if run is None or run.workspace_id != workspace_id():
        abort(404)
    return progress_response(run, url_for("connector.progress", run_id=run.id))


def progress_response(run: SyncRun, poll_url: str) -> tuple[str, int, dict]:
    """Render the progress partial; tell the page (HX-Trigger ``run-over``) when the run has ended."""
    ctx = progress_context(run, poll_url)
    body = render("connector/_progress.html", **ctx)
    headers = {"HX-Trigger": "run-over"} if is_htmx() and not ctx["polling"] else {}
    return body, 200, headers


@bp.get("/delete")
@customer_required
def confirm_delete() -> ResponseReturnValue:
    """The confirmation page of a deletion (R9); ``next=setup`` when it is the "reconnect" path."""
    connector = _connector_or_404()
    form = DeleteConnectorForm(next=request.args.get("next", ""))
    return render("connector/delete.html", connector=connector, form=form, next=form.next.data)


@bp.post("/delete")
@customer_required
def delete() -> ResponseReturnValue:
    """Delete the connector (R9): replication stops, anaba data stays, the audience is left alone."""
    connector = _connector_or_404()
    form = DeleteConnectorForm()
    next_step = form.next.data or ""
    if not form.validate_on_submit():
        return render("connector/delete.html", connector=connector, form=form, next=next_step), 422
    try:
        lifecycle.delete_connector(connector.id, current_user._get_current_object())
    except ConnectorError as exc:
        flash(error_text(exc), "error")
        return redirect_to(url_for("connector.index"))
    session.pop(WIZARD, None)
    flash(_("The connector is deleted. Nothing more is sent to Mailchimp; your contacts and their consent "
            "stay in anaba, and the Mailchimp audience is left as it is."), "success")
    if next_step == "setup":
        return redirect_to(url_for("connector.setup"))
    return redirect_to(url_for("connector.index"))


@bp.post("/reconnect")
@customer_required
def reconnect() -> ResponseReturnValue:
    """Resume a paused connector, with a new API key or the same one once repaired (R19)."""
    connector = _connector_or_404()
    new_key = (request.form.get("api_key") or "").strip() or None
    problem = api_key_shape_error(new_key) if new_key else None
    if problem:  # refused before any call to Mailchimp
        flash(problem, "error")
        return redirect_to(url_for("connector.index") + "#reconnect")
    try:
        jobs.reconnect_connector(connector.id, current_user._get_current_object(), new_key)
    except (ConnectorError, MailchimpError) as exc:
        flash(error_text(exc), "error")
        return redirect_to(url_for("connector.index"))
    flash(_("Reconnected: the connector is running again and the copy goes on where it stopped."), "success")
    return redirect_to(url_for("connector.index"))


@bp.post("/webhook/register")
@customer_required
def reregister_webhook() -> ResponseReturnValue:
    """Register our Mailchimp webhook again (health panel, R21), in the background."""
    connector = _connector_or_404()
    try:
        jobs.reregister_webhook(connector.id)
    except ConnectorError as exc:
        flash(error_text(exc), "error")
    else:
        flash(_("The webhook is being registered again; the health panel shows the result in a few seconds."),
              "success")
    return redirect_to(url_for("connector.index"))


# --- wizard (R5) --------------------------------------------------------------------------

def _wizard() -> dict:
    return dict(session.get(WIZARD) or {})


def _save_wizard(**values: Any) -> None:
    data = _wizard()
    data.update(values)
    session[WIZARD] = data


def _wizard_key() -> str | None:
    """The API key typed at step 1, decrypted; None when absent or unreadable."""
    token = _wizard().get("key")
    if not token:
        return None
    try:
        return decrypt_secret(token, current_app.config["FERNET_KEY"])
    except Exception:  # a key changed or a tampered cookie: ask for the key again
        return None


def _existing_refusal() -> ResponseReturnValue | None:
    """The "one connector per workspace" page (R9), or None when the wizard may run."""
    connector = live_connector(workspace_id())
    if connector is None:
        return None
    status = 200 if request.method == "GET" else 409
    return render("connector/setup.html", "wizard", step="exists", connector=connector), status


STEP_URLS = {"key": "connector.setup_key_form", "audience": "connector.setup_audience_form",
             "mapping": "connector.setup_mapping_form"}


def _step(step: str, status: int = 200, form: PortalForm | None = None, **ctx: Any) -> ResponseReturnValue:
    wizard = _wizard()
    body = render("connector/setup.html", "wizard", step=step, key_hint=wizard.get("hint", ""),
                  audience_name=wizard.get("audience_name", ""), errors=form.messages if form else [], **ctx)
    # The address bar follows the wizard, so reloading a step shows that step again.
    headers = {"HX-Push-Url": url_for(STEP_URLS[step])} if is_htmx() and status == 200 and step in STEP_URLS else {}
    return body, status, headers


def _moved_to(step: str, **ctx: Any) -> ResponseReturnValue:
    """After a step's post succeeded: the next step, remembered so that the wizard opens there again
    (a reload, or coming back to /mailchimp/setup later in the session)."""
    _save_wizard(step=step)
    return _step(step, **ctx)


def _setup_error(err: Exception) -> str:
    """A refusal met while setting up: a refused key says what to check, never "reconnect"."""
    if isinstance(err, MailchimpError):
        return labels.setup_error(err.kind, err.field)
    return error_text(err)


def _expired() -> ResponseReturnValue:
    """Step 1 again, when the key kept between steps is gone (session expired, key rotated)."""
    form = ApiKeyForm(formdata=None)
    form.add_errors({"api_key": _("Your session expired: paste the API key again.")})
    return _step("key", 422, form)


@bp.get("/setup")
@customer_required
def setup() -> ResponseReturnValue:
    """The wizard where it was left (step 1, the API key, at first)."""
    refusal = _existing_refusal()
    if refusal:
        return refusal
    wizard = _wizard()
    if wizard.get("step") == "mapping" and wizard.get("fields") and _wizard_key():
        return _mapping_step()
    if wizard.get("step") in ("audience", "mapping") and _wizard_key():
        return _audience_step()
    return _step("key")


@bp.get("/setup/key")
@customer_required
def setup_key_form() -> ResponseReturnValue:
    """Step 1 (the "back" link of step 2): the API key, the one typed before kept unless replaced."""
    return _existing_refusal() or _step("key")


@bp.post("/setup/key")
@customer_required
def setup_key() -> ResponseReturnValue:
    """Check the key at once (R5); on success keep it encrypted and show the account's audiences.

    A value that does not look like a Mailchimp key is refused before any call.
    """
    refusal = _existing_refusal()
    if refusal:
        return refusal
    form = ApiKeyForm(kept_key=_wizard_key())
    if not form.validate_on_submit():
        return _step("key", 422, form)
    api_key = form.api_key.data
    try:
        account = mailchimp_access.check_api_key(api_key)
    except (MailchimpError, ConnectorError) as exc:
        form.add_errors({"api_key": _setup_error(exc)})
        return _step("key", 422, form)
    audiences = [
        {"id": str(a.get("id")), "name": a.get("name", ""), "member_count": a.get("member_count", 0)}
        for a in account.get("audiences", [])
    ]
    session[WIZARD] = {
        "key": encrypt_secret(api_key, current_app.config["FERNET_KEY"]),
        "hint": mask_api_key(api_key),
        "account": _account_name(account.get("account")),
        "audiences": audiences,
    }
    return _moved_to("audience", audiences=audiences, account=_wizard()["account"])


def _account_name(account: Any) -> str:
    if isinstance(account, dict):
        return str(account.get("account_name") or account.get("name") or account.get("email") or "")
    return str(account or "")


def _audience_step() -> ResponseReturnValue:
    wizard = _wizard()
    return _step("audience", audiences=wizard.get("audiences", []), account=wizard.get("account", ""),
                 selected=wizard.get("audience_id"))


def _mapping_step() -> ResponseReturnValue:
    return _step("mapping", **_mapping_context(_wizard()["fields"]))


@bp.get("/setup/audience")
@customer_required
def setup_audience_form() -> ResponseReturnValue:
    """Step 2 (also the "back" link of step 3, and a reload of step 2)."""
    refusal = _existing_refusal()
    if refusal:
        return refusal
    if not _wizard_key():
        return redirect_to(url_for("connector.setup"))
    return _audience_step()


@bp.get("/setup/mapping")
@customer_required
def setup_mapping_form() -> ResponseReturnValue:
    """Step 3 again (a reload of the mapping step); step 2 when no audience was read yet."""
    refusal = _existing_refusal()
    if refusal:
        return refusal
    if not _wizard_key():
        return redirect_to(url_for("connector.setup"))
    if not _wizard().get("fields"):
        return _audience_step()
    return _mapping_step()


@bp.post("/setup/audience")
@customer_required
def setup_audience() -> ResponseReturnValue:
    """Step 2 → 3: read the chosen audience's merge fields and propose a mapping."""
    refusal = _existing_refusal()
    if refusal:
        return refusal
    api_key = _wizard_key()
    if not api_key:
        return _expired()
    wizard = _wizard()
    audiences = wizard.get("audiences", [])
    form = AudienceForm(audiences=audiences)
    fields = None
    if form.validate_on_submit():
        try:
            fields = audience.audience_fields(api_key, form.audience_id.data)
        except MailchimpError as exc:
            form.add_errors({"audience_id": _setup_error(exc)})
    if fields is None:
        return _step("audience", 422, form, audiences=audiences, account=wizard.get("account", ""),
                     selected=form.audience_id.data)
    audience_id = form.audience_id.data
    names = {a["id"]: a["name"] for a in audiences}
    _save_wizard(audience_id=audience_id, audience_name=names[audience_id], fields=_compact_fields(fields))
    return _moved_to("mapping", **_mapping_context(_wizard()["fields"]))


def _compact_fields(fields: dict) -> dict:
    """The part of ``audience_fields`` the last step needs, small enough for the session cookie."""
    # options.size of a text merge field is the width of the sign-up form's input, not a
    # length limit, so it is not kept (the adapter applies Mailchimp's 255-character limit).
    merge_fields = [
        {"tag": mf.get("tag"), "name": mf.get("name", ""), "type": mf.get("type", "text"),
         "required": bool(mf.get("required"))}
        for mf in fields.get("merge_fields", [])
    ]
    return {
        "merge_fields": merge_fields,
        "proposed": [dict(p) for p in fields.get("proposed_mapping", [])],
        "new_fields": dict(fields.get("new_fields") or {}),
        "anaba_fields": [list(f) for f in fields.get("anaba_fields", [])],
        "unfillable_required": list(fields.get("unfillable_required", [])),
    }


def _mapping_context(fields: dict, chosen: dict | None = None) -> dict:
    proposed = {p["field"]: p for p in fields.get("proposed", [])}
    if chosen is None:
        chosen = {p["field"]: p["tag"] for p in fields.get("proposed", [])}
    existing = {mf["tag"] for mf in fields.get("merge_fields", [])}
    required = {mf["tag"]: mf for mf in fields.get("merge_fields", []) if mf.get("required") and mf["tag"] != "EMAIL"}
    mapped = {tag for tag in chosen.values() if tag}
    unfillable = [required[t] for t in required if t not in mapped]
    for tag in fields.get("unfillable_required", []):
        if tag not in mapped and tag not in {mf["tag"] for mf in unfillable}:
            unfillable.append(required.get(tag) or {"tag": tag, "name": tag, "type": "", "required": True})
    return {
        "merge_fields": [mf for mf in fields.get("merge_fields", []) if mf["tag"] != "EMAIL"],
        "proposed": proposed, "new_fields": new_merge_fields(fields), "anaba_fields": fields.get("anaba_fields", []),
        "chosen": chosen, "existing": existing, "unfillable": unfillable,
    }


@bp.post("/setup/submit")
@customer_required
def setup_submit() -> ResponseReturnValue:
    """Step 3: read the mapping, create the connector (waits for support; nothing sent to Mailchimp)."""
    refusal = _existing_refusal()
    if refusal:
        return refusal
    api_key = _wizard_key()
    wizard = _wizard()
    fields = wizard.get("fields")
    if not api_key or not fields:
        return _expired()
    form = MappingForm.for_fields(fields)
    if form.validate_on_submit():
        try:
            jobs.submit_connector(workspace_id(), current_user._get_current_object(), api_key,
                                  wizard["audience_id"], form.mapping, form.create_missing.data)
        except (ConnectorError, MailchimpError) as exc:
            form.add_errors([_setup_error(exc)])
        else:
            session.pop(WIZARD, None)
            flash(_("Your connector is saved. anaba's support team will check it before anything is written to "
                    "Mailchimp."), "success")
            return redirect_to(url_for("connector.index"))
    return _step("mapping", 422, form, create_missing=form.create_missing.data,
                 **_mapping_context(fields, form.chosen))


@bp.post("/setup/cancel")
@customer_required
def setup_cancel() -> ResponseReturnValue:
    """Forget what the wizard kept (the encrypted key included)."""
    session.pop(WIZARD, None)
    return redirect_to(url_for("connector.index"))


# --- errors (R19) -------------------------------------------------------------------------

@bp.get("/errors")
@customer_required
def errors() -> ResponseReturnValue:
    """The workspace's sync errors grouped by kind, each with its fix actions."""
    connector = live_connector(workspace_id())
    groups = error_fixes.error_groups(workspace_id(), connector.id) if connector else []
    return render("connector/errors.html", "errors_list", connector=connector, groups=groups)


def _contact_id_from_form() -> int:
    raw = (request.form.get("contact_id") or "").strip()
    contact_id = parse_id(raw)
    if contact_id is None:
        abort(404 if raw.isascii() and raw.isdigit() else 400)  # out of range: no such contact
    crm.get_contact(workspace_id(), contact_id)  # another workspace's contact → 404
    return contact_id


def _after_action(message: str) -> ResponseReturnValue:
    if is_htmx():
        connector = live_connector(workspace_id())
        groups = error_fixes.error_groups(workspace_id(), connector.id) if connector else []
        return render("connector/errors.html", "errors_list", connector=connector, groups=groups,
                      notice=message)
    flash(message, "success")
    return redirect(url_for("connector.errors"))


@bp.post("/errors/retry")
@customer_required
def retry() -> ResponseReturnValue:
    """Retry one contact (``contact_id``) or every contact in error (no ``contact_id``)."""
    connector = _connector_or_404()
    contact_ids = [_contact_id_from_form()] if request.form.get("contact_id") else None
    jobs.queue_retry(connector.id, contact_ids)
    if contact_ids:
        return _after_action(_("The contact will be sent to Mailchimp again in a few seconds."))
    return _after_action(_("Every contact in error will be sent to Mailchimp again in a few seconds."))


@bp.post("/errors/do-not-sync")
@customer_required
def do_not_sync() -> ResponseReturnValue:
    """Exclude a contact from Mailchimp (R19 "mark as not to be synced")."""
    _connector_or_404()
    contact_id = _contact_id_from_form()
    error_fixes.exclude(workspace_id(), contact_id, actor=current_user.email, channel=Channel.UI)
    return _after_action(_("This contact will no longer be sent to Mailchimp."))


@bp.post("/errors/owner")
@customer_required
def choose_owner() -> ResponseReturnValue:
    """This contact owns its shared e-mail address; the others sharing it are not synced (R19)."""
    _connector_or_404()
    contact_id = _contact_id_from_form()
    jobs.choose_email_owner(workspace_id(), contact_id, actor=current_user.email)
    return _after_action(_("This contact now owns the e-mail address; it will be sent to Mailchimp."))
