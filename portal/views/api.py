"""JSON API v1: a workspace's contacts, their campaign activity and tags behind its bearer token.

Documented in docs/api.md (curl examples, error codes) and docs/openapi.yaml. Every write goes
through `portal.crm.contacts`, so the API records consent with the "api" channel and announces
each change to the sync side exactly like the pages do. Errors are always JSON
``{"code", "message", "errors"?}`` with a stable ``code``.
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from flask import Blueprint, Response, g, jsonify, request
from flask_babel import gettext as _
from werkzeug.exceptions import RequestEntityTooLarge

from portal.crm import accounts
from portal.crm import contacts as crm
from portal.crm.errors import CrmError, ValidationFailed
from portal.extensions import csrf, db
from portal.models import CONSENT_VALUES, ActivityAction, Channel, ConsentEvent, Connector, Contact, ContactSync
from portal import labels
from portal.sync import contact_state
from portal.sync.lifecycle import live_connector
from portal.security import CONTROL_CHARACTERS, MAX_ID, public_url

bp = Blueprint("api", __name__, url_prefix="/api/v1")
# Token auth, no cookies: a cross-site form cannot forge a request, so CSRF does not apply.
# exempt() only records the blueprint; it binds nothing at import.
csrf.exempt(bp)

ACTOR = "API token"
CHANNEL = Channel.API
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_BODY_BYTES = 1024 * 1024
MAX_QUERY_LENGTH = 200
ADDRESS_FIELDS = ("street", "postal_code", "city", "country")
TEXT_FIELDS = tuple(f for f in Contact.EDITABLE if f not in ADDRESS_FIELDS)
READ_ONLY_FIELDS = ("id", "created_at", "updated_at", "deleted", "deleted_at", "mailchimp")
_CONTROL = CONTROL_CHARACTERS
_SPACE_FOR_PLUS = re.compile(r"(\d) (\d{2}(?::?\d{2})?)$")


class ApiError(Exception):
    """A request the API refuses, with its stable code, HTTP status and human message."""

    def __init__(self, status: int, code: str, message: str, errors: dict[str, str] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors
        self.headers = headers or {}


def _error_response(status: int, code: str, message: str, errors: Mapping[str, str] | None = None,
                    headers: Mapping[str, str] | None = None) -> Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if errors:
        body["errors"] = dict(errors)
    response = jsonify(body)
    response.status_code = status
    response.headers.update(headers or {})
    return response


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError) -> Response:
    db.session.rollback()
    return _error_response(exc.status, exc.code, exc.message, exc.errors, exc.headers)


@bp.errorhandler(CrmError)
def _crm_error(exc: CrmError) -> Response:
    # A refused change (e.g. R16's consent lock after other fields were applied) must leave nothing behind.
    db.session.rollback()
    errors = getattr(exc, "errors", None)
    if errors:
        errors = {(f"address.{k}" if k in ADDRESS_FIELDS else k): v for k, v in errors.items()}
    return _error_response(exc.status, exc.code, exc.message, errors)


@bp.before_request
def _authenticate() -> None:
    """Find the workspace of the bearer token; 401 (with WWW-Authenticate) otherwise."""
    request.max_content_length = MAX_BODY_BYTES
    header = request.headers.get("Authorization", "")
    scheme, _sep, token = header.strip().partition(" ")
    token = token.strip()
    if not header:
        raise ApiError(401, "unauthorized", _("Send the workspace's API token: Authorization: Bearer anb_…"),
                       headers={"WWW-Authenticate": 'Bearer realm="anaba"'})
    workspace_id = None
    if scheme.lower() == "bearer" and token:
        workspace_id = accounts.workspace_id_for_token(token)
    if workspace_id is None:
        raise ApiError(401, "unauthorized", _("This API token is not valid (it may have been replaced)."),
                       headers={"WWW-Authenticate": 'Bearer realm="anaba", error="invalid_token"'})
    g.api_workspace_id = workspace_id


@bp.after_request
def _no_store(response: Response) -> Response:
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def _workspace_id() -> int:
    return g.api_workspace_id


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _mailchimp_json(connector, row) -> dict | None:
    if connector is None:
        return None
    error = None
    if row is not None and row.state == "error":
        error = {"kind": row.error_kind or None, "message": labels.error_message(row.error_kind, row.error_field) or None,
                 "fix": row.error_fix or None, "field": row.error_field or None}
    return {
        "connector_status": connector.status,
        "state": row.state if row is not None else None,
        "reason": (row.reason or None) if row is not None else None,
        "error": error,
        "last_synced_at": _iso(row.last_synced_at) if row is not None else None,
    }


def contact_json(contact: Contact, connector: Connector | None = None, sync_row: ContactSync | None = None) -> dict:
    """The API representation of a contact (docs/openapi.yaml, schema Contact)."""
    return {
        "id": contact.id,
        "email": contact.email,
        "first_name": contact.first_name or "",
        "last_name": contact.last_name or "",
        "phone": contact.phone or "",
        "company": contact.company or "",
        "job_title": contact.job_title or "",
        "address": {f: getattr(contact, f) or "" for f in ADDRESS_FIELDS},
        "tags": contact.tag_names,
        "consent": {
            "value": contact.consent,
            "locked": bool(contact.consent_locked),
            "lock_reason": contact.consent_lock_reason or None,
        },
        "created_at": _iso(contact.created_at),
        "updated_at": _iso(contact.updated_at),
        "deleted": contact.deleted_at is not None,
        "deleted_at": _iso(contact.deleted_at),
        "mailchimp": _mailchimp_json(connector, sync_row),
    }


def _contacts_json(contacts: list[Contact]) -> list[dict]:
    connector = live_connector(_workspace_id())
    rows = contact_state.states_for(connector.id, [c.id for c in contacts]) if connector else {}
    return [contact_json(c, connector, rows.get(c.id)) for c in contacts]


def _one_contact_json(contact: Contact) -> dict:
    return _contacts_json([contact])[0]


# --- reading the request ---------------------------------------------------------------------


def _json_body() -> dict:
    """The request body as a JSON object, or ApiError 400 (wrong type, malformed, not an object)."""
    mimetype = request.mimetype or ""
    if mimetype != "application/json" and not (mimetype.startswith("application/") and mimetype.endswith("+json")):
        raise ApiError(400, "bad_request", _("Send a JSON body with the header Content-Type: application/json."))
    raw = request.get_data(cache=True)
    if request.content_length is None and len(raw) >= MAX_BODY_BYTES:
        # A streamed (chunked) body is cut at the limit without a word: reaching it means too large.
        raise RequestEntityTooLarge()

    def refuse_constant(name: str):
        raise ValueError(name)

    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ApiError(400, "invalid_json", _("The body is not valid JSON (UTF-8).")) from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", _("The body must be a JSON object."))
    return body


def _text_problem(value: Any) -> str | None:
    """Why `value` cannot be stored as a text field, or None when it can."""
    if value is None:
        return None
    if not isinstance(value, str):
        return _("Must be a string or null.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return _("Must be valid Unicode text.")
    if _CONTROL.search(value):
        return _("Must not contain control characters.")
    return None


def _contact_input(body: Mapping, *, partial: bool) -> dict:
    """Turn the API's contact shape into the flat fields the contact base takes (422 on shape errors)."""
    errors: dict[str, str] = {}
    data: dict[str, Any] = {}
    for key, value in body.items():
        if key in TEXT_FIELDS:
            problem = _text_problem(value)
            if problem:
                errors[key] = problem
            else:
                data[key] = value
        elif key == "address":
            if value is None:
                if partial:
                    data.update({f: "" for f in ADDRESS_FIELDS})
                continue
            if not isinstance(value, dict):
                errors["address"] = _("Must be an object with street, postal_code, city, country.")
                continue
            for sub, sub_value in value.items():
                if sub not in ADDRESS_FIELDS:
                    errors[f"address.{sub}"] = _("Unknown field.")
                    continue
                problem = _text_problem(sub_value)
                if problem:
                    errors[f"address.{sub}"] = problem
                else:
                    data[sub] = sub_value
        elif key == "tags":
            if not isinstance(value, list) or any(_text_problem(t) or t is None for t in value):
                errors["tags"] = _("Tags must be a list of names (strings).")
            else:
                data["tags"] = value
        elif key == "consent":
            if isinstance(value, dict):
                value = value.get("value")
            if value not in CONSENT_VALUES:
                errors["consent"] = _("Consent must be one of: opt_in, opt_out, unknown.")
            else:
                data["consent"] = value
        elif key in READ_ONLY_FIELDS:
            continue
        else:
            errors[key[:100]] = _("Unknown field.")
    if errors:
        failure = ValidationFailed(errors)
        raise ApiError(failure.status, failure.code, failure.message, errors)
    return data


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise ApiError(400, "bad_request", _("Query parameter %(name)s must be a whole number from %(low)d to %(high)d.",
                                               name=name, low=low, high=high),
                       {name: _("Expected a whole number from %(low)d to %(high)d.", low=low, high=high)})
    return value


def _text_arg(name: str) -> str:
    value = request.args.get(name, "")
    if len(value) > MAX_QUERY_LENGTH or _CONTROL.search(value):
        raise ApiError(400, "bad_request", _("Query parameter %(name)s is too long or contains control characters.",
                                               name=name),
                       {name: _("At most %(n)d printable characters.", n=MAX_QUERY_LENGTH)})
    return value.strip()


def parse_timestamp(raw: str) -> datetime | None:
    """An ISO 8601 timestamp as aware UTC (naive means UTC), or None when it is not one.

    A "+" left unencoded in a query string arrives as a space: "…T10:00:00 02:00" is read as +02:00.
    """
    raw = _SPACE_FOR_PLUS.sub(r"\1+\2", raw.strip())
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:
        return None


def _since_arg() -> datetime | None:
    raw = request.args.get("updated_since")
    if raw is None or raw == "":
        return None
    value = parse_timestamp(raw) if len(raw) <= 64 else None
    if value is None:
        raise ApiError(400, "bad_request",
                       _("updated_since must be an ISO 8601 timestamp, e.g. 2026-11-27T08:00:00Z."),
                       {"updated_since": _("Expected an ISO 8601 timestamp.")})
    return value


def _contact_or_404(contact_id: int) -> Contact:
    if contact_id > MAX_ID:
        raise ApiError(404, "not_found", _("Contact not found."))
    return crm.get_contact(_workspace_id(), contact_id)


# --- endpoints -------------------------------------------------------------------------------


@bp.get("/contacts")
def list_contacts() -> Response:
    """List contacts, oldest id first, `limit` at a time; `after` is the last id of the previous page.

    With `updated_since`, only contacts changed since then, deleted ones included (`deleted: true`),
    so a sync client sees deletions.
    """
    limit = _int_arg("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    after = _int_arg("after", 0, 0, MAX_ID)
    since = _since_arg()
    q = _text_arg("q")
    tag = _text_arg("tag")
    consent = _text_arg("consent")
    if consent and consent not in CONSENT_VALUES:
        raise ApiError(400, "bad_request", _("consent must be one of: opt_in, opt_out, unknown."),
                       {"consent": _("Expected opt_in, opt_out or unknown.")})
    rows = crm.list_by_id(_workspace_id(), since=since, after_id=after, limit=limit + 1, q=q, tag=tag, consent=consent)
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_after = rows[-1].id if has_more else None
    next_url = None
    if next_after is not None:
        params = {k: v for k, v in request.args.items() if k not in ("after", "limit")}
        next_url = public_url("api.list_contacts", **params, limit=limit, after=next_after)
    response = jsonify(data=_contacts_json(rows), has_more=has_more, next_after=next_after, next_url=next_url)
    if next_url:
        response.headers["Link"] = f'<{next_url}>; rel="next"'
    return response


@bp.get("/contacts/<id:contact_id>")
def get_contact(contact_id: int) -> Response:
    """One contact of the workspace (404 for deleted contacts and other workspaces' ids)."""
    return jsonify(_one_contact_json(_contact_or_404(contact_id)))


@bp.post("/contacts")
def create_contact() -> tuple[Response, int, dict]:
    """Create a contact: 201 with its JSON and a Location header."""
    data = _contact_input(_json_body(), partial=False)
    contact = crm.create_contact(_workspace_id(), data, actor=ACTOR, channel=CHANNEL)
    location = public_url("api.get_contact", contact_id=contact.id)
    return jsonify(_one_contact_json(contact)), 201, {"Location": location}


@bp.patch("/contacts/<id:contact_id>")
def update_contact(contact_id: int) -> Response:
    """Change only the fields sent; `tags` replaces the whole list; `consent` is recorded (R15, R16)."""
    body = _json_body()
    _contact_or_404(contact_id)
    data = _contact_input(body, partial=True)
    contact = crm.update_contact(_workspace_id(), contact_id, data, actor=ACTOR, channel=CHANNEL)
    return jsonify(_one_contact_json(contact))


@bp.delete("/contacts/<id:contact_id>")
def delete_contact(contact_id: int) -> tuple[str, int]:
    """Soft-delete a contact: 204; it then appears in `updated_since` listings as deleted."""
    _contact_or_404(contact_id)
    crm.delete_contact(_workspace_id(), contact_id, actor=ACTOR, channel=CHANNEL)
    return "", 204


def consent_event_json(event: ConsentEvent) -> dict:
    """One consent change as the API shows it (docs/openapi.yaml, schema ConsentEvent)."""
    return {
        "id": event.id,
        "at": _iso(event.created_at),
        "old": event.old,
        "new": event.new,
        "locked": bool(event.locked),
        "lock_reason": (event.lock_reason or None) if event.locked else None,
        "channel": event.channel,
        "actor": event.actor,
        "note": event.note or None,
        "evidence": {
            "at": _iso(event.evidence_at),
            "ip": event.evidence_ip or None,
            "webhook_event_id": event.webhook_event_id,
            "details": dict(event.evidence or {}),
        },
    }


@bp.get("/contacts/<id:contact_id>/consent-history")
def consent_history(contact_id: int) -> Response:
    """Every consent change of a contact, oldest first, with Mailchimp's evidence (R15); deleted
    contacts included (a regulator may ask about someone deleted since)."""
    if contact_id > MAX_ID:
        raise ApiError(404, "not_found", _("Contact not found."))
    return jsonify(data=[consent_event_json(e) for e in crm.consent_history(_workspace_id(), contact_id)])


@bp.get("/tags")
def list_tags() -> Response:
    """Every tag of the workspace, by name, with how many live contacts carry it."""
    return jsonify(data=[{"id": t.id, "name": t.name, "contact_count": n} for t, n in crm.tag_counts(_workspace_id())])


def activity_json(activity, campaign) -> dict:
    """The API representation of a campaign activity (docs/openapi.yaml, schema Activity)."""
    return {
        "id": activity.id,
        "action": activity.action,
        "occurred_at": _iso(activity.occurred_at),
        "url": activity.url or None,
        "campaign": {
            "id": activity.campaign_id,
            "title": campaign.title if campaign is not None else None,
            "subject": campaign.subject if campaign is not None else None,
            "send_time": _iso(campaign.send_time) if campaign is not None else None,
        },
    }


@bp.get("/contacts/<id:contact_id>/activities")
def list_contact_activities(contact_id: int) -> Response:
    """A contact's campaign activity (R18) in import order, `limit` at a time; `after` is the last id
    of the previous page, so that a client can also read only what later imports add."""
    limit = _int_arg("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    after = _int_arg("after", 0, 0, MAX_ID)
    raw_since = request.args.get("since")
    since = None
    if raw_since:
        since = parse_timestamp(raw_since) if len(raw_since) <= 64 else None
        if since is None:
            raise ApiError(400, "bad_request", _("since must be an ISO 8601 timestamp, e.g. 2026-11-27T08:00:00Z."),
                           {"since": _("Expected an ISO 8601 timestamp.")})
    action = _text_arg("action")
    if action and action not in set(ActivityAction):
        choices = ", ".join(ActivityAction)
        raise ApiError(400, "bad_request", _("action must be one of: %(choices)s.", choices=choices),
                       {"action": _("Expected one of: %(choices)s.", choices=choices)})
    if contact_id > MAX_ID:
        raise ApiError(404, "not_found", _("Contact not found."))
    rows = crm.contact_activity_list(_workspace_id(), contact_id, after_id=after, limit=limit + 1, since=since,
                                     action=action)
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_after = rows[-1][0].id if has_more else None
    next_url = None
    if next_after is not None:
        params = {k: v for k, v in request.args.items() if k not in ("after", "limit")}
        next_url = public_url("api.list_contact_activities", contact_id=contact_id, **params, limit=limit,
                              after=next_after)
    response = jsonify(data=[activity_json(a, c) for a, c in rows], has_more=has_more, next_after=next_after,
                       next_url=next_url)
    if next_url:
        response.headers["Link"] = f'<{next_url}>; rel="next"'
    return response
