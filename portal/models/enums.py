"""The portal's vocabulary: every status, kind, state and reason as a ``str`` enum.

Each member *is* its string (``StrEnum``, as rq's ``JobStatus``), so rows store plain text, JSON
and templates read naturally, and a typo is an ``AttributeError`` instead of a silent mismatch.
Human labels for these values live in one place only, :mod:`portal.labels`.
"""
from __future__ import annotations

from enum import StrEnum

__all__ = ["ActivityAction", "BackgroundProblem", "Channel", "ConnectorStatus", "Consent", "ConsentLockReason",
           "ContactChange", "NotSyncedReason", "Role", "RunKind", "RunStatus", "SyncEventKind", "SyncState",
           "WebhookEventStatus", "WebhookProblem"]


class ConnectorStatus(StrEnum):
    """Life cycle of a connector (R5–R9)."""

    PENDING_VALIDATION = "pending_validation"
    SENT_BACK = "sent_back"
    COPYING = "copying"
    ACTIVE = "active"
    PAUSED = "paused"
    DELETED = "deleted"


class RunKind(StrEnum):
    """What a background run does."""

    CONSENT_IMPORT = "consent_import"
    PREVIEW = "preview"
    INITIAL_COPY = "initial_copy"
    RECONCILE = "reconcile"
    ACTIVITY_IMPORT = "activity_import"
    AUDIENCE_CHECK = "audience_check"  # support's checks of the audience before validation (R7)


class RunStatus(StrEnum):
    """Where a background run is (sync runs and CSV imports alike)."""

    UPLOADED = "uploaded"  # a CSV import waiting for its column mapping: not started
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"  # stopped until someone acts (e.g. reconnects a revoked key)
    FINISHED = "finished"
    FAILED = "failed"

    @property
    def is_over(self) -> bool:
        """True once nothing will move the run on its own (pages stop polling)."""
        return self in (RunStatus.FINISHED, RunStatus.FAILED, RunStatus.PAUSED)

    @property
    def is_live(self) -> bool:
        """True while a worker has it or will take it."""
        return self in (RunStatus.QUEUED, RunStatus.RUNNING)


class SyncState(StrEnum):
    """A contact's state with respect to its workspace's connector (R17)."""

    PENDING = "pending"
    SYNCED = "synced"
    NOT_SYNCED = "not_synced"
    ERROR = "error"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    ARCHIVED_IN_MC = "archived_in_mc"
    DELETED_IN_MC = "deleted_in_mc"


class NotSyncedReason(StrEnum):
    """Why a contact is not sent to Mailchimp (R2, R14), in the order they are checked."""

    DELETED = "deleted"
    NO_EMAIL = "no_email"
    INVALID_EMAIL = "invalid_email"
    DO_NOT_SYNC = "do_not_sync"
    BOUNCED = "bounced"
    CONSENT_LOCKED = "consent_locked"
    OPT_OUT = "opt_out"
    NO_CONSENT = "no_consent"
    SHARED_EMAIL = "shared_email"


class Consent(StrEnum):
    """The GDPR consent of a contact (R14)."""

    OPT_IN = "opt_in"
    OPT_OUT = "opt_out"
    UNKNOWN = "unknown"


class ConsentLockReason(StrEnum):
    """Why a consent is locked (R16): a stable code stored on the contact and its consent events;
    :mod:`portal.labels` says it in the reader's language."""

    SELF_UNSUBSCRIBE = "self_unsubscribe"  # a Mailchimp form or an unsubscribe link
    COMPLAINT = "complaint"  # the person reported a campaign as spam


class Channel(StrEnum):
    """Through what a change reached a contact (consent audit, R15)."""

    UI = "ui"
    API = "api"
    CSV_IMPORT = "csv_import"
    MAILCHIMP_IMPORT = "mailchimp_import"
    MAILCHIMP_WEBHOOK = "mailchimp_webhook"
    MAILCHIMP_RECONCILE = "mailchimp_reconcile"
    SUPPORT = "support"
    DEMO = "demo"

    @property
    def from_mailchimp(self) -> bool:
        """True for changes Mailchimp reported (only these may lift a consent lock, R16)."""
        return self in (Channel.MAILCHIMP_IMPORT, Channel.MAILCHIMP_WEBHOOK, Channel.MAILCHIMP_RECONCILE)


class ContactChange(StrEnum):
    """What happened to contacts, as announced by the contact base to its listeners."""

    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"
    CONSENT = "consent"
    IMPORTED = "imported"


class SyncEventKind(StrEnum):
    """A line of a contact's sync history."""

    PUSHED = "pushed"
    ERROR = "error"
    ARCHIVED = "archived"
    ERASED = "erased"
    RENAMED = "renamed"
    UNSUBSCRIBED = "unsubscribed"
    DRIFT_REPAIRED = "drift_repaired"
    MAILCHIMP_STATE = "mailchimp_state"
    FIXED = "fixed"  # someone acted on the contact's error (R19): edited it, chose an owner, excluded it
    EMAIL_CHANGED_IN_MC = "email_changed_in_mc"  # the person changed their address in Mailchimp


class WebhookEventStatus(StrEnum):
    """Where an event Mailchimp sent to our webhook is (R21)."""

    RECEIVED = "received"  # stored, waiting to be applied
    APPLIED = "applied"  # its change is in anaba
    IGNORED = "ignored"  # nothing to do (no such contact, already so, a campaign event…)
    SUPERSEDED = "superseded"  # a newer change of the same member was applied first
    REJECTED = "rejected"  # malformed or not ours (answered 400): kept for inspection


class WebhookProblem(StrEnum):
    """What is wrong with a connector's webhook, as last checked (health panel, R21)."""

    MISSING = "missing"  # not registered, or gone from the audience
    WRONG_URL = "wrong_url"
    WRONG_EVENTS = "wrong_events"
    WRONG_SOURCES = "wrong_sources"


class Role(StrEnum):
    """Who a user is."""

    SUPPORT = "support"
    CUSTOMER = "customer"


class ActivityAction(StrEnum):
    """What a campaign did with a contact, as imported from Mailchimp's reports (R18)."""

    SENT = "sent"  # delivered: in the campaign's sent-to report with status "sent"
    OPEN = "open"
    CLICK = "click"
    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCE = "soft_bounce"
    UNSUBSCRIBE = "unsubscribe"


class BackgroundProblem(StrEnum):
    """Why background work would not start now (the pages say so instead of "in the background")."""

    REDIS_DOWN = "redis_down"
    NO_WORKER = "no_worker"
