"""The audience a connector writes to: its merge fields, the mapping proposed for them (R5),
and the checks support reads before validating (R7). Reads only."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from flask_babel import gettext as _

from portal import labels
from portal.mailchimp import MailchimpError
from portal.mailchimp.payload import TEXT_MAX_LENGTH, FieldMapping, default_mappings
from portal.models import Connector, ConnectorStatus
from portal.sync.mailchimp_access import client_for
from portal.sync.webhooks import EVENTS, SOURCES, problem_with, webhook_url

MAX_MERGE_FIELDS = 30
"""Merge fields an audience holds at most (API-NOTES §5)."""

MAPPABLE_FIELDS = ("first_name", "last_name", "phone", "company", "job_title", "address", "street",
                   "postal_code", "city", "country")
"""The anaba contact fields a merge field can receive (``address`` is the whole postal address)."""


def anaba_fields() -> list[tuple[str, str]]:
    """The anaba contact fields a merge field can receive, with their labels."""
    return [(name, labels.field(name)) for name in MAPPABLE_FIELDS]


def by_tag(merge_fields: Iterable[dict]) -> dict[str, dict]:
    """Merge fields by upper-cased tag."""
    return {str(f.get("tag", "")).upper(): f for f in merge_fields}


def audience_fields(api_key: str, list_id: str) -> dict:
    """The audience's merge fields and the mapping proposed for them (R5).

    ``proposed_mapping`` items: ``{"field", "tag", "type", "exists", "required", "size",
    "name"}``; ``unfillable_required``: required merge fields the proposal leaves empty.
    """
    with client_for(api_key.strip()) as client:
        merge_fields = client.get_merge_fields(list_id)
    tags = by_tag(merge_fields)
    by_name = {str(f.get("name", "")).strip().casefold(): f for f in merge_fields}
    proposed = []
    for mapping in default_mappings():
        found = tags.get(mapping.tag) or by_name.get(mapping.name.casefold())
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


def normalise_mapping(mapping: Sequence[Any] | None) -> list[FieldMapping]:
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


def _webhook_check(connector: Connector, hooks: list[dict]) -> dict:
    """Is our webhook on the audience as we register it (R21)? Before the copy ends there is none yet."""
    name = _("Webhook")
    mine = [h for h in hooks if connector.webhook_id and str(h.get("id")) == str(connector.webhook_id)]
    if connector.status not in (ConnectorStatus.ACTIVE, ConnectorStatus.PAUSED) and not mine:
        return {"name": name, "ok": None, "detail": _("Not registered yet: it is registered when the first copy ends.")}
    expected = webhook_url(connector) if connector.webhook_secret else ""
    problem = problem_with(mine[0] if mine else None, expected)
    if not problem:
        return {"name": name, "ok": True, "detail": _(
            "Registered: events %(events)s; sources %(sources)s (never api, so anaba's own writes do not come back).",
            events=", ".join(EVENTS), sources=", ".join(SOURCES))}
    return {"name": name, "ok": False, "detail": labels.webhook_problem(problem)}


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
        return [{"name": _("Mailchimp access"), "ok": False, "detail": labels.error_message(exc.kind, exc.field)}]
    tags = by_tag(merge_fields)
    mapped = [FieldMapping.from_dict(m) for m in connector.field_mapping or []]
    present = [m.tag for m in mapped if m.tag in tags]
    missing = [m.tag for m in mapped if m.tag not in tags]
    checks.append({"name": _("Merge fields present"), "ok": True,
                   "detail": ", ".join(present) or _("none")})
    if missing:
        room = MAX_MERGE_FIELDS - len(merge_fields)
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
    checks.append(_webhook_check(connector, webhooks))
    stats = audience.get("stats") or {}
    checks.append({
        "name": _("Audience size"), "ok": None,
        "detail": _("%(subscribed)d subscribed, %(unsubscribed)d unsubscribed, %(cleaned)d cleaned",
                    subscribed=int(stats.get("member_count") or 0),
                    unsubscribed=int(stats.get("unsubscribe_count") or 0),
                    cleaned=int(stats.get("cleaned_count") or 0)),
    })
    return checks
