"""The Mailchimp connector of a workspace, its background runs and each contact's sync state."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ColumnElement, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.extensions import db
from portal.models.base import RunColumns, UTCDateTime, utcnow
from portal.models.enums import ConnectorStatus, RunKind, RunStatus, SyncState


class Connector(db.Model):
    """A workspace's link to one Mailchimp audience.

    Life cycle (R5–R9): ``pending_validation`` → (``sent_back`` → resubmitted) → ``copying`` →
    ``active``; ``paused`` when Mailchimp refuses the key or the audience is gone; ``deleted``
    keeps the row for history. At most one non-deleted connector per workspace.
    """

    __tablename__ = "connector"
    __table_args__ = (
        Index(
            "uq_connector_one_live_per_workspace", "workspace_id", unique=True,
            sqlite_where=db.text("deleted_at IS NULL"), postgresql_where=db.text("deleted_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id"), index=True)
    status: Mapped[str] = mapped_column(String(24), default=ConnectorStatus.PENDING_VALIDATION)
    api_key_encrypted: Mapped[str] = mapped_column(Text)
    api_key_hint: Mapped[str] = mapped_column(String(40))
    audience_id: Mapped[str] = mapped_column(String(40))
    audience_name: Mapped[str] = mapped_column(String(200), default="")
    subscribe_url: Mapped[str] = mapped_column(String(500), default="")
    field_mapping: Mapped[list] = mapped_column(JSON, default=list)
    merge_fields_to_create: Mapped[list] = mapped_column(JSON, default=list)
    sent_back_reason: Mapped[str] = mapped_column(Text, default="")
    paused_reason: Mapped[str] = mapped_column(Text, default="")
    # Our audience webhook (R21): its id in Mailchimp, the secret its URL carries (unique: the
    # endpoint finds the connector by it), the URL registered, and the last check of it.
    webhook_id: Mapped[str | None] = mapped_column(String(40))
    webhook_secret: Mapped[str | None] = mapped_column(String(64), unique=True)
    webhook_url: Mapped[str] = mapped_column(String(500), default="")
    webhook_registered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    webhook_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # "" when registered as expected; else a WebhookProblem or the Mailchimp error kind of the last try.
    webhook_problem: Mapped[str] = mapped_column(String(32), default="")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    validated_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    validated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_reconciled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Live replication's health (R10, R19): the last push that reached Mailchimp, the last time a
    # whole call failed (and why), and when members archived in Mailchimp were last looked for.
    last_push_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error_kind: Mapped[str] = mapped_column(String(32), default="")
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    archives_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    workspace = relationship("Workspace")

    @property
    def is_live(self) -> bool:
        """True while replication should run (R10)."""
        return self.status == ConnectorStatus.ACTIVE


class SyncRun(RunColumns, db.Model):
    """One background run of a connector (consent import, preview, copy…): a row the pages poll (R8).

    At most one run of a kind works for a connector at a time, and a preview waits for the
    consent import it depends on (:meth:`conflicting`).
    """

    __tablename__ = "sync_run"
    __table_args__ = (Index("ix_sync_run_connector_kind", "connector_id", "kind", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    connector_id: Mapped[int] = mapped_column(ForeignKey("connector.id"))
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id"), index=True)
    kind: Mapped[str] = mapped_column(String(24))
    total: Mapped[int] = mapped_column(default=0)
    done: Mapped[int] = mapped_column(default=0)
    error_count: Mapped[int] = mapped_column(default=0)
    counts: Mapped[dict] = mapped_column(JSON, default=dict)
    cursor: Mapped[int] = mapped_column(default=0)
    result: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    connector = relationship("Connector")

    @classmethod
    def conflicting(cls, run: SyncRun, other: type[SyncRun], fresh: ColumnElement[bool]) -> ColumnElement[bool]:
        """Rows of `other` (an alias) that forbid claiming `run` now: a run of the same kind for
        the connector held by a live worker (`fresh` says its heartbeat is recent), or, for a
        preview, a consent import not finished yet (the preview's counts depend on consent)."""
        same_kind = (other.kind == run.kind) & (other.status == RunStatus.RUNNING) & fresh
        if run.kind == RunKind.PREVIEW:
            same_kind = same_kind | ((other.kind == RunKind.CONSENT_IMPORT)
                                     & other.status.in_((RunStatus.QUEUED, RunStatus.RUNNING)))
        return (other.connector_id == run.connector_id) & (other.id != run.id) & same_kind


class ContactSync(db.Model):
    """A contact's state with respect to a connector (R17), one row per contact and connector.

    ``state`` is a :class:`~portal.models.enums.SyncState`; ``reason`` a
    :class:`~portal.models.enums.NotSyncedReason` when not synced; ``error_*`` describe an error.
    """

    __tablename__ = "contact_sync"
    __table_args__ = (
        UniqueConstraint("connector_id", "contact_id", name="uq_contact_sync_connector_contact"),
        # The counts of every page read this index alone (range counts per state and reason).
        Index("ix_contact_sync_connector_state_reason", "connector_id", "state", "reason", "error_kind"),
        Index("ix_contact_sync_contact", "contact_id"),
        Index("ix_contact_sync_dirty", "connector_id", "dirty_at",
              sqlite_where=db.text("dirty_at IS NOT NULL"), postgresql_where=db.text("dirty_at IS NOT NULL")),
        # The few addresses whose owner a customer chose: every count of addresses still to decide
        # reads them (without it, a walk of every contact: seconds at 1,000,000).
        Index("ix_contact_sync_owner_chosen", "connector_id", "contact_id",
              sqlite_where=db.text("owner_chosen IS 1"), postgresql_where=db.text("owner_chosen IS true")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    connector_id: Mapped[int] = mapped_column(ForeignKey("connector.id"))
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id"), index=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contact.id"))
    state: Mapped[str] = mapped_column(String(16), default=SyncState.PENDING)
    reason: Mapped[str] = mapped_column(String(32), default="")
    member_email: Mapped[str | None] = mapped_column(String(254))
    member_hash: Mapped[str | None] = mapped_column(String(32))
    # Mailchimp's own id for the member, which survives an address change made in Mailchimp.
    mc_contact_id: Mapped[str | None] = mapped_column(String(64))
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    synced_tags: Mapped[list] = mapped_column(JSON, default=list)
    last_synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error_kind: Mapped[str] = mapped_column(String(32), default="")
    error_message: Mapped[str] = mapped_column(Text, default="")
    error_fix: Mapped[str] = mapped_column(String(32), default="")
    error_field: Mapped[str] = mapped_column(String(40), default="")
    attempts: Mapped[int] = mapped_column(default=0)
    owner_chosen: Mapped[bool] = mapped_column(default=False)
    # Set when the contact changed in anaba (or an action asks for a push) and Mailchimp has not
    # been told yet; cleared by the push that tells it, only if nothing changed meanwhile (R10).
    dirty_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    erase_requested: Mapped[bool] = mapped_column(default=False)
    # Mailchimp's time (``fired_at``) of the newest webhook event applied to this member: an older
    # event delivered late never overwrites its effect (R21).
    mc_event_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class PendingTagOp(db.Model):
    """A tag change still to send for a member, written with its chunk's results.

    The initial copy groups tag changes by tag to send them 500 e-mails per call (the fewest
    calls the API allows); keeping them in the database makes that grouping survive a crash.
    Replaying one is harmless: adding a tag twice or removing an absent tag changes nothing.
    """

    __tablename__ = "pending_tag_op"
    __table_args__ = (Index("ix_pending_tag_op_run_tag", "run_id", "tag", "op", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("sync_run.id"))
    connector_id: Mapped[int] = mapped_column(ForeignKey("connector.id"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contact.id"))
    email: Mapped[str] = mapped_column(String(254))
    tag: Mapped[str] = mapped_column(String(100))
    op: Mapped[str] = mapped_column(String(8))


class SyncEvent(db.Model):
    """A line in a contact's sync history: a push, an error, an archive… (per-contact audit)."""

    __tablename__ = "sync_event"
    __table_args__ = (Index("ix_sync_event_contact", "contact_id", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id"), index=True)
    connector_id: Mapped[int | None] = mapped_column(ForeignKey("connector.id"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contact.id"))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("sync_run.id"))
    kind: Mapped[str] = mapped_column(String(24))
    detail: Mapped[str] = mapped_column(Text, default="")
    # What a live push sent (merge fields, status, tags added and removed), for the History tab.
    data: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
