"""Support agents' area: what needs someone (connectors waiting, paused, copying, with errors), every
workspace with its connector, contacts and errors, a workspace's contacts (read only), failed
background jobs, the Outbox, and a contact's consent history for a complaint or a regulator."""
from __future__ import annotations

from flask import Blueprint, Response, abort, render_template, request
from flask.typing import ResponseReturnValue

from portal import jobs, notify
from portal.crm import contacts as crm
from portal.models import SyncState
from portal.security import int_arg, without_control_characters
from portal.sync import overview
from portal.views.access import support_required

bp = Blueprint("support", __name__, url_prefix="/support")

PER_PAGE = 50


@bp.get("/")
@support_required
def home() -> ResponseReturnValue:
    """Connectors that need someone, each with a link; every workspace with its links; failed jobs."""
    return render_template("support/home.html", view=overview.support_overview(), failed_jobs=jobs.failed_jobs())


@bp.get("/workspaces/<id:workspace_id>/contacts")
@support_required
def workspace_contacts(workspace_id: int) -> ResponseReturnValue:
    """A workspace's contacts with their Mailchimp state (read only: the customer edits them)."""
    state = request.args.get("mailchimp", "")
    q = without_control_characters(request.args.get("q", "")).strip()[:200]
    page = int_arg("page", 1, 1, 10**6)
    found = overview.workspace_contacts(workspace_id, q=q, state=state, page=page, per_page=PER_PAGE)
    if found is None:
        abort(404)
    return render_template("support/contacts.html", view=found, state=state if state in tuple(SyncState) else "",
                           q=q)


@bp.get("/outbox")
@support_required
def outbox() -> ResponseReturnValue:
    """Every e-mail the portal sent, newest first."""
    page = int_arg("page", 1, 1, 10**6)
    return render_template("support/outbox.html", emails=notify.sent_emails(page), page=page)


@bp.get("/outbox/<id:email_id>")
@support_required
def outbox_email(email_id: int) -> ResponseReturnValue:
    """One sent e-mail in full."""
    email = notify.sent_email(email_id)
    if email is None:
        abort(404)
    return render_template("support/outbox_email.html", email=email)


@bp.get("/consent")
@support_required
def consent_lookup() -> ResponseReturnValue:
    """Find a person by e-mail address in every workspace, to export their consent history (R15)."""
    email = request.args.get("email", "").strip()[:254]
    return render_template("support/consent.html", email=email,
                           found=crm.contacts_by_email_everywhere(email) if email else [])


@bp.get("/consent/<id:contact_id>.csv")
@support_required
def consent_export(contact_id: int) -> ResponseReturnValue:
    """A contact's consent history as a CSV file, whatever its workspace (R15)."""
    body = "\ufeff" + crm.consent_history_csv(None, contact_id)
    return Response(body.encode("utf-8"), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="consent-history-{contact_id}.csv"',
        "Cache-Control": "no-store"})
