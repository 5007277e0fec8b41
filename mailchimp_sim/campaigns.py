"""Simulated campaigns: a deterministic (seeded) send to an audience's subscribed members,
with sent/open/click/bounce/unsubscribe activity served by the reports endpoints (§8).
"""

from __future__ import annotations

import random
import secrets

from . import problems, store as st
from .render import apply_fields, link
from .store import Campaign, iso, now

DEFAULT_URLS = ("https://anaba.example/offre", "https://anaba.example/blog")


def simulate(store, lst, seed: int = 1, subject: str = "", title: str = "",
             open_rate: float = 0.4, click_rate: float = 0.15, bounce_rate: float = 0.03,
             soft_bounce_rate: float = 0.02, unsubscribe_rate: float = 0.02,
             send_time: str | None = None, urls=DEFAULT_URLS) -> Campaign:
    """Send a campaign to the subscribed members of ``lst`` (call with the store lock held).

    The same seed and audience give the same activity. Hard bounces clean the member and
    unsubscribes are the contact's own (compliance state); both fire webhooks, as does the
    ``campaign`` event.
    """
    rng = random.Random(seed)
    campaign = Campaign(secrets.token_hex(5), next(store.web_ids), lst.id, lst.api_key)
    campaign.subject = subject or f"Newsletter #{seed}"
    campaign.title = title or campaign.subject
    start = st.parse_iso(send_time) if send_time else now()
    campaign.send_time = start
    campaign.create_time = start - 3600
    recipients = sorted((m for m in lst.members.values() if m.status == "subscribed"),
                        key=lambda m: m.email.lower())
    for member in recipients:
        events = []
        draw = rng.random()
        status = "sent"
        if draw < bounce_rate:
            status = "hard"
        elif draw < bounce_rate + soft_bounce_rate:
            status = "soft"
        merge = {tag: member.merge.get(tag, "") for tag in lst.merge_fields}
        campaign.recipients.append({"hash": member.id, "email": member.email, "status": status,
                                    "merge": merge, "vip": member.vip})
        member.activity.append({"action": "sent", "timestamp": start, "campaign_id": campaign.id,
                                "title": campaign.title, "type": "", "url": ""})
        if status != "sent":
            events.append({"action": "bounce", "type": status,
                           "timestamp": start + rng.randint(5, 600), "url": "", "ip": ""})
        else:
            opened = rng.random() < open_rate
            if opened:
                t = start + rng.randint(60, 86400)
                ip = f"198.51.100.{rng.randint(1, 254)}"
                for _ in range(rng.randint(1, 3)):
                    events.append({"action": "open", "type": "", "timestamp": t, "url": "", "ip": ip})
                    t += rng.randint(60, 7200)
                if rng.random() < click_rate / max(open_rate, 0.01):
                    url = rng.choice(list(urls))
                    events.append({"action": "click", "type": "", "timestamp": t + 30,
                                   "url": url, "ip": ip})
            if rng.random() < unsubscribe_rate:
                events.append({"action": "unsub", "type": "", "timestamp": start + rng.randint(600, 90000),
                               "url": "", "ip": ""})
        events.sort(key=lambda e: e["timestamp"])
        campaign.activity[member.id] = [e for e in events if e["action"] != "unsub"]
        for event in events:
            member.activity.append(dict(event, campaign_id=campaign.id, title=campaign.title))
        del member.activity[:-200]
        if status == "hard":
            st.set_status(store, lst, member, "cleaned", "admin", reason="hard",
                          campaign_id=campaign.id)
        unsub = [e for e in events if e["action"] == "unsub"]
        if unsub and member.status == "subscribed":
            campaign.unsubscribes.append({"hash": member.id, "email": member.email,
                                          "timestamp": unsub[0]["timestamp"], "reason": "N/A",
                                          "merge": merge, "vip": member.vip})
            st.set_status(store, lst, member, "unsubscribed", "user", origin="self",
                          campaign_id=campaign.id)
    store.campaigns[campaign.id] = campaign
    lst.campaign_last_sent = start
    store.emit(lst, "campaign", "admin", None, campaign_id=campaign.id, subject=campaign.subject)
    store.dirty = True
    return campaign


def summarize(c: Campaign) -> dict:
    """Open and click counters (computed once: a sent campaign's activity is fixed)."""
    summary = getattr(c, "summary", None)
    if summary is None:
        summary = {
            "opens": sum(1 for evs in c.activity.values() for e in evs if e["action"] == "open"),
            "unique_opens": sum(1 for evs in c.activity.values()
                                if any(e["action"] == "open" for e in evs)),
            "clicks": sum(1 for evs in c.activity.values() for e in evs if e["action"] == "click"),
            "unique_clicks": sum(1 for evs in c.activity.values()
                                 if any(e["action"] == "click" for e in evs)),
        }
        c.summary = summary
    return summary


def campaign_json(store, c: Campaign) -> dict:
    """A sent regular campaign."""
    lst = store.lists.get(c.list_id)
    summary = summarize(c)
    opens, uniq_opens = summary["opens"], summary["unique_opens"]
    clicks, uniq_clicks = summary["clicks"], summary["unique_clicks"]
    sent = len(c.recipients)
    return {
        "id": c.id, "web_id": c.web_id, "type": "regular", "create_time": iso(c.create_time),
        "archive_url": f"http://eepurl.com/{c.id[:6]}",
        "long_archive_url": f"https://us1.campaign-archive.com/?u=0&id={c.id}",
        "status": "sent", "emails_sent": sent, "send_time": iso(c.send_time),
        "content_type": "template", "needs_block_refresh": False, "resendable": True,
        "recipients": {"list_id": c.list_id, "list_is_active": lst is not None,
                       "list_name": lst.name if lst else "", "segment_text": "",
                       "recipient_count": sent},
        "settings": {"subject_line": c.subject, "preview_text": "", "title": c.title,
                     "from_name": "anaba", "reply_to": "newsletter@anaba.fr",
                     "use_conversation": False, "to_name": "", "folder_id": "",
                     "authenticate": True, "auto_footer": False, "inline_css": False,
                     "auto_tweet": False, "fb_comments": False, "timewarp": False,
                     "template_id": 0, "drag_and_drop": True},
        "tracking": {"opens": True, "html_clicks": True, "text_clicks": False,
                     "goal_tracking": False, "ecomm360": False, "google_analytics": "",
                     "clicktale": ""},
        "report_summary": {"opens": opens, "unique_opens": uniq_opens,
                           "open_rate": round(uniq_opens / sent, 4) if sent else 0,
                           "clicks": clicks, "subscriber_clicks": uniq_clicks,
                           "click_rate": round(uniq_clicks / sent, 4) if sent else 0},
        "delivery_status": {"enabled": False},
        "_links": [link("self", f"/campaigns/{c.id}")],
    }


def activity_json(e: dict) -> dict:
    """One member ``/activity`` item."""
    return {"action": e["action"], "timestamp": iso(e["timestamp"]), "url": e.get("url", ""),
            "type": e.get("type", ""), "campaign_id": e.get("campaign_id", ""),
            "title": e.get("title", ""), "parent_campaign": ""}


def _campaign(ctx, campaign_id) -> Campaign:
    c = ctx.store.campaigns.get(campaign_id)
    if c is None or c.api_key != ctx.account.api_key:
        raise problems.not_found()
    return c


def get_campaigns(ctx):
    """``GET /campaigns`` (filters ``list_id``, ``status``, send/create time bounds)."""
    count, offset = ctx.page()
    a = ctx.args
    items = [c for c in ctx.store.campaigns.values() if c.api_key == ctx.account.api_key]
    if a.get("list_id"):
        items = [c for c in items if c.list_id == a["list_id"]]
    if a.get("status"):
        items = [c for c in items if a["status"] == "sent"]
    if a.get("type"):
        items = [c for c in items if a["type"] == "regular"]
    for name, attr, after in (("since_send_time", "send_time", True),
                              ("before_send_time", "send_time", False),
                              ("since_create_time", "create_time", True),
                              ("before_create_time", "create_time", False)):
        if a.get(name):
            bound = st.parse_iso(a[name])
            items = [c for c in items if (getattr(c, attr) >= bound) == after]
    if a.get("member_id"):
        items = [c for c in items if any(r["hash"] == a["member_id"] for r in c.recipients)]
    key = "send_time" if a.get("sort_field") == "send_time" else "create_time"
    items.sort(key=lambda c: getattr(c, key), reverse=a.get("sort_dir", "ASC").upper() == "DESC")
    doc = {"campaigns": [campaign_json(ctx.store, c) for c in items[offset:offset + count]],
           "total_items": len(items), "_links": [link("self", "/campaigns")]}
    return 200, apply_fields(doc, a.get("fields"), a.get("exclude_fields"))


def get_campaign(ctx, campaign_id):
    """``GET /campaigns/{campaign_id}``."""
    doc = campaign_json(ctx.store, _campaign(ctx, campaign_id))
    return 200, apply_fields(doc, ctx.args.get("fields"), ctx.args.get("exclude_fields"))


def _email_item(c: Campaign, rec: dict, events: list) -> dict:
    return {"campaign_id": c.id, "list_id": c.list_id, "list_is_active": True,
            "email_id": rec["hash"], "email_address": rec["email"],
            "activity": [{"action": e["action"], "type": e["type"], "timestamp": iso(e["timestamp"]),
                          "url": e["url"], "ip": e["ip"]} for e in events],
            "_links": [link("self", f"/reports/{c.id}/email-activity/{rec['hash']}")]}


def _capped(events: list, since: float | None) -> list:
    """Events after ``since``, at most 1000 opens and 1000 clicks (§8)."""
    out, opens, clicks = [], 0, 0
    for e in events:
        if since is not None and e["timestamp"] <= since:
            continue
        if e["action"] == "open":
            opens += 1
            if opens > 1000:
                continue
        elif e["action"] == "click":
            clicks += 1
            if clicks > 1000:
                continue
        out.append(e)
    return out


def email_activity(ctx, campaign_id):
    """``GET /reports/{id}/email-activity`` (``since``, paging; members with activity)."""
    c = _campaign(ctx, campaign_id)
    count, offset = ctx.page()
    since = st.parse_iso(ctx.args["since"]) if ctx.args.get("since") else None
    activity = c.activity
    if since is None:
        recs = [rec for rec in c.recipients if activity.get(rec["hash"])]
    else:
        recs = [rec for rec in c.recipients
                if any(e["timestamp"] > since for e in activity.get(rec["hash"], ()))]
    doc = {"emails": [_email_item(c, rec, _capped(activity[rec["hash"]], since))
                      for rec in recs[offset:offset + count]],
           "campaign_id": c.id, "total_items": len(recs),
           "_links": [link("self", f"/reports/{c.id}/email-activity")]}
    return 200, apply_fields(doc, ctx.args.get("fields"), ctx.args.get("exclude_fields"))


def email_activity_member(ctx, campaign_id, subscriber_hash):
    """``GET /reports/{id}/email-activity/{hash}``."""
    c = _campaign(ctx, campaign_id)
    h = subscriber_hash.lower() if st.HEX32.match(subscriber_hash) else st.subscriber_hash(subscriber_hash)
    rec = next((r for r in c.recipients if r["hash"] == h), None)
    if rec is None:
        raise problems.not_found()
    return 200, _email_item(c, rec, c.activity.get(h, []))


def sent_to(ctx, campaign_id):
    """``GET /reports/{id}/sent-to``."""
    c = _campaign(ctx, campaign_id)
    count, offset = ctx.page()
    items = []
    for rec in c.recipients[offset:offset + count]:
        opens = [e for e in c.activity.get(rec["hash"], []) if e["action"] == "open"]
        items.append({"email_id": rec["hash"], "email_address": rec["email"],
                      "merge_fields": rec["merge"], "vip": rec["vip"], "status": rec["status"],
                      "open_count": len(opens),
                      "last_open": iso(opens[-1]["timestamp"]) if opens else "",
                      "gmt_offset": 0, "campaign_id": c.id,
                      "list_id": c.list_id, "list_is_active": True,
                      "_links": [link("self", f"/reports/{c.id}/sent-to/{rec['hash']}")]})
    doc = {"sent_to": items, "campaign_id": c.id, "total_items": len(c.recipients),
           "_links": [link("self", f"/reports/{c.id}/sent-to")]}
    return 200, apply_fields(doc, ctx.args.get("fields"), ctx.args.get("exclude_fields"))


def unsubscribed(ctx, campaign_id):
    """``GET /reports/{id}/unsubscribed``."""
    c = _campaign(ctx, campaign_id)
    count, offset = ctx.page()
    items = [{"email_id": u["hash"], "email_address": u["email"], "merge_fields": u["merge"],
              "vip": u["vip"], "timestamp": iso(u["timestamp"]), "reason": u["reason"],
              "campaign_id": c.id, "list_id": c.list_id, "list_is_active": True,
              "_links": [link("self", f"/reports/{c.id}/unsubscribed/{u['hash']}")]}
             for u in c.unsubscribes[offset:offset + count]]
    doc = {"unsubscribes": items, "campaign_id": c.id, "total_items": len(c.unsubscribes),
           "_links": [link("self", f"/reports/{c.id}/unsubscribed")]}
    return 200, apply_fields(doc, ctx.args.get("fields"), ctx.args.get("exclude_fields"))


ROUTES = [
    ("/campaigns", ["GET"], get_campaigns, True),
    ("/campaigns/<campaign_id>", ["GET"], get_campaign, True),
    ("/reports/<campaign_id>/email-activity", ["GET"], email_activity, True),
    ("/reports/<campaign_id>/email-activity/<subscriber_hash>", ["GET"], email_activity_member, True),
    ("/reports/<campaign_id>/sent-to", ["GET"], sent_to, True),
    ("/reports/<campaign_id>/unsubscribed", ["GET"], unsubscribed, True),
]
