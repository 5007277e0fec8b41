"""Contacts, tags and the consent audit trail: anaba's side, the reference for everything (R1)."""
from __future__ import annotations

import unicodedata
from datetime import datetime

from sqlalchemy import DDL, JSON, Column, ForeignKey, Index, String, Table, Text, UniqueConstraint, column, event, table
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.extensions import db
from portal.models.base import UTCDateTime, utcnow
from portal.models.enums import Consent

CONSENT_VALUES = tuple(Consent)

contact_tags = Table(
    "contact_tag",
    db.metadata,
    Column("contact_id", ForeignKey("contact.id", ondelete="CASCADE"), primary_key=True),
    Column("tag_id", ForeignKey("tag.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_contact_tag_tag_contact", "tag_id", "contact_id"),
)


def fold(text: str | None) -> str:
    """Lower-case, accent-free form used for search ("Élodie" matches "elodie")."""
    if not text:
        return ""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


class Tag(db.Model):
    """A workspace's tag; becomes a Mailchimp tag on every member carrying it (R3)."""

    __tablename__ = "tag"
    __table_args__ = (UniqueConstraint("workspace_id", "name", name="uq_tag_workspace_name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))


class Contact(db.Model):
    """A person in a workspace's base. Soft-deleted rows stay so their member can be archived."""

    __tablename__ = "contact"
    # Partial indexes on live contacts: PostgreSQL only sorts through an index whose leading
    # columns are equalities, and `deleted_at IS NULL` is not one. search_text sits in the list
    # index so a search scans the index, not the table (measured with `python -m bench contacts_ui`).
    __table_args__ = (
        Index("ix_contact_ws_list", "workspace_id", "sort_name", "id", "search_text",
              sqlite_where=db.text("deleted_at IS NULL"), postgresql_where=db.text("deleted_at IS NULL")),
        Index("ix_contact_ws_created", "workspace_id", "created_at", "id",
              sqlite_where=db.text("deleted_at IS NULL"), postgresql_where=db.text("deleted_at IS NULL")),
        Index("ix_contact_ws_email", "workspace_id", "email_normalized", "deleted_at"),
        Index("ix_contact_ws_updated", "workspace_id", "updated_at"),
        # The few deleted and excluded contacts: counts read "all of them less these".
        Index("ix_contact_ws_deleted", "workspace_id",
              sqlite_where=db.text("deleted_at IS NOT NULL"), postgresql_where=db.text("deleted_at IS NOT NULL")),
        Index("ix_contact_ws_excluded", "workspace_id",
              sqlite_where=db.text("do_not_sync IS 1"), postgresql_where=db.text("do_not_sync IS true")),
        # PostgreSQL only: a trigram index answers `search_text LIKE '%word%'` without a scan.
        Index("ix_contact_search_trgm", "search_text", postgresql_using="gin",
              postgresql_ops={"search_text": "gin_trgm_ops"},
              postgresql_where=db.text("deleted_at IS NULL")).ddl_if(dialect="postgresql"),
    )

    EDITABLE = (
        "email", "first_name", "last_name", "phone", "company", "job_title",
        "street", "postal_code", "city", "country",
    )
    MAX_LENGTHS = {
        "email": 254, "first_name": 100, "last_name": 100, "phone": 40, "company": 200,
        "job_title": 200, "street": 300, "postal_code": 20, "city": 120, "country": 80,
    }

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id"))
    email: Mapped[str | None] = mapped_column(String(254))
    email_normalized: Mapped[str | None] = mapped_column(String(254))
    first_name: Mapped[str] = mapped_column(String(100), default="")
    last_name: Mapped[str] = mapped_column(String(100), default="")
    phone: Mapped[str] = mapped_column(String(40), default="")
    company: Mapped[str] = mapped_column(String(200), default="")
    job_title: Mapped[str] = mapped_column(String(200), default="")
    street: Mapped[str] = mapped_column(String(300), default="")
    postal_code: Mapped[str] = mapped_column(String(20), default="")
    city: Mapped[str] = mapped_column(String(120), default="")
    country: Mapped[str] = mapped_column(String(80), default="")
    consent: Mapped[str] = mapped_column(String(8), default=Consent.UNKNOWN)
    consent_locked: Mapped[bool] = mapped_column(default=False)
    consent_lock_reason: Mapped[str] = mapped_column(String(200), default="")  # a ConsentLockReason code
    # When the consent took its current value: anaba's clock for changes made in anaba, Mailchimp's
    # time of the event for changes Mailchimp reported. A late Mailchimp event older than this does
    # not overwrite a newer change (R21).
    consent_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    email_bounced: Mapped[bool] = mapped_column(default=False)
    do_not_sync: Mapped[bool] = mapped_column(default=False)
    sort_name: Mapped[str] = mapped_column(String(220), default="")
    search_text: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    tags: Mapped[list[Tag]] = relationship(secondary=contact_tags, order_by=Tag.name, lazy="selectin")

    @property
    def full_name(self) -> str:
        """First and last name, or the e-mail when both are empty."""
        name = f"{self.first_name} {self.last_name}".strip()
        return name or (self.email or "")

    @property
    def tag_names(self) -> list[str]:
        """The contact's tag names, sorted."""
        return [t.name for t in self.tags]

    @staticmethod
    def derived(email: str | None, first_name: str, last_name: str, company: str) -> dict[str, str | None]:
        """The normalised columns that search, sort and matching read, from the fields they come from."""
        return {
            "email_normalized": email.strip().lower() if email else None,
            "sort_name": fold(f"{last_name} {first_name} {email or ''}").strip()[:220],
            "search_text": " ".join(fold(v) for v in (first_name, last_name, email, company) if v),
        }

    def refresh_derived(self) -> None:
        """Recompute the normalised columns after a change of the fields they come from."""
        for name, value in self.derived(self.email, self.first_name or "", self.last_name or "",
                                        self.company or "").items():
            setattr(self, name, value)


# SQLite only: a trigram full-text index of `search_text` (FTS5 over the contact table, kept by
# triggers), which answers `LIKE '%word%'` for words of three letters or more without reading
# every contact, as `ix_contact_search_trgm` does on PostgreSQL (a rare search at 1,000,000
# contacts: 160 ms → 7 ms). A batch migration that rebuilds the contact table drops the triggers:
# create them again after it (SEARCH_INDEX_DDL).
SEARCH_INDEX = "contact_search"
search_index = table(SEARCH_INDEX, column("rowid"), column("search_text"))
SEARCH_INDEX_DDL = (
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {SEARCH_INDEX} USING fts5(search_text, content='contact', "
    "content_rowid='id', tokenize='trigram', detail='none')",
    f"CREATE TRIGGER IF NOT EXISTS {SEARCH_INDEX}_insert AFTER INSERT ON contact BEGIN "
    f"INSERT INTO {SEARCH_INDEX}(rowid, search_text) VALUES (new.id, new.search_text); END",
    f"CREATE TRIGGER IF NOT EXISTS {SEARCH_INDEX}_delete AFTER DELETE ON contact BEGIN "
    f"INSERT INTO {SEARCH_INDEX}({SEARCH_INDEX}, rowid, search_text) VALUES ('delete', old.id, old.search_text); END",
    f"CREATE TRIGGER IF NOT EXISTS {SEARCH_INDEX}_update AFTER UPDATE OF search_text ON contact BEGIN "
    f"INSERT INTO {SEARCH_INDEX}({SEARCH_INDEX}, rowid, search_text) VALUES ('delete', old.id, old.search_text); "
    f"INSERT INTO {SEARCH_INDEX}(rowid, search_text) VALUES (new.id, new.search_text); END",
)
for _statement in SEARCH_INDEX_DDL:
    event.listen(Contact.__table__, "after_create", DDL(_statement).execute_if(dialect="sqlite"))
event.listen(Contact.__table__, "before_drop", DDL(f"DROP TABLE IF EXISTS {SEARCH_INDEX}").execute_if(dialect="sqlite"))


class ConsentEvent(db.Model):
    """One consent change: before, after, who or what, through which channel, when (R15), and the
    evidence Mailchimp gave for it when it came from there: the raw webhook event it was applied
    from, the IP address and the time Mailchimp recorded (what a customer shows a regulator)."""

    __tablename__ = "consent_event"
    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id"), index=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contact.id"), index=True)
    old: Mapped[str] = mapped_column(String(8))
    new: Mapped[str] = mapped_column(String(8))
    locked: Mapped[bool] = mapped_column(default=False)
    lock_reason: Mapped[str] = mapped_column(String(32), default="")  # a ConsentLockReason code
    actor: Mapped[str] = mapped_column(String(254))
    channel: Mapped[str] = mapped_column(String(32))
    note: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    webhook_event_id: Mapped[int | None] = mapped_column(ForeignKey("webhook_event.id"))
    evidence_ip: Mapped[str] = mapped_column(String(45), default="")
    evidence_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Whatever else Mailchimp said (its unsubscribe reason, the campaign, the member's id…).
    evidence: Mapped[dict | None] = mapped_column(JSON)
