"""Every label people read for the portal's vocabulary, defined once (French in the catalog).

Pages (through the ``labels`` Jinja global), e-mails and API messages all read these, so a
state, a reason, a field or an error kind reads the same everywhere. The texts are English
msgids translated by Flask-Babel in the reader's language at the moment they are shown.
"""
from __future__ import annotations

from typing import Any

from flask_babel import gettext, lazy_gettext as _l

from portal.mailchimp.errors import KINDS, MESSAGES_EN, field_fallback
from portal.models import (Channel, ConnectorStatus, Consent, ConsentLockReason, NotSyncedReason, RunKind, RunStatus,
                           SyncEventKind, SyncState, WebhookEventStatus, WebhookProblem)

CONNECTOR_STATUS = {
    ConnectorStatus.PENDING_VALIDATION: _l("Waiting for anaba's validation"),
    ConnectorStatus.SENT_BACK: _l("Sent back by anaba's support"),
    ConnectorStatus.COPYING: _l("First copy in progress"),
    ConnectorStatus.ACTIVE: _l("Active"),
    ConnectorStatus.PAUSED: _l("Paused"),
    ConnectorStatus.DELETED: _l("Deleted"),
}

RUN_KIND = {
    RunKind.CONSENT_IMPORT: _l("Consent import"),
    RunKind.PREVIEW: _l("Preview of the first copy"),
    RunKind.INITIAL_COPY: _l("First copy"),
    RunKind.RECONCILE: _l("Reconciliation"),
    RunKind.ACTIVITY_IMPORT: _l("Campaign activity import"),
}

RUN_STATUS = {
    RunStatus.UPLOADED: _l("Waiting for the column choice"),
    RunStatus.QUEUED: _l("Waiting to start"),
    RunStatus.RUNNING: _l("Running"),
    RunStatus.PAUSED: _l("Paused"),
    RunStatus.FINISHED: _l("Finished"),
    RunStatus.FAILED: _l("Failed"),
}

SYNC_STATE = {
    SyncState.SYNCED: _l("Synced"),
    SyncState.PENDING: _l("Pending"),
    SyncState.NOT_SYNCED: _l("Not synced"),
    SyncState.ERROR: _l("Error"),
    SyncState.UNSUBSCRIBED: _l("Unsubscribed"),
    SyncState.BOUNCED: _l("Bounced"),
    SyncState.ARCHIVED_IN_MC: _l("Archived in Mailchimp"),
    SyncState.DELETED_IN_MC: _l("Deleted in Mailchimp"),
}

NOT_SYNCED_REASON = {
    NotSyncedReason.DELETED: _l("deleted in anaba"),
    NotSyncedReason.NO_EMAIL: _l("no e-mail address"),
    NotSyncedReason.INVALID_EMAIL: _l("the e-mail address is not valid"),
    NotSyncedReason.DO_NOT_SYNC: _l("marked as not to be synced"),
    NotSyncedReason.BOUNCED: _l("the address bounced"),
    NotSyncedReason.CONSENT_LOCKED: _l("the contact unsubscribed through Mailchimp and must re-subscribe there"),
    NotSyncedReason.OPT_OUT: _l("the contact opted out"),
    NotSyncedReason.NO_CONSENT: _l("consent not given yet (unknown)"),
    NotSyncedReason.SHARED_EMAIL: _l("another contact owns this e-mail address"),
}

CONSENT = {
    Consent.OPT_IN: _l("Opt-in"),
    Consent.OPT_OUT: _l("Opt-out"),
    Consent.UNKNOWN: _l("Unknown"),
}

CHANNEL = {
    Channel.UI: _l("Portal"),
    Channel.API: _l("API"),
    Channel.CSV_IMPORT: _l("CSV import"),
    Channel.MAILCHIMP_IMPORT: _l("Mailchimp (consent import)"),
    Channel.MAILCHIMP_WEBHOOK: _l("Mailchimp (webhook)"),
    Channel.MAILCHIMP_RECONCILE: _l("Mailchimp (nightly check)"),
    Channel.SUPPORT: _l("anaba support"),
    Channel.DEMO: _l("Demo data"),
}

SYNC_EVENT = {
    SyncEventKind.PUSHED: _l("Sent to Mailchimp"),
    SyncEventKind.ERROR: _l("Refused by Mailchimp"),
    SyncEventKind.ARCHIVED: _l("Archived in Mailchimp"),
    SyncEventKind.ERASED: _l("Erased from Mailchimp"),
    SyncEventKind.RENAMED: _l("E-mail address changed in Mailchimp"),
    SyncEventKind.UNSUBSCRIBED: _l("Unsubscribed in Mailchimp"),
    SyncEventKind.DRIFT_REPAIRED: _l("Values changed in Mailchimp restored"),
    SyncEventKind.MAILCHIMP_STATE: _l("State seen in Mailchimp"),
    SyncEventKind.EMAIL_CHANGED_IN_MC: _l("E-mail address changed by the contact in Mailchimp"),
}

LOCK_REASON = {
    ConsentLockReason.SELF_UNSUBSCRIBE: _l("the contact unsubscribed themself through a Mailchimp form or "
                                           "unsubscribe link"),
    ConsentLockReason.COMPLAINT: _l("the contact reported a Mailchimp campaign as spam"),
}

WEBHOOK_PROBLEM = {
    WebhookProblem.MISSING: _l("Not registered on the audience (or deleted in Mailchimp)."),
    WebhookProblem.WRONG_URL: _l("Registered with another address than the portal's."),
    WebhookProblem.WRONG_EVENTS: _l("Registered, but not for the events the connector needs."),
    WebhookProblem.WRONG_SOURCES: _l("Registered, but not for the sources the connector needs."),
}

WEBHOOK_EVENT_STATUS = {
    WebhookEventStatus.RECEIVED: _l("waiting to be applied"),
    WebhookEventStatus.APPLIED: _l("applied"),
    WebhookEventStatus.IGNORED: _l("nothing to do"),
    WebhookEventStatus.SUPERSEDED: _l("older than a change already applied"),
    WebhookEventStatus.REJECTED: _l("refused (not a valid event)"),
}

# The contact fields, as forms, the CSV import, the mapping and the API messages name them.
CONTACT_FIELD = {
    "email": _l("E-mail"), "first_name": _l("First name"), "last_name": _l("Last name"),
    "phone": _l("Phone"), "company": _l("Company"), "job_title": _l("Job title"),
    "address": _l("Postal address"), "street": _l("Street address"), "postal_code": _l("Postal code"),
    "city": _l("City"), "country": _l("Country"), "tags": _l("Tags"), "consent": _l("Consent"),
}

ERROR_TITLE = {
    "invalid_email": _l("Invalid e-mail addresses"),
    "fake_email": _l("Addresses Mailchimp considers fake"),
    "compliance_state": _l("Unsubscribed or blocked in Mailchimp"),
    "forgotten_email": _l("Permanently deleted from Mailchimp"),
    "member_exists": _l("Address already used by another member"),
    "email_taken": _l("New address already used by another member"),
    "duplicate_email": _l("E-mail address shared by several contacts"),
    "email_change_conflict": _l("New address given in Mailchimp already used by another contact"),
    "merge_field_invalid": _l("Field value refused by Mailchimp"),
    "merge_field_required": _l("Required field left empty"),
    "value_too_long": _l("Value too long for Mailchimp"),
    "not_found": _l("Not found in Mailchimp"),
    "api_key_invalid": _l("API key refused by Mailchimp"),
    "audience_gone": _l("Audience deleted in Mailchimp"),
    "unknown": _l("Other errors"),
}

# What the counters kept by runs mean (consent import, preview, copy, reconciliation).
COUNT = {
    "created": _l("created in Mailchimp"), "to_create": _l("to create"),
    "updated": _l("updated in Mailchimp"), "to_update": _l("to update"),
    "unchanged": _l("unchanged"), "up_to_date": _l("already up to date"), "skipped": _l("not synced"),
    "opt_in": _l("now opt-in"), "opt_out": _l("now opt-out"), "locked": _l("opt-out, locked by Mailchimp"),
    "bounced": _l("marked as bounced"), "matched": _l("found in the audience"), "members": _l("members read"),
    "archived": _l("archived"), "eligible": _l("eligible contacts"),
}


DRIFT = {
    "fields": _l("fields"), "tags": _l("tags"), "archived": _l("archived in Mailchimp"),
    "deleted": _l("deleted in Mailchimp"), "cleaned": _l("addresses cleaned"),
    "unsubscribed": _l("unsubscribed in Mailchimp (consent updated)"),
    "resubscribed": _l("subscribed again in Mailchimp (consent updated)"),
}


def _lookup(table: dict, value: Any) -> str:
    text = table.get(value)
    return str(text) if text is not None else str(value or "").replace("_", " ")


def connector_status(status: str) -> str:
    """A connector status in plain words."""
    return _lookup(CONNECTOR_STATUS, status)


def run_kind(kind: str) -> str:
    """What a run does, in plain words."""
    return _lookup(RUN_KIND, kind)


def run_status(status: str) -> str:
    """Where a run is, in plain words."""
    return _lookup(RUN_STATUS, status)


def sync_state(state: str) -> str:
    """A contact's sync state (R17)."""
    return _lookup(SYNC_STATE, state)


def reason(value: str) -> str:
    """Why a contact is not synced (R2), lower case (it reads inside a sentence)."""
    if not value:
        return str(_l("not eligible"))
    return _lookup(NOT_SYNCED_REASON, value)


def consent(value: str) -> str:
    """A consent value."""
    return _lookup(CONSENT, value)


def channel(value: str) -> str:
    """Through what a change arrived."""
    return _lookup(CHANNEL, value)


def sync_event(kind: str) -> str:
    """A line of a contact's sync history."""
    return _lookup(SYNC_EVENT, kind)


def field(name: str) -> str:
    """An anaba contact field."""
    return _lookup(CONTACT_FIELD, name)


def fields() -> dict[str, str]:
    """Every contact field with its label, in display order."""
    return {name: str(text) for name, text in CONTACT_FIELD.items()}


def error_title(kind: str) -> str:
    """A short title for a group of errors of one kind (R19)."""
    return str(ERROR_TITLE.get(kind) or ERROR_TITLE["unknown"])


def error_message(kind: str | None, field: str | None = None) -> str:
    """The plain-words sentence for a Mailchimp error kind, with its fix (R19), in the reader's language."""
    if not kind:
        return ""
    msgid = MESSAGES_EN.get(kind) or MESSAGES_EN["unknown"]
    text = gettext(msgid)
    try:
        return text.format(field=field or gettext(field_fallback()))
    except (KeyError, IndexError, ValueError):
        return text


def is_error_kind(value: str | None) -> bool:
    """True when `value` names a Mailchimp error kind (paused connectors store one)."""
    return bool(value) and value in KINDS


def count(key: str) -> str:
    """What a run's counter means."""
    return _lookup(COUNT, key)


def drift(kind: str) -> str:
    """A kind of difference the nightly reconciliation found (R22)."""
    return _lookup(DRIFT, kind)


def lock_reason(code: str) -> str:
    """Why a consent is locked (R16), lower case (it reads inside a sentence)."""
    if not code:
        return str(LOCK_REASON[ConsentLockReason.SELF_UNSUBSCRIBE])
    text = LOCK_REASON.get(code)
    return str(text) if text is not None else str(code)


def webhook_problem(problem: str) -> str:
    """What is wrong with a connector's webhook: a WebhookProblem, or the Mailchimp error of the last try."""
    text = WEBHOOK_PROBLEM.get(problem)
    if text is not None:
        return str(text)
    return error_message(problem) if problem else ""


def webhook_event_status(status: str) -> str:
    """What became of an event Mailchimp sent to the webhook."""
    return _lookup(WEBHOOK_EVENT_STATUS, status)
