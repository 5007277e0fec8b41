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
from portal.models import (ActivityAction, BackgroundProblem, Channel, ConnectorStatus, Consent, NotSyncedReason,
                           RunKind, RunStatus, SyncEventKind, SyncState)

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
    Channel.UI: _l("the portal"),
    Channel.API: _l("the API"),
    Channel.CSV_IMPORT: _l("a CSV import"),
    Channel.MAILCHIMP_IMPORT: _l("the import from Mailchimp"),
    Channel.MAILCHIMP_WEBHOOK: _l("Mailchimp (webhook)"),
    Channel.MAILCHIMP_RECONCILE: _l("Mailchimp (nightly check)"),
    Channel.SUPPORT: _l("anaba's support"),
    Channel.DEMO: _l("the demo data"),
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
}

ACTIVITY_ACTION = {
    ActivityAction.SENT: _l("Received"),
    ActivityAction.OPEN: _l("Opened"),
    ActivityAction.CLICK: _l("Clicked"),
    ActivityAction.HARD_BOUNCE: _l("Bounced (address rejected)"),
    ActivityAction.SOFT_BOUNCE: _l("Bounced (temporarily undeliverable)"),
    ActivityAction.UNSUBSCRIBE: _l("Unsubscribed"),
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
    "campaigns": _l("campaigns read"), "new_campaigns": _l("new campaigns"), "added": _l("activities added"),
    "no_contact": _l("activities skipped: the member is not an anaba contact"),
}


DRIFT = {
    "fields": _l("fields"), "tags": _l("tags"), "archived": _l("archived in Mailchimp"),
    "deleted": _l("deleted in Mailchimp"), "cleaned": _l("addresses cleaned"),
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
