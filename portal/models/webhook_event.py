"""Events Mailchimp posted to our audience webhook (R21), stored raw before anything else happens.

The endpoint stores each event durably and answers at once; a background job applies it later
(:mod:`portal.sync.mailchimp_events`). A redelivered event has the same natural key (a hash of its
type, ``fired_at`` and every field) and is stored once. Malformed or foreign bodies are kept too,
``rejected``, so support can see what arrived.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from portal.extensions import db
from portal.models.base import UTCDateTime, utcnow
from portal.models.enums import WebhookEventStatus


class WebhookEvent(db.Model):
    """One request Mailchimp made to a connector's webhook URL, as received, and what became of it."""

    __tablename__ = "webhook_event"
    __table_args__ = (
        UniqueConstraint("connector_id", "natural_key", name="uq_webhook_event_natural"),
        # The apply job reads a connector's unapplied events in Mailchimp's order.
        Index("ix_webhook_event_todo", "connector_id", "status", "fired_at", "id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    connector_id: Mapped[int] = mapped_column(ForeignKey("connector.id"))
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id"), index=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # None for rejected bodies: they are kept, never applied, and may repeat.
    natural_key: Mapped[str | None] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(16), default="")
    fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    list_id: Mapped[str] = mapped_column(String(40), default="")
    email: Mapped[str] = mapped_column(String(254), default="")  # data[email], or data[old_email]
    body: Mapped[str] = mapped_column(Text, default="")  # the form-encoded body as received (capped)
    content_type: Mapped[str] = mapped_column(String(100), default="")
    remote_addr: Mapped[str] = mapped_column(String(45), default="")
    status: Mapped[str] = mapped_column(String(16), default=WebhookEventStatus.RECEIVED)
    outcome: Mapped[str] = mapped_column(String(300), default="")  # what applying it did, or why it was refused
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contact.id"))
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
