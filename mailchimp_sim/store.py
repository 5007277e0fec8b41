"""The simulator's state: accounts, audiences, members, tags, merge fields, webhooks,
campaigns and batches, guarded by one re-entrant lock (``Store.lock``).

Member writes live here because the same rules apply to single-member calls, batch
subscribe, ``/batches`` operations and control actions (API-NOTES §1, §2, §14).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import random
import re
import secrets
import threading
import time
from array import array
from datetime import datetime, timezone

from . import problems, validation

HEX32 = re.compile(r"^[0-9a-fA-F]{32}$")
WRITABLE_STATUSES = ("subscribed", "unsubscribed", "cleaned", "pending", "transactional")
PATCH_STATUSES = ("subscribed", "unsubscribed", "cleaned", "pending")
ALL_STATUSES = WRITABLE_STATUSES + ("archived",)
ADMIN_UNSUB_REASON = "N/A (Unsubscribed by admin)"
SELF_UNSUB_REASON = "N/A (Unsubscribed by user)"
DEFAULT_MERGE_FIELDS = (
    ("FNAME", "First Name", "text"),
    ("LNAME", "Last Name", "text"),
    ("ADDRESS", "Address", "address"),
    ("PHONE", "Phone Number", "phone"),
)
MAX_MERGE_FIELDS = 30
MAX_TAG_LEN = 10


def now() -> float:
    """The current time as epoch seconds (the store keeps every timestamp this way)."""
    return time.time()


def iso(ts: float | None) -> str:
    """Mailchimp's timestamp format (``2026-11-27T08:24:52+00:00``), or "" when unset."""
    if not ts:
        return ""
    return _iso_seconds(int(ts))


@functools.lru_cache(maxsize=65536)
def _iso_seconds(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(seconds))


def random_hex(digits: int) -> str:
    """Random lowercase hex ids (not secrets: the simulator only needs them unique)."""
    return f"{random.getrandbits(digits * 4):0{digits}x}"


def parse_iso(value: str) -> float:
    """Parse an ISO 8601 query value; a bad one is a 400 as Mailchimp answers."""
    text = value.strip().replace(" ", "+")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise problems.invalid(f"The value '{value}' is not a valid ISO 8601 date time.") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def subscriber_hash(email: str) -> str:
    """MD5 of the lowercased address (API-NOTES §1.1)."""
    return hashlib.md5(email.lower().encode()).hexdigest()


def new_api_key(dc: str = "us1") -> str:
    """A key shaped like Mailchimp's: 32 hex digits, a dash, the datacenter."""
    return secrets.token_hex(16) + "-" + dc


class Faults:
    """Per-key fault injection: random errors, held (timed-out) responses, extra latency."""

    def __init__(self, error_rate=0.0, statuses=(429, 500, 503), timeout_rate=0.0,
                 latency_ms=0, timeout_seconds=30.0, seed=None, latency_per_member_ms=0):
        self.error_rate = float(error_rate)
        self.statuses = tuple(int(s) for s in statuses) or (500,)
        self.timeout_rate = float(timeout_rate)
        self.latency_ms = float(latency_ms)
        self.timeout_seconds = float(timeout_seconds)
        self.latency_per_member_ms = float(latency_per_member_ms)
        if min(self.latency_ms, self.latency_per_member_ms, self.timeout_seconds) < 0:
            raise ValueError("latencies and timeout_seconds cannot be negative")
        self.rng = random.Random(seed)

    def to_dict(self) -> dict:
        """The settings as the control API shows them."""
        return {"error_rate": self.error_rate, "statuses": list(self.statuses),
                "timeout_rate": self.timeout_rate, "latency_ms": self.latency_ms,
                "latency_per_member_ms": self.latency_per_member_ms,
                "timeout_seconds": self.timeout_seconds}


class Account:
    """A Mailchimp account, known by its API key."""

    def __init__(self, api_key: str, name: str):
        self.api_key = api_key
        self.name = name
        self.created = now()
        self.revoked = False
        self.list_ids: list[str] = []
        self.faults: Faults | None = None
        self.inflight = 0


class MergeField:
    """One audience field (``*|TAG|*``)."""

    def __init__(self, merge_id: int, tag: str, name: str, type_: str, required=False,
                 default_value="", public=True, display_order=0, options=None, help_text=""):
        self.merge_id = merge_id
        self.tag = tag
        self.name = name
        self.type = type_
        self.required = bool(required)
        self.default_value = default_value or ""
        self.public = bool(public)
        self.display_order = display_order
        self.options = options or {}
        self.help_text = help_text or ""


class Tag:
    """A tag, which Mailchimp keeps as a static segment."""

    def __init__(self, tag_id: int, name: str):
        self.id = tag_id
        self.name = name
        self.created = now()
        self.updated = self.created


class Webhook:
    """An audience webhook; ``disabled`` once its receiver answered 410."""

    def __init__(self, webhook_id: str, url: str, events: dict, sources: dict):
        self.id = webhook_id
        self.url = url
        self.events = events
        self.sources = sources
        self.disabled = False


class Member:
    """A list member; ``compliance`` is set when only the contact may resubscribe."""

    __slots__ = ("id", "email", "unique_email_id", "contact_id", "web_id", "email_type", "status",
                 "merge", "interests", "ip_signup", "timestamp_signup", "ip_opt", "timestamp_opt",
                 "last_changed", "language", "vip", "location", "marketing_permissions", "source",
                 "tags", "unsubscribe_reason", "compliance", "status_before_archive", "activity",
                 "member_rating")

    def __init__(self, email: str, web_id: int, member_hash: str | None = None):
        self.id = member_hash or subscriber_hash(email)
        self.email = email
        self.unique_email_id = random_hex(10)
        self.contact_id = random_hex(32)
        self.web_id = web_id
        self.email_type = "html"
        self.status = "subscribed"
        self.merge: dict = {}
        self.interests: dict = {}
        self.ip_signup = ""
        self.timestamp_signup = 0.0
        self.ip_opt = ""
        self.timestamp_opt = 0.0
        self.last_changed = now()
        self.language = ""
        self.vip = False
        self.location = {"latitude": 0, "longitude": 0}
        self.marketing_permissions: dict = {}  # marketing_permission_id -> enabled
        self.source = "API - Generic"
        self.tags: dict[int, float] = {}
        self.unsubscribe_reason = ""
        self.compliance = ""
        self.status_before_archive = ""
        self.activity = array("l")  # (campaign serial, recipient index) pairs, oldest first
        self.member_rating = 2


class AudienceList:
    """An audience and everything under it."""

    def __init__(self, list_id: str, web_id: int, api_key: str, body: dict):
        self.id = list_id
        self.web_id = web_id
        self.api_key = api_key
        self.name = body["name"]
        self.contact = body.get("contact") or {}
        self.permission_reminder = body.get("permission_reminder", "")
        self.use_archive_bar = bool(body.get("use_archive_bar", False))
        self.campaign_defaults = body.get("campaign_defaults") or {}
        self.notify_on_subscribe = body.get("notify_on_subscribe", "")
        self.notify_on_unsubscribe = body.get("notify_on_unsubscribe", "")
        self.email_type_option = bool(body.get("email_type_option", False))
        self.double_optin = bool(body.get("double_optin", False))
        self.marketing_permissions = bool(body.get("marketing_permissions", False))
        self.permissions: list[dict] = []
        if self.marketing_permissions:
            self.enable_permissions()
        self.date_created = now()
        self.members: dict[str, Member] = {}
        self.contacts: dict[str, Member] = {}
        self.forgotten: set[str] = set()
        self.merge_fields: dict[str, MergeField] = {}
        self.next_merge_id = 1
        self.tags: dict[int, Tag] = {}
        self.webhooks: dict[str, Webhook] = {}
        self.last_sub = 0.0
        self.last_unsub = 0.0
        self.campaign_last_sent = 0.0
        self.u = secrets.token_hex(12)
        for order, (tag, name, kind) in enumerate(DEFAULT_MERGE_FIELDS, start=1):
            self.add_merge_field(tag, name, kind, display_order=order + 1)

    permissions: list = []  # for audiences loaded from files saved before GDPR fields existed

    def enable_permissions(self) -> None:
        """Give a GDPR audience Mailchimp's three default permissions (once; ids are fixed
        per audience, as members' GETs show them, API-NOTES §7)."""
        if not self.permissions:
            self.permissions = [
                {"marketing_permission_id": hashlib.md5(f"{self.id}:{text}".encode()).hexdigest()[:10],
                 "text": text}
                for text in ("Email", "Direct Mail", "Customized Online Advertising")]

    def add_merge_field(self, tag, name, kind, **kw) -> MergeField:
        """Append a merge field with the next ``merge_id``."""
        field = MergeField(self.next_merge_id, tag, name, kind, **kw)
        self.next_merge_id += 1
        self.merge_fields[tag] = field
        return field

    def tag_by_name(self, name: str) -> Tag | None:
        """The tag of that name (case-insensitive), if any."""
        wanted = name.strip().lower()
        for tag in self.tags.values():
            if tag.name.lower() == wanted:
                return tag
        return None


class Campaign:
    """A sent campaign and its recorded activity (see :mod:`mailchimp_sim.campaigns`).

    Kept compact because a benchmark sends 20 campaigns to 100,000 members (about a million
    events): recipient ``hashes`` and ``emails`` share the members' strings, ``status`` is one
    byte per recipient (0 sent, 1 hard bounce, 2 soft bounce), and the events of recipient
    ``i`` are the triples ``(action code, epoch second, url index)`` in
    ``events[3*offsets[i]:3*offsets[i+1]]`` (codes in ``campaigns.ACTIONS``).
    """

    def __init__(self, campaign_id: str, web_id: int, list_id: str, api_key: str, serial: int = 0):
        self.id = campaign_id
        self.web_id = web_id
        self.serial = serial
        self.list_id = list_id
        self.api_key = api_key
        self.seed = 0
        self.subject = ""
        self.title = ""
        self.create_time = now()
        self.send_time = now()
        self.urls: list[str] = []
        self.hashes: list[str] = []
        self.emails: list[str] = []
        self.status = bytearray()
        self.offsets = array("l", [0])
        self.events = array("q")
        self.unsubscribes: list[tuple[int, int]] = []  # (recipient index, epoch second)
        self.summary: dict = {}
        self.active_cache: dict = {}  # ``since`` → recipient indexes with activity after it

    def to_doc(self) -> dict:
        """A JSON-able copy (for ``--data``)."""
        doc = {k: v for k, v in vars(self).items() if k != "active_cache"}
        doc["status"] = self.status.hex()
        doc["offsets"] = self.offsets.tolist()
        doc["events"] = self.events.tolist()
        return doc

    @classmethod
    def from_doc(cls, doc: dict) -> "Campaign":
        """The campaign :meth:`to_doc` saved."""
        c = cls.__new__(cls)
        vars(c).update(doc)
        c.status = bytearray.fromhex(doc["status"])
        c.offsets = array("l", doc["offsets"])
        c.events = array("q", doc["events"])
        c.unsubscribes = [tuple(u) for u in doc["unsubscribes"]]
        c.active_cache = {}
        return c


class Batch:
    """A ``/batches`` job."""

    def __init__(self, batch_id: str, api_key: str, operations: list):
        self.id = batch_id
        self.api_key = api_key
        self.operations = operations
        self.status = "pending"
        self.total_operations = 0
        self.finished_operations = 0
        self.errored_operations = 0
        self.submitted_at = now()
        self.completed_at = 0.0
        self.response_body_url = ""
        self.archive: bytes = b""
        self.cancelled = False


class Store:
    """All simulator state; take ``lock`` around any read or write."""

    def __init__(self):
        self.lock = threading.RLock()
        self.emit = lambda *a, **k: None  # replaced by the webhook dispatcher
        self.clear()

    def clear(self) -> None:
        """Forget everything (``POST /_sim/reset``)."""
        with self.lock:
            self.accounts: dict[str, Account] = {}
            self.lists: dict[str, AudienceList] = {}
            self.campaigns: dict[str, Campaign] = {}
            self.by_serial: dict[int, Campaign] = {}
            self.campaign_serials = itertools.count(1)
            self.batches: dict[str, Batch] = {}
            self.throttled: set[str] = set()
            self.web_ids = itertools.count(100001)
            self.tag_ids = itertools.count(2001)
            self.dirty = True

    # ----- accounts and lists -----------------------------------------------------------
    def add_account(self, name: str = "Test", api_key: str | None = None) -> Account:
        """Create an account (or return the one that already has ``api_key``)."""
        with self.lock:
            if api_key and api_key in self.accounts:
                return self.accounts[api_key]
            account = Account(api_key or new_api_key(), name)
            self.accounts[account.api_key] = account
            self.dirty = True
            return account

    def add_list(self, account: Account, body: dict) -> AudienceList:
        """Create an audience for the account."""
        with self.lock:
            list_id = secrets.token_hex(5)
            lst = AudienceList(list_id, next(self.web_ids), account.api_key, body)
            self.lists[list_id] = lst
            account.list_ids.append(list_id)
            self.dirty = True
            return lst

    def get_list(self, account: Account, list_id: str) -> AudienceList:
        """The account's audience, or the 404 problem."""
        lst = self.lists.get(list_id)
        if lst is None or lst.api_key != account.api_key:
            raise problems.not_found()
        return lst

    def new_tag(self, lst: AudienceList, name: str) -> Tag:
        """Create a tag (static segment) in the audience."""
        tag = Tag(next(self.tag_ids), name.strip())
        lst.tags[tag.id] = tag
        return tag


# ----- member rules -----------------------------------------------------------------------
def resolve_hash(lst: AudienceList, slot: str) -> str:
    """The member hash for a URL slot holding a hash, an e-mail address or a contact_id."""
    slot = slot.strip()
    if "@" in slot:
        return subscriber_hash(slot)
    if HEX32.match(slot) and slot.lower() in lst.members:
        return slot.lower()
    member = lst.contacts.get(slot)
    if member is not None and lst.members.get(member.id) is member:
        return member.id
    return slot.lower()


def member_or_404(lst: AudienceList, slot: str) -> Member:
    """The member (archived included) behind a URL slot, or 404."""
    member = lst.members.get(resolve_hash(lst, slot))
    if member is None:
        raise problems.not_found()
    return member


def shape_errors(lst: AudienceList | None, body, *, statuses=WRITABLE_STATUSES,
                 prefix: str = "") -> list:
    """Schema errors of a member write, in Mailchimp's wording (API-NOTES §1.7): wrong JSON
    types, values outside an enum. ``prefix`` names a batch item (``members.item:3.``)."""
    V = validation
    if not isinstance(body, dict):
        return [{"field": prefix.rstrip("."), "message": V.wrong_type("object", body)}]
    errors = []
    if "email_address" in body:
        email = body["email_address"]
        if not isinstance(email, str):
            errors.append({"field": prefix + "email_address",
                           "message": V.wrong_type("string", email)})
        elif not email.strip() and not prefix:
            errors.append({"field": "email_address", "message": "This value should not be blank."})
    for key in ("status", "status_if_new"):
        if key in body and body[key] not in statuses:
            errors.append({"field": prefix + key, "message": V.NOT_ACCEPTED})
    if "email_type" in body and body["email_type"] not in ("html", "text"):
        errors.append({"field": prefix + "email_type", "message": V.NOT_ACCEPTED})
    for key, expected, kinds in (("vip", "boolean", (bool,)),
                                 ("language", "string", (str,)),
                                 ("ip_signup", "string", (str,)), ("ip_opt", "string", (str,)),
                                 ("location", "object", (dict,)),
                                 ("interests", "object", (dict,))):
        if key in body and body[key] is not None and not isinstance(body[key], kinds):
            errors.append({"field": prefix + key, "message": V.wrong_type(expected, body[key])})
    if not prefix:  # not in the batch-subscribe item schema (ignored there)
        if "marketing_permissions" in body and not isinstance(body["marketing_permissions"], list):
            errors.append({"field": "marketing_permissions",
                           "message": "This value should be of type array"})
        if "tags" in body and not isinstance(body["tags"], list):
            errors.append({"field": "tags", "message": "This value should be of type array"})
    errors.extend(V.merge_shape_errors(lst.merge_fields if lst is not None else None,
                                       body.get("merge_fields"), prefix))
    return errors


def check_body_shapes(body, *, statuses=WRITABLE_STATUSES, lst: AudienceList | None = None) -> None:
    """Refuse a member write whose body fails the request schema (400 Invalid Resource)."""
    errors = shape_errors(lst, body, statuses=statuses)
    if errors:
        raise problems.ApiError(400, "Invalid Resource", problems.SCHEMA_DETAIL, errors)
    if lst is not None and isinstance(body.get("marketing_permissions"), list):
        check_permissions(lst, body["marketing_permissions"])


def check_permissions(lst: AudienceList, items: list) -> None:
    """Each ``{marketing_permission_id, enabled}`` must name one of the audience's
    permissions (API-NOTES §7); an unknown id is refused, not stored."""
    known = {p["marketing_permission_id"] for p in lst.permissions}
    errors = []
    for i, item in enumerate(items):
        field = f"marketing_permissions.item:{i}"
        if not isinstance(item, dict):
            errors.append({"field": field, "message": validation.wrong_type("object", item)})
            continue
        pid = item.get("marketing_permission_id")
        if not isinstance(pid, str):
            errors.append({"field": field + ".marketing_permission_id",
                           "message": validation.wrong_type("string", pid)})
        elif pid not in known:
            errors.append({"field": field + ".marketing_permission_id",
                           "message": f"The marketing permission '{pid}' does not exist on "
                                      "this audience."})
        if "enabled" in item and not isinstance(item["enabled"], bool):
            errors.append({"field": field + ".enabled",
                           "message": validation.wrong_type("boolean", item["enabled"])})
    if errors:
        raise problems.ApiError(400, "Invalid Resource", problems.SCHEMA_DETAIL, errors)


def _check_merge(lst: AudienceList, values, *, creating: bool, skip: bool) -> None:
    errors = validation.merge_errors(lst.merge_fields, values or {}, creating=creating,
                                     skip_required=skip)
    if errors:
        raise problems.merge_invalid(errors)


def _apply_fields(lst: AudienceList, member: Member, body: dict) -> bool:
    """Copy writable member fields from ``body``; True when merge values changed."""
    changed = False
    for tag, value in (body.get("merge_fields") or {}).items():
        tag = tag.upper()
        if tag in lst.merge_fields:
            if isinstance(value, (int, float)) and lst.merge_fields[tag].type != "number":
                value = str(value)
            if member.merge.get(tag, "") != value:
                member.merge[tag] = value
                changed = True
    if "email_type" in body:
        member.email_type = body["email_type"]
    if "language" in body:
        member.language = str(body["language"] or "")
    if "vip" in body:
        member.vip = bool(body["vip"])
    if isinstance(body.get("location"), dict):
        loc = body["location"]
        member.location = {"latitude": loc.get("latitude", 0) or 0,
                           "longitude": loc.get("longitude", 0) or 0}
    if isinstance(body.get("interests"), dict):
        member.interests.update(body["interests"])
    for key in ("ip_signup", "ip_opt"):
        if key in body:
            setattr(member, key, str(body[key] or ""))
    for key in ("timestamp_signup", "timestamp_opt"):
        if body.get(key):
            try:
                setattr(member, key, parse_iso(str(body[key])))
            except problems.ApiError:
                pass
    if isinstance(body.get("marketing_permissions"), list):
        granted = dict(member.marketing_permissions or {})
        for item in body["marketing_permissions"]:
            if isinstance(item, dict) and "enabled" in item:
                granted[item["marketing_permission_id"]] = bool(item["enabled"])
        member.marketing_permissions = granted
    return changed


def check_can_take(member: Member, status: str) -> None:
    """Refuse ``subscribed`` for a member only the contact may resubscribe (§1.2, §14.3)."""
    if status == "subscribed" and member.compliance and member.status != "subscribed":
        raise problems.compliance_state(member.email)


def set_status(store: Store, lst: AudienceList, member: Member, status: str, source: str,
               *, origin: str = "admin", reason: str = "", campaign_id: str = "",
               action: str = "unsub", hook_reason: str = "manual", **quirks) -> None:
    """Move a member to ``status``, recording who did it, and fire the matching webhook.

    ``origin`` says who unsubscribed: ``admin`` (API or Mailchimp UI: reversible through
    the API) or ``self`` (the contact: compliance state). A hard bounce (``cleaned``) is
    always a compliance state.
    """
    old = member.status
    if old == status:
        return
    t = now()
    member.status = status
    member.last_changed = t
    if status == "subscribed":
        member.timestamp_opt = t
        member.compliance = ""
        member.unsubscribe_reason = ""
        lst.last_sub = t
        store.emit(lst, "subscribe", source, member)
    elif status == "unsubscribed":
        earlier = member.unsubscribe_reason
        member.unsubscribe_reason = reason or (SELF_UNSUB_REASON if origin == "self"
                                               else ADMIN_UNSUB_REASON)
        if origin == "self":
            member.compliance = "unsubscribe"
        elif member.compliance == "unsubscribe":
            # an admin or API unsubscribe keeps an earlier compliance state (only a form
            # signup lifts it), and with it the contact's own reason: a reader of
            # unsubscribe_reason must still see that the person unsubscribed themself
            member.unsubscribe_reason = earlier or SELF_UNSUB_REASON
        lst.last_unsub = t
        store.emit(lst, "unsubscribe", source, member, action=action,
                   reason=hook_reason, campaign_id=campaign_id, **quirks)
    elif status == "cleaned":
        member.compliance = "bounce"
        store.emit(lst, "cleaned", source, member, reason=reason or "hard", campaign_id=campaign_id)
    elif status == "pending":
        member.unsubscribe_reason = ""


def check_throttle(store: Store, email: str, status: str) -> None:
    """The per-address signup throttle, for addresses put on it by the control API."""
    if status in ("subscribed", "pending") and email.lower() in store.throttled:
        raise problems.invalid(f"{email} has signed up to a lot of lists very recently; "
                               "we're not allowing more signups for now")


def _create(store: Store, lst: AudienceList, email: str, body: dict, status: str,
            *, skip_merge: bool, with_tags: bool, checked_hash: str = "") -> Member:
    h = checked_hash
    if not h:
        h = subscriber_hash(email)
        if h in lst.forgotten:
            raise problems.forgotten(email)
        validation.check_email(email)
    if store.throttled:
        check_throttle(store, email, status)
    _check_merge(lst, body.get("merge_fields"), creating=True, skip=skip_merge)
    member = Member(email, next(store.web_ids), h)
    for tag, field in lst.merge_fields.items():
        if field.default_value:
            member.merge[tag] = field.default_value
    _apply_fields(lst, member, body)
    member.status = status
    member.timestamp_opt = member.timestamp_opt or (now() if status == "subscribed" else 0.0)
    if status == "unsubscribed":
        member.unsubscribe_reason = ADMIN_UNSUB_REASON
    if status == "cleaned":
        member.compliance = "bounce"
    lst.members[h] = member
    lst.contacts[member.contact_id] = member
    if with_tags:
        _apply_tag_names(store, lst, member, body.get("tags") or [])
    if status == "subscribed":
        lst.last_sub = member.last_changed
        store.emit(lst, "subscribe", "api", member)
    store.dirty = True
    return member


def _revive(store: Store, lst: AudienceList, member: Member, body: dict, status: str,
            *, skip_merge: bool) -> Member:
    """Bring an archived member back (POST or PUT after DELETE, §1.5)."""
    check_can_take(member, status)
    check_throttle(store, member.email, status)
    _check_merge(lst, body.get("merge_fields"), creating=False, skip=skip_merge)
    _apply_fields(lst, member, body)
    member.status = "archived-reviving"
    set_status(store, lst, member, status, "api")
    member.last_changed = now()
    store.dirty = True
    return member


def _fingerprint(member: Member) -> str:
    return repr((member.email, member.status, sorted(member.merge.items()), member.email_type,
                 member.language, member.vip, member.location, member.interests,
                 member.marketing_permissions, member.ip_signup, member.ip_opt,
                 member.timestamp_signup, member.timestamp_opt))


def _update(store: Store, lst: AudienceList, member: Member, body: dict, status: str | None,
            *, skip_merge: bool) -> Member:
    before = _fingerprint(member)
    if status:
        check_can_take(member, status)
    _check_merge(lst, body.get("merge_fields"), creating=False, skip=skip_merge)
    email = body.get("email_address")
    if email and email.lower() != member.email.lower():
        rename(store, lst, member, email, "api")
    elif email and email != member.email:
        member.email = email
    if member.status == "archived":
        member.status = "archived-reviving"
        set_status(store, lst, member, status or member.status_before_archive or "subscribed", "api")
    elif status:
        set_status(store, lst, member, status, "api")
    if _apply_fields(lst, member, body) and member.status != "archived":
        store.emit(lst, "profile", "api", member)
    if _fingerprint(member) != before:  # an identical write leaves last_changed alone
        member.last_changed = now()
        store.dirty = True
    return member


def rename(store: Store, lst: AudienceList, member: Member, new_email: str, source: str) -> None:
    """Change a member's address in place: new ``id``, same ``contact_id`` (§1.3, §14.4)."""
    new_hash = subscriber_hash(new_email)
    if new_hash in lst.members:
        raise problems.member_exists(new_email)
    if new_hash in lst.forgotten:
        raise problems.forgotten(new_email)
    validation.check_email(new_email)
    old_email, old_hash = member.email, member.id
    del lst.members[old_hash]
    member.email = new_email
    member.id = new_hash
    member.last_changed = now()
    lst.members[new_hash] = member
    store.emit(lst, "upemail", source, member, old_email=old_email, old_id=old_hash)
    store.dirty = True


def post_member(store: Store, lst: AudienceList, body: dict, *, skip_merge: bool) -> Member:
    """``POST /lists/{id}/members``: add; 400 Member Exists unless archived (§1.4)."""
    check_body_shapes(body, lst=lst)
    missing = [k for k in ("email_address", "status") if k not in body]
    if missing:
        raise problems.schema_invalid("", "Required fields were not provided: " + ", ".join(missing))
    email = body["email_address"].strip()
    h = subscriber_hash(email)
    if h in lst.forgotten:
        raise problems.forgotten(email)
    validation.check_email(email)
    member = lst.members.get(h)
    if member is not None and member.status != "archived":
        raise problems.member_exists(email)
    if member is not None:
        member = _revive(store, lst, member, body, body["status"], skip_merge=skip_merge)
        _apply_tag_names(store, lst, member, body.get("tags") or [])
        return member
    return _create(store, lst, email, body, body["status"], skip_merge=skip_merge, with_tags=True)


def put_member(store: Store, lst: AudienceList, slot: str, body: dict, *,
               skip_merge: bool) -> Member:
    """``PUT /lists/{id}/members/{hash}``: upsert, rename through the old hash (§1.3, §14.4-5).

    A PUT that creates the member takes ``status_if_new`` when given, ``status`` otherwise
    (MailChimp.Net #45: "If they are new members then the statusifnew is used")."""
    check_body_shapes(body, lst=lst)
    h = resolve_hash(lst, slot)
    member = lst.members.get(h)
    email = (body.get("email_address") or "").strip()
    if member is not None:
        return _update(store, lst, member, body, body.get("status"), skip_merge=skip_merge)
    if not email:
        if h in lst.forgotten:
            raise problems.not_found()
        raise problems.schema_invalid("", "Required fields were not provided: email_address")
    status = body.get("status_if_new") or body.get("status")
    if not status:
        raise problems.schema_invalid("", "Required fields were not provided: status_if_new")
    target = lst.members.get(subscriber_hash(email))
    if target is not None:
        if target.status != "archived":
            raise problems.member_exists(email)
        return _revive(store, lst, target, body, status, skip_merge=skip_merge)
    return _create(store, lst, email, body, status, skip_merge=skip_merge, with_tags=False)


def patch_member(store: Store, lst: AudienceList, slot: str, body: dict, *,
                 skip_merge: bool) -> Member:
    """``PATCH /lists/{id}/members/{hash}``: update only; no ``transactional`` (§1.4)."""
    check_body_shapes(body, statuses=PATCH_STATUSES, lst=lst)
    member = member_or_404(lst, slot)
    return _update(store, lst, member, body, body.get("status"), skip_merge=skip_merge)


def archive(store: Store, lst: AudienceList, member: Member, source: str) -> None:
    """DELETE: archive, or 405 for a bounced, pending or archived member (§1.5, §14.1)."""
    if member.status in ("archived", "cleaned", "pending"):
        raise problems.ApiError(
            405, "Method Not Allowed",
            "This list member cannot be removed. Can not archive a contact that is bounced, "
            "pending or archived", headers={"Allow": "GET, PUT"})
    archive_now(store, member)


def archive_now(store: Store, member: Member) -> None:
    """Archive without a webhook: no public evidence shows Mailchimp announcing archives
    (API-NOTES §6.4, §15), so receivers must not count on one."""
    member.status_before_archive = member.status
    member.status = "archived"
    member.last_changed = now()
    store.dirty = True


def delete_permanent(store: Store, lst: AudienceList, member: Member, source: str) -> None:
    """Remove the member for ever; every later add is "Forgotten Email Not Subscribed"."""
    del lst.members[member.id]
    lst.contacts.pop(member.contact_id, None)
    lst.forgotten.add(member.id)
    store.emit(lst, "unsubscribe", source, member, action="delete", reason="manual")
    store.dirty = True


def _apply_tag_names(store: Store, lst: AudienceList, member: Member, names) -> None:
    for name in names:
        if isinstance(name, str) and name.strip():
            tag = lst.tag_by_name(name) or store.new_tag(lst, name)
            member.tags.setdefault(tag.id, now())


def set_tags(store: Store, lst: AudienceList, member: Member, items: list) -> None:
    """``POST .../tags``: activate (auto-creating) or inactivate tags (§4, §14.8)."""
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) \
                or not item["name"].strip():
            raise problems.schema_invalid("tags", "Required fields were not provided: name")
        if item.get("status") not in ("active", "inactive"):
            raise problems.schema_invalid("tags.status", validation.NOT_ACCEPTED)
    changed = False
    for item in items:
        tag = lst.tag_by_name(item["name"])
        if item["status"] == "active":
            if tag is None:
                tag = store.new_tag(lst, item["name"])
            if tag.id not in member.tags:
                member.tags[tag.id] = now()
                changed = True
        elif tag is not None and member.tags.pop(tag.id, None) is not None:
            changed = True
    if changed:
        member.last_changed = now()
        store.dirty = True


def batch_subscribe(store: Store, lst: AudienceList, body: dict, *, skip_merge: bool,
                    skip_duplicates: bool) -> dict:
    """``POST /lists/{id}``: up to 500 members; errors per member, never a failed call (§2)."""
    members = body.get("members")
    if members is None:
        raise problems.schema_invalid("", "Required fields were not provided: members")
    if not isinstance(members, list):
        raise problems.schema_invalid("members", validation.wrong_type("array", members))
    if len(members) > 500:
        raise problems.invalid("Maximum allowed member items exceeded, please provide at most "
                               "500 items in members field")
    # One schema-invalid item refuses the whole call (MailChimp.Net #567: an item whose
    # status is "" → 400 with field "members.item:0.status"); only per-member problems
    # (address, existing member, compliance, merge VALUES) go into errors[] of a 200.
    schema = []
    for index, item in enumerate(members):
        schema.extend(shape_errors(lst, item, prefix=f"members.item:{index}."))
    if schema:
        raise problems.ApiError(400, "Invalid Resource", problems.SCHEMA_DETAIL, schema)
    update_existing = bool(body.get("update_existing", False))
    created, updated, errors = [], [], []
    seen = set()
    for item in members:
        email = str(item.get("email_address") or "").strip()
        try:
            if not email:
                raise problems.schema_invalid("email_address", "This value should not be blank.")
            h = subscriber_hash(email)
            if h in seen and skip_duplicates:
                continue
            seen.add(h)
            clean = {k: v for k, v in item.items() if k not in ("tags", "marketing_permissions")}
            status = clean.get("status") or clean.get("status_if_new")
            if not status:
                raise problems.schema_invalid("status", "Required fields were not provided: status")
            if h in lst.forgotten:
                raise problems.forgotten(email)
            validation.check_email(email)
            member = lst.members.get(h)
            if member is None:
                created.append(_create(store, lst, email, clean, status, skip_merge=skip_merge,
                                       with_tags=False, checked_hash=h))
            elif member.status == "archived":
                created.append(_revive(store, lst, member, clean, status, skip_merge=skip_merge))
            elif not update_existing:
                errors.append({"email_address": email,
                               "error": f"{email} is already a list member, do you want to update? "
                                        "please provide update_existing:true in the request body",
                               "error_code": "ERROR_CONTACT_EXISTS", "field": "email_address",
                               "field_message": "This contact already exists"})
            else:
                updated.append(_update(store, lst, member, clean, clean.get("status"),
                                       skip_merge=skip_merge))
        except problems.ApiError as exc:
            field, field_message = "", ""
            if exc.errors:
                field = exc.errors[0].get("field", "")
                field_message = exc.errors[0].get("message", "")
            elif exc.detail.endswith("valid email address.") or "looks fake" in exc.detail:
                field, field_message = "email_address", exc.detail
            errors.append({"email_address": email, "error": exc.detail,
                           "error_code": "ERROR_GENERIC", "field": field,
                           "field_message": field_message})
    return {"new_members": created, "updated_members": updated, "errors": errors}
