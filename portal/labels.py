"""Every label people read for the portal's vocabulary, defined once (French in the catalog).

Pages (through the ``labels`` Jinja global), e-mails and API messages all read these, so a
state, a reason, a field or an error kind reads the same everywhere. The texts are English
msgids translated by Flask-Babel in the reader's language at the moment they are shown.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from flask_babel import format_date, format_time, gettext, lazy_gettext as _l

from portal.mailchimp.errors import KINDS, MESSAGES_EN, field_fallback
from portal.models import (ActivityAction, BackgroundProblem, Channel, ConnectorStatus, Consent, ConsentLockReason,
                           NotSyncedReason, RunKind, RunStatus, SyncEventKind, SyncState, WebhookEventStatus,
                           WebhookProblem)

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
    RunKind.AUDIENCE_CHECK: _l("Audience checks"),
}

BACKGROUND_PROBLEM = {
    BackgroundProblem.REDIS_DOWN: _l("Background processing is unavailable right now: imports, copies and Mailchimp "
                                     "updates wait and start on their own as soon as it is back. Try again in a "
                                     "minute if something does not move."),
    BackgroundProblem.NO_WORKER: _l("No background worker is running right now: waiting work starts as soon as one "
                                    "is."),
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

# The contacts table's filter on the Mailchimp state (R17), in the order offered.
SYNC_FILTERS = (SyncState.ERROR, SyncState.PENDING, SyncState.NOT_SYNCED, SyncState.SYNCED, SyncState.UNSUBSCRIBED,
                SyncState.BOUNCED, SyncState.ARCHIVED_IN_MC, SyncState.DELETED_IN_MC)
SYNC_FILTER = {
    SyncState.ERROR: _l("In error"),
    SyncState.PENDING: _l("Pending"),
    SyncState.NOT_SYNCED: _l("Not synced"),
    SyncState.SYNCED: _l("Synced"),
}

NOT_SYNCED_REASON = {
    NotSyncedReason.DELETED: _l("deleted in anaba"),
    NotSyncedReason.NO_EMAIL: _l("no e-mail address"),
    NotSyncedReason.INVALID_EMAIL: _l("the e-mail address is not valid"),
    NotSyncedReason.DO_NOT_SYNC: _l("marked as not to be synced"),
    NotSyncedReason.BOUNCED: _l("the address bounced"),
    NotSyncedReason.CONSENT_LOCKED: _l("the contact unsubscribed through Mailchimp and must re-subscribe there"),
    NotSyncedReason.OPT_OUT: _l("the contact opted out"),
    NotSyncedReason.NO_CONSENT: _l("consent not given yet"),
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
    SyncEventKind.FIXED: _l("Error fixed"),
    SyncEventKind.EMAIL_CHANGED_IN_MC: _l("E-mail address changed by the contact in Mailchimp"),
}

ACTIVITY_ACTION = {
    ActivityAction.SENT: _l("Received"),
    ActivityAction.OPEN: _l("Opened"),
    ActivityAction.CLICK: _l("Clicked"),
    ActivityAction.HARD_BOUNCE: _l("Bounced (address rejected)"),
    ActivityAction.SOFT_BOUNCE: _l("Bounced (temporarily undeliverable)"),
    ActivityAction.UNSUBSCRIBE: _l("Unsubscribed"),
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

# A contact's error in a few words, after "Error —" (the record's header, the table's label).
ERROR_SHORT = {
    "invalid_email": _l("invalid address"),
    "fake_email": _l("address Mailchimp considers fake"),
    "compliance_state": _l("unsubscribed or blocked in Mailchimp"),
    "forgotten_email": _l("permanently deleted from Mailchimp"),
    "member_exists": _l("address used by another member"),
    "email_taken": _l("new address used by another member"),
    "duplicate_email": _l("address shared by several contacts"),
    "merge_field_invalid": _l("value of {field} refused"),
    "merge_field_required": _l("{field} is required"),
    "value_too_long": _l("{field} too long"),
    "not_found": _l("not found in Mailchimp"),
    "api_key_invalid": _l("API key refused"),
    "audience_gone": _l("audience deleted"),
    "unknown": _l("refused for another reason"),
}

# The figures every page, e-mail and support view shows about contacts (portal.sync.counts):
# what a copy did, and (predicted) what the preview says it will do.
FIGURE = {
    "contacts": (_l("contacts"), _l("contacts")),
    "created": (_l("created in Mailchimp"), _l("to create in Mailchimp")),
    "updated": (_l("updated in Mailchimp"), _l("to update in Mailchimp")),
    "unchanged": (_l("already up to date"), _l("already up to date")),
    "not_synced": (_l("not synced"), _l("not synced")),
    "errors": (_l("refused by Mailchimp"), _l("would be refused by Mailchimp")),
    "pending": (_l("waiting to be sent"), _l("waiting to be sent")),
    "synced": (_l("synced"), _l("synced")),
    "unsubscribed": (_l("unsubscribed in Mailchimp"), _l("unsubscribed in Mailchimp")),
}

# What the counters kept by runs mean (consent import, preview, copy, reconciliation).
COUNT = {
    "created": _l("created in Mailchimp"), "to_create": _l("to create"),
    "updated": _l("updated in Mailchimp"), "to_update": _l("to update"),
    "unchanged": _l("unchanged"), "up_to_date": _l("already up to date"), "skipped": _l("not synced"),
    "opt_in": _l("now opt-in"), "opt_out": _l("now opt-out"), "locked": _l("opt-out, locked by Mailchimp"),
    "bounced": _l("marked as bounced"), "matched": _l("members with the address of a contact"),
    "contacts_matched": _l("contacts found in the audience"), "members": _l("members read"),
    "archived": _l("archived"), "eligible": _l("eligible contacts"),
    "campaigns": _l("campaigns read"), "new_campaigns": _l("new campaigns"), "added": _l("activities added"),
    "no_contact": _l("activities skipped: the member is not an anaba contact"),
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


def background_problem(problem: str) -> str:
    """Why background work does not start now, and what happens next."""
    return _lookup(BACKGROUND_PROBLEM, problem)


def run_status(status: str) -> str:
    """Where a run is, in plain words."""
    return _lookup(RUN_STATUS, status)


def sync_state(state: str) -> str:
    """A contact's sync state (R17)."""
    return _lookup(SYNC_STATE, state)


def sync_filter(state: str) -> str:
    """A Mailchimp state as the contacts table's filter offers it ("In error", "Pending"…)."""
    text = SYNC_FILTER.get(state)
    return str(text) if text is not None else sync_state(state)


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


def activity_action(action: str) -> str:
    """What a campaign did with a contact (R18)."""
    return _lookup(ACTIVITY_ACTION, action)


def paris_moment(moment: datetime) -> str:
    """A time the schedule sets (an aware datetime in Paris time), in the reader's language, with
    its zone said: "samedi 5 décembre 2026 à 02:00 (heure de Paris)"."""
    return gettext("%(date)s at %(time)s (Paris time)", date=format_date(moment, "full", rebase=False),
                   time=format_time(moment, "short", rebase=False))


def field(name: str) -> str:
    """An anaba contact field."""
    return _lookup(CONTACT_FIELD, name)


def address_parts() -> str:
    """The postal address named by its parts, as the contact form names them (the mapping's one
    address choice)."""
    return " · ".join(field(name) for name in ("street", "postal_code", "city", "country"))


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


def setup_error(kind: str | None, field: str | None = None) -> str:
    """A Mailchimp refusal met while setting up a connector: "reconnect" only makes sense for a
    connector that exists, so a refused key reads as what to check instead."""
    if kind == "api_key_invalid":
        return gettext("Mailchimp refuses this API key. Check that you copied it whole (it ends with -us and a "
                       "number), or create a new key in Mailchimp: Profile → Extras → API keys.")
    if kind == "audience_gone":
        return gettext("This audience no longer exists in Mailchimp. Choose another one.")
    return error_message(kind, field)


def error_short(kind: str | None, field: str | None = None) -> str:
    """A contact's error in a few words ("invalid address", "COMPANY too long")."""
    text = str(ERROR_SHORT.get(kind or "") or ERROR_SHORT["unknown"])
    try:
        return text.format(field=field or gettext(field_fallback()))
    except (KeyError, IndexError, ValueError):
        return text


def not_synced(key: str) -> str:
    """Why contacts were left out of a copy: a reason (R2), or their state in Mailchimp (R13)."""
    if key == SyncState.ARCHIVED_IN_MC:
        return str(_l("archived in Mailchimp"))
    if key == SyncState.DELETED_IN_MC:
        return str(_l("deleted in Mailchimp"))
    return reason(key)


def shared_owner(name: str) -> str:
    """Why a contact sharing its address is not sent: which contact owns the address (R19)."""
    return gettext("address used by %(name)s", name=name)


def figure(key: str, predicted: bool = False) -> str:
    """What one figure of a copy (or, `predicted`, of the preview) counts."""
    pair = FIGURE.get(key)
    return str(pair[1 if predicted else 0]) if pair else _lookup(COUNT, key)


PAUSED_BY_SUPPORT = "paused_by_support"
"""The pause reason of a connector anaba's support paused by hand (no Mailchimp error)."""


def paused_reason(value: str | None) -> str:
    """Why a connector is paused, in plain words, with what to do."""
    if value == PAUSED_BY_SUPPORT:
        return gettext("anaba's support team paused the connector: nothing is sent to Mailchimp until it is "
                       "resumed. Contact support to know why.")
    if value and value in KINDS:
        return error_message(value)
    return gettext("Mailchimp refuses the API key or the audience no longer exists.")


def is_error_kind(value: str | None) -> bool:
    """True when `value` names a Mailchimp error kind (paused connectors store one)."""
    return bool(value) and value in KINDS


EMAIL_STATUS = {"sent": _l("sent"), "failed": _l("failed")}
"""What became of an e-mail the portal sent (the Outbox); the keys are EmailLog.status values."""


def email_status(value: str) -> str:
    """An e-mail's delivery status in plain words."""
    return _lookup(EMAIL_STATUS, value)


def email_sent(value: str) -> bool:
    """True when the e-mail was handed to the mail server."""
    return value == "sent"


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
