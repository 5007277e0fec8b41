"""One definition of every figure the portal shows about a connector's contacts (R7, R8, R17, R19).

The preview, the consent import, the copy's summary, the connector page, the e-mails and the
support pages all read their numbers through this module, so the same thing is counted the same
way everywhere:

- **contacts** — the workspace's live contacts (deleted ones never count);
- **created / updated / unchanged** — contacts sent to Mailchimp: a new member, an existing member
  overwritten with anaba's values (R4), or (a later copy) a contact unchanged since it was last sent.
  The first copy writes every member that matches a contact, so the preview counts a member already
  holding anaba's values among the updated ones, and says how many of them there are;
- **not synced**, by reason (R2) — contacts left out on purpose: no e-mail, no consent, bounced,
  excluded, *sharing an address another contact owns*. A shared address is never an error: one
  contact per address is sent (the owner), the others are "not synced" (R19);
- **errors**, by kind — contacts Mailchimp refused (or, in the preview, will refuse): an invalid
  address, a value too long… each with its fix (R19). A contact excluded since ("do not sync") or
  deleted is no longer an error;
- **pending** — contacts waiting to be sent (a change not pushed yet, Mailchimp busy);
- **addresses to decide** — shared addresses whose owner nobody chose yet: the error list shows
  them so the customer confirms (or changes) which contact is sent;
- **members matched** — audience members whose address belongs to at least one live contact
  (several contacts may share one address, so the contacts matched can be more).

:class:`Figures` says what a copy did, or what the preview says it will do (``predicted``);
:class:`Standing` says where the contacts are now. Right after a copy, both agree.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select, tuple_
from sqlalchemy.orm import aliased

from portal.crm import contacts as crm
from portal.extensions import db
from portal.models import (Connector, ConnectorStatus, Contact, ContactSync, NotSyncedReason, RunKind, SyncRun,
                           SyncState)

SHARED = NotSyncedReason.SHARED_EMAIL
OUT_OF_REACH = (SyncState.ARCHIVED_IN_MC, SyncState.DELETED_IN_MC)
# Counters a copy keeps for the team (API calls and the like): never shown as figures.
INTERNAL = ("member_writes", "tag_ops", "tag_calls", "tag_changes_sent", "phase")


def _ints(values: Mapping[str, Any] | None) -> dict[str, int]:
    return {str(k): int(v) for k, v in (values or {}).items() if isinstance(v, (int, float)) and int(v)}


class _Totals:
    """The totals of a set of figures kept by reason (``not_synced``) and by kind (``errors``)."""

    not_synced: dict[str, int]
    errors: dict[str, int]

    @property
    def not_synced_total(self) -> int:
        """Contacts left out on purpose, all reasons together."""
        return sum(self.not_synced.values())

    @property
    def errors_total(self) -> int:
        """Contacts in error (or that Mailchimp will refuse), all kinds together."""
        return sum(self.errors.values())


@dataclass
class Figures(_Totals):
    """What a copy did with the workspace's contacts, or what the preview says it will do."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    not_synced: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    pending: int = 0
    predicted: bool = False
    unsubscribed: int = 0  # of those sent: members unsubscribed because the consent went (R15)
    already_current: int = 0  # preview: of the members to update, those that already hold anaba's values

    @property
    def sent(self) -> int:
        """Contacts that are (or will be) in Mailchimp: created, updated or already up to date."""
        return self.created + self.updated + self.unchanged

    @property
    def contacts(self) -> int:
        """Every contact the copy looked at: each is in exactly one figure."""
        return self.sent + self.not_synced_total + self.errors_total + self.pending

    def as_dict(self) -> dict[str, Any]:
        """The figures as JSON (the API, tests)."""
        return {"contacts": self.contacts, "created": self.created, "updated": self.updated,
                "unchanged": self.unchanged, "not_synced": dict(self.not_synced), "errors": dict(self.errors),
                "pending": self.pending, "predicted": self.predicted}


def from_preview(run: SyncRun | None) -> Figures | None:
    """What the preview says the first copy will do (None until a preview finished).

    Contacts sharing an address another contact owns are *not synced*, as the copy records them;
    previews computed before this rule listed them as failures, and are read the same way.
    """
    if run is None or not run.result or "to_create" not in (run.result or {}):
        return None
    r = run.result
    not_synced = _ints(r.get("skipped"))
    errors = {kind: int((group or {}).get("count") or 0) for kind, group in (r.get("predicted_failures") or {}).items()}
    shared = errors.pop(SHARED, 0)
    if shared:
        not_synced[SHARED] = not_synced.get(SHARED, 0) + shared
    # The first copy writes every matched member (one batch call per 500), so a member that already
    # holds anaba's values is "updated" by the copy too: counted there, and named in its detail.
    current = int(r.get("up_to_date") or 0)
    return Figures(created=int(r.get("to_create") or 0), updated=int(r.get("to_update") or 0) + current,
                   not_synced=not_synced, errors={k: v for k, v in errors.items() if v}, predicted=True,
                   already_current=current)


def from_copy(run: SyncRun | None) -> Figures | None:
    """What a copy did so far (None without a copy): its counters, read the one way."""
    if run is None:
        return None
    c = dict(run.counts or {})
    errors = _ints(c.get("error_kinds"))
    unexplained = int(c.get("errors") or 0) - sum(errors.values())
    if unexplained > 0:
        errors["unknown"] = errors.get("unknown", 0) + unexplained
    return Figures(created=int(c.get("created") or 0), updated=int(c.get("updated") or 0),
                   unchanged=int(c.get("unchanged") or 0), not_synced=_ints(c.get("skipped")), errors=errors,
                   pending=int(c.get("deferred") or 0), unsubscribed=int(c.get("unsubscribed") or 0))


def of_run(run: SyncRun | None) -> Figures | None:
    """The figures of a copy or of a preview (None for other runs: their counters are their own)."""
    if run is None:
        return None
    if run.kind == RunKind.INITIAL_COPY:
        return from_copy(run)
    if run.kind == RunKind.PREVIEW:
        return from_preview(run)
    return None


def of_runs(runs: Iterable[SyncRun]) -> dict[int, Figures]:
    """The figures of each copy and preview among `runs`, by run id (the run history)."""
    found = {run.id: of_run(run) for run in runs}
    return {run_id: figures for run_id, figures in found.items() if figures is not None}


def latest_preview(connector_id: int) -> SyncRun | None:
    """The connector's most recent preview that finished."""
    return db.session.scalar(select(SyncRun).where(
        SyncRun.connector_id == connector_id, SyncRun.kind == RunKind.PREVIEW,
        SyncRun.finished_at.is_not(None)).order_by(SyncRun.id.desc()).limit(1))


# --- where contacts are now ---------------------------------------------------------------------

def error_rows() -> ColumnElement[bool]:
    """Sync rows (joined to their contact) that are errors to fix: refused by Mailchimp, of a live
    contact still meant to be sent (R19)."""
    return and_(ContactSync.state == SyncState.ERROR, Contact.deleted_at.is_(None), Contact.do_not_sync.is_(False))


def undecided_shared_rows() -> ColumnElement[bool]:
    """Sync rows (joined to their contact) of contacts left out because another contact owns their
    address, where nobody chose that owner yet (the error list asks the customer to decide)."""
    chosen = aliased(ContactSync)
    owner = aliased(Contact)
    # The few (connector, address) pairs whose owner was chosen, read once: a subquery correlated
    # to each shared row scanned all of the connector's rows for each (minutes at 1,000,000).
    decided = select(chosen.connector_id, owner.email_normalized).join(owner, owner.id == chosen.contact_id).where(
        chosen.owner_chosen.is_(True), owner.deleted_at.is_(None), owner.email_normalized.is_not(None))
    return and_(ContactSync.state == SyncState.NOT_SYNCED, ContactSync.reason == SHARED,
                Contact.deleted_at.is_(None), Contact.do_not_sync.is_(False),
                tuple_(ContactSync.connector_id, Contact.email_normalized).not_in(decided))


def errors_by_kind(connector_id: int) -> dict[str, int]:
    """The connector's contacts in error, by kind: its error rows (an index range) less those of
    contacts deleted or excluded since, which partial indexes list (joining every error row to its
    contact cost 35-50 ms at 1,000,000 contacts on PostgreSQL)."""
    found: Counter[str] = Counter(dict(db.session.execute(
        select(ContactSync.error_kind, func.count()).where(
            ContactSync.connector_id == connector_id, ContactSync.state == SyncState.ERROR)
        .group_by(ContactSync.error_kind)).all()))
    if not found:
        return {}
    workspace_id = select(Connector.workspace_id).where(Connector.id == connector_id).scalar_subquery()
    # Deleted, then excluded: one read each, so that each walks its own partial index (SQLite
    # would not split an OR of the two and walked every error row instead).
    for gone in (Contact.deleted_at.is_not(None), and_(Contact.do_not_sync.is_(True), Contact.deleted_at.is_(None))):
        found.subtract(dict(db.session.execute(
            select(ContactSync.error_kind, func.count()).select_from(Contact)
            .join(ContactSync, (ContactSync.contact_id == Contact.id) & (ContactSync.connector_id == connector_id))
            .where(Contact.workspace_id == workspace_id, gone, ContactSync.state == SyncState.ERROR)
            .group_by(ContactSync.error_kind)).all()))
    return {kind: n for kind, n in found.items() if n > 0}


def addresses_to_decide(connector_id: int) -> int:
    """How many shared addresses of the connector wait for the customer to choose their owner."""
    return db.session.scalar(
        select(func.count(func.distinct(Contact.email_normalized))).select_from(ContactSync)
        .join(Contact, Contact.id == ContactSync.contact_id)
        .where(ContactSync.connector_id == connector_id, undecided_shared_rows())) or 0


def problems_by_connector(connector_ids: Iterable[int] | None = None) -> dict[int, tuple[int, int]]:
    """``{connector_id: (errors, addresses to decide)}`` for connectors that have any (support);
    None = every connector not deleted. Errors are counted as :func:`errors_by_kind` counts them."""
    ids = list(connector_ids) if connector_ids is not None else list(db.session.scalars(
        select(Connector.id).where(Connector.deleted_at.is_(None))))
    found: dict[int, list[int]] = {}
    for cid in ids:
        errors = sum(errors_by_kind(cid).values())
        if errors:
            found.setdefault(cid, [0, 0])[0] = errors
    shared = select(ContactSync.connector_id, func.count(func.distinct(Contact.email_normalized))) \
        .join(Contact, Contact.id == ContactSync.contact_id) \
        .where(ContactSync.connector_id.in_(ids), undecided_shared_rows()).group_by(ContactSync.connector_id)
    for cid, n in db.session.execute(shared).all():
        found.setdefault(cid, [0, 0])[1] = n
    return {cid: (e, s) for cid, (e, s) in found.items()}


@dataclass
class Standing(_Totals):
    """Where a connector's contacts are now (R17): each live contact in one figure."""

    contacts: int = 0
    synced: int = 0
    pending: int = 0
    unsubscribed: int = 0
    not_synced: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    out_of_reach: dict[str, int] = field(default_factory=dict)  # archived / deleted in Mailchimp (R13)
    addresses_to_decide: int = 0

    @property
    def to_fix(self) -> int:
        """What the error list asks the customer to look at: errors and addresses to decide."""
        return self.errors_total + self.addresses_to_decide


def standing(connector: Connector) -> Standing:
    """Every live contact of the connector's workspace, by where it is now.

    A contact without a sync row yet waits to be sent (or for the validation); one in error that
    was excluded since counts as excluded; a bounced address counts among the "not synced", as
    the copy counts it.
    """
    # Read from the sync rows' index alone, then corrected by the few rows whose contact is
    # deleted or excluded: joining every sync row to its contact took 1.0 s at 1,000,000 contacts,
    # these range counts take a tenth of it (python -m bench contacts_ui --connector).
    rows: Counter[tuple[str, str, str]] = Counter()
    rows.update({(state, "", ""): n for state, n in _rows_by_state(connector.id).items()})
    rows.update({(SyncState.NOT_SYNCED, reason, ""): n for reason, n in _grouped(connector.id, SyncState.NOT_SYNCED)})
    rows.update({(SyncState.ERROR, "", kind): n for kind, n in _grouped(connector.id, SyncState.ERROR)})
    rows.subtract(_rows_of_deleted_contacts(connector))
    live_errors = Counter()
    for kind, n in errors_by_kind(connector.id).items():
        live_errors[kind or "unknown"] += n
    total = crm.live_contact_count(connector.workspace_id)
    out = Standing(contacts=total)
    for (state, reason, kind), n in rows.items():
        if n <= 0:
            continue
        if state == SyncState.ERROR:
            errors = live_errors[kind]  # the others are errors of contacts excluded since
            if errors:
                _add(out.errors, kind, errors)
            if n - errors:
                _add(out.not_synced, NotSyncedReason.DO_NOT_SYNC, n - errors)
        elif state == SyncState.NOT_SYNCED:
            _add(out.not_synced, reason, n)
        elif state == SyncState.SYNCED:
            out.synced += n
        elif state == SyncState.PENDING:
            out.pending += n
        elif state == SyncState.UNSUBSCRIBED:
            out.unsubscribed += n
        elif state == SyncState.BOUNCED:
            _add(out.not_synced, NotSyncedReason.BOUNCED, n)
        elif state in OUT_OF_REACH:
            _add(out.out_of_reach, state, n)
    out.pending += max(total - sum(n for n in rows.values() if n > 0), 0)
    out.addresses_to_decide = addresses_to_decide(connector.id)
    return out


def _rows_by_state(connector_id: int) -> dict[str, int]:
    """Sync rows per state, except the two counted by reason and by kind (:func:`_grouped`)."""
    # One range count per state: a tight walk of the index, where grouping compares every row.
    found = {}
    for state in SyncState:
        if state in (SyncState.NOT_SYNCED, SyncState.ERROR):
            continue
        n = db.session.scalar(select(func.count()).select_from(ContactSync).where(
            ContactSync.connector_id == connector_id, ContactSync.state == state)) or 0
        if n:
            found[str(state)] = n
    return found


def _grouped(connector_id: int, state: SyncState) -> list[tuple[str, int]]:
    """The rows in `state` by reason (not synced) or by error kind (error); "unknown" when blank."""
    column = ContactSync.reason if state == SyncState.NOT_SYNCED else ContactSync.error_kind
    found: Counter[str] = Counter()
    for value, n in db.session.execute(select(column, func.count()).where(
            ContactSync.connector_id == connector_id, ContactSync.state == state).group_by(column)).all():
        found[value or "unknown"] += n
    return list(found.items())


def _rows_of_deleted_contacts(connector: Connector) -> Counter[tuple[str, str, str]]:
    """The sync rows of the workspace's deleted contacts, keyed as :func:`standing` keys its rows."""
    found: Counter[tuple[str, str, str]] = Counter()
    for state, reason, kind, n in db.session.execute(
            select(ContactSync.state, ContactSync.reason, ContactSync.error_kind, func.count())
            .select_from(Contact).join(ContactSync, (ContactSync.contact_id == Contact.id)
                                       & (ContactSync.connector_id == connector.id))
            .where(Contact.workspace_id == connector.workspace_id, Contact.deleted_at.is_not(None))
            .group_by(ContactSync.state, ContactSync.reason, ContactSync.error_kind)).all():
        if state == SyncState.NOT_SYNCED:
            found[(state, reason or "unknown", "")] += n
        elif state == SyncState.ERROR:
            found[(state, "", kind or "unknown")] += n
        else:
            found[(state, "", "")] += n
    return found


def _add(counter: dict[str, int], key: str, n: int) -> None:
    counter[str(key)] = counter.get(str(key), 0) + n


def pending_count(connector: Connector) -> int:
    """Live contacts waiting to be sent (a change not pushed yet, or never sent)."""
    if connector.status in (ConnectorStatus.PENDING_VALIDATION, ConnectorStatus.SENT_BACK):
        return 0
    return standing(connector).pending


# --- the audience -------------------------------------------------------------------------------

def match_members(emails: Iterable[str], contacts: Iterable[Any]) -> tuple[int, int]:
    """``(members matched, contacts matched)`` for one page of audience members.

    `emails` are the page's normalised addresses, `contacts` the live contacts found with them. A
    member matches when at least one contact has its address; several contacts sharing it count
    once as a member and each as a contact.
    """
    wanted = set(emails)
    addresses = [c.email_normalized for c in contacts if c.email_normalized in wanted]
    return len(set(addresses)), len(addresses)
