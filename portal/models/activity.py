"""Campaign activity brought back from Mailchimp reports (R18); filled by the activity import."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from portal.extensions import db
from portal.models.base import UTCDateTime


class Activity(db.Model):
    """One thing that happened to a contact in a campaign (sent, open, click, bounce, unsub)."""

    __tablename__ = "activity"
    __table_args__ = (
        UniqueConstraint(
            "contact_id", "campaign_id", "action", "occurred_at", "url_key",
            name="uq_activity_natural",
        ),
        Index("ix_activity_contact_time", "contact_id", "occurred_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id"), index=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contact.id"))
    campaign_id: Mapped[str] = mapped_column(String(40))
    campaign_title: Mapped[str] = mapped_column(String(300), default="")
    action: Mapped[str] = mapped_column(String(16))
    url: Mapped[str] = mapped_column(Text, default="")
    url_key: Mapped[str] = mapped_column(String(64), default="")
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
