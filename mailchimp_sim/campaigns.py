"""Simulated campaigns: a deterministic (seeded) send to an audience's subscribed members,
with sent/open/click/bounce/unsubscribe activity served by the reports endpoints (§8).
"""

from __future__ import annotations

import random
import secrets

from array import array

from . import problems, store as st
from .render import apply_fields, link
from .store import Campaign, iso, now

DEFAULT_URLS = ("https://anaba.example/offre", "https://anaba.example/blog")
ACTIONS = ("open", "click", "bounce", "unsub")  # event codes 0..3 in Campaign.events
OPEN, CLICK, BOUNCE, UNSUB = range(4)
STATUSES = ("sent", "hard", "soft")
MEMBER_CAMPAIGNS_KEPT = 50  # /activity shows the last 50 events: older sends cannot show


def _ip(c: Campaign, index: int) -> str:
    """A documentation address (RFC 5737), stable per recipient, stored nowhere."""
    return f"198.51.100.{(c.seed * 7919 + index) % 254 + 1}"


def simulate(store, lst, seed: int = 1, subject: str = "", title: str = "",
             open_rate: float = 0.4, click_rate: float = 0.15, bounce_rate: float = 0.03,
             soft_bounce_rate: float = 0.02, unsubscribe_rate: float = 0.02,
             send_time: str | None = None, urls=DEFAULT_URLS,
             recipients_limit: int | None = None) -> Campaign:
    """Send a campaign to the subscribed members of ``lst`` (call with the store lock held).

    Recipients are the subscribed members sorted by address (the first ``recipients_limit``
    when given). The same seed, audience and send time give the same activity. Every event
    lies between the send time and now, never in the future. Hard bounces clean the member
    and unsubscribes are the contact's own (compliance state); both fire webhooks, as does
    the ``campaign`` event.
    """
    rng = random.Random(seed)
    rnd, randint = rng.random, rng.randint
    serial = next(store.campaign_serials)
    campaign = Campaign(secrets.token_hex(5), next(store.web_ids), lst.id, lst.api_key, serial)
    campaign.seed = int(seed)
    campaign.subject = subject or f"Newsletter #{seed}"
    campaign.title = title or campaign.subject
    end = int(now())
    start = int(st.parse_iso(send_time)) if send_time else end
    span = max(0, end - start)
    campaign.send_time = start
    campaign.create_time = start - 3600
    campaign.urls = list(urls) or list(DEFAULT_URLS)
    n_urls = len(campaign.urls)
    recipients = sorted((m for m in lst.members.values() if m.status == "subscribed"),
                        key=lambda m: m.email.lower())
    if recipients_limit is not None:
        recipients = recipients[:max(0, int(recipients_limit))]
    click_given_open = click_rate / max(open_rate, 0.01)
    hashes, emails, statuses = campaign.hashes, campaign.emails, campaign.status
    flat: list[int] = []
    offsets = [0]
    bounced, unsubscribed = [], []
    opens = unique_opens = clicks = unique_clicks = 0
    last_open = last_click = 0
    for index, member in enumerate(recipients):
        hashes.append(member.id)
        emails.append(member.email)
        draw = rnd()
        events = []
        if draw < bounce_rate + soft_bounce_rate:
            hard = draw < bounce_rate
            statuses.append(1 if hard else 2)
            events.append((BOUNCE, start + min(span, randint(5, 600)), 1 if hard else 2))
            if hard:
                bounced.append(member)
        else:
            statuses.append(0)
            if rnd() < open_rate:
                # most opens come early: the first one is skewed towards the send time
                t = start + int(span * rnd() ** 3)
                times = randint(1, 3)
                unique_opens += 1
                opens += times
                for _ in range(times):
                    events.append((OPEN, t, 0))
                    t = min(end, t + randint(60, 7200))
                last_open = max(last_open, events[-1][1])
                if rnd() < click_given_open:
                    click_at = min(end, t + 30)
                    events.append((CLICK, click_at, randint(0, n_urls - 1)))
                    clicks += 1
                    unique_clicks += 1
                    last_click = max(last_click, click_at)
            if rnd() < unsubscribe_rate:
                at = start + int(span * rnd())
                events.append((UNSUB, at, 0))
                unsubscribed.append((index, at, member))
        if events:
            events.sort(key=lambda e: e[1])
            for e in events:
                flat.extend(e)
        offsets.append(len(flat) // 3)
        activity = member.activity
        activity.append(serial)
        activity.append(index)
        if len(activity) > 2 * MEMBER_CAMPAIGNS_KEPT:
            del activity[:2]
    campaign.events = array("q", flat)
    campaign.offsets = array("l", offsets)
    campaign.summary = {"opens": opens, "unique_opens": unique_opens, "clicks": clicks,
                        "unique_clicks": unique_clicks, "last_open": last_open,
                        "last_click": last_click,
                        "hard_bounces": statuses.count(1), "soft_bounces": statuses.count(2)}
    store.campaigns[campaign.id] = campaign
    store.by_serial[serial] = campaign
    for member in bounced:
        st.set_status(store, lst, member, "cleaned", "admin", reason="hard",
                      campaign_id=campaign.id)
    for index, at, member in unsubscribed:
        if member.status == "subscribed":
            campaign.unsubscribes.append((index, at))
            st.set_status(store, lst, member, "unsubscribed", "user", origin="self",
                          campaign_id=campaign.id)
    campaign.summary["unsubscribed"] = len(campaign.unsubscribes)
    lst.campaign_last_sent = start
    store.emit(lst, "campaign", "admin", None, campaign_id=campaign.id, subject=campaign.subject)
    store.dirty = True
    return campaign


def events_of(c: Campaign, index: int) -> list[tuple[int, int, int]]:
    """Recipient ``index``'s events ``(code, epoch second, url index)`` in time order."""
    ev = c.events
    lo, hi = 3 * c.offsets[index], 3 * c.offsets[index + 1]
    return [(ev[i], ev[i + 1], ev[i + 2]) for i in range(lo, hi, 3)]


def _event_json(c: Campaign, index: int, e) -> dict:
    code, ts, extra = e
    return {"action": ACTIONS[code], "type": STATUSES[extra] if code == BOUNCE else "",
            "timestamp": iso(ts), "url": c.urls[extra] if code == CLICK else "",
            "ip": _ip(c, index) if code in (OPEN, CLICK) else ""}


def campaign_json(store, c: Campaign) -> dict:
    """A sent regular campaign."""
    lst = store.lists.get(c.list_id)
    summary = c.summary
    opens, uniq_opens = summary["opens"], summary["unique_opens"]
    clicks, uniq_clicks = summary["clicks"], summary["unique_clicks"]
    sent = len(c.hashes)
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


def member_activity(store, member) -> list[dict]:
    """Every campaign event of ``member`` (sent, open, click, bounce, unsub), newest first,
    as ``GET /lists/{id}/members/{hash}/activity`` items."""
    items = []
    pairs = member.activity
    for k in range(0, len(pairs), 2):
        c = store.by_serial.get(pairs[k])
        if c is None:
            continue
        index = pairs[k + 1]
        base = {"campaign_id": c.id, "title": c.title, "parent_campaign": ""}
        items.append(dict(base, action="sent", timestamp=c.send_time, url="", type=""))
        for code, ts, extra in events_of(c, index):
            items.append(dict(base, action=ACTIONS[code], timestamp=ts,
                              url=c.urls[extra] if code == CLICK else "",
                              type=STATUSES[extra] if code == BOUNCE else ""))
    items.sort(key=lambda e: e["timestamp"], reverse=True)
    for item in items:
        item["timestamp"] = iso(item["timestamp"])
    return items


def _campaign(ctx, campaign_id) -> Campaign:
    c = ctx.store.campaigns.get(campaign_id)
    if c is None or c.api_key != ctx.account.api_key:
        raise problems.not_found()
    return c


def _page(ctx, total: int) -> range:
    """Indexes of the requested page of a collection of ``total`` items (sets ``ctx.items``)."""
    count, offset = ctx.page()
    indexes = range(min(offset, total), min(offset + count, total))
    ctx.items = len(indexes)
    return indexes


def _out(ctx, doc: dict):
    return 200, apply_fields(doc, ctx.args.get("fields"), ctx.args.get("exclude_fields"))


def get_campaigns(ctx):
    """``GET /campaigns`` (filters ``list_id``, ``status``, send/create time bounds, which are
    exclusive at the one-second precision shown)."""
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
            items = [c for c in items
                     if (int(getattr(c, attr)) > bound if after else int(getattr(c, attr)) < bound)]
    if a.get("member_id"):
        items = [c for c in items if a["member_id"] in c.hashes]
    key = "send_time" if a.get("sort_field") == "send_time" else "create_time"
    items.sort(key=lambda c: getattr(c, key), reverse=a.get("sort_dir", "ASC").upper() == "DESC")
    page = [items[i] for i in _page(ctx, len(items))]
    return _out(ctx, {"campaigns": [campaign_json(ctx.store, c) for c in page],
                      "total_items": len(items), "_links": [link("self", "/campaigns")]})


def get_campaign(ctx, campaign_id):
    """``GET /campaigns/{campaign_id}``."""
    return _out(ctx, campaign_json(ctx.store, _campaign(ctx, campaign_id)))


def get_report(ctx, campaign_id):
    """``GET /reports/{campaign_id}``: the campaign's report summary."""
    c = _campaign(ctx, campaign_id)
    lst = ctx.store.lists.get(c.list_id)
    sm = c.summary
    sent = len(c.hashes)
    doc = {
        "id": c.id, "campaign_title": c.title, "type": "regular", "list_id": c.list_id,
        "list_is_active": lst is not None, "list_name": lst.name if lst else "",
        "subject_line": c.subject, "preview_text": "", "emails_sent": sent,
        "abuse_reports": 0, "unsubscribed": sm["unsubscribed"], "send_time": iso(c.send_time),
        "rss_last_send": "",
        "bounces": {"hard_bounces": sm["hard_bounces"], "soft_bounces": sm["soft_bounces"],
                    "syntax_errors": 0},
        "forwards": {"forwards_count": 0, "forwards_opens": 0},
        "opens": {"opens_total": sm["opens"], "unique_opens": sm["unique_opens"],
                  "open_rate": round(sm["unique_opens"] / sent, 4) if sent else 0,
                  "last_open": iso(sm["last_open"])},
        "clicks": {"clicks_total": sm["clicks"], "unique_clicks": sm["unique_clicks"],
                   "unique_subscriber_clicks": sm["unique_clicks"],
                   "click_rate": round(sm["unique_clicks"] / sent, 4) if sent else 0,
                   "last_click": iso(sm["last_click"])},
        "_links": [link("self", f"/reports/{c.id}")],
    }
    return _out(ctx, doc)


def _email_item(c: Campaign, index: int, events) -> dict:
    h = c.hashes[index]
    return {"campaign_id": c.id, "list_id": c.list_id, "list_is_active": True,
            "email_id": h, "email_address": c.emails[index],
            "activity": [_event_json(c, index, e) for e in events],
            "_links": [link("self", f"/reports/{c.id}/email-activity/{h}")]}


def _capped(events, since: float | None) -> list:
    """Open, click and bounce events after ``since`` (exclusive, whole seconds), at most
    1000 opens and 1000 clicks (§8)."""
    out, opens, clicks = [], 0, 0
    for e in events:
        code, ts = e[0], e[1]
        if code == UNSUB or (since is not None and ts <= since):
            continue
        if code == OPEN:
            opens += 1
            if opens > 1000:
                continue
        elif code == CLICK:
            clicks += 1
            if clicks > 1000:
                continue
        out.append(e)
    return out


def _active(c: Campaign, since: float | None) -> array:
    """Recipient indexes with an open, click or bounce after ``since``; cached, so paging
    through a large report costs the same for every page."""
    key = since
    cached = c.active_cache.get(key)
    if cached is None:
        ev, off = c.events, c.offsets
        bound = -1 if since is None else since
        cached = array("l")
        for index in range(len(c.hashes)):
            for i in range(3 * off[index], 3 * off[index + 1], 3):
                if ev[i] != UNSUB and ev[i + 1] > bound:
                    cached.append(index)
                    break
        if len(c.active_cache) >= 8:
            c.active_cache.pop(next(iter(c.active_cache)))
        c.active_cache[key] = cached
    return cached


def email_activity(ctx, campaign_id):
    """``GET /reports/{id}/email-activity`` (``since``, paging; recipients with activity)."""
    c = _campaign(ctx, campaign_id)
    since = int(st.parse_iso(ctx.args["since"])) if ctx.args.get("since") else None
    active = _active(c, since)
    emails = [_email_item(c, active[k], _capped(events_of(c, active[k]), since))
              for k in _page(ctx, len(active))]
    return _out(ctx, {"emails": emails, "campaign_id": c.id, "total_items": len(active),
                      "_links": [link("self", f"/reports/{c.id}/email-activity")]})


def _recipient(c: Campaign, slot: str) -> int:
    h = slot.lower() if st.HEX32.match(slot) else st.subscriber_hash(slot)
    try:
        return c.hashes.index(h)
    except ValueError:
        raise problems.not_found() from None


def email_activity_member(ctx, campaign_id, subscriber_hash):
    """``GET /reports/{id}/email-activity/{hash}``."""
    c = _campaign(ctx, campaign_id)
    index = _recipient(c, subscriber_hash)
    return _out(ctx, _email_item(c, index, _capped(events_of(c, index), None)))


def _merge_now(lst, h: str) -> tuple[dict, bool]:
    """The recipient's merge values and VIP flag as they are now ("" once deleted)."""
    member = lst.members.get(h) if lst is not None else None
    tags = lst.merge_fields if lst is not None else {}
    if member is None:
        return {tag: "" for tag in tags}, False
    return {tag: member.merge.get(tag, "") for tag in tags}, member.vip


def sent_to(ctx, campaign_id):
    """``GET /reports/{id}/sent-to``."""
    c = _campaign(ctx, campaign_id)
    lst = ctx.store.lists.get(c.list_id)
    items = []
    for index in _page(ctx, len(c.hashes)):
        h = c.hashes[index]
        opens = [e[1] for e in events_of(c, index) if e[0] == OPEN]
        merge, vip = _merge_now(lst, h)
        items.append({"email_id": h, "email_address": c.emails[index], "merge_fields": merge,
                      "vip": vip, "status": STATUSES[c.status[index]],
                      "open_count": len(opens), "last_open": iso(opens[-1]) if opens else "",
                      "gmt_offset": 0, "campaign_id": c.id,
                      "list_id": c.list_id, "list_is_active": lst is not None,
                      "_links": [link("self", f"/reports/{c.id}/sent-to/{h}")]})
    return _out(ctx, {"sent_to": items, "campaign_id": c.id, "total_items": len(c.hashes),
                      "_links": [link("self", f"/reports/{c.id}/sent-to")]})


def unsubscribed(ctx, campaign_id):
    """``GET /reports/{id}/unsubscribed``."""
    c = _campaign(ctx, campaign_id)
    lst = ctx.store.lists.get(c.list_id)
    items = []
    for k in _page(ctx, len(c.unsubscribes)):
        index, at = c.unsubscribes[k]
        h = c.hashes[index]
        merge, vip = _merge_now(lst, h)
        items.append({"email_id": h, "email_address": c.emails[index], "merge_fields": merge,
                      "vip": vip, "timestamp": iso(at), "reason": "N/A",
                      "campaign_id": c.id, "list_id": c.list_id, "list_is_active": lst is not None,
                      "_links": [link("self", f"/reports/{c.id}/unsubscribed/{h}")]})
    return _out(ctx, {"unsubscribes": items, "campaign_id": c.id,
                      "total_items": len(c.unsubscribes),
                      "_links": [link("self", f"/reports/{c.id}/unsubscribed")]})


ROUTES = [
    ("/campaigns", ["GET"], get_campaigns, True),
    ("/campaigns/<campaign_id>", ["GET"], get_campaign, True),
    ("/reports/<campaign_id>", ["GET"], get_report, True),
    ("/reports/<campaign_id>/email-activity", ["GET"], email_activity, True),
    ("/reports/<campaign_id>/email-activity/<subscriber_hash>", ["GET"], email_activity_member, True),
    ("/reports/<campaign_id>/sent-to", ["GET"], sent_to, True),
    ("/reports/<campaign_id>/unsubscribed", ["GET"], unsubscribed, True),
]
