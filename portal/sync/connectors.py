"""The connector's life cycle and what the pages need about it (R5–R9, R17, R19).

Views and the CLI call only these functions. They work on the database and enqueue jobs;
reading Mailchimp (key check, audiences, merge fields, audience checks) happens here too,
but every write to Mailchimp happens in a background job, after support validation.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from flask import current_app
from flask_babel import force_locale, get_locale
from flask_babel import gettext as _
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from portal.extensions import db, rq
from portal.mailchimp import MailchimpError, decrypt_secret, encrypt_secret, mask_api_key, message_for
from portal.mailchimp.errors import KINDS, N_
from portal.mailchimp.payload import TEXT_MAX_LENGTH, FieldMapping, default_mappings
from portal.models import Connector, Contact, ContactSync, SyncRun, User, Workspace, utcnow
from portal.sync import runs as run_rows

if TYPE_CHECKING:  # the adapter loads mailchimp3 on first use only
    from portal.mailchimp.client import MailchimpClient

log = logging.getLogger(__name__)

ERRORS_PATH = "/mailchimp/errors"
CONNECTOR_PATH = "/mailchimp/"


class ConnectorError(Exception):
    """A connector operation refused, with a human `.message` to show as is."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --- Mailchimp access -------------------------------------------------------------------------

def api_key_of(connector: Connector) -> str:
    """The connector's API key, decrypted (never log or show it)."""
    return decrypt_secret(connector.api_key_encrypted, current_app.config["FERNET_KEY"])


def client_for(connector_or_api_key: Connector | str) -> MailchimpClient:
    """A Mailchimp client for a connector (or a bare API key), configured from the app.

    Base URL from ``MAILCHIMP_API_BASE`` (None: Mailchimp itself), read timeout
    ``MAILCHIMP_TIMEOUT``, and the cross-process limit of ``MAILCHIMP_MAX_CONNECTIONS``
    connections per key through Redis (R20).
    """
    from portal.mailchimp import MailchimpClient

    key = api_key_of(connector_or_api_key) if isinstance(connector_or_api_key, Connector) else connector_or_api_key
    config = current_app.config
    timeout = float(config.get("MAILCHIMP_TIMEOUT") or 30)
    return MailchimpClient(
        key, base_url=config.get("MAILCHIMP_API_BASE") or None, timeout=(min(3.05, timeout), timeout),
        redis=rq.redis, max_connections=int(config.get("MAILCHIMP_MAX_CONNECTIONS") or 10),
    )


def check_api_key(api_key: str) -> dict:
    """Check a key (``/ping``) and list its audiences: ``{"account", "audiences": [...]}``.

    Raises :class:`~portal.mailchimp.MailchimpError` (show ``err.message``) for a bad key.
    """
    with client_for(api_key.strip()) as client:
        client.ping()
        audiences = client.get_lists()
    return {
        "account": mask_api_key(api_key.strip()),
        "audiences": [{"id": a["id"], "name": a["name"], "member_count": a["member_count"]} for a in audiences],
    }


def anaba_fields() -> list[tuple[str, str]]:
    """The anaba contact fields a merge field can receive, with their labels."""
    return [
        ("first_name", _("First name")), ("last_name", _("Last name")), ("phone", _("Phone")),
        ("company", _("Company")), ("job_title", _("Job title")), ("address", _("Postal address")),
        ("street", _("Street")), ("postal_code", _("Postal code")), ("city", _("City")),
        ("country", _("Country")),
    ]


def _by_tag(merge_fields: Iterable[dict]) -> dict[str, dict]:
    return {str(f.get("tag", "")).upper(): f for f in merge_fields}


def audience_fields(api_key: str, list_id: str) -> dict:
    """The audience's merge fields and the mapping proposed for them (R5).

    ``proposed_mapping`` items: ``{"field", "tag", "type", "exists", "required", "size",
    "name"}``; ``unfillable_required``: required merge fields the proposal leaves empty.
    """
    with client_for(api_key.strip()) as client:
        merge_fields = client.get_merge_fields(list_id)
    by_tag = _by_tag(merge_fields)
    by_name = {str(f.get("name", "")).strip().casefold(): f for f in merge_fields}
    proposed = []
    for mapping in default_mappings():
        found = by_tag.get(mapping.tag) or by_name.get(mapping.name.casefold())
        if found is not None and found.get("type") not in (mapping.type, "text"):
            found = None if found.get("tag") != mapping.tag else found
        proposed.append({
            "field": mapping.source, "tag": found["tag"] if found else mapping.tag,
            "type": found.get("type", mapping.type) if found else mapping.type,
            "exists": found is not None, "required": bool(found and found.get("required")),
            "size": mapping.limit or TEXT_MAX_LENGTH if mapping.type != "address" else None,
            "name": found.get("name", mapping.name) if found else mapping.name,
        })
    mapped = {p["tag"] for p in proposed}
    unfillable = [
        f["tag"] for f in merge_fields
        if f.get("required") and f.get("tag") not in mapped and not str(f.get("default_value") or "").strip()
    ]
    return {"merge_fields": merge_fields, "proposed_mapping": proposed, "anaba_fields": anaba_fields(),
            "unfillable_required": unfillable}


def _normalise_mapping(mapping: Sequence[Any] | None) -> list[FieldMapping]:
    """FieldMapping objects from the wizard's dicts (``field``/``source``, ``tag``, ``type``…)."""
    if mapping is None:
        return default_mappings()
    result = []
    for item in mapping:
        if isinstance(item, FieldMapping):
            result.append(item)
            continue
        source = item.get("source") or item.get("field")
        tag = item.get("tag")
        if not source or not tag:
            continue
        result.append(FieldMapping(
            source=source, tag=tag, type=item.get("type") or ("address" if source == "address" else "text"),
            max_length=item.get("max_length"), name=item.get("name") or item.get("label") or str(tag).title(),
        ))
    return result


# --- life cycle -------------------------------------------------------------------------------

def create_connector(workspace_id: int, user: User | None, api_key: str, audience_id: str,
                     mapping: Sequence[Any] | None = None, create_missing: bool = True) -> Connector:
    """Record a new connector waiting for validation (R5) and start the consent import (R6).

    Refuses a second live connector for the workspace. Reads the audience (name, merge
    fields) but writes nothing to Mailchimp. Turns the workspace's consent field on, queues
    the consent import and, after it, the preview; e-mails support.
    """
    if run_rows_live(workspace_id):
        raise ConnectorError(_("This workspace already has a Mailchimp connector. Delete it first to connect another audience."))
    api_key = (api_key or "").strip()
    try:
        with client_for(api_key) as client:
            audience = client.get_list(audience_id)
            merge_fields = client.get_merge_fields(audience_id)
    except MailchimpError as exc:
        raise ConnectorError(exc.message) from exc
    mappings = _normalise_mapping(mapping)
    existing = _by_tag(merge_fields)
    to_create = [m for m in mappings if m.tag not in existing]
    if not create_missing:
        mappings = [m for m in mappings if m.tag in existing]
        to_create = []
    connector = Connector(
        workspace_id=workspace_id, status="pending_validation",
        api_key_encrypted=encrypt_secret(api_key, current_app.config["FERNET_KEY"]),
        api_key_hint=mask_api_key(api_key), audience_id=audience_id,
        audience_name=str(audience.get("name") or "")[:200],
        subscribe_url=str(audience.get("subscribe_url_long") or audience.get("subscribe_url_short") or "")[:500],
        field_mapping=[m.to_dict() for m in mappings],
        merge_fields_to_create=[m.to_dict() for m in to_create],
        created_by_id=user.id if user is not None else None, submitted_at=utcnow(),
        sent_back_reason="", paused_reason="",
    )
    db.session.add(connector)
    workspace = db.session.get(Workspace, workspace_id)
    workspace.consent_enabled = True
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise ConnectorError(_("This workspace already has a Mailchimp connector. Delete it first to connect another audience.")) from None
    consent_run = run_rows.create_run(connector, "consent_import")
    run_rows.create_run(connector, "preview")
    db.session.commit()
    run_rows.enqueue_run(consent_run)
    _notify_support_submitted(connector)
    return connector


def run_rows_live(workspace_id: int) -> Connector | None:
    """The workspace's connector that is not deleted, if any."""
    return db.session.scalar(
        select(Connector).where(Connector.workspace_id == workspace_id, Connector.deleted_at.is_(None))
    )


def get_connector(connector_id: int) -> Connector:
    """The connector, or ConnectorError."""
    connector = db.session.get(Connector, connector_id)
    if connector is None:
        raise ConnectorError(_("Connector not found."))
    return connector


def start_preview(connector_id: int) -> SyncRun:
    """Queue a fresh dry-run preview (R7); only while the connector waits for validation."""
    connector = get_connector(connector_id)
    if connector.status != "pending_validation":
        raise ConnectorError(_("The preview can only be computed while the connector waits for validation."))
    run = run_rows.create_run(connector, "preview")
    db.session.commit()
    run_rows.enqueue_run(run)
    return run


def live_contact_count(workspace_id: int) -> int:
    """How many live contacts the workspace has (every one gets a result in the copy)."""
    return db.session.scalar(
        select(func.count()).select_from(Contact)
        .where(Contact.workspace_id == workspace_id, Contact.deleted_at.is_(None))
    ) or 0


def validate(connector_id: int, user: User | None) -> SyncRun:
    """Support validates: the connector starts copying and the initial copy is queued (R7, R8).

    Only from ``pending_validation``, decided by a conditional UPDATE (two agents clicking
    at once start one copy). Missing merge fields are created by the copy's first phase.
    """
    result = db.session.execute(
        update(Connector).where(Connector.id == connector_id, Connector.status == "pending_validation")
        .values(status="copying", validated_at=utcnow(), validated_by_id=user.id if user is not None else None)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        db.session.rollback()
        raise ConnectorError(_("Only a connector waiting for validation can be validated."))
    connector = get_connector(connector_id)
    db.session.refresh(connector)
    run = run_rows.create_run(connector, "initial_copy", total=live_contact_count(connector.workspace_id))
    db.session.commit()
    run_rows.enqueue_run(run)
    return run


def start_copy(connector_id: int) -> SyncRun:
    """Queue another full copy of an active (or copying) connector; unchanged contacts send nothing."""
    connector = get_connector(connector_id)
    if connector.status not in ("active", "copying"):
        raise ConnectorError(_("Only an active connector can be copied again."))
    running = db.session.scalar(select(SyncRun).where(
        SyncRun.connector_id == connector.id, SyncRun.kind == "initial_copy",
        SyncRun.status.in_(("queued", "running", "paused"))))
    if running is not None:
        return running
    run = run_rows.create_run(connector, "initial_copy", total=live_contact_count(connector.workspace_id))
    db.session.commit()
    run_rows.enqueue_run(run)
    return run


def send_back(connector_id: int, user: User | None, reason: str) -> Connector:
    """Support sends the connector back to the customer with a reason, shown and e-mailed (R7)."""
    reason = (reason or "").strip()
    if not reason:
        raise ConnectorError(_("Give the reason the customer will read."))
    result = db.session.execute(
        update(Connector).where(Connector.id == connector_id, Connector.status == "pending_validation")
        .values(status="sent_back", sent_back_reason=reason)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        db.session.rollback()
        raise ConnectorError(_("Only a connector waiting for validation can be sent back."))
    db.session.commit()
    connector = get_connector(connector_id)
    db.session.refresh(connector)
    _notify_customers(connector, "connector_sent_back", N_("Your Mailchimp connector needs a change"),
                      reason=reason)
    return connector


def resubmit(connector_id: int, user: User | None) -> Connector:
    """The customer submits a sent-back connector again: new preview, support told."""
    result = db.session.execute(
        update(Connector).where(Connector.id == connector_id, Connector.status == "sent_back")
        .values(status="pending_validation", submitted_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        db.session.rollback()
        raise ConnectorError(_("Only a connector sent back can be submitted again."))
    connector = get_connector(connector_id)
    db.session.refresh(connector)
    run = run_rows.create_run(connector, "preview")
    db.session.commit()
    run_rows.enqueue_run(run)
    _notify_support_submitted(connector)
    return connector


def delete_connector(connector_id: int, user: User | None) -> Connector:
    """Delete the connector (R9): replication stops, runs stop, our webhook goes, data stays.

    anaba's contacts, consent and sync history are kept; the Mailchimp audience is not
    touched (only our webhook is unregistered, best effort).
    """
    connector = get_connector(connector_id)
    if connector.status == "deleted":
        return connector
    if connector.webhook_id:
        try:
            with client_for(connector) as client:
                client.delete_webhook(connector.audience_id, connector.webhook_id)
        except MailchimpError as exc:
            log.warning("connector %s: webhook not unregistered (%s)", connector.id, exc.kind)
        connector.webhook_id = None
    connector.status = "deleted"
    connector.deleted_at = utcnow()
    db.session.execute(
        update(SyncRun).where(SyncRun.connector_id == connector.id,
                              SyncRun.status.in_(("queued", "running", "paused")))
        .values(status="failed", message="connector deleted", finished_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return connector


def pause_connector(connector_id: int, error: MailchimpError) -> None:
    """Mailchimp refuses the key or the audience is gone: pause with the "reconnect" message."""
    connector = db.session.get(Connector, connector_id)
    if connector is None or connector.status in ("deleted", "paused"):
        return
    connector.status = "paused"
    connector.paused_reason = error.kind  # a kind, so each reader gets it in their own language
    db.session.commit()
    _notify_customers(connector, "connector_paused", N_("Your Mailchimp connector is paused"),
                      reason=error.message)


def reconnect(connector_id: int, user: User | None, api_key: str | None = None) -> Connector:
    """Resume a paused connector, with a new API key if given (R19 "reconnect").

    The key must reach the connector's audience; the paused copy (if any) continues where it
    stopped.
    """
    connector = get_connector(connector_id)
    if connector.status != "paused":
        raise ConnectorError(_("Only a paused connector can be reconnected."))
    key = (api_key or "").strip() or api_key_of(connector)
    try:
        with client_for(key) as client:
            client.get_list(connector.audience_id)
    except MailchimpError as exc:
        raise ConnectorError(exc.message) from exc
    if api_key:
        connector.api_key_encrypted = encrypt_secret(key, current_app.config["FERNET_KEY"])
        connector.api_key_hint = mask_api_key(key)
    copy = latest_run(connector.id, "initial_copy")
    connector.paused_reason = ""
    connector.status = "copying" if copy is not None and copy.status in ("paused", "failed") else "active"
    db.session.commit()
    if connector.status == "copying":
        run_rows.requeue(copy.id)
    return connector


# --- audience checks (validation page) --------------------------------------------------------

def audience_checks(connector: Connector) -> list[dict]:
    """Checks shown to support before validating (R7): ``{"name", "ok", "detail"}`` each.

    ``ok`` is True (fine), False (a problem to solve first) or None (information).
    """
    checks: list[dict] = []
    try:
        with client_for(connector) as client:
            audience = client.get_list(connector.audience_id)
            merge_fields = client.get_merge_fields(connector.audience_id)
            webhooks = client.get_webhooks(connector.audience_id)
    except MailchimpError as exc:
        return [{"name": _("Mailchimp access"), "ok": False, "detail": exc.message}]
    by_tag = _by_tag(merge_fields)
    mapped = [FieldMapping.from_dict(m) for m in connector.field_mapping or []]
    present = [m.tag for m in mapped if m.tag in by_tag]
    missing = [m.tag for m in mapped if m.tag not in by_tag]
    checks.append({"name": _("Merge fields present"), "ok": True,
                   "detail": ", ".join(present) or _("none")})
    if missing:
        room = 30 - len(merge_fields)
        checks.append({
            "name": _("Merge fields to create"), "ok": len(missing) <= room,
            "detail": _("%(tags)s will be created at validation.", tags=", ".join(missing)) if len(missing) <= room
            else _("The audience cannot take %(n)d more merge fields (30 at most).", n=len(missing)),
        })
    mapped_tags = {m.tag for m in mapped}
    unfillable = [f["tag"] for f in merge_fields if f.get("required") and f["tag"] not in mapped_tags
                  and not str(f.get("default_value") or "").strip()]
    checks.append({
        "name": _("Required merge fields"), "ok": not unfillable,
        "detail": _("anaba cannot fill: %(tags)s", tags=", ".join(unfillable)) if unfillable
        else _("anaba fills every required merge field."),
    })
    base = current_app.config.get("PUBLIC_BASE_URL", "")
    ours = [w for w in webhooks if base and str(w.get("url", "")).startswith(base)]
    checks.append({
        "name": _("Webhook"), "ok": None,
        "detail": _("Already registered.") if ours or connector.webhook_id
        else _("Not registered yet: it is registered when replication starts."),
    })
    stats = audience.get("stats") or {}
    checks.append({
        "name": _("Audience size"), "ok": None,
        "detail": _("%(subscribed)d subscribed, %(unsubscribed)d unsubscribed, %(cleaned)d cleaned",
                    subscribed=int(stats.get("member_count") or 0),
                    unsubscribed=int(stats.get("unsubscribe_count") or 0),
                    cleaned=int(stats.get("cleaned_count") or 0)),
    })
    return checks


# --- runs and progress ------------------------------------------------------------------------

def latest_run(connector_id: int, kind: str) -> SyncRun | None:
    """The connector's most recent run of `kind`."""
    return db.session.scalar(
        select(SyncRun).where(SyncRun.connector_id == connector_id, SyncRun.kind == kind)
        .order_by(SyncRun.id.desc()).limit(1)
    )


def runs(connector_id: int) -> list[SyncRun]:
    """Every run of the connector, newest first (the history)."""
    return list(db.session.scalars(
        select(SyncRun).where(SyncRun.connector_id == connector_id).order_by(SyncRun.id.desc())
    ))


def run_progress(run: SyncRun) -> dict:
    """``{done, total, percent, errors, eta_seconds, rate_per_s, status, counts, ...}``."""
    return run_rows.progress(run)


# --- errors and fixes (R19) -------------------------------------------------------------------

def _locale() -> str:
    try:
        return str(get_locale() or "fr")
    except Exception:  # outside a request
        return "fr"


def error_groups(workspace_id: int | None = None, connector_id: int | None = None) -> list[dict]:
    """Contacts in error grouped by kind: ``{kind, message, fix, count, items}``.

    ``items`` are the first 50 ``(contact, sync_row)`` pairs. Contacts left out because
    another contact owns their e-mail are listed as ``duplicate_email`` (fix: choose the
    owner). None for both = every live connector (support). Transient problems never appear:
    they are not stored on contacts.
    """
    live = select(Connector.id).where(Connector.deleted_at.is_(None))
    if workspace_id is not None:
        live = live.where(Connector.workspace_id == workspace_id)
    if connector_id is not None:
        live = live.where(Connector.id == connector_id)
    errors = (ContactSync.state == "error")
    shared = (ContactSync.state == "not_synced") & (ContactSync.reason == "shared_email")
    kind_col = db.case((shared, "duplicate_email"), else_=ContactSync.error_kind)
    # A contact deleted or excluded since its last push is no longer an error to fix.
    where = [ContactSync.connector_id.in_(live), errors | shared, Contact.deleted_at.is_(None),
             Contact.do_not_sync.is_(False)]
    counts = db.session.execute(
        select(kind_col.label("kind"), func.count()).select_from(ContactSync)
        .join(Contact, Contact.id == ContactSync.contact_id)
        .where(*where).group_by(kind_col).order_by(func.count().desc())
    ).all()
    locale = _locale()
    groups = []
    for kind, count in counts:
        kind_filter = shared if kind == "duplicate_email" else (errors & (ContactSync.error_kind == kind))
        pairs = db.session.execute(
            select(Contact, ContactSync).join(Contact, Contact.id == ContactSync.contact_id)
            .where(ContactSync.connector_id.in_(live), kind_filter, Contact.deleted_at.is_(None),
                   Contact.do_not_sync.is_(False))
            .order_by(ContactSync.contact_id).limit(50)
        ).all()
        fields = {row.error_field for _c, row in pairs if row.error_field}
        info = KINDS.get(kind) or KINDS["unknown"]
        groups.append({
            "kind": kind, "count": count, "fix": info.fix,
            "message": message_for(kind, locale, field=", ".join(sorted(fields)) if fields else None),
            "items": [(c, s) for c, s in pairs],
        })
    return groups


def retry_contacts(connector_id: int, contact_ids: Sequence[int] | None = None) -> None:
    """Queue a retry of these contacts (None: every contact in error) on the `live` queue."""
    from portal import jobs

    ids = sorted(set(int(i) for i in contact_ids)) if contact_ids is not None else None
    suffix = "all" if ids is None else f"{len(ids)}-{hash(tuple(ids)) & 0xffffffff:x}"
    jobs.enqueue("live", jobs.retry_contacts, connector_id, ids, job_id=f"retry-{connector_id}-{suffix}")


def retry_now(connector_id: int, contact_ids: Sequence[int] | None = None) -> dict:
    """Push these contacts (None: every contact in error) now; the job behind retry_contacts."""
    from portal.sync.push import PushResult, push_contacts

    connector = db.session.get(Connector, connector_id)
    total = PushResult()
    if connector is None or connector.status not in ("active", "copying"):
        return total.add_to({})
    if contact_ids is None:
        contact_ids = list(db.session.scalars(
            select(ContactSync.contact_id).where(ContactSync.connector_id == connector.id,
                                                 ContactSync.state == "error").order_by(ContactSync.contact_id)
        ))
    ids = list(contact_ids)
    with client_for(connector) as client:
        for start in range(0, len(ids), 500):
            try:
                part = push_contacts(connector.id, ids[start:start + 500], client=client)
            except MailchimpError as exc:
                db.session.rollback()
                if exc.pauses_connector:
                    pause_connector(connector.id, exc)
                    return total.add_to({})
                raise
            for key in ("processed", "created", "updated", "unchanged", "errors", "deferred", "member_writes"):
                setattr(total, key, getattr(total, key) + getattr(part, key))
            total.skipped.update(part.skipped)
            total.error_kinds.update(part.error_kinds)
    return total.add_to({})


def choose_email_owner(workspace_id: int, contact_id: int) -> Connector | None:
    """Make this contact the owner of the e-mail it shares with others (R19); queue their push."""
    from portal.crm.contacts import get_contact

    contact = get_contact(workspace_id, contact_id)
    connector = run_rows_live(workspace_id)
    if connector is None or not contact.email_normalized:
        raise ConnectorError(_("There is no Mailchimp connector or the contact has no e-mail."))
    sharing = list(db.session.scalars(
        select(Contact.id).where(Contact.workspace_id == workspace_id, Contact.deleted_at.is_(None),
                                 Contact.email_normalized == contact.email_normalized)
    ))
    existing = {r.contact_id: r for r in db.session.scalars(
        select(ContactSync).where(ContactSync.connector_id == connector.id, ContactSync.contact_id.in_(sharing))
    )}
    for cid in sharing:
        row = existing.get(cid)
        if row is None:
            row = ContactSync(connector_id=connector.id, workspace_id=workspace_id, contact_id=cid, state="pending",
                              reason="", synced_tags=[], attempts=0, error_kind="", error_message="",
                              error_fix="", error_field="")
            db.session.add(row)
        row.owner_chosen = cid == contact.id
    db.session.commit()
    if connector.status in ("active", "copying"):
        retry_contacts(connector.id, sharing)
    return connector


# --- e-mails ----------------------------------------------------------------------------------

def customer_recipients(workspace_id: int) -> list[User]:
    """The workspace's active customer users."""
    return list(db.session.scalars(
        select(User).where(User.workspace_id == workspace_id, User.role == "customer", User.active.is_(True))
    ))


def public_url(path: str) -> str:
    """An absolute link into the portal (e-mails)."""
    return current_app.config.get("PUBLIC_BASE_URL", "").rstrip("/") + path


def _notify_customers(connector: Connector, kind: str, subject_msgid: str, **context: Any) -> None:
    from portal.notify import send_email

    workspace = db.session.get(Workspace, connector.workspace_id)
    for user in customer_recipients(connector.workspace_id):
        locale = user.locale or "fr"
        with force_locale(locale):
            subject = _(subject_msgid)
            labels = reason_labels()
        send_email(kind, user.email, subject, workspace_id=connector.workspace_id, locale=locale,
                   reason_labels=labels,
                   connector=connector, workspace=workspace, user=user,
                   connector_url=public_url(CONNECTOR_PATH), errors_url=public_url(ERRORS_PATH), **context)


def _notify_support_submitted(connector: Connector) -> None:
    from portal.notify import send_email

    workspace = db.session.get(Workspace, connector.workspace_id)
    with force_locale("fr"):
        subject = _("Mailchimp connector to validate: %(workspace)s", workspace=workspace.name)
    send_email("connector_submitted", current_app.config["SUPPORT_EMAIL"], subject,
               workspace_id=connector.workspace_id, locale="fr", connector=connector, workspace=workspace,
               validation_url=public_url(f"/support/connectors/{connector.id}"),
               queue_url=public_url("/support/connectors/"))


def notify_copy_finished(connector: Connector, run: SyncRun) -> None:
    """E-mail the customers the copy's counts and the link to the errors (R8)."""
    counts = dict(run.counts or {})
    _notify_customers(connector, "copy_finished", N_("Your contacts are in Mailchimp"),
                      run=run, created=int(counts.get("created", 0)), updated=int(counts.get("updated", 0)),
                      unchanged=int(counts.get("unchanged", 0)), errors=int(counts.get("errors", 0)),
                      skipped=dict(counts.get("skipped") or {}))


def reason_labels() -> dict[str, str]:
    """Human labels of the "not synced" reasons (R17), in the current locale."""
    return {
        "deleted": _("deleted in anaba"), "no_email": _("no e-mail address"),
        "invalid_email": _("invalid e-mail address"), "do_not_sync": _("marked not to be synced"),
        "bounced": _("address bounced"), "consent_locked": _("unsubscribed through Mailchimp"),
        "opt_out": _("opted out"), "no_consent": _("consent unknown"),
        "shared_email": _("e-mail shared with another contact"),
    }
