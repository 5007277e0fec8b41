"""A connector's health, as the customer's connector page and support's view show it (R10, R19, R21,
R22): changes waiting and how long the oldest has waited, the last push that reached Mailchimp,
errors by kind, the last reconciliation and what it found, whether Mailchimp answers, and our
webhook (registered as expected, the last event received, events waiting)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select

from portal.extensions import db
from portal.models import Connector, ConnectorStatus, ContactSync, RunKind, RunStatus, SyncRun, utcnow
from portal.sync import counts
from portal.sync.webhooks import WebhookStatus, status_of

TRANSIENT = ("unavailable", "timeout", "rate_limited")


@dataclass
class Health:
    """What the health panel shows."""

    pending: int
    oldest_pending_seconds: float | None
    last_push_at: datetime | None
    errors_by_kind: dict[str, int]
    last_reconciliation: SyncRun | None
    mailchimp_answers: bool
    mailchimp_problem: str  # an error kind when Mailchimp does not answer, or refuses the key / audience
    problem_since: datetime | None
    webhook: WebhookStatus | None = None
    extra: dict = field(default_factory=dict)

    @property
    def drift(self) -> dict:
        """What the last reconciliation found, by kind."""
        run = self.last_reconciliation
        return dict((run.result or {}).get("drift") or {}) if run is not None else {}


def connector_health(connector: Connector, standing: counts.Standing | None = None) -> Health:
    """The connector's health now; `standing` (the same request's :func:`counts.standing`) spares
    counting the errors a second time."""
    pending, oldest = db.session.execute(
        select(func.count(), func.min(ContactSync.dirty_at)).where(
            ContactSync.connector_id == connector.id, ContactSync.dirty_at.is_not(None))).one()
    # As the error list and every other page count them.
    kinds = dict(standing.errors) if standing is not None else counts.errors_by_kind(connector.id)
    reconciliation = db.session.scalar(select(SyncRun).where(
        SyncRun.connector_id == connector.id, SyncRun.kind == RunKind.RECONCILE,
        SyncRun.status == RunStatus.FINISHED).order_by(SyncRun.id.desc()).limit(1))
    problem, since = "", None
    if connector.status == ConnectorStatus.PAUSED:
        problem, since = connector.paused_reason or "api_key_invalid", None
    elif connector.last_error_kind in TRANSIENT and connector.last_error_at and (
            connector.last_push_at is None or connector.last_error_at > connector.last_push_at):
        problem, since = connector.last_error_kind, connector.last_error_at
    now = utcnow()
    return Health(
        pending=int(pending or 0), oldest_pending_seconds=(now - oldest).total_seconds() if oldest else None,
        last_push_at=connector.last_push_at, errors_by_kind=kinds, last_reconciliation=reconciliation,
        mailchimp_answers=not problem, mailchimp_problem=problem, problem_since=since,
        webhook=status_of(connector) if connector.status in (ConnectorStatus.ACTIVE, ConnectorStatus.PAUSED) else None,
    )
