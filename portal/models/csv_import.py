"""A CSV import: the uploaded file, its column mapping, progress and rejected rows."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ColumnElement, ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from portal.extensions import db
from portal.models.base import RunColumns, UTCDateTime, utcnow
from portal.models.enums import RunStatus


class CsvImport(RunColumns, db.Model):
    """One upload, from preview to finished import: a background run like the sync runs.

    ``status`` is ``uploaded`` until the mapping is chosen, then a run's (queued, running,
    finished, failed); ``done`` is the cursor (data rows handled, committed with their contacts).
    """

    __tablename__ = "csv_import"
    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    filename: Mapped[str] = mapped_column(String(255))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    encoding: Mapped[str] = mapped_column(String(20), default="utf-8")
    delimiter: Mapped[str] = mapped_column(String(1), default=",")
    mapping: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default=RunStatus.UPLOADED)
    total: Mapped[int] = mapped_column(default=0)
    done: Mapped[int] = mapped_column(default=0)
    imported: Mapped[int] = mapped_column(default=0)
    updated: Mapped[int] = mapped_column(default=0)
    rejected: Mapped[int] = mapped_column(default=0)
    rejects: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @classmethod
    def conflicting(cls, run: CsvImport, other: type[CsvImport], fresh: ColumnElement[bool]) -> None:
        """Nothing else stops an import from being claimed (each import is its own file)."""
        return None
