"""Shared column helpers."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import DateTime, Dialect, String, Text, TypeDecorator
from sqlalchemy.orm import Mapped, mapped_column

from portal.models.enums import RunStatus


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Stores UTC; always gives back aware datetimes (SQLite forgets the zone otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Naive datetimes are taken as UTC."""
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Always aware UTC, whatever the database kept."""
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


class RunColumns:
    """The columns every background run keeps (sync runs, CSV imports): see :mod:`portal.background`.

    ``job_id`` holds the claim token of the worker that has the run; ``heartbeat_at`` is
    refreshed while it works, so a run whose heartbeat is older than the lease was abandoned.
    """

    status: Mapped[str] = mapped_column(String(16), default=RunStatus.QUEUED)
    message: Mapped[str] = mapped_column(Text, default="")
    job_id: Mapped[str | None] = mapped_column(String(100))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def is_over(self) -> bool:
        """True once nothing will move the run on its own (pages stop polling)."""
        return RunStatus(self.status).is_over
