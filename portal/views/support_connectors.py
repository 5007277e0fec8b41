"""Support's connector area: the validation queue, the validation page with its audience checks
and dry-run preview (R7), validate / send back, the copy's live progress (R8), the campaign
activity imports with "import now" (R18), and the sync errors of every workspace (R19).

Views stay thin: they read the request, call one function of ``portal.sync`` (or ``portal.jobs``
when the action starts background work) and render. The validate and send-back decisions read
their post through forms of ``portal.views.forms``; a refused one answers 422 (nothing ticked,
no reason) or 409 (the connector no longer waits) with the message by its form.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user

from portal import jobs, labels
from portal.crm import contacts as crm
from portal.htmx import is_htmx, render
from portal.mailchimp import MailchimpError
from portal.models import Connector, ConnectorStatus, RunKind
from portal.security import id_arg, parse_id, safe_next
from portal.sync import (ConnectorError, activity_import, audience, counts, error_fixes, lifecycle,
                         webhooks)
from portal.sync import runs as sync_runs
from portal.views.access import support_required
from portal.views.connector import error_text, health_context, progress_context, progress_response, standing_context
from portal.views.forms import SendBackForm, ValidateConnectorForm

bp = Blueprint("support_connectors", __name__, url_prefix="/support/connectors")

STATUS_FILTERS = (*ConnectorStatus, "all")


def _connector(connector_id: int) -> Connector:
    try:
        return lifecycle.get_connector(connector_id)
    except ConnectorError:
        abort(404)


@bp.get("/")
@support_required
def queue() -> ResponseReturnValue:
    """Connectors of every workspace, oldest submitted first; waiting for validation by default."""
    status = request.args.get("status", ConnectorStatus.PENDING_VALIDATION)
    if status not in STATUS_FILTERS:
        status = ConnectorStatus.PENDING_VALIDATION
    rows = lifecycle.connectors_with_workspaces(None if status == "all" else ConnectorStatus(status))
    return render("support/connectors/queue.html", "queue_table", rows=rows, status=status,
                  statuses=STATUS_FILTERS)


def _preview_context(connector: Connector) -> dict[str, Any]:
    run = sync_runs.latest_run(connector.id, RunKind.PREVIEW)
    ctx = progress_context(run, url_for("support_connectors.preview", connector_id=connector.id))
    ctx["connector"] = connector
    return ctx


def _checks_context(connector: Connector) -> dict[str, Any]:
    """The audience checks' partial: the latest checks run (computed in the background), its checks in words."""
    run = sync_runs.latest_run(connector.id, RunKind.AUDIENCE_CHECK)
    ctx = progress_context(run, url_for("support_connectors.checks", connector_id=connector.id))
    ctx["connector"] = connector
    ctx["found"] = audience.describe_checks((run.result or {}).get("facts", [])) if run is not None else []
    return ctx


def _page(connector: Connector, status: int = 200, **extra: Any) -> ResponseReturnValue:
    """The validation page, or its "decision" block (status, decision forms, copy progress) for htmx.

    ``validate_form`` / ``send_back_form`` in `extra` are the posted forms, shown with their messages.
    The audience checks come from their background run: the page never waits on Mailchimp.
    """
    extra.setdefault("validate_form", ValidateConnectorForm(formdata=None))
    extra.setdefault("send_back_form", SendBackForm(formdata=None))
    copy_run = sync_runs.latest_run(connector.id, RunKind.INITIAL_COPY)
    consent_run = sync_runs.latest_run(connector.id, RunKind.CONSENT_IMPORT)
    runs = sync_runs.history(connector.id)
    standing = standing_context(connector)
    body = render(
        "support/connectors/show.html", "decision", connector=connector, checks=_checks_context(connector),
        preview=_preview_context(connector), runs=runs, run_figures=counts.of_runs(runs),
        standing=standing, health=health_context(connector, standing),
        copy=progress_context(copy_run, url_for("support_connectors.progress", run_id=copy_run.id) if copy_run else ""),
        consent=progress_context(
            consent_run, url_for("support_connectors.progress", run_id=consent_run.id) if consent_run else ""),
        **extra,
    )
    return body, status


@bp.post("/<id:connector_id>/reconcile")
@support_required
def reconcile(connector_id: int) -> ResponseReturnValue:
    """Reconcile the connector with its audience now (R22); the run appears in the history."""
    connector = _connector(connector_id)
    try:
        jobs.reconcile_now(connector.id)
    except ConnectorError as exc:
        flash(exc.message, "error")
    else:
        flash(_("Reconciliation started: what changed in Mailchimp is compared with anaba and put back."), "success")
    return redirect(url_for("support_connectors.show", connector_id=connector.id))


@bp.post("/<id:connector_id>/webhook")
@support_required
def reregister_webhook(connector_id: int) -> ResponseReturnValue:
    """Register the connector's Mailchimp webhook again (R21), in the background."""
    connector = _connector(connector_id)
    try:
        jobs.reregister_webhook(connector.id)
    except ConnectorError as exc:
        flash(exc.message, "error")
    else:
        flash(_("The webhook is being registered again; the health panel shows the result in a few seconds."),
              "success")
    return redirect(url_for("support_connectors.show", connector_id=connector.id))


@bp.get("/<id:connector_id>/webhook-events")
@support_required
def webhook_events(connector_id: int) -> ResponseReturnValue:
    """What Mailchimp sent to the connector's webhook and what became of it (R21); `?status=rejected`
    shows the requests refused, kept for inspection."""
    connector = _connector(connector_id)
    status = request.args.get("status", "")
    return render("support/connectors/webhook_events.html", connector=connector, status=status,
                  events=webhooks.recent_events(connector.id, status))


@bp.get("/<id:connector_id>")
@support_required
def show(connector_id: int) -> ResponseReturnValue:
    """The validation page: configuration, audience checks, preview, decision, progress, history."""
    return _page(_connector(connector_id))


@bp.get("/<id:connector_id>/checks")
@support_required
def checks(connector_id: int) -> ResponseReturnValue:
    """The audience checks partial ("checking…" polls itself while the checks run)."""
    return render("support/connectors/_checks.html", **_checks_context(_connector(connector_id)))


@bp.post("/<id:connector_id>/checks")
@support_required
def recheck(connector_id: int) -> ResponseReturnValue:
    """Check the audience again (its merge fields or webhook changed since)."""
    connector = _connector(connector_id)
    error = None
    try:
        jobs.check_audience_now(connector.id)
    except ConnectorError as exc:
        error = exc.message
    if is_htmx():
        return render("support/connectors/_checks.html", checks_error=error, **_checks_context(connector))
    if error:
        flash(error, "error")
    return redirect(url_for("support_connectors.show", connector_id=connector.id))


@bp.get("/<id:connector_id>/preview")
@support_required
def preview(connector_id: int) -> ResponseReturnValue:
    """The preview partial ("computing…" polls itself while the preview run is running)."""
    connector = _connector(connector_id)
    return render("support/connectors/_preview.html", **_preview_context(connector))


@bp.post("/<id:connector_id>/preview")
@support_required
def recompute_preview(connector_id: int) -> ResponseReturnValue:
    """Start a fresh preview (the base or the audience changed since)."""
    connector = _connector(connector_id)
    error = None
    try:
        jobs.recompute_preview(connector.id)
    except (ConnectorError, MailchimpError) as exc:
        error = error_text(exc)
    if is_htmx():
        return render("support/connectors/_preview.html", preview_error=error, **_preview_context(connector))
    if error:
        flash(error, "error")
    return redirect(url_for("support_connectors.show", connector_id=connector.id))


def _decided(connector: Connector, message: str) -> ResponseReturnValue:
    if is_htmx():
        return _page(connector, notice=message)
    flash(message, "success")
    return redirect(url_for("support_connectors.show", connector_id=connector.id))


@bp.post("/<id:connector_id>/validate")
@support_required
def validate(connector_id: int) -> ResponseReturnValue:
    """Validate: missing merge fields are created and the first copy starts (R8)."""
    connector = _connector(connector_id)
    form = ValidateConnectorForm()
    if not form.validate_on_submit():
        return _page(connector, 422, validate_form=form)
    try:
        jobs.validate_connector(connector.id, current_user._get_current_object())
    except (ConnectorError, MailchimpError) as exc:
        form.add_errors([error_text(exc)])
        return _page(connector, 409, validate_form=form)
    return _decided(connector, _("Connector validated: the first copy has started."))


@bp.post("/<id:connector_id>/send-back")
@support_required
def send_back(connector_id: int) -> ResponseReturnValue:
    """Send the connector back to the customer with a reason they see and receive by e-mail."""
    connector = _connector(connector_id)
    form = SendBackForm()
    if not form.validate_on_submit():
        return _page(connector, 422, send_back_form=form)
    try:
        lifecycle.send_back(connector.id, current_user._get_current_object(), form.reason.data)
    except ConnectorError as exc:
        form.add_errors([error_text(exc)])
        return _page(connector, 409, send_back_form=form)
    return _decided(connector, _("Connector sent back; the customer has been told by e-mail."))


@bp.route("/<id:connector_id>/activity", methods=["GET", "POST"])
@support_required
def activity(connector_id: int) -> ResponseReturnValue:
    """The campaign activity card (R18): next weekly import and the latest imports; POST is support's
    "import now" (the run starts on the `reports` queue, or the one already queued is shown)."""
    connector = _connector(connector_id)
    notice, error, status = None, None, 200
    if request.method == "POST":
        try:
            jobs.import_activity_now(connector.id)
            notice = _("Campaign activity import started.")
        except ConnectorError as exc:
            error, status = error_text(exc), 409
        if not is_htmx():
            flash(error or notice, "error" if error else "success")
            return redirect(url_for("support_connectors.show", connector_id=connector.id))
    return render("support/connectors/_activity.html", notice=notice, error=error,
                  **activity_import.overview(connector.id)), status


@bp.get("/runs/<id:run_id>/progress")
@support_required
def progress(run_id: int) -> ResponseReturnValue:
    """The progress bar of any run, for support; it polls itself until the run is over."""
    run = sync_runs.get(run_id)
    if run is None:
        abort(404)
    return progress_response(run, url_for("support_connectors.progress", run_id=run.id))


@bp.get("/errors")
@support_required
def errors() -> ResponseReturnValue:
    """Sync errors of every workspace (or of one, ``?workspace=<id>``), grouped by kind, with the
    workspace of each contact and the actions support can take."""
    workspace = id_arg("workspace")
    return render("support/connectors/errors.html", groups=error_fixes.error_groups(workspace, None),
                  workspaces=error_fixes.workspace_names(), workspace=workspace,
                  connectors=error_fixes.connectors_in_error(workspace))


def _back(connector: Connector) -> ResponseReturnValue:
    """Back where the action was asked from (a page of the support area), else the connector's page."""
    target = safe_next(request.form.get("next"))
    if target and target.startswith("/support/"):
        return redirect(target)
    return redirect(url_for("support_connectors.show", connector_id=connector.id))


@bp.post("/<id:connector_id>/retry")
@support_required
def retry(connector_id: int) -> ResponseReturnValue:
    """Retry one contact in error (``contact_id``) or every contact in error of the connector (R19)."""
    connector = _connector(connector_id)
    contact_id = parse_id(request.form.get("contact_id"))
    if request.form.get("contact_id") and not contact_id:
        abort(400)
    if contact_id:
        crm.get_contact(connector.workspace_id, contact_id)  # a contact of another workspace → 404
    try:
        jobs.queue_retry(connector.id, [contact_id] if contact_id else None)
    except ConnectorError as exc:
        flash(exc.message, "error")
        return _back(connector)
    if connector.status != ConnectorStatus.ACTIVE:
        flash(_("The connector is not active (%(status)s): the contacts are sent once it is.",
                status=labels.connector_status(connector.status)), "error")
    else:
        flash(_("The contact will be sent to Mailchimp again in a few seconds.") if contact_id
              else _("Every contact in error will be sent to Mailchimp again in a few seconds."), "success")
    return _back(connector)


@bp.post("/<id:connector_id>/pause")
@support_required
def pause(connector_id: int) -> ResponseReturnValue:
    """Pause an active connector (nothing is sent until support resumes it); the customers are told."""
    connector = _connector(connector_id)
    try:
        lifecycle.pause_by_support(connector.id, current_user._get_current_object())
    except ConnectorError as exc:
        flash(exc.message, "error")
    else:
        flash(_("Connector paused: nothing is sent to Mailchimp until you resume it. The customer has been told."),
              "success")
    return _back(connector)


@bp.post("/<id:connector_id>/resume")
@support_required
def resume(connector_id: int) -> ResponseReturnValue:
    """Resume a paused connector (its key must reach the audience); the changes made meanwhile are sent."""
    connector = _connector(connector_id)
    try:
        jobs.reconnect_connector(connector.id, current_user._get_current_object())
    except (ConnectorError, MailchimpError) as exc:
        flash(error_text(exc), "error")
    else:
        flash(_("Connector resumed: the changes made meanwhile are being sent."), "success")
    return _back(connector)
