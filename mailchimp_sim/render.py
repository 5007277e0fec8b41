"""JSON shapes of the objects Mailchimp returns (API-NOTES §1.1, §4, §5, §6, §8, §11)."""

from __future__ import annotations

from .store import AudienceList, Member, iso

API = "https://us1.api.mailchimp.com/3.0"


def link(rel: str, href: str, method: str = "GET") -> dict:
    """One ``_links`` entry."""
    return {"rel": rel, "href": API + href, "method": method}


def member_json(lst: AudienceList, m: Member) -> dict:
    """A full member object; unset values are "" as Mailchimp sends them."""
    merge = {}
    for tag, field in lst.merge_fields.items():
        merge[tag] = m.merge.get(tag, "")
    tag_items = []
    for tag_id in m.tags:
        tag = lst.tags.get(tag_id)
        if tag is not None:
            tag_items.append({"id": tag.id, "name": tag.name})
    full_name = f"{m.merge.get('FNAME', '')} {m.merge.get('LNAME', '')}".strip()
    doc = {
        "id": m.id,
        "email_address": m.email,
        "unique_email_id": m.unique_email_id,
        "contact_id": m.contact_id,
        "full_name": full_name,
        "web_id": m.web_id,
        "email_type": m.email_type,
        "status": m.status,
        "consents_to_one_to_one_messaging": True,
        "merge_fields": merge,
        "stats": {"avg_open_rate": 0, "avg_click_rate": 0},
        "ip_signup": m.ip_signup,
        "timestamp_signup": iso(m.timestamp_signup),
        "ip_opt": m.ip_opt,
        "timestamp_opt": iso(m.timestamp_opt),
        "member_rating": m.member_rating,
        "last_changed": iso(m.last_changed),
        "language": m.language,
        "vip": m.vip,
        "email_client": "",
        "location": {"latitude": m.location["latitude"], "longitude": m.location["longitude"],
                     "gmtoff": 0, "dstoff": 0, "country_code": "", "timezone": "", "region": ""},
        "source": m.source,
        "tags_count": len(tag_items),
        "tags": tag_items[:50],
        "list_id": lst.id,
        "_links": [link("self", f"/lists/{lst.id}/members/{m.id}"),
                   link("parent", f"/lists/{lst.id}/members")],
    }
    if m.interests:
        doc["interests"] = dict(m.interests)
    if lst.permissions:
        granted = m.marketing_permissions or {}
        doc["marketing_permissions"] = [
            {"marketing_permission_id": p["marketing_permission_id"], "text": p["text"],
             "enabled": bool(granted.get(p["marketing_permission_id"], False))}
            for p in lst.permissions]
    if m.status == "unsubscribed":
        doc["unsubscribe_reason"] = m.unsubscribe_reason
    return doc


def list_stats(lst: AudienceList) -> dict:
    """Audience counters, computed from the members."""
    counts = {"subscribed": 0, "unsubscribed": 0, "cleaned": 0}
    total = 0
    for m in lst.members.values():
        if m.status in counts:
            counts[m.status] += 1
        if m.status != "archived":
            total += 1
    return {
        "member_count": counts["subscribed"], "total_contacts": total,
        "unsubscribe_count": counts["unsubscribed"], "cleaned_count": counts["cleaned"],
        "member_count_since_send": counts["subscribed"],
        "unsubscribe_count_since_send": counts["unsubscribed"],
        "cleaned_count_since_send": counts["cleaned"],
        "campaign_count": 0, "campaign_last_sent": iso(lst.campaign_last_sent),
        "merge_field_count": len(lst.merge_fields), "avg_sub_rate": 0, "avg_unsub_rate": 0,
        "target_sub_rate": 0, "open_rate": 0, "click_rate": 0,
        "last_sub_date": iso(lst.last_sub), "last_unsub_date": iso(lst.last_unsub),
    }


def list_json(lst: AudienceList, campaign_count: int = 0) -> dict:
    """An audience with ``subscribe_url_short``/``long`` and ``stats``."""
    stats = list_stats(lst)
    stats["campaign_count"] = campaign_count
    return {
        "id": lst.id, "web_id": lst.web_id, "name": lst.name, "contact": lst.contact,
        "permission_reminder": lst.permission_reminder, "use_archive_bar": lst.use_archive_bar,
        "campaign_defaults": lst.campaign_defaults,
        "notify_on_subscribe": lst.notify_on_subscribe,
        "notify_on_unsubscribe": lst.notify_on_unsubscribe,
        "date_created": iso(lst.date_created), "list_rating": 0,
        "email_type_option": lst.email_type_option,
        "subscribe_url_short": f"http://eepurl.com/{lst.id[:6]}",
        "subscribe_url_long": f"https://us1.list-manage.com/subscribe?u={lst.u}&id={lst.id}",
        "beamer_address": f"us1-{lst.id}@inbound.mailchimp.com", "visibility": "pub",
        "double_optin": lst.double_optin, "has_welcome": False,
        "marketing_permissions": lst.marketing_permissions, "modules": [],
        "stats": stats,
        "_links": [link("self", f"/lists/{lst.id}"), link("members", f"/lists/{lst.id}/members")],
    }


def merge_field_json(lst: AudienceList, f) -> dict:
    """A merge field."""
    options = dict(f.options)
    if f.type == "address":
        options.setdefault("default_country", 164)
    if f.type == "phone":
        options.setdefault("phone_format", "none")
    if f.type in ("date", "birthday"):
        options.setdefault("date_format", "MM/DD/YYYY" if f.type == "date" else "MM/DD")
    if f.type == "text":
        options.setdefault("size", 25)
    return {"merge_id": f.merge_id, "tag": f.tag, "name": f.name, "type": f.type,
            "required": f.required, "default_value": f.default_value, "public": f.public,
            "display_order": f.display_order, "options": options, "help_text": f.help_text,
            "list_id": lst.id,
            "_links": [link("self", f"/lists/{lst.id}/merge-fields/{f.merge_id}")]}


def tag_counts(lst: AudienceList) -> dict[int, int]:
    """Non-archived members per tag id, in one pass over the audience."""
    counts: dict[int, int] = {}
    for m in lst.members.values():
        if m.tags and m.status != "archived":
            for tag_id in m.tags:
                counts[tag_id] = counts.get(tag_id, 0) + 1
    return counts


def segment_json(lst: AudienceList, tag, count: int | None = None) -> dict:
    """A tag as a static segment (``count`` from :func:`tag_counts` when listing many)."""
    if count is None:
        count = sum(1 for m in lst.members.values() if tag.id in m.tags and m.status != "archived")
    return {"id": tag.id, "name": tag.name, "member_count": count, "type": "static",
            "created_at": iso(tag.created), "updated_at": iso(tag.updated), "list_id": lst.id,
            "_links": [link("self", f"/lists/{lst.id}/segments/{tag.id}")]}


def webhook_json(lst: AudienceList, hook) -> dict:
    """A webhook (3.0.76 ``List Webhooks_1`` shape)."""
    return {"id": hook.id, "url": hook.url, "events": dict(hook.events),
            "sources": dict(hook.sources), "list_id": lst.id,
            "_links": [link("self", f"/lists/{lst.id}/webhooks/{hook.id}")]}


def _select(value, paths):
    """Keep only ``paths`` (tuples of keys) in ``value``; lists are traversed."""
    if isinstance(value, list):
        return [_select(v, paths) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, sub in value.items():
        matching = [p for p in paths if p and p[0] == key]
        if not matching:
            continue
        if any(len(p) == 1 for p in matching):
            out[key] = sub
        else:
            out[key] = _select(sub, [p[1:] for p in matching])
    return out


def _drop(value, paths):
    if isinstance(value, list):
        return [_drop(v, paths) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, sub in value.items():
        matching = [p for p in paths if p and p[0] == key]
        if any(len(p) == 1 for p in matching):
            continue
        out[key] = _drop(sub, [p[1:] for p in matching]) if matching else sub
    return out


def apply_fields(doc: dict, fields: str | None, exclude: str | None) -> dict:
    """``fields`` / ``exclude_fields`` with dot notation (API-NOTES §9)."""
    if fields:
        doc = _select(doc, [tuple(p.strip().split(".")) for p in fields.split(",") if p.strip()])
    if exclude:
        doc = _drop(doc, [tuple(p.strip().split(".")) for p in exclude.split(",") if p.strip()])
    return doc
