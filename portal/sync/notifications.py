"""The e-mails the connector's life cycle sends: to support when a connector waits for
validation, to the customers when it is sent back, paused, or when the first copy is done (R7, R8)."""
from __future__ import annotations

from typing import Any

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import select

from portal.extensions import db
from portal.mailchimp.errors import N_
from portal.models import Connector, Role, SyncRun, User, Workspace
from portal.notify import send_email
from portal.sync import counts

ERRORS_PATH = "/mailchimp/errors"
CONNECTOR_PATH = "/mailchimp/"


def customer_recipients(workspace_id: int) -> list[User]:
    """The workspace's active customer users."""
    return list(db.session.scalars(
        select(User).where(User.workspace_id == workspace_id, User.role == Role.CUSTOMER, User.active.is_(True))
    ))


def public_url(path: str) -> str:
    """An absolute link into the portal (e-mails)."""
    return current_app.config["PUBLIC_BASE_URL"].rstrip("/") + path


def _notify_customers(connector: Connector, kind: str, subject_msgid: str, **context: Any) -> None:
    workspace = db.session.get(Workspace, connector.workspace_id)
    for user in customer_recipients(connector.workspace_id):
        locale = user.locale or "fr"
        with force_locale(locale):
            subject = _(subject_msgid)
        send_email(kind, user.email, subject, workspace_id=connector.workspace_id, locale=locale,
                   connector=connector, workspace=workspace, user=user,
                   connector_url=public_url(CONNECTOR_PATH), errors_url=public_url(ERRORS_PATH), **context)


def notify_support_submitted(connector: Connector) -> None:
    """Tell support a connector waits for validation (with the link to its validation page)."""
    workspace = db.session.get(Workspace, connector.workspace_id)
    with force_locale("fr"):
        subject = _("Mailchimp connector to validate: %(workspace)s", workspace=workspace.name)
    send_email("connector_submitted", current_app.config["SUPPORT_EMAIL"], subject,
               workspace_id=connector.workspace_id, locale="fr", connector=connector, workspace=workspace,
               validation_url=public_url(f"/support/connectors/{connector.id}"),
               queue_url=public_url("/support/connectors/"))


def notify_sent_back(connector: Connector, reason: str) -> None:
    """Tell the customers support sent their connector back, and why (R7)."""
    _notify_customers(connector, "connector_sent_back", N_("Your Mailchimp connector needs a change"),
                      reason=reason)


def notify_paused(connector: Connector, error_kind: str) -> None:
    """Tell the customers the connector is paused (key revoked, audience gone) and how to resume."""
    _notify_customers(connector, "connector_paused", N_("Your Mailchimp connector is paused"),
                      error_kind=error_kind)


def notify_copy_finished(connector: Connector, run: SyncRun) -> None:
    """E-mail the customers the copy's figures (as every page counts them) and the link to the errors (R8)."""
    figures = counts.from_copy(run)
    _notify_customers(connector, "copy_finished", N_("Your contacts are in Mailchimp"), run=run, figures=figures,
                      addresses_to_decide=counts.addresses_to_decide(connector.id))
