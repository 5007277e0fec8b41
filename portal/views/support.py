"""Support agents' area: the connector queue (filled by the connector issue) and the Outbox."""
from __future__ import annotations

from flask import Blueprint, render_template, request
from sqlalchemy import func, select

from portal.extensions import db, rq
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
    return render_template("support/home.html", rows=rows, failed_jobs=failed_jobs())


def failed_jobs(limit: int = 20) -> list[dict]:
    """The most recent failed background jobs across queues (RQ's failed registry)."""
    from rq.job import Job

    found = []
    for name in rq.NAMES:
        registry = rq.queue(name).failed_job_registry
        ids = registry.get_job_ids(0, limit - 1)
        for job in Job.fetch_many(ids, connection=rq.redis):
            if job is not None:
                result = job.latest_result()
                trace = (result.exc_string if result is not None else "") or ""
                lines = trace.strip().splitlines()
                found.append({"id": job.id, "queue": name, "func": job.func_name, "ended_at": job.ended_at,
                              "error": lines[-1] if lines else ""})
    return sorted(found, key=lambda j: str(j["ended_at"]), reverse=True)[:limit]


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
