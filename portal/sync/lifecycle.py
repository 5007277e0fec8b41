"""A connector's life cycle (R5–R9): submitted, validated or sent back, copying, active, paused,
reconnected, deleted.

Each function changes the database and commits. Work meant for the background (consent
import, preview, copy) is left as *queued run rows*; the caller enqueues them through
``portal.jobs`` (which calls :func:`portal.sync.runs.waiting` / the returned run). Reading the
audience happens here (the key must work before anything is saved), but every write to
Mailchimp happens in a background job, after support's validation.
"""
from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from typing import Any

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from portal import labels
from portal.extensions import db
from portal.mailchimp import MailchimpError, encrypt_secret, mask_api_key
from portal.models import (Connector, ConnectorStatus, Contact, RunKind, RunStatus, SyncRun, User, Workspace,
                           utcnow)
from portal.sync import ConnectorError, notifications, webhooks
from portal.sync import runs as run_rows
from portal.sync.audience import by_tag, normalise_mapping
from portal.sync.mailchimp_access import api_key_of, client_for

log = logging.getLogger(__name__)


def _already_connected() -> ConnectorError:
    return ConnectorError(_("This workspace already has a Mailchimp connector. Delete it first to connect another "
                            "audience."))


def live_connector(workspace_id: int) -> Connector | None:
    """The workspace's connector that is not deleted, if any."""
    return db.session.scalar(
        select(Connector).where(Connector.workspace_id == workspace_id, Connector.deleted_at.is_(None))
    )


def connectors_with_workspaces(status: ConnectorStatus | None = None) -> list[tuple[Connector, Workspace]]:
    """Connectors of every workspace (with `status`, or all), oldest submitted first (support's queue)."""
    query = select(Connector, Workspace).join(Workspace, Workspace.id == Connector.workspace_id)
    if status is not None:
        query = query.where(Connector.status == status)
    query = query.order_by(func.coalesce(Connector.submitted_at, Connector.created_at), Connector.id)
    return [tuple(row) for row in db.session.execute(query).all()]


def get_connector(connector_id: int) -> Connector:
    """The connector, or ConnectorError."""
    connector = db.session.get(Connector, connector_id)
    if connector is None:
        raise ConnectorError(_("Connector not found."))
    return connector


def live_contact_count(workspace_id: int) -> int:
    """How many live contacts the workspace has (every one gets a result in the copy)."""
    return db.session.scalar(
        select(func.count()).select_from(Contact)
        .where(Contact.workspace_id == workspace_id, Contact.deleted_at.is_(None))
    ) or 0


def _mailchimp_refusal(exc: MailchimpError, *, setting_up: bool = False) -> ConnectorError:
    # While a connector is being set up there is nothing to "reconnect" yet (issue 12).
    return ConnectorError(labels.setup_error(exc.kind, exc.field) if setting_up
                          else labels.error_message(exc.kind, exc.field))


def create_connector(workspace_id: int, user: User | None, api_key: str, audience_id: str,
                     mapping: Sequence[Any] | None = None, create_missing: bool = True) -> Connector:
    """Record a new connector waiting for validation (R5), with its consent import and preview queued (R6, R7).

    Refuses a second live connector for the workspace. Reads the audience (name, merge
    fields) but writes nothing to Mailchimp; support's audience checks are queued too. Turns the workspace's consent field on and
    e-mails support. The preview waits for the consent import (its counts depend on consent).
    """
    if live_connector(workspace_id):
        raise _already_connected()
    api_key = (api_key or "").strip()
    try:
        with client_for(api_key) as client:
            audience = client.get_list(audience_id)
            merge_fields = client.get_merge_fields(audience_id)
    except MailchimpError as exc:
        raise _mailchimp_refusal(exc, setting_up=True) from exc
    mappings = normalise_mapping(mapping)
    existing = by_tag(merge_fields)
    to_create = [m for m in mappings if m.tag not in existing]
    if not create_missing:
        mappings = [m for m in mappings if m.tag in existing]
        to_create = []
    connector = Connector(
        workspace_id=workspace_id, status=ConnectorStatus.PENDING_VALIDATION,
        api_key_encrypted=encrypt_secret(api_key, current_app.config["FERNET_KEY"]),
        api_key_hint=mask_api_key(api_key), audience_id=audience_id,
        audience_name=str(audience.get("name") or "")[:200],
        subscribe_url=str(audience.get("subscribe_url_long") or audience.get("subscribe_url_short") or "")[:500],
        field_mapping=[m.to_dict() for m in mappings],
        merge_fields_to_create=[m.to_dict() for m in to_create],
        created_by_id=user.id if user is not None else None, submitted_at=utcnow(),
        sent_back_reason="", paused_reason="", webhook_secret=secrets.token_urlsafe(32),
    )
    db.session.add(connector)
    db.session.get(Workspace, workspace_id).consent_enabled = True
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise _already_connected() from None
    run_rows.create_run(connector, RunKind.CONSENT_IMPORT)
    run_rows.create_run(connector, RunKind.PREVIEW)
    run_rows.create_run(connector, RunKind.AUDIENCE_CHECK)  # support's checks, in the background (R7)
    db.session.commit()
    notifications.notify_support_submitted(connector)
    return connector


def start_preview(connector_id: int) -> SyncRun:
    """A fresh dry-run preview, queued (R7); only while the connector waits for validation."""
    connector = get_connector(connector_id)
    if connector.status != ConnectorStatus.PENDING_VALIDATION:
        raise ConnectorError(_("The preview can only be computed while the connector waits for validation."))
    run = run_rows.create_run(connector, RunKind.PREVIEW)
    db.session.commit()
    return run


def _move(connector_id: int, from_status: ConnectorStatus, to_status: ConnectorStatus, refusal: str,
          **values: Any) -> Connector:
    """Move the connector from one status to another by a conditional UPDATE (two clicks at once
    move it once); ConnectorError(`refusal`) when it is not in `from_status`. Not committed."""
    result = db.session.execute(
        update(Connector).where(Connector.id == connector_id, Connector.status == from_status)
        .values(status=to_status, **values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        db.session.rollback()
        raise ConnectorError(refusal)
    connector = get_connector(connector_id)
    db.session.refresh(connector)
    return connector


def validate(connector_id: int, user: User | None) -> SyncRun:
    """Support validates: the connector starts copying; returns the initial copy's run, queued (R7, R8).

    Only from ``pending_validation``, decided by a conditional UPDATE (two agents clicking
    at once start one copy). Missing merge fields are created by the copy's first phase.
    """
    connector = _move(connector_id, ConnectorStatus.PENDING_VALIDATION, ConnectorStatus.COPYING,
                      _("Only a connector waiting for validation can be validated."),
                      validated_at=utcnow(), validated_by_id=user.id if user is not None else None)
    run = run_rows.create_run(connector, RunKind.INITIAL_COPY, total=live_contact_count(connector.workspace_id))
    db.session.commit()
    return run


def start_copy(connector_id: int) -> SyncRun:
    """Another full copy of an active (or copying) connector, queued; unchanged contacts send nothing."""
    connector = get_connector(connector_id)
    if connector.status not in (ConnectorStatus.ACTIVE, ConnectorStatus.COPYING):
        raise ConnectorError(_("Only an active connector can be copied again."))
    running = db.session.scalar(select(SyncRun).where(
        SyncRun.connector_id == connector.id, SyncRun.kind == RunKind.INITIAL_COPY,
        SyncRun.status.in_((RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.PAUSED))))
    if running is not None:
        return running
    run = run_rows.create_run(connector, RunKind.INITIAL_COPY, total=live_contact_count(connector.workspace_id))
    db.session.commit()
    return run


def send_back(connector_id: int, user: User | None, reason: str) -> Connector:
    """Support sends the connector back to the customer with a reason, shown and e-mailed (R7)."""
    reason = (reason or "").strip()
    if not reason:
        raise ConnectorError(_("Give the reason the customer will read."))
    connector = _move(connector_id, ConnectorStatus.PENDING_VALIDATION, ConnectorStatus.SENT_BACK,
                      _("Only a connector waiting for validation can be sent back."), sent_back_reason=reason)
    db.session.commit()
    notifications.notify_sent_back(connector, reason)
    return connector


def resubmit(connector_id: int, user: User | None) -> Connector:
    """The customer submits a sent-back connector again: a new preview is queued, support told."""
    connector = _move(connector_id, ConnectorStatus.SENT_BACK, ConnectorStatus.PENDING_VALIDATION,
                      _("Only a connector sent back can be submitted again."), submitted_at=utcnow())
    run_rows.create_run(connector, RunKind.PREVIEW)
    run_rows.create_run(connector, RunKind.AUDIENCE_CHECK)
    db.session.commit()
    notifications.notify_support_submitted(connector)
    return connector


def delete_connector(connector_id: int, user: User | None) -> Connector:
    """Delete the connector (R9): replication stops, runs stop, our webhook goes, data stays.

    anaba's contacts, consent and sync history are kept; the Mailchimp audience is not
    touched (only our webhook is unregistered, best effort).
    """
    connector = get_connector(connector_id)
    if connector.status == ConnectorStatus.DELETED:
        return connector
    if connector.webhook_id or connector.webhook_url:
        # Best effort, one short attempt: a slow Mailchimp never holds the deletion (a page).
        with client_for(connector, timeout=current_app.config["MAILCHIMP_WEB_TIMEOUT"], retries=False) as client:
            webhooks.unregister(connector, client)
    connector.status = ConnectorStatus.DELETED
    connector.deleted_at = utcnow()
    webhooks.secret_cache.clear()
    db.session.execute(
        update(SyncRun).where(SyncRun.connector_id == connector.id,
                              SyncRun.status.in_((RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.PAUSED)))
        .values(status=RunStatus.FAILED, message="connector deleted", finished_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return connector


def pause_connector(connector_id: int, error: MailchimpError) -> None:
    """Mailchimp refuses the key or the audience is gone: pause, and tell the customers how to reconnect."""
    connector = db.session.get(Connector, connector_id)
    if connector is None or connector.status in (ConnectorStatus.DELETED, ConnectorStatus.PAUSED):
        return
    connector.status = ConnectorStatus.PAUSED
    connector.paused_reason = error.kind  # a kind, so each reader gets it in their own language
    db.session.commit()
    notifications.notify_paused(connector, error.kind)


def pause_by_support(connector_id: int, user: User | None) -> Connector:
    """Support pauses an active connector by hand (R19): nothing is sent until it is resumed
    (:func:`reconnect`); changes made meanwhile wait and are sent then. The customers are told."""
    result = db.session.execute(
        update(Connector).where(Connector.id == connector_id, Connector.status == ConnectorStatus.ACTIVE)
        .values(status=ConnectorStatus.PAUSED, paused_reason=labels.PAUSED_BY_SUPPORT)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        db.session.rollback()
        raise ConnectorError(_("Only an active connector can be paused."))
    db.session.commit()
    connector = get_connector(connector_id)
    db.session.refresh(connector)
    notifications.notify_paused(connector, labels.PAUSED_BY_SUPPORT)
    return connector


def reconnect(connector_id: int, user: User | None, api_key: str | None = None) -> Connector:
    """Resume a paused connector, with a new API key if given (R19 "reconnect").

    The key must reach the connector's audience; the paused copy (if any) is queued again and
    continues where it stopped.
    """
    connector = get_connector(connector_id)
    if connector.status != ConnectorStatus.PAUSED:
        raise ConnectorError(_("Only a paused connector can be reconnected."))
    if connector.paused_reason == labels.PAUSED_BY_SUPPORT and not (user is not None and user.is_support):
        raise ConnectorError(_("anaba's support team paused this connector: contact them to resume it."))
    key = (api_key or "").strip() or api_key_of(connector)
    try:
        with client_for(key) as client:
            client.get_list(connector.audience_id)
    except MailchimpError as exc:
        raise _mailchimp_refusal(exc) from exc
    if api_key:
        connector.api_key_encrypted = encrypt_secret(key, current_app.config["FERNET_KEY"])
        connector.api_key_hint = mask_api_key(key)
    copy = run_rows.latest_run(connector.id, RunKind.INITIAL_COPY)
    resumes_copy = copy is not None and copy.status in (RunStatus.PAUSED, RunStatus.FAILED)
    connector.paused_reason = ""
    connector.status = ConnectorStatus.COPYING if resumes_copy else ConnectorStatus.ACTIVE
    db.session.commit()
    if resumes_copy:
        run_rows.requeue(copy)
    return connector
