"""Typed Mailchimp errors: a stable ``kind``, a customer message, and the fix it calls for (R19).

Mailchimp answers errors with a problem document (``title``, ``detail``, ``errors[]``,
API-NOTES §1.6–1.7). :func:`classify` turns one into a :class:`MailchimpError`, keyed on the
``title`` first and then on the ``detail`` text; :func:`classify_batch_error` does the same for
an item of a batch-subscribe ``errors[]`` array (API-NOTES §2), which only carries free text.

Messages: every kind has an English msgid (wrapped in :func:`N_` so ``pybabel extract -k N_``
finds it); the French lives in the app's one catalog. This module must not import Flask, so
the app translates them itself (``portal.labels.error_message``).
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


def N_(msgid: str) -> str:
    """Mark a string for extraction without translating it (gettext's no-op marker)."""
    return msgid


# Fix action codes shown next to an error (R19). Stable: stored in the database.
FIX_EDIT_CONTACT = "edit_contact_and_retry"
FIX_RETRY = "retry"
FIX_MARK_NOT_SYNCED = "mark_not_synced"
FIX_CHOOSE_OWNER = "choose_owner"
FIX_RESUBSCRIBE = "resubscribe_guidance"
FIX_RECONNECT = "reconnect"
FIX_NONE = "none"


@dataclass(frozen=True)
class Kind:
    """What we know about one error kind, independent of a particular occurrence."""

    fix: str
    transient: bool = False
    contact_fault: bool = False
    pauses_connector: bool = False
    retry_in_client: bool = False
    retry_after: float | None = None


KINDS: dict[str, Kind] = {
    "invalid_email": Kind(FIX_EDIT_CONTACT, contact_fault=True),
    "fake_email": Kind(FIX_EDIT_CONTACT, contact_fault=True),
    "compliance_state": Kind(FIX_RESUBSCRIBE, contact_fault=True),
    "forgotten_email": Kind(FIX_RESUBSCRIBE, contact_fault=True),
    "member_exists": Kind(FIX_CHOOSE_OWNER, contact_fault=True),
    # R11: a contact's new address already belongs to another member of the audience.
    "email_taken": Kind(FIX_EDIT_CONTACT, contact_fault=True),
    "duplicate_email": Kind(FIX_CHOOSE_OWNER, contact_fault=True),
    # The person changed their address in Mailchimp to one another contact of the workspace has.
    "email_change_conflict": Kind(FIX_CHOOSE_OWNER, contact_fault=True),
    "merge_field_invalid": Kind(FIX_EDIT_CONTACT, contact_fault=True),
    "merge_field_required": Kind(FIX_EDIT_CONTACT, contact_fault=True),
    "value_too_long": Kind(FIX_EDIT_CONTACT, contact_fault=True),
    "not_found": Kind(FIX_RETRY),
    "api_key_invalid": Kind(FIX_RECONNECT, pauses_connector=True),
    "audience_gone": Kind(FIX_RECONNECT, pauses_connector=True),
    "rate_limited": Kind(FIX_RETRY, transient=True, retry_in_client=True),
    "unavailable": Kind(FIX_RETRY, transient=True, retry_in_client=True),
    "timeout": Kind(FIX_RETRY, transient=True, retry_in_client=True),
    # A per-address throttle that lifts after minutes or hours (API-NOTES §10): never the
    # contact's fault, but retrying within seconds only burns calls, so the job reschedules.
    "signup_throttled": Kind(FIX_RETRY, transient=True, retry_after=3600.0),
    "webhook_unverified": Kind(FIX_RETRY),
    "unknown": Kind(FIX_RETRY),
}

# English msgids. ``{field}`` is the merge tag when there is one.
MESSAGES_EN: dict[str, str] = {
    "invalid_email": N_("This e-mail address is not valid. Correct it on the contact, then retry."),
    "fake_email": N_(
        "Mailchimp considers this e-mail address fake or invalid. Correct it on the contact, then retry."
    ),
    "compliance_state": N_(
        "This person unsubscribed, bounced or was reported in Mailchimp: Mailchimp refuses to "
        "subscribe them again. They must re-subscribe through the audience's sign-up form."
    ),
    "forgotten_email": N_(
        "This address was permanently deleted from the Mailchimp audience and cannot be imported "
        "again. The person must re-subscribe through the audience's sign-up form."
    ),
    "member_exists": N_(
        "This e-mail address already belongs to another member of the Mailchimp audience. "
        "Choose which contact owns it."
    ),
    "email_taken": N_(
        "The new e-mail address of this contact already belongs to another member of the Mailchimp "
        "audience, so the contact's member could not take it. Use another address on the contact, or archive "
        "the other member in Mailchimp, then retry."
    ),
    "duplicate_email": N_(
        "Several contacts share this e-mail address. Choose which contact owns it."
    ),
    "email_change_conflict": N_(
        "This person changed their e-mail address in Mailchimp to one that another contact already has in "
        "anaba. Choose the contact that owns the new address: if it is this one, it takes the new address; "
        "otherwise stop syncing this one."
    ),
    "merge_field_invalid": N_(
        "Mailchimp refused the value of the field {field}. Correct it on the contact, then retry."
    ),
    "merge_field_required": N_(
        "The field {field} is required in the Mailchimp audience and is empty on this contact. "
        "Fill it in, then retry."
    ),
    "value_too_long": N_(
        "The value of the field {field} is too long for Mailchimp. Shorten it on the contact, then retry."
    ),
    "not_found": N_("This contact was not found in the Mailchimp audience. Retry to add it again."),
    "api_key_invalid": N_(
        "Mailchimp refuses the API key: it was revoked or is wrong. Reconnect the connector with a valid key."
    ),
    "audience_gone": N_(
        "The Mailchimp audience no longer exists. Delete the connector and create a new one."
    ),
    "rate_limited": N_("Mailchimp is busy. The sync retries on its own."),
    "unavailable": N_("Mailchimp is temporarily unavailable. The sync retries on its own."),
    "timeout": N_("Mailchimp did not answer in time. The sync retries on its own."),
    "signup_throttled": N_(
        "Mailchimp temporarily blocks new sign-ups for this address. The sync retries later on its own."
    ),
    "webhook_unverified": N_(
        "Mailchimp could not reach the portal's webhook address. Retry in a few minutes."
    ),
    "unknown": N_("Mailchimp refused this contact for an unexpected reason. Retry, or contact support."),
}

_FIELD_FALLBACK = N_("concerned")


def field_fallback() -> str:
    """The word that stands for the merge field when a message has none to name."""
    return _FIELD_FALLBACK


def message_for(kind: str, **params: Any) -> str:
    """The English message for ``kind`` with ``{field}`` filled (logs, the CLI, tests).

    People read the translated form (``portal.labels.error_message``); unknown kinds read as
    ``unknown``, and a missing ``field`` as a neutral word rather than a placeholder.
    """
    text = MESSAGES_EN.get(kind) or MESSAGES_EN["unknown"]
    values = {"field": params.get("field") or _FIELD_FALLBACK, **{k: v for k, v in params.items() if v}}
    try:
        return text.format(**values)
    except (KeyError, IndexError, ValueError):
        return text


class MailchimpError(Exception):
    """A Mailchimp failure, typed.

    Attributes: ``kind`` (stable string, a key of :data:`KINDS`), ``message`` (English, for logs:
    people read ``portal.labels.error_message(kind, field)``), ``fix`` (action code), ``transient`` (retry on its own, never the contact's
    fault), ``contact_fault`` (a per-contact problem to show on the contact), ``pauses_connector``
    (the key or the audience is unusable: pause instead of failing every contact), ``field``
    (merge tag or None), ``status``, ``title``, ``detail``, ``errors`` (the raw field errors),
    ``retry_after`` (seconds, a hint for the job when known). Never carries the API key.
    """

    def __init__(
        self,
        kind: str,
        *,
        status: int | None = None,
        title: str = "",
        detail: str = "",
        field: str | None = None,
        errors: Sequence[Mapping[str, Any]] | None = None,
        retry_after: float | None = None,
        email: str | None = None,
    ) -> None:
        if kind not in KINDS:
            kind = "unknown"
        info = KINDS[kind]
        self.kind = kind
        self.status = status
        self.title = title or ""
        self.detail = detail or ""
        self.field = field or None
        self.errors = [dict(e) for e in (errors or [])]
        self.email = email
        self.fix = info.fix
        self.transient = info.transient
        self.contact_fault = info.contact_fault
        self.pauses_connector = info.pauses_connector
        self.retry_after = retry_after if retry_after is not None else info.retry_after
        self.message = message_for(kind, field=self.field)
        super().__init__(self.__str__())

    @property
    def retry_in_client(self) -> bool:
        """True for the kinds the HTTP client retries itself (429, 5xx, timeouts)."""
        return KINDS[self.kind].retry_in_client

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (for sync-state rows, logs and the API)."""
        return {
            "kind": self.kind, "message": self.message, "fix": self.fix, "field": self.field,
            "transient": self.transient, "contact_fault": self.contact_fault, "status": self.status,
            "title": self.title, "detail": self.detail,
        }

    def __str__(self) -> str:
        parts = [self.kind]
        if self.status:
            parts.append(str(self.status))
        if self.title:
            parts.append(self.title)
        if self.detail:
            parts.append(self.detail)
        if self.field:
            parts.append(f"field={self.field}")
        return ": ".join(parts)

    def __repr__(self) -> str:
        return f"MailchimpError({self.kind!r}, status={self.status!r}, field={self.field!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments do not survive Exception's default pickling (RQ, multiprocessing).
        return (_rebuild, (self.kind, {
            "status": self.status, "title": self.title, "detail": self.detail, "field": self.field,
            "errors": self.errors, "retry_after": self.retry_after, "email": self.email,
        }))


def _rebuild(kind: str, fields: dict[str, Any]) -> MailchimpError:
    return MailchimpError(kind, **fields)


# --- classification -------------------------------------------------------------------------

_MEMBER_PATH = re.compile(r"(^|/)lists/[^/]+/members/[^/]+")
_LIST_PATH = re.compile(r"(^|/)lists/[^/?]+(/(members|merge-fields|webhooks|segments|tag-search))?/?$")
_TOO_LONG = re.compile(
    r"too long|at most \d+ char|characters or fewer|maximum length|max(imum)? \d+ char|exceeds? .*length", re.I
)
_REQUIRED = re.compile(r"please enter a value|required", re.I)
_EMAIL_FIELDS = {"email_address", "email", "EMAIL"}


def _strip_field(field: str | None) -> str | None:
    """``merge_fields.FNAME`` → ``FNAME``; empty → None."""
    if not field:
        return None
    field = str(field)
    if field.startswith("merge_fields."):
        field = field[len("merge_fields."):]
    return field or None


_MERGE_TAG = re.compile(r"[A-Z][A-Z0-9_]{0,9}")


def _is_merge_field(field: str) -> bool:
    """A bare merge tag (``LTV``) or a dotted path (``merge_fields.FNAME``), not another property."""
    return field.startswith("merge_fields.") or bool(_MERGE_TAG.fullmatch(field))


def _from_field_errors(errors: Sequence[Mapping[str, Any]]) -> tuple[str, str | None] | None:
    """Kind and field from an ``errors[]`` array, or None when it tells nothing specific."""
    for item in errors:
        field = str(item.get("field") or "")
        message = str(item.get("message") or "")
        if field in _EMAIL_FIELDS or "email_address" in message:
            return "invalid_email", None
        tag = _strip_field(field) if _is_merge_field(field) else None
        if _TOO_LONG.search(message):
            return "value_too_long", tag
        if tag and _REQUIRED.search(message):
            return "merge_field_required", tag
        if tag:
            return "merge_field_invalid", tag
    return None


def _path_of(context: Mapping[str, Any] | None) -> str:
    return str((context or {}).get("path") or "").lstrip("/")


def _detail_kind(detail: str) -> str | None:
    """Kinds recognisable from the detail text alone (also used for batch items)."""
    d = detail.lower()
    if "looks fake or invalid" in d:
        return "fake_email"
    if "provide a valid email address" in d or "is not a valid email" in d or "invalid email" in d:
        return "invalid_email"
    if "compliance state" in d:
        return "compliance_state"
    if "permanently deleted and cannot be re-imported" in d or "forgotten" in d:
        return "forgotten_email"
    if "is already a list member" in d:
        return "member_exists"
    if "signed up to a lot of lists" in d:
        return "signup_throttled"
    if "couldn't verify the url" in d or "could not verify the url" in d:
        return "webhook_unverified"
    if _TOO_LONG.search(detail):
        return "value_too_long"
    if "enter a complete address" in d:
        return "merge_field_invalid"
    return None


def classify(
    status: int | None,
    title: str | None,
    detail: str | None,
    errors: Sequence[Mapping[str, Any]] | None,
    context: Mapping[str, Any] | None = None,
) -> MailchimpError:
    """Turn a Mailchimp problem document into a :class:`MailchimpError`.

    Keyed on ``title`` first (the stable part), then ``detail``, then ``errors[]``, with the
    exact strings of API-NOTES §1.7. ``context`` may carry ``path`` (the request path: a 404 on
    a list path means the audience is gone, on a member path that the member is not there),
    ``email`` and ``retry_after``.
    """
    title = (title or "").strip()
    detail = (detail or "").strip()
    errors = list(errors or [])
    ctx = dict(context or {})
    t = title.lower()
    kw: dict[str, Any] = {
        "status": status, "title": title, "detail": detail, "errors": errors, "email": ctx.get("email"),
    }

    def make(kind: str, field: str | None = None, retry_after: float | None = None) -> MailchimpError:
        return MailchimpError(kind, field=field, retry_after=retry_after, **kw)

    if t == "api key invalid" or t == "api key missing" or status == 401:
        return make("api_key_invalid")
    if status == 403 and ("disabled" in t or "api key" in t or "forbidden" in t or not t):
        return make("api_key_invalid")
    if t == "too many requests" or t == "toomanyrequests" or status == 429:
        return make("rate_limited", retry_after=ctx.get("retry_after"))
    if t == "member in compliance state":
        return make("compliance_state")
    if t == "forgotten email not subscribed":
        return make("forgotten_email")
    if t == "member exists":
        return make("member_exists")
    if t == "resource not found" or status == 404:
        path = _path_of(ctx)
        if path and not _MEMBER_PATH.search(path) and _LIST_PATH.search(path.split("?")[0]):
            return make("audience_gone")
        return make("not_found")
    if status is not None and status >= 500:
        return make("unavailable")
    if status == 408 or t == "request timeout":
        return make("timeout")

    # "Invalid Resource" and friends: the detail, then the field errors, say what is wrong.
    kind = _detail_kind(detail)
    if kind == "merge_field_invalid" or detail.lower().startswith("your merge fields were invalid"):
        found = _from_field_errors(errors)
        if found:
            return make(found[0], found[1])
        return make("merge_field_invalid", "ADDRESS" if "address" in detail.lower() else None)
    if kind:
        return make(kind)
    found = _from_field_errors(errors)
    if found:
        return make(found[0], found[1])
    return make("unknown")


def classify_batch_error(item: Mapping[str, Any]) -> MailchimpError:
    """Classify one item of a batch-subscribe ``errors[]`` array (API-NOTES §2).

    Items carry ``email_address``, ``error`` (free text, the same sentences as the problem
    ``detail``), ``error_code`` (``ERROR_CONTACT_EXISTS`` or ``ERROR_GENERIC``), and since 2022
    ``field`` / ``field_message`` for merge-field problems.
    """
    text = str(item.get("error") or "")
    code = str(item.get("error_code") or "")
    field = _strip_field(item.get("field"))
    field_message = str(item.get("field_message") or "")
    kw: dict[str, Any] = {
        "status": 400, "title": code, "detail": text, "email": item.get("email_address"),
        "errors": [{"field": item.get("field") or "", "message": field_message}] if (field or field_message) else [],
    }
    kind = _detail_kind(text)
    if kind and kind not in ("merge_field_invalid",):
        return MailchimpError(kind, **kw)
    if code == "ERROR_CONTACT_EXISTS":
        return MailchimpError("member_exists", **kw)
    if field and field in _EMAIL_FIELDS:
        return MailchimpError("invalid_email", **kw)
    if field or field_message or "merge field" in text.lower() or kind == "merge_field_invalid":
        found = _from_field_errors([{"field": item.get("field") or "", "message": field_message or text}])
        if found and found[0] != "invalid_email":
            return MailchimpError(found[0], field=found[1], **kw)
        if _TOO_LONG.search(field_message):
            return MailchimpError("value_too_long", field=field, **kw)
        if _REQUIRED.search(field_message):
            return MailchimpError("merge_field_required", field=field, **kw)
        if "address" in text.lower() and not field:
            field = "ADDRESS"
        return MailchimpError("merge_field_invalid", field=field, **kw)
    return MailchimpError("unknown", **kw)
