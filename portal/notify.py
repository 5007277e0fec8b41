"""Outgoing e-mails: rendered from templates/email/<name>.txt|.html, sent over SMTP, always logged."""
from __future__ import annotations

import logging

from flask import current_app, render_template
from flask_babel import force_locale
from flask_mail import Message
from sqlalchemy import select

from portal.extensions import db, mail
from portal.models import EmailLog

log = logging.getLogger(__name__)


def send_email(kind: str, to: list[str] | str, subject: str, *, template: str | None = None,
               workspace_id: int | None = None, locale: str = "fr", **context) -> EmailLog:
    """Render and send one e-mail, and keep a copy in email_log whatever SMTP says.

    A failed SMTP delivery is logged with its error and never raises: a notification must not
    break the work that triggered it.
    """
    recipients = [to] if isinstance(to, str) else list(to)
    name = template or kind
    with force_locale(locale):
        text = render_template(f"email/{name}.txt", **context)
        try:
            html = render_template(f"email/{name}.html", **context)
        except Exception:  # the HTML part is optional
            html = ""
    entry = EmailLog(workspace_id=workspace_id, kind=kind, to=", ".join(recipients), subject=subject,
                     body_text=text, body_html=html)
    try:
        msg = Message(subject=subject, recipients=recipients, body=text, html=html or None,
                      sender=current_app.config["MAIL_DEFAULT_SENDER"])
        mail.send(msg)
    except Exception as exc:  # SMTP down or refused: record, do not crash the caller
        log.warning("e-mail %s to %s failed: %s", kind, recipients, exc)
        entry.status = "failed"
        entry.error = str(exc)[:2000]
    db.session.add(entry)
    db.session.commit()
    return entry


def sent_emails(page: int = 1, per_page: int = 50) -> list[EmailLog]:
    """One page of every e-mail the portal sent, newest first (support's Outbox)."""
    return list(db.session.scalars(
        select(EmailLog).order_by(EmailLog.id.desc()).offset((max(1, page) - 1) * per_page).limit(per_page)
    ))


def sent_email(email_id: int) -> EmailLog | None:
    """One sent e-mail."""
    return db.session.get(EmailLog, email_id)
