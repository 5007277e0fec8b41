"""Handlers of Mailchimp's endpoints under ``/3.0`` (ROUTES: path, methods, handler, locked)."""

from __future__ import annotations

import re
import secrets

from . import campaigns, problems, store as st, webhooks
from .render import (apply_fields, link, list_json, member_json, merge_field_json,
                     segment_json, tag_counts, webhook_json)
from .store import Webhook, iso, now, parse_iso

LIST_REQUIRED = ("name", "contact", "permission_reminder", "campaign_defaults", "email_type_option")
SEGMENT_MAX = 500
EVENT_NAMES = ("subscribe", "unsubscribe", "profile", "cleaned", "upemail", "campaign")
SOURCE_NAMES = ("user", "admin", "api")


def _out(ctx, doc: dict, status: int = 200):
    return status, apply_fields(doc, ctx.args.get("fields"), ctx.args.get("exclude_fields"))


def page_of(ctx, items: list) -> list:
    """The requested page of a collection; its size is the call's item count for the
    per-member latency model (docs/simulator.md, "Latency model")."""
    count, offset = ctx.page()
    page = items[offset:offset + count]
    ctx.items = len(page)
    return page


def ping(ctx):
    """``GET /ping``."""
    return 200, {"health_status": "Everything's Chimpy!"}


def root(ctx):
    """``GET /`` (account information, trimmed)."""
    a = ctx.account
    return _out(ctx, {"account_id": a.api_key[:10], "account_name": a.name, "email": "",
                      "first_name": "", "last_name": "", "role": "owner",
                      "total_subscribers": 0, "_links": [link("self", "/")]})


# ----- lists -------------------------------------------------------------------------------
def _lists_of(ctx):
    return [ctx.store.lists[i] for i in ctx.account.list_ids if i in ctx.store.lists]


def get_lists(ctx):
    """``GET /lists``."""
    lists = _lists_of(ctx)
    email = ctx.args.get("email")
    if email:
        h = st.subscriber_hash(email)
        lists = [lst for lst in lists if h in lst.members]
    items = [list_json(lst, _campaign_count(ctx, lst)) for lst in page_of(ctx, lists)]
    return _out(ctx, {"lists": items, "total_items": len(lists),
                      "constraints": {"may_create": True, "max_instances": 100,
                                      "current_total_instances": len(lists)},
                      "_links": [link("self", "/lists")]})


def _campaign_count(ctx, lst) -> int:
    return sum(1 for c in ctx.store.campaigns.values() if c.list_id == lst.id)


def post_lists(ctx):
    """``POST /lists``."""
    body = ctx.body()
    if not isinstance(body, dict):
        raise problems.schema_invalid("", "This value should be of type object")
    missing = [k for k in LIST_REQUIRED if k not in body]
    if missing:
        raise problems.schema_invalid("", "Required fields were not provided: " + ", ".join(missing))
    if not isinstance(body["name"], str) or not body["name"].strip():
        raise problems.schema_invalid("name", "This value should not be blank.")
    lst = ctx.store.add_list(ctx.account, body)
    return 200, list_json(lst)


def get_list(ctx, list_id):
    """``GET /lists/{list_id}``."""
    lst = ctx.store.get_list(ctx.account, list_id)
    return _out(ctx, list_json(lst, _campaign_count(ctx, lst)))


def patch_list(ctx, list_id):
    """``PATCH /lists/{list_id}``: the same required fields as POST (as the spec says)."""
    lst = ctx.store.get_list(ctx.account, list_id)
    body = ctx.body()
    if not isinstance(body, dict):
        raise problems.schema_invalid("", "This value should be of type object")
    missing = [k for k in LIST_REQUIRED if k not in body]
    if missing:
        raise problems.schema_invalid("", "Required fields were not provided: " + ", ".join(missing))
    for key in ("name", "contact", "permission_reminder", "campaign_defaults",
                "notify_on_subscribe", "notify_on_unsubscribe"):
        if key in body:
            setattr(lst, key, body[key])
    for key in ("use_archive_bar", "email_type_option", "double_optin", "marketing_permissions"):
        if key in body:
            setattr(lst, key, bool(body[key]))
    if lst.marketing_permissions:
        lst.enable_permissions()
    ctx.store.dirty = True
    return 200, list_json(lst, _campaign_count(ctx, lst))


def delete_list(ctx, list_id):
    """``DELETE /lists/{list_id}``: the audience is gone (later calls 404)."""
    lst = ctx.store.get_list(ctx.account, list_id)
    del ctx.store.lists[lst.id]
    ctx.account.list_ids.remove(lst.id)
    ctx.store.dirty = True
    return 204, None


def batch_subscribe(ctx, list_id):
    """``POST /lists/{list_id}``: batch subscribe or update (§2, §14.6)."""
    lst = ctx.store.get_list(ctx.account, list_id)
    body = ctx.body()
    if not isinstance(body, dict):
        raise problems.schema_invalid("", "This value should be of type object")
    if isinstance(body.get("members"), list):
        ctx.items = len(body["members"])
    result = st.batch_subscribe(ctx.store, lst, body, skip_merge=ctx.flag("skip_merge_validation"),
                                skip_duplicates=ctx.flag("skip_duplicate_check"))
    doc = {
        "new_members": [member_json(lst, m) for m in result["new_members"]],
        "updated_members": [member_json(lst, m) for m in result["updated_members"]],
        "errors": result["errors"],
        "total_created": len(result["new_members"]),
        "total_updated": len(result["updated_members"]),
        "error_count": len(result["errors"]),
        "_links": [link("self", f"/lists/{lst.id}")],
    }
    return _out(ctx, doc)


# ----- members -----------------------------------------------------------------------------
def get_members(ctx, list_id):
    """``GET /lists/{list_id}/members`` with the filters of API-NOTES §9."""
    lst = ctx.store.get_list(ctx.account, list_id)
    a = ctx.args
    status = a.get("status")
    if status and status not in st.ALL_STATUSES:
        raise problems.schema_invalid("status", "Data did not match any of the schemas described in anyOf.")
    bounds = {}
    for name in ("since_last_changed", "before_last_changed", "since_timestamp_opt",
                 "before_timestamp_opt", "unsubscribed_since"):
        if a.get(name):
            bounds[name] = parse_iso(a[name])
    email_type = a.get("email_type")
    vip_only = ctx.flag("vip_only")
    unique = a.get("unique_email_id")
    items = []
    for m in lst.members.values():
        if status:
            if m.status != status:
                continue
        elif m.status == "archived":
            continue
        # bounds are exclusive ("after", "before") at the one-second precision shown
        if "since_last_changed" in bounds and int(m.last_changed) <= bounds["since_last_changed"]:
            continue
        if "before_last_changed" in bounds and int(m.last_changed) >= bounds["before_last_changed"]:
            continue
        if "since_timestamp_opt" in bounds and int(m.timestamp_opt) <= bounds["since_timestamp_opt"]:
            continue
        if "before_timestamp_opt" in bounds and int(m.timestamp_opt) >= bounds["before_timestamp_opt"]:
            continue
        if "unsubscribed_since" in bounds and (m.status != "unsubscribed"
                                               or int(m.last_changed) <= bounds["unsubscribed_since"]):
            continue
        if email_type and m.email_type != email_type:
            continue
        if vip_only and not m.vip:
            continue
        if unique and m.unique_email_id != unique:
            continue
        items.append(m)
    sort_field = a.get("sort_field")
    if sort_field in ("timestamp_opt", "timestamp_signup", "last_changed"):
        items.sort(key=lambda m: getattr(m, sort_field),
                   reverse=a.get("sort_dir", "ASC").upper() == "DESC")
    doc = {"members": [member_json(lst, m) for m in page_of(ctx, items)],
           "list_id": lst.id, "total_items": len(items),
           "_links": [link("self", f"/lists/{lst.id}/members")]}
    return _out(ctx, doc)


def post_member(ctx, list_id):
    """``POST /lists/{list_id}/members``."""
    lst = ctx.store.get_list(ctx.account, list_id)
    member = st.post_member(ctx.store, lst, ctx.body(), skip_merge=ctx.flag("skip_merge_validation"))
    return 200, member_json(lst, member)


def get_member(ctx, list_id, subscriber_hash):
    """``GET .../members/{hash}``: archived members are still readable (§14.1)."""
    lst = ctx.store.get_list(ctx.account, list_id)
    return _out(ctx, member_json(lst, st.member_or_404(lst, subscriber_hash)))


def put_member(ctx, list_id, subscriber_hash):
    """``PUT .../members/{hash}``: upsert (§1.3)."""
    lst = ctx.store.get_list(ctx.account, list_id)
    member = st.put_member(ctx.store, lst, subscriber_hash, ctx.body(),
                           skip_merge=ctx.flag("skip_merge_validation"))
    return 200, member_json(lst, member)


def patch_member(ctx, list_id, subscriber_hash):
    """``PATCH .../members/{hash}``."""
    lst = ctx.store.get_list(ctx.account, list_id)
    member = st.patch_member(ctx.store, lst, subscriber_hash, ctx.body(),
                             skip_merge=ctx.flag("skip_merge_validation"))
    return 200, member_json(lst, member)


def delete_member(ctx, list_id, subscriber_hash):
    """``DELETE .../members/{hash}``: archive (§1.5)."""
    lst = ctx.store.get_list(ctx.account, list_id)
    st.archive(ctx.store, lst, st.member_or_404(lst, subscriber_hash), "api")
    return 204, None


def delete_permanent(ctx, list_id, subscriber_hash):
    """``POST .../members/{hash}/actions/delete-permanent``."""
    lst = ctx.store.get_list(ctx.account, list_id)
    st.delete_permanent(ctx.store, lst, st.member_or_404(lst, subscriber_hash), "api")
    return 204, None


def get_member_tags(ctx, list_id, subscriber_hash):
    """``GET .../members/{hash}/tags``."""
    lst = ctx.store.get_list(ctx.account, list_id)
    member = st.member_or_404(lst, subscriber_hash)
    items = [{"id": t, "name": lst.tags[t].name, "date_added": iso(added)}
             for t, added in member.tags.items() if t in lst.tags]
    return _out(ctx, {"tags": page_of(ctx, items), "total_items": len(items),
                      "_links": [link("self", f"/lists/{lst.id}/members/{member.id}/tags")]})


def post_member_tags(ctx, list_id, subscriber_hash):
    """``POST .../members/{hash}/tags``: 204, tags auto-created (§4, §14.8)."""
    lst = ctx.store.get_list(ctx.account, list_id)
    body = ctx.body()
    if not isinstance(body, dict) or not isinstance(body.get("tags"), list):
        raise problems.schema_invalid("", "Required fields were not provided: tags")
    member = st.member_or_404(lst, subscriber_hash)
    st.set_tags(ctx.store, lst, member, body["tags"])
    return 204, None


def get_member_activity(ctx, list_id, subscriber_hash):
    """``GET .../members/{hash}/activity``: the last 50 events, newest first (§8)."""
    lst = ctx.store.get_list(ctx.account, list_id)
    member = st.member_or_404(lst, subscriber_hash)
    wanted = [a.strip() for a in ctx.args.get("action", "").split(",") if a.strip()]
    items = [e for e in campaigns.member_activity(ctx.store, member)
             if not wanted or e["action"] in wanted][:50]
    return _out(ctx, {"activity": items, "email_id": member.id, "list_id": lst.id,
                      "total_items": len(items),
                      "_links": [link("self", f"/lists/{lst.id}/members/{member.id}/activity")]})


# ----- segments and tags -------------------------------------------------------------------
def get_segments(ctx, list_id):
    """``GET /lists/{list_id}/segments`` (tags are the static segments)."""
    lst = ctx.store.get_list(ctx.account, list_id)
    kind = ctx.args.get("type")
    tags = [] if kind and kind != "static" else list(lst.tags.values())
    counts = tag_counts(lst) if tags else {}
    return _out(ctx, {"segments": [segment_json(lst, t, counts.get(t.id, 0))
                                   for t in page_of(ctx, tags)],
                      "list_id": lst.id, "total_items": len(tags),
                      "_links": [link("self", f"/lists/{lst.id}/segments")]})


def _emails(value, field):
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise problems.schema_invalid(field, "This value should be of type array")
    return value


def post_segment(ctx, list_id):
    """``POST /lists/{list_id}/segments``: a new static segment (tag)."""
    lst = ctx.store.get_list(ctx.account, list_id)
    body = ctx.body()
    name = body.get("name") if isinstance(body, dict) else None
    if not isinstance(name, str) or not name.strip():
        raise problems.schema_invalid("", "Required fields were not provided: name")
    if "static_segment" not in body:
        raise problems.invalid("Saved segments (with conditions) are not supported by the simulator.")
    emails = _emails(body.get("static_segment"), "static_segment")
    if lst.tag_by_name(name):
        raise problems.invalid("Sorry, that tag already exists.")
    tag = ctx.store.new_tag(lst, name)
    t = now()
    for email in emails:
        member = lst.members.get(st.subscriber_hash(email))
        if member is not None and tag.id not in member.tags:
            member.tags[tag.id] = t
            member.last_changed = t
    ctx.store.dirty = True
    return 200, segment_json(lst, tag)


def _segment(lst, segment_id):
    tag = lst.tags.get(segment_id)
    if tag is None:
        raise problems.not_found()
    return tag


def get_segment(ctx, list_id, segment_id):
    """``GET /lists/{list_id}/segments/{segment_id}``."""
    lst = ctx.store.get_list(ctx.account, list_id)
    return _out(ctx, segment_json(lst, _segment(lst, segment_id)))


def patch_segment(ctx, list_id, segment_id):
    """``PATCH /lists/{list_id}/segments/{segment_id}``: rename or replace its members."""
    lst = ctx.store.get_list(ctx.account, list_id)
    tag = _segment(lst, segment_id)
    body = ctx.body()
    if isinstance(body.get("name"), str) and body["name"].strip():
        tag.name = body["name"].strip()
    t = now()
    if "static_segment" in body:
        emails = {st.subscriber_hash(e) for e in _emails(body["static_segment"], "static_segment")}
        for member in lst.members.values():
            if member.id in emails:
                if tag.id not in member.tags:
                    member.tags[tag.id] = t
                    member.last_changed = t
            elif member.tags.pop(tag.id, None) is not None:
                member.last_changed = t
    tag.updated = t
    ctx.store.dirty = True
    return 200, segment_json(lst, tag)


def delete_segment(ctx, list_id, segment_id):
    """``DELETE /lists/{list_id}/segments/{segment_id}``: the tag disappears from members."""
    lst = ctx.store.get_list(ctx.account, list_id)
    tag = _segment(lst, segment_id)
    t = now()
    for member in lst.members.values():
        if member.tags.pop(tag.id, None) is not None:
            member.last_changed = t
    del lst.tags[tag.id]
    ctx.store.dirty = True
    return 204, None


def bulk_segment(ctx, list_id, segment_id):
    """``POST /lists/{list_id}/segments/{segment_id}``: add/remove up to 500 each (§4)."""
    lst = ctx.store.get_list(ctx.account, list_id)
    tag = _segment(lst, segment_id)
    body = ctx.body()
    to_add = _emails(body.get("members_to_add"), "members_to_add")
    to_remove = _emails(body.get("members_to_remove"), "members_to_remove")
    if len(to_add) > SEGMENT_MAX or len(to_remove) > SEGMENT_MAX:
        raise problems.invalid("Maximum allowed member items exceeded, please provide at most 500 "
                               "items in members_to_add field or members_to_remove field")
    ctx.items = len(to_add) + len(to_remove)
    added, removed, missing_add, missing_remove = [], [], [], []
    t = now()
    for email in to_add:
        member = lst.members.get(st.subscriber_hash(email))
        if member is None or member.status == "archived":
            missing_add.append(email)
        elif tag.id not in member.tags:
            member.tags[tag.id] = t
            member.last_changed = t
            added.append(member)
    for email in to_remove:
        member = lst.members.get(st.subscriber_hash(email))
        if member is None or member.status == "archived":
            missing_remove.append(email)
        elif member.tags.pop(tag.id, None) is not None:
            member.last_changed = t
            removed.append(member)
    errors = []
    if missing_add:
        errors.append({"email_addresses": missing_add, "error": "Email addresses not found in the list."})
    if missing_remove:
        errors.append({"email_addresses": missing_remove, "error": "Email addresses not found in the list."})
    tag.updated = t
    ctx.store.dirty = True
    return _out(ctx, {"members_added": [member_json(lst, m) for m in added],
                      "members_removed": [member_json(lst, m) for m in removed],
                      "errors": errors, "total_added": len(added), "total_removed": len(removed),
                      "error_count": len(missing_add) + len(missing_remove),
                      "_links": [link("self", f"/lists/{lst.id}/segments/{tag.id}")]})


def get_segment_members(ctx, list_id, segment_id):
    """``GET /lists/{list_id}/segments/{segment_id}/members``."""
    lst = ctx.store.get_list(ctx.account, list_id)
    tag = _segment(lst, segment_id)
    items = [m for m in lst.members.values() if tag.id in m.tags and m.status != "archived"]
    return _out(ctx, {"members": [member_json(lst, m) for m in page_of(ctx, items)],
                      "total_items": len(items),
                      "_links": [link("self", f"/lists/{lst.id}/segments/{tag.id}/members")]})


def post_segment_member(ctx, list_id, segment_id):
    """``POST /lists/{list_id}/segments/{segment_id}/members`` ``{"email_address"}``: add one
    member to a static segment; answers the member. A non-member is 404 (as for tags)."""
    lst = ctx.store.get_list(ctx.account, list_id)
    tag = _segment(lst, segment_id)
    body = ctx.body()
    email = body.get("email_address") if isinstance(body, dict) else None
    if email is None:
        raise problems.schema_invalid("", "Required fields were not provided: email_address")
    if not isinstance(email, str):
        raise problems.schema_invalid("email_address", st.validation.wrong_type("string", email))
    member = lst.members.get(st.subscriber_hash(email.strip()))
    if member is None or member.status == "archived":
        raise problems.not_found()
    if tag.id not in member.tags:
        t = now()
        member.tags[tag.id] = t
        member.last_changed = t
        tag.updated = t
        ctx.store.dirty = True
    return 200, member_json(lst, member)


def delete_segment_member(ctx, list_id, segment_id, subscriber_hash):
    """``DELETE /lists/{list_id}/segments/{segment_id}/members/{subscriber_hash}``: 204;
    removing a member who is not in the segment is accepted (as inactivating an absent tag)."""
    lst = ctx.store.get_list(ctx.account, list_id)
    tag = _segment(lst, segment_id)
    member = st.member_or_404(lst, subscriber_hash)
    if member.tags.pop(tag.id, None) is not None:
        t = now()
        member.last_changed = t
        tag.updated = t
        ctx.store.dirty = True
    return 204, None


def tag_search(ctx, list_id):
    """``GET /lists/{list_id}/tag-search?name=``: prefix match, all tags without a name."""
    lst = ctx.store.get_list(ctx.account, list_id)
    prefix = ctx.args.get("name", "").lower()
    tags = [{"id": t.id, "name": t.name} for t in lst.tags.values()
            if t.name.lower().startswith(prefix)]
    return _out(ctx, {"tags": tags, "total_items": len(tags)})


# ----- merge fields ------------------------------------------------------------------------
def get_merge_fields(ctx, list_id):
    """``GET /lists/{list_id}/merge-fields`` (filters ``type``, ``required``)."""
    lst = ctx.store.get_list(ctx.account, list_id)
    fields = list(lst.merge_fields.values())
    if ctx.args.get("type"):
        fields = [f for f in fields if f.type == ctx.args["type"]]
    if ctx.args.get("required"):
        fields = [f for f in fields if f.required == ctx.flag("required")]
    return _out(ctx, {"merge_fields": [merge_field_json(lst, f) for f in page_of(ctx, fields)],
                      "list_id": lst.id, "total_items": len(fields),
                      "_links": [link("self", f"/lists/{lst.id}/merge-fields")]})


def _merge_field(lst, merge_id):
    for field in lst.merge_fields.values():
        if field.merge_id == merge_id:
            return field
    raise problems.not_found()


def post_merge_field(ctx, list_id):
    """``POST /lists/{list_id}/merge-fields``: tag ≤ 10 characters, 30 per audience (§5)."""
    lst = ctx.store.get_list(ctx.account, list_id)
    body = ctx.body()
    missing = [k for k in ("name", "type") if not body.get(k)]
    if missing:
        raise problems.schema_invalid("", "Required fields were not provided: " + ", ".join(missing))
    if body["type"] not in st.validation.MERGE_TYPES:
        raise problems.schema_invalid("type", "Data did not match any of the schemas described in anyOf.")
    if len(lst.merge_fields) >= st.MAX_MERGE_FIELDS:
        raise problems.invalid(f"This list already has the maximum of {st.MAX_MERGE_FIELDS} "
                               "merge fields.")
    tag = str(body.get("tag") or f"MMERGE{lst.next_merge_id}").upper()
    if len(tag) > st.MAX_TAG_LEN:
        raise problems.invalid("The merge field tag must be 10 characters or fewer.",
                               [{"field": "tag", "message": "Value must be 10 characters or fewer"}])
    if not re.fullmatch(r"[A-Z][A-Z0-9_]*", tag) or tag == "EMAIL":
        raise problems.invalid(f'The tag "{tag}" is not valid.',
                               [{"field": "tag", "message": "Please enter a valid merge tag"}])
    if tag in lst.merge_fields:
        raise problems.invalid(f'A Merge Field with the tag "{tag}" already exists for this list.')
    field = lst.add_merge_field(
        tag, str(body["name"]), body["type"], required=body.get("required", False),
        default_value=body.get("default_value", ""), public=body.get("public", True),
        display_order=body.get("display_order", len(lst.merge_fields) + 2),
        options=body.get("options") or {}, help_text=body.get("help_text", ""))
    ctx.store.dirty = True
    return 200, merge_field_json(lst, field)


def get_merge_field(ctx, list_id, merge_id):
    """``GET /lists/{list_id}/merge-fields/{merge_id}``."""
    lst = ctx.store.get_list(ctx.account, list_id)
    return _out(ctx, merge_field_json(lst, _merge_field(lst, merge_id)))


def patch_merge_field(ctx, list_id, merge_id):
    """``PATCH /lists/{list_id}/merge-fields/{merge_id}`` (the type cannot change)."""
    lst = ctx.store.get_list(ctx.account, list_id)
    field = _merge_field(lst, merge_id)
    body = ctx.body()
    if "type" in body and body["type"] != field.type:
        raise problems.invalid("The type of a merge field cannot be changed.")
    for key in ("name", "default_value", "help_text", "display_order"):
        if key in body:
            setattr(field, key, body[key])
    for key in ("required", "public"):
        if key in body:
            setattr(field, key, bool(body[key]))
    if isinstance(body.get("options"), dict):
        field.options.update(body["options"])
    new_tag = str(body.get("tag") or field.tag).upper()
    if new_tag != field.tag:
        if len(new_tag) > st.MAX_TAG_LEN:
            raise problems.invalid("The merge field tag must be 10 characters or fewer.",
                                   [{"field": "tag", "message": "Value must be 10 characters or fewer"}])
        if new_tag in lst.merge_fields:
            raise problems.invalid(f'A Merge Field with the tag "{new_tag}" already exists for this list.')
        lst.merge_fields = {(new_tag if t == field.tag else t): f for t, f in lst.merge_fields.items()}
        for member in lst.members.values():
            if field.tag in member.merge:
                member.merge[new_tag] = member.merge.pop(field.tag)
        field.tag = new_tag
    ctx.store.dirty = True
    return 200, merge_field_json(lst, field)


def delete_merge_field(ctx, list_id, merge_id):
    """``DELETE /lists/{list_id}/merge-fields/{merge_id}``: values are dropped."""
    lst = ctx.store.get_list(ctx.account, list_id)
    field = _merge_field(lst, merge_id)
    del lst.merge_fields[field.tag]
    for member in lst.members.values():
        member.merge.pop(field.tag, None)
    ctx.store.dirty = True
    return 204, None


# ----- webhooks ----------------------------------------------------------------------------
def get_webhooks(ctx, list_id):
    """``GET /lists/{list_id}/webhooks`` (disabled webhooks stay listed)."""
    lst = ctx.store.get_list(ctx.account, list_id)
    hooks = [webhook_json(lst, h) for h in lst.webhooks.values()]
    return _out(ctx, {"webhooks": hooks, "list_id": lst.id, "total_items": len(hooks),
                      "_links": [link("self", f"/lists/{lst.id}/webhooks")]})


def _flags(body, key, names, default, *, missing=False):
    """Event or source flags: ``default`` when the object is absent; inside a given object,
    a flag left out is ``missing`` (off on creation, unchanged on PATCH)."""
    if key not in body or body[key] is None:
        return dict(default)
    given = body[key]
    if not isinstance(given, dict):
        raise problems.schema_invalid(key, "This value should be of type object")
    return {name: bool(given.get(name, default[name] if missing is None else missing))
            for name in names}


def post_webhook(ctx, list_id):
    """``POST /lists/{list_id}/webhooks``: the validator GET must answer 2xx (§6.1)."""
    with ctx.store.lock:
        lst = ctx.store.get_list(ctx.account, list_id)
        body = ctx.body()
        url = body.get("url") if isinstance(body, dict) else None
        if not isinstance(url, str) or not url.strip():
            raise problems.schema_invalid("", "Required fields were not provided: url")
        if not re.match(r"^https?://[^\s/]+", url):
            raise problems.invalid("This URL is not valid.",
                                   [{"field": "url", "message": "Please enter a valid URL"}])
        if any(h.url.split("?")[0] == url.split("?")[0] for h in lst.webhooks.values()):
            raise problems.invalid("Sorry, you can't use the same URL twice.")
        events = _flags(body, "events", EVENT_NAMES, dict.fromkeys(EVENT_NAMES, True))
        sources = _flags(body, "sources", SOURCE_NAMES,
                         {"user": True, "admin": True, "api": False})
    status = webhooks.validate_url(url)  # outside the lock: the receiver may be slow
    if not 200 <= status < 300:
        raise problems.invalid("We couldn't verify the URL is working. Please double check and "
                               f"try again. HTTP Code: {status}")
    with ctx.store.lock:
        lst = ctx.store.get_list(ctx.account, list_id)
        hook = Webhook(secrets.token_hex(5), url, events, sources)
        lst.webhooks[hook.id] = hook
        ctx.store.dirty = True
        return 200, webhook_json(lst, hook)


def _webhook(lst, webhook_id):
    hook = lst.webhooks.get(webhook_id)
    if hook is None:
        raise problems.not_found()
    return hook


def get_webhook(ctx, list_id, webhook_id):
    """``GET /lists/{list_id}/webhooks/{webhook_id}``."""
    lst = ctx.store.get_list(ctx.account, list_id)
    return _out(ctx, webhook_json(lst, _webhook(lst, webhook_id)))


def patch_webhook(ctx, list_id, webhook_id):
    """``PATCH /lists/{list_id}/webhooks/{webhook_id}``."""
    lst = ctx.store.get_list(ctx.account, list_id)
    hook = _webhook(lst, webhook_id)
    body = ctx.body()
    if isinstance(body.get("url"), str) and body["url"].strip():
        hook.url = body["url"]
    if "events" in body:
        hook.events = _flags(body, "events", EVENT_NAMES, hook.events, missing=None)
    if "sources" in body:
        hook.sources = _flags(body, "sources", SOURCE_NAMES, hook.sources, missing=None)
    ctx.store.dirty = True
    return 200, webhook_json(lst, hook)


def delete_webhook(ctx, list_id, webhook_id):
    """``DELETE /lists/{list_id}/webhooks/{webhook_id}``."""
    lst = ctx.store.get_list(ctx.account, list_id)
    del lst.webhooks[_webhook(lst, webhook_id).id]
    ctx.store.dirty = True
    return 204, None


M = "<list_id>/members/<subscriber_hash>"
ROUTES = [
    ("/", ["GET"], root, True),
    ("/ping", ["GET"], ping, True),
    ("/lists", ["GET"], get_lists, True),
    ("/lists", ["POST"], post_lists, True),
    ("/lists/<list_id>", ["GET"], get_list, True),
    ("/lists/<list_id>", ["POST"], batch_subscribe, True),
    ("/lists/<list_id>", ["PATCH"], patch_list, True),
    ("/lists/<list_id>", ["DELETE"], delete_list, True),
    ("/lists/<list_id>/members", ["GET"], get_members, True),
    ("/lists/<list_id>/members", ["POST"], post_member, True),
    ("/lists/" + M, ["GET"], get_member, True),
    ("/lists/" + M, ["PUT"], put_member, True),
    ("/lists/" + M, ["PATCH"], patch_member, True),
    ("/lists/" + M, ["DELETE"], delete_member, True),
    ("/lists/" + M + "/actions/delete-permanent", ["POST"], delete_permanent, True),
    ("/lists/" + M + "/tags", ["GET"], get_member_tags, True),
    ("/lists/" + M + "/tags", ["POST"], post_member_tags, True),
    ("/lists/" + M + "/activity", ["GET"], get_member_activity, True),
    ("/lists/<list_id>/segments", ["GET"], get_segments, True),
    ("/lists/<list_id>/segments", ["POST"], post_segment, True),
    ("/lists/<list_id>/segments/<int:segment_id>", ["GET"], get_segment, True),
    ("/lists/<list_id>/segments/<int:segment_id>", ["POST"], bulk_segment, True),
    ("/lists/<list_id>/segments/<int:segment_id>", ["PATCH"], patch_segment, True),
    ("/lists/<list_id>/segments/<int:segment_id>", ["DELETE"], delete_segment, True),
    ("/lists/<list_id>/segments/<int:segment_id>/members", ["GET"], get_segment_members, True),
    ("/lists/<list_id>/segments/<int:segment_id>/members", ["POST"], post_segment_member, True),
    ("/lists/<list_id>/segments/<int:segment_id>/members/<subscriber_hash>", ["DELETE"],
     delete_segment_member, True),
    ("/lists/<list_id>/tag-search", ["GET"], tag_search, True),
    ("/lists/<list_id>/merge-fields", ["GET"], get_merge_fields, True),
    ("/lists/<list_id>/merge-fields", ["POST"], post_merge_field, True),
    ("/lists/<list_id>/merge-fields/<int:merge_id>", ["GET"], get_merge_field, True),
    ("/lists/<list_id>/merge-fields/<int:merge_id>", ["PATCH"], patch_merge_field, True),
    ("/lists/<list_id>/merge-fields/<int:merge_id>", ["DELETE"], delete_merge_field, True),
    ("/lists/<list_id>/webhooks", ["GET"], get_webhooks, True),
    ("/lists/<list_id>/webhooks", ["POST"], post_webhook, False),
    ("/lists/<list_id>/webhooks/<webhook_id>", ["GET"], get_webhook, True),
    ("/lists/<list_id>/webhooks/<webhook_id>", ["PATCH"], patch_webhook, True),
    ("/lists/<list_id>/webhooks/<webhook_id>", ["DELETE"], delete_webhook, True),
] + campaigns.ROUTES
