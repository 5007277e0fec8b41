"""Each contact's sync state with respect to its workspace's connector (R17), read and written.

Every change of a :class:`~portal.models.ContactSync` row goes through this module: a push
records "synced", an error with its fix, or "not synced" with the reason :mod:`.eligibility`
decided; a change in anaba shows "pending" until it is sent. Pushes work on plain values
(:class:`SyncRow`) loaded and saved in bulk, so a chunk of 500 contacts costs a few queries.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from operator import attrgetter

from sqlalchemy import ColumnElement, bindparam, select

from portal.extensions import db
from portal.mailchimp import MailchimpError
from portal.models import Connector, ContactSync, NotSyncedReason, SyncState, utcnow
from portal.sync.eligibility import state_for_reason

SYNC_COLUMNS = (
    "state", "reason", "member_email", "member_hash", "mc_contact_id", "fingerprint", "synced_tags",
    "last_synced_at", "error_kind", "error_message", "error_fix", "error_field", "attempts",
)
# Read with the row but never written back by a push: another request may set them meanwhile
# (a new change, an erasure asked for), and a push must not undo that.
READ_ONLY_COLUMNS = ("dirty_at", "erase_requested")
_ALL_COLUMNS = SYNC_COLUMNS + READ_ONLY_COLUMNS
_sync_values = attrgetter(*SYNC_COLUMNS)
_EMPTY = {"state": SyncState.PENDING, "reason": "", "synced_tags": [], "error_kind": "", "error_message": "",
          "error_fix": "", "error_field": "", "attempts": 0, "erase_requested": False}


class SyncRow:
    """A contact's sync row as plain values; written back in bulk (:func:`save_rows`) when it changed."""

    __slots__ = ("id", "changed") + SYNC_COLUMNS + READ_ONLY_COLUMNS

    def __init__(self, values: dict, row_id: int | None) -> None:
        self.id = row_id
        self.changed = row_id is None
        for name, value in zip(_ALL_COLUMNS, map(values.get, _ALL_COLUMNS)):
            setattr(self, name, value)

    def set(self, **values) -> None:
        """Change some columns; the row is saved only if one really changed."""
        for name, value in values.items():
            if getattr(self, name) != value:
                setattr(self, name, value)
                self.changed = True

    def values(self) -> dict:
        """The columns, for saving."""
        return dict(zip(SYNC_COLUMNS, _sync_values(self)))

    # --- the transitions --------------------------------------------------------------------

    def synced(self, *, email: str, member_hash: str | None, fingerprint: str, tags: Sequence[str],
               at: datetime, unsubscribed: bool = False, reason: str = "", mc_contact_id: str | None = None) -> None:
        """Mailchimp holds what anaba sent: a subscribed member, or (R15) one anaba unsubscribed for `reason`."""
        self.set(state=SyncState.UNSUBSCRIBED if unsubscribed else SyncState.SYNCED,
                 reason=reason if unsubscribed else "", member_email=email,
                 member_hash=member_hash or self.member_hash, mc_contact_id=mc_contact_id or self.mc_contact_id,
                 fingerprint=fingerprint,
                 synced_tags=sorted(tags), last_synced_at=at, attempts=0)
        self._clear_error()

    def restore_state(self, *, unsubscribed: bool = False, reason: str = "") -> None:
        """Nothing to send after all: the row reads again what Mailchimp holds (unsubscribed for `reason`)."""
        self.set(state=SyncState.UNSUBSCRIBED if unsubscribed else SyncState.SYNCED,
                 reason=reason if unsubscribed else "")

    def left_out(self, reason: NotSyncedReason, *, state: SyncState | None = None) -> None:
        """Not sent, for `reason` (R2); whatever was last sent no longer counts."""
        # When the contact becomes eligible again it must be sent even if its fields did not change.
        self.set(state=state or state_for_reason(reason), reason=reason, fingerprint=None)
        self._clear_error()

    def gone_from_mailchimp(self, state: SyncState) -> None:
        """The member was archived or deleted in Mailchimp (or erased by us): nothing goes back (R13)."""
        self.set(state=state, reason="", fingerprint=None)
        self._clear_error()

    def failed(self, error: MailchimpError) -> None:
        """Mailchimp refused this contact for a reason of its own (shown with its fix, R19)."""
        self.set(state=SyncState.ERROR, reason="", fingerprint=None, error_kind=error.kind,
                 error_message=(error.detail or error.message)[:2000], error_fix=error.fix,
                 error_field=(error.field or "")[:40])

    def deferred(self) -> None:
        """Not done yet, through no fault of the contact (a transient refusal): stays pending."""
        self.set(state=SyncState.PENDING, reason="")

    def attempted(self) -> None:
        """One more attempt was made for this contact."""
        self.set(attempts=(self.attempts or 0) + 1)

    def _clear_error(self) -> None:
        self.set(error_kind="", error_message="", error_fix="", error_field="")


def id_conditions(column: ColumnElement, ids: Iterable[int], size: int = 500) -> Iterator[ColumnElement[bool]]:
    """Conditions on `column` covering `ids`, one per query; the caller keeps the rows of its ids.

    Ids mostly consecutive (a chunk of the copy) give one ``BETWEEN``: no list of hundreds of
    parameters to bind, nor a statement text of a new length for the database to parse each
    time. Others give ``IN`` lists of `size`.
    """
    ids = sorted(set(ids))
    if not ids:
        return
    if ids[-1] - ids[0] < 2 * len(ids):
        yield column.between(ids[0], ids[-1])
        return
    for start in range(0, len(ids), size):
        yield column.in_(ids[start:start + size])


def load_rows(connector: Connector, contact_ids: Sequence[int]) -> dict[int, SyncRow]:
    """The contacts' sync rows as plain values (new pending ones where missing)."""
    rows: dict[int, SyncRow] = {}
    t = ContactSync.__table__.c
    cols = [t[name] for name in SYNC_COLUMNS + READ_ONLY_COLUMNS]
    ids = list(contact_ids)
    wanted = set(ids)
    for condition in id_conditions(t.contact_id, ids):
        for r in db.session.execute(select(t.id, t.contact_id, *cols).where(
                t.connector_id == connector.id, condition)):
            if r.contact_id in wanted:
                rows[r.contact_id] = SyncRow(r._mapping, r.id)
    for cid in ids:
        if cid not in rows:
            rows[cid] = SyncRow(_EMPTY, None)
    return rows


def save_rows(connector: Connector, rows: dict[int, SyncRow]) -> None:
    """Insert the new rows and update the changed ones, each in one executemany (not committed)."""
    now = utcnow()
    fresh = {"connector_id": connector.id, "workspace_id": connector.workspace_id, "owner_chosen": False,
             "erase_requested": False, "updated_at": now}
    new, changed = [], []
    for cid, row in rows.items():
        if row.id is None:
            values = row.values()
            values.update(fresh, contact_id=cid)
            new.append(values)
        elif row.changed:
            values = row.values()
            values.update(_id=row.id, updated_at=now)
            changed.append(values)
    table = ContactSync.__table__
    # Core executemany: the ORM's bulk paths split batches by which values are None.
    if new:
        db.session.execute(table.insert(), new)
    if changed:
        db.session.execute(table.update().where(table.c.id == bindparam("_id")), changed)


def ensure_rows(connector: Connector, contact_ids: Iterable[int]) -> dict[int, ContactSync]:
    """The contacts' sync rows as ORM objects, created (pending) where missing (not committed)."""
    ids = list(contact_ids)
    rows = states_for(connector.id, ids)
    for cid in ids:
        if cid not in rows:
            rows[cid] = ContactSync(connector_id=connector.id, workspace_id=connector.workspace_id, contact_id=cid,
                                    **_EMPTY, owner_chosen=False)
            db.session.add(rows[cid])
    return rows


def states_for(connector_id: int, contact_ids: Sequence[int]) -> dict[int, ContactSync]:
    """The sync rows of these contacts for one connector, by contact id."""
    if not contact_ids:
        return {}
    rows = db.session.scalars(
        select(ContactSync).where(ContactSync.connector_id == connector_id, ContactSync.contact_id.in_(contact_ids))
    )
    return {r.contact_id: r for r in rows}
