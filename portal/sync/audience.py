"""The audience a connector writes to: its merge fields, the mapping proposed for them (R5),
and the checks support reads before validating (R7). Reads only.

The checks run in the background (a :data:`~portal.models.RunKind.AUDIENCE_CHECK` run, queued
with the connector's submission or by support's "check again"), so the validation page never
waits on Mailchimp: it shows the latest run's result, or a partial that polls itself meanwhile.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from flask_babel import format_number
from flask_babel import gettext as _

from portal import labels
from portal.mailchimp import MailchimpError
from portal.extensions import db
from portal.mailchimp.payload import TEXT_MAX_LENGTH, FieldMapping, default_mappings
from portal.models import Connector, ConnectorStatus, RunKind, RunStatus, SyncRun
from portal.sync import ConnectorError
from portal.sync import runs as run_rows
from portal.sync.mailchimp_access import client_for
from portal.sync.webhooks import EVENTS, SOURCES, problem_with, webhook_url

MAX_MERGE_FIELDS = 30
"""Merge fields an audience holds at most (API-NOTES §5)."""

MAPPABLE_FIELDS = ("first_name", "last_name", "phone", "company", "job_title", "address")
"""The anaba contact fields a merge field can receive. ``address`` is the postal address (street,
postal code, city, country together) and goes to an address merge field: the one address choice."""

NEW_MERGE_FIELDS: dict[str, FieldMapping] = {
    **{m.source: m for m in default_mappings()},
    "job_title": FieldMapping("job_title", "JOBTITLE", "text", name="Job Title"),
}
"""The merge field created for each anaba field when the audience has none to receive it (R5)."""

# Names an audience may already give the merge field of a field the default mapping leaves out.
_KNOWN_NAMES = {"job_title": ("job title", "jobtitle", "fonction", "poste", "title")}


def anaba_fields() -> list[tuple[str, str]]:
    """The anaba contact fields a merge field can receive, with their labels (the address named by its
    parts, as the contact form names them)."""
    return [(name, labels.address_parts() if name == "address" else labels.field(name)) for name in MAPPABLE_FIELDS]


def by_tag(merge_fields: Iterable[dict]) -> dict[str, dict]:
    """Merge fields by upper-cased tag."""
    return {str(f.get("tag", "")).upper(): f for f in merge_fields}


def fits(field: str, merge_type: str | None) -> bool:
    """Whether a merge field of `merge_type` can receive the anaba `field` (an address goes to an
    address merge field, nothing else does)."""
    return (merge_type == "address") == (field == "address")


def audience_fields(api_key: str, list_id: str) -> dict:
    """The audience's merge fields and the mapping proposed for them (R5).

    ``proposed_mapping`` items: ``{"field", "tag", "type", "exists", "required", "size",
    "name"}`` (``tag`` is "" when nothing is proposed: the field is not sent unless chosen);
    ``new_fields``: the merge field that would be created for each anaba field;
    ``unfillable_required``: required merge fields the proposal leaves empty.
    """
    with client_for(api_key.strip()) as client:
        merge_fields = client.get_merge_fields(list_id)
    tags = by_tag(merge_fields)
    by_name = {str(f.get("name", "")).strip().casefold(): f for f in merge_fields}
    defaults = {m.source for m in default_mappings()}
    proposed = []
    for field in MAPPABLE_FIELDS:
        mapping = NEW_MERGE_FIELDS[field]
        names = (mapping.name.casefold(), *_KNOWN_NAMES.get(field, ()))
        found = tags.get(mapping.tag) or next((by_name[n] for n in names if n in by_name), None)
        if found is not None and (not fits(field, found.get("type")) or (
                found.get("type") not in (mapping.type, "text") and found.get("tag") != mapping.tag)):
            found = None
        if found is None and field not in defaults:
            proposed.append({"field": field, "tag": "", "type": mapping.type, "exists": False, "required": False,
                             "size": None, "name": mapping.name})
            continue
        proposed.append({
            "field": field, "tag": found["tag"] if found else mapping.tag,
            "type": found.get("type", mapping.type) if found else mapping.type,
            "exists": found is not None, "required": bool(found and found.get("required")),
            "size": mapping.limit or TEXT_MAX_LENGTH if mapping.type != "address" else None,
            "name": found.get("name", mapping.name) if found else mapping.name,
        })
    mapped = {p["tag"] for p in proposed if p["tag"]}
    unfillable = [
        f["tag"] for f in merge_fields
        if f.get("required") and f.get("tag") not in mapped and not str(f.get("default_value") or "").strip()
    ]
    new_fields = {field: {"tag": m.tag, "type": m.type, "name": m.name} for field, m in NEW_MERGE_FIELDS.items()}
    return {"merge_fields": merge_fields, "proposed_mapping": proposed, "anaba_fields": anaba_fields(),
            "new_fields": new_fields, "unfillable_required": unfillable}


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


def _webhook_fact(connector: Connector, hooks: list[dict]) -> dict:
    """Is our webhook on the audience as we register it (R21)? Before the copy ends there is none yet.

    ``problem`` is "" (registered as it should be), a :class:`~portal.models.WebhookProblem`, or
    "not_yet" while the connector is not active.
    """
    mine = [h for h in hooks if connector.webhook_id and str(h.get("id")) == str(connector.webhook_id)]
    if connector.status not in (ConnectorStatus.ACTIVE, ConnectorStatus.PAUSED) and not mine:
        return {"check": "webhook", "ok": None, "problem": "not_yet"}
    expected = webhook_url(connector) if connector.webhook_secret else ""
    problem = problem_with(mine[0] if mine else None, expected)
    return {"check": "webhook", "ok": not problem, "problem": problem or ""}


def audience_checks(connector: Connector) -> list[dict]:
    """Checks shown to support before validating (R7): ``{"name", "ok", "detail"}`` each, in the reader's language.

    ``ok`` is True (fine), False (a problem to solve first) or None (information).
    """
    return describe_checks(check_facts(connector))


def check_facts(connector: Connector) -> list[dict]:
    """What the checks found, without words (kept in the checks run, shown in each reader's language):
    ``{"check": <name>, "ok": …, …figures}`` each (:func:`describe_checks` says them)."""
    try:
        with client_for(connector) as client:
            audience = client.get_list(connector.audience_id)
            merge_fields = client.get_merge_fields(connector.audience_id)
            webhooks = client.get_webhooks(connector.audience_id)
    except MailchimpError as exc:
        return [{"check": "access", "ok": False, "kind": exc.kind, "field": exc.field}]
    tags = by_tag(merge_fields)
    mapped = [FieldMapping.from_dict(m) for m in connector.field_mapping or []]
    present = [m.tag for m in mapped if m.tag in tags]
    missing = [m.tag for m in mapped if m.tag not in tags]
    facts: list[dict] = [{"check": "present", "ok": True, "tags": present}]
    if missing:
        room = MAX_MERGE_FIELDS - len(merge_fields)
        facts.append({"check": "to_create", "ok": len(missing) <= room, "tags": missing})
    mapped_tags = {m.tag for m in mapped}
    unfillable = [f["tag"] for f in merge_fields if f.get("required") and f["tag"] not in mapped_tags
                  and not str(f.get("default_value") or "").strip()]
    facts.append({"check": "required", "ok": not unfillable, "tags": unfillable})
    facts.append(_webhook_fact(connector, webhooks))
    stats = audience.get("stats") or {}
    facts.append({"check": "size", "ok": None, **{key: int(stats.get(key) or 0) for key in
                                                  ("member_count", "unsubscribe_count", "cleaned_count")}})
    return facts


def describe_checks(facts: Iterable[dict]) -> list[dict]:
    """The checks' facts in words: ``{"name", "ok", "detail"}`` each (unknown facts are left out)."""
    described = []
    for fact in facts:
        check, ok = fact.get("check"), fact.get("ok")
        tags = ", ".join(fact.get("tags") or [])
        if check == "access":
            name, detail = _("Mailchimp access"), labels.error_message(fact.get("kind"), fact.get("field"))
        elif check == "present":
            name, detail = _("Merge fields present"), tags or _("none")
        elif check == "to_create":
            name = _("Merge fields to create")
            detail = (_("%(tags)s will be created at validation.", tags=tags) if ok
                      else _("The audience cannot take %(n)d more merge fields (30 at most).",
                             n=len(fact.get("tags") or [])))
        elif check == "required":
            name = _("Required merge fields")
            detail = _("anaba cannot fill: %(tags)s", tags=tags) if tags else _("anaba fills every required merge field.")
        elif check == "webhook":
            name, problem = _("Webhook"), fact.get("problem")
            if problem == "not_yet":
                detail = _("Not registered yet: it is registered when the first copy ends.")
            elif not problem:
                detail = _("Registered: events %(events)s; sources %(sources)s (never api, so anaba's own writes do "
                           "not come back).", events=", ".join(EVENTS), sources=", ".join(SOURCES))
            else:
                detail = labels.webhook_problem(problem)
        elif check == "size":
            name = _("Audience size")
            detail = _("%(subscribed)s subscribed, %(unsubscribed)s unsubscribed, %(cleaned)s cleaned",
                       subscribed=format_number(int(fact.get("member_count") or 0)),
                       unsubscribed=format_number(int(fact.get("unsubscribe_count") or 0)),
                       cleaned=format_number(int(fact.get("cleaned_count") or 0)))
        else:
            continue
        described.append({"name": name, "ok": ok, "detail": detail})
    return described


def start_checks(connector_id: int) -> SyncRun:
    """Queue a fresh run of the audience checks (returned; the caller enqueues it). Commits.

    A run still queued or running is returned instead of a second one.
    """
    connector = db.session.get(Connector, connector_id)
    if connector is None or connector.status == ConnectorStatus.DELETED:
        raise ConnectorError(_("Connector not found."))
    latest = run_rows.latest_run(connector.id, RunKind.AUDIENCE_CHECK)
    if latest is not None and RunStatus(latest.status).is_live:
        return latest
    run = run_rows.create_run(connector, RunKind.AUDIENCE_CHECK)
    db.session.commit()
    return run


def run_checks(run_id: int) -> run_rows.RunResult:
    """The `audience_check` job: compute :func:`audience_checks` and keep them in the run's result."""

    def work(run: SyncRun, connector: Connector, token: str) -> None:
        run.result = {"facts": check_facts(connector)}
        run.total = run.done = 1

    return run_rows.execute(run_id, work, pause_on_refusal=False)
