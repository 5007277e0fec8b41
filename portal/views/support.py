"""Support agents' area: the connector queue (filled by the connector issue) and the Outbox."""
from __future__ import annotations

from flask import Blueprint, render_template, request
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import EmailLog, Workspace, Contact
from portal.views.access import support_required

bp = Blueprint("support", __name__, url_prefix="/support")


@bp.get("/")
@support_required
def home():
    """Workspaces at a glance."""
    rows = db.session.execute(
        select(Workspace, func.count(Contact.id))
        .outerjoin(Contact, (Contact.workspace_id == Workspace.id) & Contact.deleted_at.is_(None))
        .group_by(Workspace.id).order_by(Workspace.name)
    ).all()
    return render_template("support/home.html", rows=rows)


@bp.get("/outbox")
@support_required
def outbox():
    """Every e-mail the portal sent, newest first."""
    page = max(1, request.args.get("page", 1, type=int))
    emails = list(db.session.scalars(
        select(EmailLog).order_by(EmailLog.id.desc()).offset((page - 1) * 50).limit(50)
    ))
    return render_template("support/outbox.html", emails=emails, page=page)


@bp.get("/outbox/<int:email_id>")
@support_required
def outbox_email(email_id: int):
    """One sent e-mail in full."""
    email = db.get_or_404(EmailLog, email_id)
    return render_template("support/outbox_email.html", email=email)
