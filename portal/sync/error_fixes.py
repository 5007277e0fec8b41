"""Sync errors and their fix actions (R19): the error list grouped by kind, shared addresses to
decide, and the fixes — saving a corrected contact, excluding one, choosing which contact owns a
shared address — each written to the contact's History with what it changed.

Retrying is ``portal.jobs.queue_retry`` (the contacts wait as pending and replication pushes
them); reconnecting is :func:`portal.sync.lifecycle.reconnect`. Transient Mailchimp problems never
appear here: they are not stored on contacts. What counts as an error is
:func:`portal.sync.counts.error_rows`, the one definition the counts on every page use.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from flask_babel import gettext as _
from sqlalchemy import select

from portal import labels
from portal.crm import contacts as crm
from portal.extensions import db
from portal.mailchimp.errors import KINDS
from portal.models import (Channel, Connector, ConnectorStatus, Contact, ContactSync, SyncEvent, SyncEventKind,
                           SyncState, Workspace, utcnow)
from portal.sync import ConnectorError
from portal.sync.contact_state import ensure_rows, states_for
from portal.sync.counts import error_rows, errors_by_kind, problems_by_connector, undecided_shared_rows
from portal.sync.eligibility import owners_for
from portal.sync.push import EMAIL_CHANGE_CONFLICT
from portal.sync.lifecycle import live_connector

GROUP_SAMPLE = 50
DUPLICATE_EMAIL = "duplicate_email"


@dataclass
class SharedAddress:
    """One address several contacts share: each contact once, side by side, and who owns it now."""

    email: str
    workspace_id: int
    connector_id: int
    owner_id: int | None
    contacts: list[tuple[Contact, ContactSync | None]] = field(default_factory=list)


def _live_connectors(workspace_id: int | None, connector_id: int | None):
    live = select(Connector.id).where(Connector.deleted_at.is_(None))
    if workspace_id is not None:
        live = live.where(Connector.workspace_id == workspace_id)
    if connector_id is not None:
        live = live.where(Connector.id == connector_id)
    return live


def error_groups(workspace_id: int | None = None, connector_id: int | None = None) -> list[dict]:
    """Contacts in error grouped by kind: ``{kind, title, message, fix, count, items}``, most first.

    ``items`` are the first 50 ``(contact, sync_row)`` pairs. Shared addresses nobody chose an owner
    for come last as one ``duplicate_email`` group whose ``addresses`` list each address once with
    every contact using it (:class:`SharedAddress`); its ``count`` is the number of addresses and
    ``items`` the contacts not sent. None for both = every live connector (support).
    """
    live = _live_connectors(workspace_id, connector_id)
    by_kind: Counter[str] = Counter()
    for live_id in db.session.scalars(live):
        by_kind.update(errors_by_kind(live_id))
    groups = []
    for kind, count in sorted(by_kind.items(), key=lambda item: (-item[1], item[0])):
        pairs = db.session.execute(
            select(Contact, ContactSync).join(Contact, Contact.id == ContactSync.contact_id)
            .where(ContactSync.connector_id.in_(live), error_rows(), ContactSync.error_kind == kind)
            .order_by(ContactSync.contact_id).limit(GROUP_SAMPLE)
        ).all()
        fields = {row.error_field for _c, row in pairs if row.error_field}
        info = KINDS.get(kind) or KINDS["unknown"]
        groups.append({
            "kind": kind, "count": count, "fix": info.fix, "title": labels.error_title(kind),
            "message": labels.error_message(kind, ", ".join(sorted(fields)) if fields else None),
            "items": [(c, s) for c, s in pairs],
        })
    undecided = _undecided_keys(live)
    shared = shared_addresses(live, keys=undecided[:GROUP_SAMPLE])
    if shared:
        groups.append({
            "kind": DUPLICATE_EMAIL, "count": len(undecided), "fix": KINDS[DUPLICATE_EMAIL].fix,
            "title": labels.error_title(DUPLICATE_EMAIL), "message": labels.error_message(DUPLICATE_EMAIL),
            "addresses": shared,
            "items": [(c, s) for a in shared for c, s in a.contacts if c.id != a.owner_id],
        })
    return groups


def _undecided_keys(live, limit: int | None = None) -> list[tuple[int, int, str]]:
    """``(connector_id, workspace_id, address)`` of every shared address nobody chose an owner for
    (the first `limit`), by address: one read gives the error list both its count and its sample."""
    keys = (select(ContactSync.connector_id, Contact.workspace_id, Contact.email_normalized)
            .join(Contact, Contact.id == ContactSync.contact_id)
            .where(ContactSync.connector_id.in_(live), undecided_shared_rows())
            .group_by(ContactSync.connector_id, Contact.workspace_id, Contact.email_normalized)
            .order_by(Contact.email_normalized))
    if limit is not None:
        keys = keys.limit(limit)
    return [tuple(row) for row in db.session.execute(keys).all()]


def shared_addresses(live=None, limit: int = GROUP_SAMPLE,
                     keys: Sequence[tuple[int, int, str]] | None = None) -> list[SharedAddress]:
    """Shared addresses whose owner nobody chose yet (the first `limit`, or the `keys` given), each
    with every live contact using it and the contact that owns it now (the oldest, by the owner rule)."""
    if keys is None:
        keys = _undecided_keys(live if live is not None else _live_connectors(None, None), limit)
    emails_of: dict[tuple[int, int], list[str]] = defaultdict(list)
    for connector_id, ws_id, email in keys:
        emails_of[(connector_id, ws_id)].append(email)
    found: dict[tuple[int, str], SharedAddress] = {}
    for (connector_id, ws_id), emails in emails_of.items():  # a few queries per connector, not per address
        sharing: dict[str, list[Contact]] = defaultdict(list)
        for contact in db.session.scalars(select(Contact).where(
                Contact.workspace_id == ws_id, Contact.email_normalized.in_(emails),
                Contact.deleted_at.is_(None)).order_by(Contact.id)):
            sharing[contact.email_normalized].append(contact)
        rows = states_for(connector_id, [c.id for people in sharing.values() for c in people])
        owners = owners_for(ws_id, connector_id, emails)
        for email in emails:
            found[(connector_id, email)] = SharedAddress(
                email=email, workspace_id=ws_id, connector_id=connector_id, owner_id=owners.get(email),
                contacts=[(c, rows.get(c.id)) for c in sharing[email]])
    return [found[(connector_id, email)] for connector_id, _ws, email in keys]


def owners_of(workspace_id: int, connector_id: int, contacts: Sequence[Contact]) -> dict[int, Contact]:
    """For each of these contacts left out because another contact owns its address, that owner."""
    emails = [c.email_normalized for c in contacts if c.email_normalized]
    owners = owners_for(workspace_id, connector_id, emails) if emails else {}
    wanted = {oid for oid in owners.values()}
    people = {c.id: c for c in db.session.scalars(select(Contact).where(Contact.id.in_(sorted(wanted))))} \
        if wanted else {}
    return {c.id: people[owners[c.email_normalized]] for c in contacts
            if c.email_normalized in owners and owners[c.email_normalized] != c.id
            and owners[c.email_normalized] in people}


def connectors_in_error(workspace_id: int | None = None) -> list[tuple[Connector, Workspace, int, int]]:
    """Live connectors with errors or addresses to decide: ``(connector, workspace, errors, addresses)``,
    most errors first (support's error list: pause, retry or open each)."""
    problems = problems_by_connector()
    if not problems:
        return []
    query = select(Connector, Workspace).join(Workspace, Workspace.id == Connector.workspace_id).where(
        Connector.id.in_(list(problems)), Connector.deleted_at.is_(None))
    if workspace_id is not None:
        query = query.where(Connector.workspace_id == workspace_id)
    rows = [(c, w, *problems[c.id]) for c, w in db.session.execute(query).all()]
    return sorted(rows, key=lambda r: (-r[2], -r[3], r[1].name))


def workspace_names() -> dict[int, str]:
    """Every workspace's name by id (support's cross-workspace error list)."""
    return {w.id: w.name for w in db.session.scalars(select(Workspace))}


def contacts_in_error(connector_id: int) -> list[int]:
    """The connector's contacts in error (as every page counts them), by id."""
    return list(db.session.scalars(
        select(ContactSync.contact_id).join(Contact, Contact.id == ContactSync.contact_id)
        .where(ContactSync.connector_id == connector_id, error_rows()).order_by(ContactSync.contact_id)
    ))


# --- fixes, written to the contact's History -----------------------------------------------------

FIX_ACTIONS = ("edited", "excluded", "owner_chosen")


def _note_fix(connector: Connector, contact_id: int, action: str, error_kind: str = "",
              fields: Sequence[str] = (), actor: str = "") -> None:
    """A History line: someone acted on this contact's error (not committed).

    Written ``action|error kind|field,field|actor`` in the event's detail: the event's data column
    holds what a push sent, which the History compares push after push.
    """
    detail = "|".join((action, error_kind, ",".join(fields), actor.replace("|", " ")))
    db.session.add(SyncEvent(workspace_id=connector.workspace_id, connector_id=connector.id, contact_id=contact_id,
                             kind=SyncEventKind.FIXED, detail=detail[:500], created_at=utcnow()))


def _error_of(workspace_id: int, contact_id: int) -> tuple[Connector | None, ContactSync | None]:
    connector = live_connector(workspace_id)
    if connector is None:
        return None, None
    return connector, states_for(connector.id, [contact_id]).get(contact_id)


def save_contact(workspace_id: int, contact_id: int, data: Mapping, *, actor: str,
                 channel: str = Channel.UI) -> tuple[Contact, bool]:
    """Save an edit of a contact; ``(contact, fixed)``.

    When the contact was in error, the edit is its fix (R19): the History records which fields were
    corrected, then the push that follows records the new result (replication sends it within
    seconds, and the error list no longer shows it meanwhile: it is pending).
    """
    connector, row = _error_of(workspace_id, contact_id)
    before = crm.get_contact(workspace_id, contact_id)
    old = {name: getattr(before, name) or "" for name in Contact.EDITABLE}
    was_error = row is not None and row.state == SyncState.ERROR
    error_kind = row.error_kind if was_error else ""
    contact = crm.update_contact(workspace_id, contact_id, data, actor=actor, channel=channel)
    changed = [name for name in Contact.EDITABLE if (getattr(contact, name) or "") != old[name]]
    if not (was_error and changed):
        return contact, False
    _note_fix(connector, contact.id, "edited", error_kind, changed, actor)
    db.session.commit()
    return contact, True


def exclude(workspace_id: int, contact_id: int, *, actor: str, channel: str = Channel.UI) -> Contact:
    """Mark the contact as not to be synced (R19); its error leaves the list, the History says why."""
    connector, row = _error_of(workspace_id, contact_id)
    contact = crm.set_do_not_sync(workspace_id, contact_id, True, actor=actor, channel=channel)
    if connector is not None:
        _note_fix(connector, contact.id, "excluded", row.error_kind if row else "", actor=actor)
        db.session.commit()
    return contact


def choose_email_owner(workspace_id: int, contact_id: int, *, actor: str = "portal") -> tuple[Connector, list[int]]:
    """Make this contact the owner of the e-mail it shares with others (R19), or of the address the
    person gave Mailchimp when another contact has it already (``email_change_conflict``).

    Returns the connector and the ids of every contact sharing the address: they must be pushed
    again (the owner overwrites the member, the others become "not synced"). Nothing is pushed
    while the connector is paused: the choice is kept and applies once it is reconnected.
    """
    contact = crm.get_contact(workspace_id, contact_id)
    connector = live_connector(workspace_id)
    if connector is None or not contact.email_normalized:
        raise ConnectorError(_("There is no Mailchimp connector or the contact has no e-mail."))
    row = states_for(connector.id, [contact.id]).get(contact.id)
    fixed_kind = "duplicate_email"
    if row is not None and row.error_kind == EMAIL_CHANGE_CONFLICT and row.member_email \
            and row.member_email != contact.email_normalized:
        # The person changed their address in Mailchimp to one another contact has: this contact
        # takes the new address and owns it (the others sharing it are then not sent).
        contact = crm.update_contact(workspace_id, contact.id, {"email": row.member_email}, actor=actor,
                                     channel=Channel.UI)
        fixed_kind = EMAIL_CHANGE_CONFLICT
    sharing = list(db.session.scalars(
        select(Contact.id).where(Contact.workspace_id == workspace_id, Contact.deleted_at.is_(None),
                                 Contact.email_normalized == contact.email_normalized)
    ))
    for cid, row in ensure_rows(connector, sharing).items():
        row.owner_chosen = cid == contact.id
    _note_fix(connector, contact.id, "owner_chosen", fixed_kind, actor=actor)
    db.session.commit()
    pushable = connector.status in (ConnectorStatus.ACTIVE, ConnectorStatus.COPYING)
    return connector, sharing if pushable else []
