"""Support agents' area: workspaces at a glance, failed background jobs, the Outbox, and a
contact's consent history for a complaint or a regulator."""
from __future__ import annotations

from flask import Blueprint, Response, abort, render_template, request
from flask.typing import ResponseReturnValue

from portal import jobs, notify
from portal.crm import accounts
from portal.crm import contacts as crm
from portal.views.access import support_required

bp = Blueprint("support", __name__, url_prefix="/support")


@bp.get("/")
@support_required
def home() -> ResponseReturnValue:
    """Workspaces at a glance, and the background jobs that failed."""
    return render_template("support/home.html", rows=accounts.workspaces_with_counts(), failed_jobs=jobs.failed_jobs())


@bp.get("/outbox")
@support_required
def outbox() -> ResponseReturnValue:
    """Every e-mail the portal sent, newest first."""
    page = max(1, request.args.get("page", 1, type=int))
    return render_template("support/outbox.html", emails=notify.sent_emails(page), page=page)


@bp.get("/outbox/<int:email_id>")
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


@bp.get("/consent/<int:contact_id>.csv")
@support_required
def consent_export(contact_id: int) -> ResponseReturnValue:
    """A contact's consent history as a CSV file, whatever its workspace (R15)."""
    body = "\ufeff" + crm.consent_history_csv(None, contact_id)
    return Response(body.encode("utf-8"), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="consent-history-{contact_id}.csv"',
        "Cache-Control": "no-store"})
