"""The control API under ``/_sim/`` (not Mailchimp's): accounts, reset, faults, what people
do on Mailchimp's side, simulated campaigns, the request log. See ``docs/simulator.md``.
"""

from __future__ import annotations

import os

from werkzeug.wrappers import Response

from . import campaigns, problems, store as st
from .render import member_json
from .store import Faults, now

ACTIONS = ("unsubscribe-via-form", "resubscribe-via-form", "unsubscribe-by-admin", "bounce",
           "complain", "change-email", "edit-profile", "archive", "delete-permanently")


def _body(ctx) -> dict:
    body = ctx.body()
    if not isinstance(body, dict):
        raise problems.schema_invalid("", "This value should be of type object")
    return body


def _bad(message: str) -> problems.ApiError:
    return problems.ApiError(400, "Invalid Simulator Request", message)


def health(ctx):
    """``GET /_sim/health``: readiness probe, with the pid of the process serving requests
    (with gunicorn, the worker: a child of the process started)."""
    return 200, {"ok": True, "pid": os.getpid()}


def reset(ctx):
    """``POST /_sim/reset``: forget accounts, lists, campaigns, logs and pending webhooks."""
    ctx.app.dispatcher.reset()
    ctx.store.clear()
    ctx.app.clear_requests()
    return 200, {"reset": True}


def new_account(ctx):
    """``POST /_sim/accounts`` ``{name?, api_key?}`` → ``{api_key, name}``."""
    body = _body(ctx)
    key = body.get("api_key")
    if key is not None and (not isinstance(key, str) or not st.HEX32.match(key.split("-")[0])
                            or "-" not in key):
        raise _bad("api_key must look like <32 hex>-<dc>")
    account = ctx.store.add_account(str(body.get("name") or "Test"), key)
    return 200, {"api_key": account.api_key, "name": account.name}


def list_accounts(ctx):
    """``GET /_sim/accounts``: accounts, their audiences and member counts by status."""
    out = []
    with ctx.store.lock:
        for account in ctx.store.accounts.values():
            audiences = []
            for list_id in account.list_ids:
                lst = ctx.store.lists.get(list_id)
                if lst is None:
                    continue
                counts: dict[str, int] = {}
                for member in lst.members.values():
                    counts[member.status] = counts.get(member.status, 0) + 1
                audiences.append({"id": lst.id, "name": lst.name, "members": counts,
                                  "webhooks": len(lst.webhooks), "tags": len(lst.tags)})
            out.append({"api_key": account.api_key, "name": account.name,
                        "revoked": account.revoked,
                        "faults": account.faults.to_dict() if account.faults else None,
                        "audiences": audiences})
    return 200, {"accounts": out}


def _account(ctx, api_key):
    account = ctx.store.accounts.get(api_key)
    if account is None:
        raise problems.not_found()
    return account


def revoke(ctx, api_key):
    """``POST /_sim/accounts/{api_key}/revoke``: the key then gets 401 API Key Invalid."""
    with ctx.store.lock:
        _account(ctx, api_key).revoked = True
        ctx.store.dirty = True
    return 200, {"api_key": api_key, "revoked": True}


def restore(ctx, api_key):
    """``POST /_sim/accounts/{api_key}/restore``: a revoked key works again (the customer fixed it)."""
    with ctx.store.lock:
        _account(ctx, api_key).revoked = False
        ctx.store.dirty = True
    return 200, {"api_key": api_key, "revoked": False}


def set_faults(ctx):
    """``POST /_sim/faults`` ``{api_key, error_rate, statuses, timeout_rate, latency_ms,
    latency_per_member_ms, timeout_seconds, seed}``."""
    body = _body(ctx)
    with ctx.store.lock:
        account = _account(ctx, body.get("api_key", ""))
        try:
            faults = Faults(body.get("error_rate", 0.0), body.get("statuses", (429, 500, 503)),
                            body.get("timeout_rate", 0.0), body.get("latency_ms", 0),
                            body.get("timeout_seconds", 30.0), body.get("seed"),
                            body.get("latency_per_member_ms", 0))
        except (TypeError, ValueError) as exc:
            raise _bad(f"bad fault settings: {exc}") from None
        empty = not (faults.error_rate or faults.timeout_rate or faults.latency_ms
                     or faults.latency_per_member_ms)
        account.faults = None if empty else faults
        return 200, {"api_key": account.api_key, **faults.to_dict()}


def clear_faults(ctx, api_key):
    """``DELETE /_sim/faults/{api_key}``."""
    with ctx.store.lock:
        _account(ctx, api_key).faults = None
    return 204, None


def _find_member(store, lst, slot: str, action: str, body: dict):
    """The member an action is about; ``resubscribe-via-form`` signs up an unknown address."""
    member = lst.members.get(st.resolve_hash(lst, slot))
    if member is None and action == "resubscribe-via-form":
        email = body.get("email_address") or (slot if "@" in slot else "")
        if not email:
            raise problems.not_found()
        lst.forgotten.discard(st.subscriber_hash(email))
        member = st.Member(email, next(store.web_ids))
        member.status = "new"
        member.source = "Hosted Signup Form"
        lst.members[member.id] = member
        lst.contacts[member.contact_id] = member
    if member is None:
        raise problems.not_found()
    return member


def _run_action(ctx, lst, slot: str, action: str, body: dict):
    """One action under the store lock; the member after it (None after a permanent delete)."""
    if action not in ACTIONS:
        raise _bad(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    if not isinstance(body, dict):
        raise _bad("the action's data must be an object")
    member = _find_member(ctx.store, lst, slot, action, body)
    try:
        ctx.app.dispatcher.emit_delay = float(body.get("webhook_delay_s") or 0)
        result = _act(ctx.store, lst, member, action, body)
    finally:
        ctx.app.dispatcher.emit_delay = 0.0
    ctx.store.dirty = True
    return result


def member_action(ctx, list_id, subscriber_hash, action):
    """``POST /_sim/lists/{list_id}/members/{hash}/actions/{action}``: a change made on
    Mailchimp's side (by the contact or in the UI), firing the webhook Mailchimp would."""
    body = _body(ctx)
    with ctx.store.lock:
        lst = ctx.store.lists.get(list_id)
        if lst is None:
            raise problems.not_found()
        result = _run_action(ctx, lst, subscriber_hash, action, body)
        return 200, {"action": action,
                     "member": None if result is None else member_json(lst, result)}


def lookup_members(ctx, list_id):
    """``POST /_sim/lists/{list_id}/members/lookup`` ``{"emails": [...]}``: what the simulator holds
    for these addresses right now (``{email: {status, merge_fields, tags} | null}``), without the key's
    latency or connection limit — for benchmarks that watch changes arrive."""
    body = _body(ctx)
    emails = body.get("emails")
    if not isinstance(emails, list) or not all(isinstance(e, str) for e in emails):
        raise _bad("emails must be a list of addresses")
    with ctx.store.lock:
        lst = ctx.store.lists.get(list_id)
        if lst is None:
            raise problems.not_found()
        found = {}
        for email in emails:
            member = lst.members.get(st.subscriber_hash(email))
            found[email] = None if member is None else {
                "status": member.status, "merge_fields": dict(member.merge),
                "tags": sorted(lst.tags[t].name for t in member.tags if t in lst.tags)}
    return 200, {"members": found}


def bulk_actions(ctx, list_id):
    """``POST /_sim/lists/{list_id}/members/bulk-actions`` ``{"actions": [{"email", "action",
    "data"}]}``: many member actions in one call (e.g. 1,000 admin edits before a
    reconciliation), each as its own ``.../actions/{action}`` would do it. One failing
    action does not stop the others; the answer lists each outcome in order."""
    body = _body(ctx)
    actions = body.get("actions")
    if not isinstance(actions, list):
        raise _bad("actions must be a list of {email, action, data}")
    results, done = [], 0
    with ctx.store.lock:
        lst = ctx.store.lists.get(list_id)
        if lst is None:
            raise problems.not_found()
        for item in actions:
            if not isinstance(item, dict) or not isinstance(item.get("email"), str):
                results.append({"email": None, "ok": False, "status": 400,
                                "error": "each item needs an email"})
                continue
            email, action = item["email"], item.get("action")
            try:
                _run_action(ctx, lst, email, action, item.get("data") or {})
            except problems.ApiError as exc:
                results.append({"email": email, "action": action, "ok": False,
                                "status": exc.status, "error": exc.detail})
            else:
                done += 1
                results.append({"email": email, "action": action, "ok": True})
    return 200, {"done": done, "failed": len(results) - done, "results": results}


FORM_IP = "203.0.113.7"  # documentation address (RFC 5737) for form signups


def _edit_tags(store, lst, member, items) -> bool:
    """Tags changed by an admin in the UI: ``[{name, status: active|inactive}]``."""
    if not isinstance(items, list):
        raise _bad("tags must be a list of {name, status}")
    before = set(member.tags)
    st.set_tags(store, lst, member, items)
    return set(member.tags) != before


def _act(store, lst, member, action, body):
    quirks = {k: bool(body.get(k)) for k in ("omit_action", "repeat_reason")}
    if action == "unsubscribe-via-form":
        if member.status not in ("subscribed", "pending", "transactional"):
            raise _bad(f"{member.email} is {member.status}: nothing to unsubscribe from")
        st.set_status(store, lst, member, "unsubscribed", "user", origin="self",
                      reason=str(body.get("reason") or ""), campaign_id=body.get("campaign_id", ""),
                      **quirks)
    elif action == "complain":
        if member.status != "subscribed":
            raise _bad(f"{member.email} is {member.status}")
        st.set_status(store, lst, member, "unsubscribed", "user", origin="self",
                      reason="Abuse report", campaign_id=body.get("campaign_id", ""),
                      hook_reason="abuse")
    elif action == "resubscribe-via-form":
        if member.status == "subscribed":
            raise _bad(f"{member.email} is already subscribed")
        member.compliance = ""
        member.ip_opt = member.ip_opt or FORM_IP
        member.ip_signup = member.ip_signup or FORM_IP
        for tag, value in (body.get("merge_fields") or {}).items():
            if tag.upper() in lst.merge_fields:
                member.merge[tag.upper()] = value
        st.set_status(store, lst, member, "subscribed", "user")
    elif action == "unsubscribe-by-admin":
        if member.status not in ("subscribed", "pending", "transactional"):
            raise _bad(f"{member.email} is {member.status}: nothing to unsubscribe from")
        st.set_status(store, lst, member, "unsubscribed", "admin", origin="admin", **quirks)
    elif action == "bounce":
        if member.status in ("cleaned", "archived"):
            raise _bad(f"{member.email} is {member.status}")
        st.set_status(store, lst, member, "cleaned", "admin", reason=body.get("reason", "hard"),
                      campaign_id=body.get("campaign_id", ""))
    elif action == "change-email":
        new_email = body.get("new_email") or body.get("email_address")
        if not isinstance(new_email, str) or not new_email.strip():
            raise _bad("new_email is required")
        st.rename(store, lst, member, new_email.strip(), "user")
    elif action == "edit-profile":
        changed = False
        merge = body.get("merge_fields") or {}
        if not isinstance(merge, dict):
            raise _bad("merge_fields must be an object")
        for tag, value in merge.items():
            if tag.upper() in lst.merge_fields and member.merge.get(tag.upper(), "") != value:
                member.merge[tag.upper()] = value
                changed = True
        if body.get("email_type") in ("html", "text") and body["email_type"] != member.email_type:
            member.email_type = body["email_type"]
            changed = True
        if "tags" in body:
            _edit_tags(store, lst, member, body["tags"])  # moves last_changed; no webhook
        if changed:
            member.last_changed = now()
            store.emit(lst, "profile", "admin", member)
    elif action == "archive":
        if member.status == "archived":
            raise _bad(f"{member.email} is already archived")
        st.archive_now(store, member)
    elif action == "delete-permanently":
        st.delete_permanent(store, lst, member, "admin")
        return None
    return member


def send_campaign(ctx, list_id):
    """``POST /_sim/lists/{list_id}/campaigns`` ``{seed, subject, open_rate, ...}``."""
    body = _body(ctx)
    allowed = {"seed", "subject", "title", "open_rate", "click_rate", "bounce_rate",
               "soft_bounce_rate", "unsubscribe_rate", "send_time", "urls", "recipients_limit"}
    unknown = set(body) - allowed
    if unknown:
        raise _bad(f"unknown campaign settings: {', '.join(sorted(unknown))}")
    with ctx.store.lock:
        lst = ctx.store.lists.get(list_id)
        if lst is None:
            raise problems.not_found()
        campaign = campaigns.simulate(ctx.store, lst, **body)
        doc = campaigns.campaign_json(ctx.store, campaign)
        doc["simulation"] = {
            "recipients": len(campaign.hashes),
            "hard_bounces": campaign.summary["hard_bounces"],
            "soft_bounces": campaign.summary["soft_bounces"],
            "unsubscribes": len(campaign.unsubscribes),
            "events": len(campaign.events) // 3,
        }
        return 200, doc


def get_requests(ctx):
    """``GET /_sim/requests?since=SEQ``: the API calls received after ``since``."""
    try:
        since = int(ctx.args.get("since", 0))
    except ValueError:
        raise _bad("since must be an integer") from None
    return 200, {"requests": ctx.app.requests_since(since),
                 "peak_concurrency": ctx.app.peak_concurrency()}


def delete_requests(ctx):
    """``DELETE /_sim/requests``."""
    ctx.app.clear_requests()
    return 204, None


def webhook_deliveries(ctx):
    """``GET /_sim/webhook-deliveries``: every delivery attempt, with its payload."""
    with ctx.app.dispatcher.cond:
        log = [{k: v for k, v in e.items() if k != "pairs"} for e in ctx.app.dispatcher.log]
        pending = len(ctx.app.dispatcher.heap)
    return 200, {"deliveries": log, "pending": pending}


def redeliver(ctx, seq):
    """``POST /_sim/webhook-deliveries/{seq}/redeliver``: send that payload again, as is."""
    if not ctx.app.dispatcher.redeliver(seq):
        raise problems.not_found()
    return 200, {"redelivered": seq}


def batch_results(ctx, batch_id):
    """``GET /_sim/batch-results/{id}.tar.gz``: the archive at ``response_body_url``."""
    with ctx.store.lock:
        batch = ctx.store.batches.get(batch_id)
        data = batch.archive if batch else b""
    if not data:
        raise problems.not_found()
    return Response(data, content_type="application/x-gzip",
                    headers={"Content-Disposition": f"attachment; filename={batch_id}.tar.gz"})


def throttle(ctx):
    """``POST /_sim/throttled-addresses`` ``{"email_address"}``: new signups of that address
    get "... has signed up to a lot of lists very recently" until it is released."""
    email = _body(ctx).get("email_address")
    if not isinstance(email, str) or "@" not in email:
        raise _bad("email_address is required")
    with ctx.store.lock:
        ctx.store.throttled.add(email.strip().lower())
    return 200, {"throttled": sorted(ctx.store.throttled)}


def release(ctx, email):
    """``DELETE /_sim/throttled-addresses/{email}``."""
    with ctx.store.lock:
        ctx.store.throttled.discard(email.strip().lower())
    return 204, None


def save(ctx):
    """``POST /_sim/save``: write the ``--data`` file now."""
    saver = getattr(ctx.app, "saver", None)
    if saver is None:
        raise _bad("the simulator was started without --data")
    saver.save()
    return 200, {"saved": True}


ROUTES = [
    ("/health", ["GET"], health),
    ("/reset", ["POST"], reset),
    ("/accounts", ["POST"], new_account),
    ("/accounts", ["GET"], list_accounts),
    ("/accounts/<api_key>/revoke", ["POST"], revoke),
    ("/accounts/<api_key>/restore", ["POST"], restore),
    ("/faults", ["POST"], set_faults),
    ("/faults/<api_key>", ["DELETE"], clear_faults),
    ("/lists/<list_id>/members/bulk-actions", ["POST"], bulk_actions),
    ("/lists/<list_id>/members/lookup", ["POST"], lookup_members),
    ("/lists/<list_id>/members/<subscriber_hash>/actions/<action>", ["POST"], member_action),
    ("/lists/<list_id>/campaigns", ["POST"], send_campaign),
    ("/requests", ["GET"], get_requests),
    ("/requests", ["DELETE"], delete_requests),
    ("/webhook-deliveries", ["GET"], webhook_deliveries),
    ("/webhook-deliveries/<int:seq>/redeliver", ["POST"], redeliver),
    ("/batch-results/<batch_id>.tar.gz", ["GET"], batch_results),
    ("/throttled-addresses", ["POST"], throttle),
    ("/throttled-addresses/<email>", ["DELETE"], release),
    ("/save", ["POST"], save),
]
