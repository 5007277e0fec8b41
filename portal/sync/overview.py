"""What support's home shows (R7, R8, R19): the connectors that need someone — waiting for
validation, paused, copying, with errors — and every workspace with its connector, its contacts
and its errors, counted as every other page counts them (:mod:`portal.sync.counts`)."""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select

from portal.crm import contacts as crm
from portal.extensions import db
from portal.models import Connector, ConnectorStatus, Contact, ContactSync, RunKind, SyncRun, SyncState, Workspace
from portal.sync import counts
from portal.sync.contact_state import states_for
from portal.sync.lifecycle import connectors_with_workspaces, live_connector


@dataclass
class WorkspaceRow:
    """One workspace at a glance: its live contacts, its connector (if any) and what to fix there."""

    workspace: Workspace
    contacts: int
    connector: Connector | None = None
    errors: int = 0
    addresses_to_decide: int = 0


@dataclass
class Overview:
    """Support's home: connectors by what they need, and every workspace."""

    waiting: list[tuple[Connector, Workspace]] = field(default_factory=list)
    paused: list[tuple[Connector, Workspace]] = field(default_factory=list)
    copying: list[tuple[Connector, Workspace, SyncRun | None]] = field(default_factory=list)
    with_errors: list[tuple[Connector, Workspace, int, int]] = field(default_factory=list)
    workspaces: list[WorkspaceRow] = field(default_factory=list)


def support_overview() -> Overview:
    """The connectors that need someone, and every workspace with its figures."""
    out = Overview()
    live = [(c, w) for c, w in connectors_with_workspaces() if c.deleted_at is None]
    problems = counts.problems_by_connector(c.id for c, _w in live)
    copies = _latest_copies([c.id for c, _w in live if c.status == ConnectorStatus.COPYING])
    for connector, workspace in live:
        if connector.status == ConnectorStatus.PENDING_VALIDATION:
            out.waiting.append((connector, workspace))
        elif connector.status == ConnectorStatus.PAUSED:
            out.paused.append((connector, workspace))
        elif connector.status == ConnectorStatus.COPYING:
            out.copying.append((connector, workspace, copies.get(connector.id)))
        errors, shared = problems.get(connector.id, (0, 0))
        if errors or shared:
            out.with_errors.append((connector, workspace, errors, shared))
    out.with_errors.sort(key=lambda row: (-row[2], -row[3], row[1].name))
    by_workspace = {w.id: c for c, w in live}
    rows = db.session.execute(
        select(Workspace, func.count(Contact.id))
        .outerjoin(Contact, (Contact.workspace_id == Workspace.id) & Contact.deleted_at.is_(None))
        .group_by(Workspace.id).order_by(Workspace.name)).all()
    for workspace, n in rows:
        connector = by_workspace.get(workspace.id)
        errors, shared = problems.get(connector.id, (0, 0)) if connector else (0, 0)
        out.workspaces.append(WorkspaceRow(workspace, n, connector, errors, shared))
    return out


def _latest_copies(connector_ids: list[int]) -> dict[int, SyncRun]:
    if not connector_ids:
        return {}
    latest = select(func.max(SyncRun.id)).where(SyncRun.connector_id.in_(connector_ids),
                                                 SyncRun.kind == RunKind.INITIAL_COPY).group_by(SyncRun.connector_id)
    return {run.connector_id: run for run in db.session.scalars(select(SyncRun).where(SyncRun.id.in_(latest)))}


@dataclass
class WorkspaceContacts:
    """One page of a workspace's contacts with their Mailchimp state, for support (read only)."""

    workspace: Workspace
    connector: Connector | None
    page: crm.ContactPage
    states: dict[int, ContactSync]
    standing: counts.Standing | None


def workspace_contacts(workspace_id: int, *, q: str = "", state: str = "", page: int = 1,
                       per_page: int = 50) -> WorkspaceContacts | None:
    """A workspace's contacts (searched, filtered on a Mailchimp state) and where they stand; None
    for an unknown workspace."""
    workspace = db.session.get(Workspace, workspace_id)
    if workspace is None:
        return None
    connector = live_connector(workspace.id)
    wanted = (connector.id, state) if connector and state in tuple(SyncState) else None
    found = crm.search_contacts(workspace.id, q=q, sync_state=wanted, page=page, per_page=per_page)
    states = states_for(connector.id, [c.id for c in found.items]) if connector else {}
    standing = counts.standing(connector) if connector and connector.status in (
        ConnectorStatus.COPYING, ConnectorStatus.ACTIVE, ConnectorStatus.PAUSED) else None
    return WorkspaceContacts(workspace, connector, found, states, standing)
