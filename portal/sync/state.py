"""Reading and moving each contact's sync state (R17)."""
from __future__ import annotations

from sqlalchemy import select, update

from portal.extensions import db
from portal.models import Connector, ContactSync


def live_connector(workspace_id: int) -> Connector | None:
    """The workspace's connector that is not deleted, if any."""
    return db.session.scalar(
        select(Connector).where(Connector.workspace_id == workspace_id, Connector.deleted_at.is_(None))
    )


def states_for(connector_id: int, contact_ids: list[int]) -> dict[int, ContactSync]:
    """The sync rows of these contacts for one connector, by contact id."""
    if not contact_ids:
        return {}
    rows = db.session.scalars(
        select(ContactSync).where(ContactSync.connector_id == connector_id, ContactSync.contact_id.in_(contact_ids))
    )
    return {r.contact_id: r for r in rows}


def mark_changed(workspace_id: int, contact_ids: list[int]) -> None:
    """After a committed change, show "pending" for contacts already known to an active connector."""
    connector = live_connector(workspace_id)
    if connector is None or connector.status != "active":
        return
    db.session.execute(
        update(ContactSync)
        .where(ContactSync.connector_id == connector.id, ContactSync.contact_id.in_(contact_ids),
               ContactSync.state == "synced")
        .values(state="pending")
    )
    db.session.commit()
