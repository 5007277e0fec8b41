"""Sync errors and their fix actions (R19): the error list grouped by kind, retrying contacts,
choosing which contact owns a shared e-mail address.

Excluding a contact ("mark as not to be synced") is ``crm.contacts.set_do_not_sync``; editing
one is the contact form; reconnecting is :func:`portal.sync.lifecycle.reconnect`. Transient
Mailchimp problems never appear here: they are not stored on contacts.
"""
from __future__ import annotations


from flask_babel import gettext as _
from sqlalchemy import func, select

from portal import labels
from portal.crm.contacts import get_contact, update_contact
from portal.extensions import db
from portal.mailchimp.errors import KINDS
from portal.models import (Channel, Connector, ConnectorStatus, Contact, ContactSync, NotSyncedReason, SyncState,
                           Workspace)
from portal.sync import ConnectorError
from portal.sync.contact_state import ensure_rows, states_for
from portal.sync.push import EMAIL_CHANGE_CONFLICT
from portal.sync.lifecycle import live_connector

GROUP_SAMPLE = 50
DUPLICATE_EMAIL = "duplicate_email"


def error_groups(workspace_id: int | None = None, connector_id: int | None = None) -> list[dict]:
    """Contacts in error grouped by kind: ``{kind, title, message, fix, count, items}``.

    ``items`` are the first 50 ``(contact, sync_row)`` pairs. Contacts left out because
    another contact owns their e-mail are listed as ``duplicate_email`` (fix: choose the
    owner). None for both = every live connector (support).
    """
    live = select(Connector.id).where(Connector.deleted_at.is_(None))
    if workspace_id is not None:
        live = live.where(Connector.workspace_id == workspace_id)
    if connector_id is not None:
        live = live.where(Connector.id == connector_id)
    errors = ContactSync.state == SyncState.ERROR
    shared = (ContactSync.state == SyncState.NOT_SYNCED) & (ContactSync.reason == NotSyncedReason.SHARED_EMAIL)
    kind_col = db.case((shared, DUPLICATE_EMAIL), else_=ContactSync.error_kind)
    # A contact deleted or excluded since its last push is no longer an error to fix.
    where = [ContactSync.connector_id.in_(live), Contact.deleted_at.is_(None), Contact.do_not_sync.is_(False)]
    counts = db.session.execute(
        select(kind_col.label("kind"), func.count()).select_from(ContactSync)
        .join(Contact, Contact.id == ContactSync.contact_id)
        .where(*where, errors | shared).group_by(kind_col).order_by(func.count().desc())
    ).all()
    groups = []
    for kind, count in counts:
        kind_filter = shared if kind == DUPLICATE_EMAIL else (errors & (ContactSync.error_kind == kind))
        pairs = db.session.execute(
            select(Contact, ContactSync).join(Contact, Contact.id == ContactSync.contact_id)
            .where(*where, kind_filter).order_by(ContactSync.contact_id).limit(GROUP_SAMPLE)
        ).all()
        fields = {row.error_field for _c, row in pairs if row.error_field}
        info = KINDS.get(kind) or KINDS["unknown"]
        groups.append({
            "kind": kind, "count": count, "fix": info.fix, "title": labels.error_title(kind),
            "message": labels.error_message(kind, ", ".join(sorted(fields)) if fields else None),
            "items": [(c, s) for c, s in pairs],
        })
    return groups


def workspace_names() -> dict[int, str]:
    """Every workspace's name by id (support's cross-workspace error list)."""
    return {w.id: w.name for w in db.session.scalars(select(Workspace))}


def contacts_in_error(connector_id: int) -> list[int]:
    """The connector's contacts whose last push failed, by id."""
    return list(db.session.scalars(
        select(ContactSync.contact_id).where(ContactSync.connector_id == connector_id,
                                             ContactSync.state == SyncState.ERROR).order_by(ContactSync.contact_id)
    ))


def choose_email_owner(workspace_id: int, contact_id: int, *, actor: str = "portal") -> tuple[Connector, list[int]]:
    """Make this contact the owner of the e-mail it shares with others (R19), or of the address the
    person gave Mailchimp when another contact has it already (``email_change_conflict``).

    Returns the connector and the ids of every contact sharing the address: they must be
    pushed again (the owner overwrites the member, the others become "not synced").
    """
    contact = get_contact(workspace_id, contact_id)
    connector = live_connector(workspace_id)
    if connector is None or not contact.email_normalized:
        raise ConnectorError(_("There is no Mailchimp connector or the contact has no e-mail."))
    row = states_for(connector.id, [contact.id]).get(contact.id)
    if row is not None and row.error_kind == EMAIL_CHANGE_CONFLICT and row.member_email \
            and row.member_email != contact.email_normalized:
        # The person changed their address in Mailchimp to one another contact has: this contact
        # takes the new address and owns it (the others sharing it are then not sent).
        contact = update_contact(workspace_id, contact.id, {"email": row.member_email}, actor=actor,
                                 channel=Channel.UI)
    sharing = list(db.session.scalars(
        select(Contact.id).where(Contact.workspace_id == workspace_id, Contact.deleted_at.is_(None),
                                 Contact.email_normalized == contact.email_normalized)
    ))
    for cid, row in ensure_rows(connector, sharing).items():
        row.owner_chosen = cid == contact.id
    db.session.commit()
    pushable = connector.status in (ConnectorStatus.ACTIVE, ConnectorStatus.COPYING)
    return connector, sharing if pushable else []
