"""Campaign activity brought back from Mailchimp reports (R18); filled by the activity import.

Two tables:

- :class:`ActivityCampaign` — one row per campaign of a workspace's audience: what the
  timeline shows (title, subject, send time) and the import's durable bookmarks for that
  campaign (recipients read, newest activity seen).
- :class:`Activity` — one row per thing that happened to a contact in a campaign. Its natural
  key (contact, campaign, action, time, link, occurrence) is a unique constraint: importing
  twice, or with overlapping windows, inserts each event once (``INSERT … ON CONFLICT DO
  NOTHING``). Its only index is that key's, which leads with the contact (the record's tab, the
  API).
- :class:`ActivitySummary` — per contact, when a campaign last reached them and when they last
  opened or clicked one: derived from the activity after each import, it answers the contacts
  table's "opened in the last N weeks" and "never opened" filters without touching the (large)
  activity table.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, SmallInteger, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from portal.extensions import db
from portal.models.base import UTCDateTime, utcnow


class ActivityCampaign(db.Model):
    """A campaign sent to a workspace's audience, as the activity import last read it.

    ``recipients_done`` says its sent-to report was read in full (recipients never change after
    the send, so it is read once); ``activity_since`` is the newest open, click or bounce time
    seen, from which the next import asks for newer events (minus an overlap).
    """

    __tablename__ = "activity_campaign"
    __table_args__ = (
        UniqueConstraint("workspace_id", "campaign_id", name="uq_activity_campaign_workspace_campaign"),
        Index("ix_activity_campaign_connector_send", "connector_id", "send_time"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id"))
    connector_id: Mapped[int] = mapped_column(ForeignKey("connector.id"))
    campaign_id: Mapped[str] = mapped_column(String(40))
    list_id: Mapped[str] = mapped_column(String(40))
    title: Mapped[str] = mapped_column(String(300), default="")
    subject: Mapped[str] = mapped_column(String(300), default="")
    send_time: Mapped[datetime] = mapped_column(UTCDateTime)
    emails_sent: Mapped[int] = mapped_column(default=0)
    recipients_done: Mapped[bool] = mapped_column(default=False)
    activity_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    imported_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Activity(db.Model):
    """One thing that happened to a contact in a campaign (an :class:`~portal.models.enums.ActivityAction`).

    ``campaign_id`` is Mailchimp's campaign id (the :class:`ActivityCampaign` of the same
    workspace describes it); ``url`` is the link of a click and ``url_key`` a short digest of it,
    so that the natural key stays small; ``occurred_at`` is Mailchimp's timestamp (the send time
    for ``sent``). Mailchimp's timestamps have whole seconds, and a person may open a campaign
    twice in one second (mail-privacy proxies do): ``occurrence`` numbers identical events of
    the same second (0, 1…), as they come in the member's report, so each stays one activity.
    """

    __tablename__ = "activity"
    __table_args__ = (
        UniqueConstraint(
            "contact_id", "campaign_id", "action", "occurred_at", "url_key", "occurrence",
            name="uq_activity_natural",
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contact.id"))
    campaign_id: Mapped[str] = mapped_column(String(40))
    # Unused since the campaigns got their own table; dropped one release later (the previous
    # release still reads it while a deployment rolls, see docs/deployment.md "Migrations").
    campaign_title: Mapped[str] = mapped_column(String(300), default="")
    action: Mapped[str] = mapped_column(String(16))
    url: Mapped[str] = mapped_column(Text, default="")
    url_key: Mapped[str] = mapped_column(String(64), default="")
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    occurrence: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")


class ActivitySummary(db.Model):
    """A contact's campaign engagement in two dates, recomputed from :class:`Activity` by each import.

    ``last_engaged_at`` is the last open or click (a click counts: the open's image may not have
    loaded); None with a ``last_received_at`` means "received campaigns, never opened one".
    """

    __tablename__ = "activity_summary"
    __table_args__ = (Index("ix_activity_summary_workspace_engaged", "workspace_id", "last_engaged_at"),)

    contact_id: Mapped[int] = mapped_column(ForeignKey("contact.id"), primary_key=True, autoincrement=False)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id"))
    last_received_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_engaged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    campaigns_received: Mapped[int] = mapped_column(default=0)
