"""Support agents' area: workspaces at a glance, failed background jobs, and the Outbox."""
from __future__ import annotations

from flask import Blueprint, abort, render_template
from flask.typing import ResponseReturnValue

from portal import jobs, notify
from portal.crm import accounts
from portal.security import int_arg
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
