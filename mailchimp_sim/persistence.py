"""Saving the state to a SQLite file (``--data``) and loading it back at start.

The whole state is rewritten in one transaction (JSON per row) when something changed:
periodically, on ``POST /_sim/save`` and at shutdown. Batches and logs are not kept.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import threading
import time
from array import array

from .store import Account, AudienceList, Campaign, Member, MergeField, Store, Tag, Webhook

SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (api_key TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS lists (id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS members (list_id TEXT NOT NULL, hash TEXT NOT NULL, doc TEXT NOT NULL,
                                    PRIMARY KEY (list_id, hash));
CREATE TABLE IF NOT EXISTS campaigns (id TEXT PRIMARY KEY, doc TEXT NOT NULL);
"""
LIST_SKIP = ("members", "contacts", "merge_fields", "tags", "webhooks", "forgotten")


def _member_copy(m: Member) -> dict:
    # Values are copied where the store mutates them in place; the rest are replaced whole.
    doc = {k: getattr(m, k) for k in Member.__slots__}
    doc["merge"] = dict(m.merge)
    doc["interests"] = dict(m.interests)
    doc["tags"] = list(m.tags.items())
    doc["activity"] = m.activity.tolist()
    doc["marketing_permissions"] = dict(m.marketing_permissions or {})
    return doc


def _snapshot(store: Store) -> dict:
    """Copy the state under the lock (fast), serialise it after releasing it (slow)."""
    with store.lock:
        accounts = [(a.api_key, {"name": a.name, "created": a.created,
                                 "revoked": a.revoked, "list_ids": list(a.list_ids)})
                    for a in store.accounts.values()]
        lists, members = [], []
        for lst in store.lists.values():
            doc = {k: v for k, v in vars(lst).items() if k not in LIST_SKIP}
            doc["forgotten"] = sorted(lst.forgotten)
            doc["merge_fields"] = [dict(vars(f)) for f in lst.merge_fields.values()]
            doc["tags"] = [dict(vars(t)) for t in lst.tags.values()]
            doc["webhooks"] = [dict(vars(h)) for h in lst.webhooks.values()]
            lists.append((lst.id, doc))
            members.extend((lst.id, m.id, _member_copy(m)) for m in lst.members.values())
        camps = [(c.id, c.to_doc()) for c in store.campaigns.values()]
        store.dirty = False
    dumps = json.dumps
    return {"accounts": [(k, dumps(d)) for k, d in accounts],
            "lists": [(k, dumps(d)) for k, d in lists],
            "members": [(lid, h, dumps(d)) for lid, h, d in members],
            "campaigns": [(k, dumps(d)) for k, d in camps]}


def save(store: Store, path: str) -> None:
    """Write the state to ``path``."""
    snap = _snapshot(store)
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.executescript(SCHEMA)
            for table in ("accounts", "lists", "members", "campaigns"):
                conn.execute(f"DELETE FROM {table}")
            conn.executemany("INSERT INTO accounts VALUES (?, ?)", snap["accounts"])
            conn.executemany("INSERT INTO lists VALUES (?, ?)", snap["lists"])
            conn.executemany("INSERT INTO members VALUES (?, ?, ?)", snap["members"])
            conn.executemany("INSERT INTO campaigns VALUES (?, ?)", snap["campaigns"])
    finally:
        conn.close()


def load(store: Store, path: str) -> None:
    """Replace the state with what ``path`` holds (nothing happens if it has no tables)."""
    conn = sqlite3.connect(path)
    try:
        conn.executescript(SCHEMA)
        rows = {t: conn.execute(f"SELECT * FROM {t}").fetchall()
                for t in ("accounts", "lists", "members", "campaigns")}
    finally:
        conn.close()
    with store.lock:
        store.clear()
        max_web, max_tag = 100000, 2000
        for key, doc in rows["accounts"]:
            d = json.loads(doc)
            account = Account(key, d["name"])
            account.created, account.revoked, account.list_ids = d["created"], d["revoked"], d["list_ids"]
            store.accounts[key] = account
        for list_id, doc in rows["lists"]:
            d = json.loads(doc)
            lst = AudienceList.__new__(AudienceList)
            for k, v in d.items():
                if k not in LIST_SKIP:
                    setattr(lst, k, v)
            lst.members = {}
            lst.contacts = {}
            lst.forgotten = set(d["forgotten"])
            lst.merge_fields = {}
            for f in d["merge_fields"]:
                field = MergeField.__new__(MergeField)
                vars(field).update(f)
                lst.merge_fields[field.tag] = field
            lst.tags = {}
            for t in d["tags"]:
                tag = Tag.__new__(Tag)
                vars(tag).update(t)
                lst.tags[tag.id] = tag
                max_tag = max(max_tag, tag.id)
            lst.webhooks = {}
            for h in d["webhooks"]:
                hook = Webhook.__new__(Webhook)
                vars(hook).update(h)
                lst.webhooks[hook.id] = hook
            max_web = max(max_web, lst.web_id)
            store.lists[list_id] = lst
        for list_id, h, doc in rows["members"]:
            d = json.loads(doc)
            member = Member.__new__(Member)
            for k in Member.__slots__:
                setattr(member, k, d[k])
            member.tags = {int(k): v for k, v in d["tags"]}
            member.activity = array("l", d["activity"] if isinstance(d["activity"], list)
                                    and all(isinstance(x, int) for x in d["activity"]) else [])
            if not isinstance(member.marketing_permissions, dict):
                member.marketing_permissions = {}
            max_web = max(max_web, member.web_id)
            if list_id in store.lists:
                store.lists[list_id].members[h] = member
                store.lists[list_id].contacts[member.contact_id] = member
        max_serial = 0
        for cid, doc in rows["campaigns"]:
            d = json.loads(doc)
            if "events" not in d:  # saved by an older simulator: its activity is not kept
                continue
            campaign = Campaign.from_doc(d)
            max_web = max(max_web, campaign.web_id)
            max_serial = max(max_serial, campaign.serial)
            store.campaigns[cid] = campaign
            store.by_serial[campaign.serial] = campaign
        store.campaign_serials = itertools.count(max_serial + 1)
        store.web_ids = itertools.count(max_web + 1)
        store.tag_ids = itertools.count(max_tag + 1)
        store.dirty = False


class Saver:
    """Saves every ``interval`` seconds when the state changed, and once more at stop."""

    def __init__(self, store: Store, path: str, interval: float = 5.0):
        self.store = store
        self.path = path
        self.interval = interval
        self.stopped = threading.Event()
        self.save_lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name="saver", daemon=True)

    def start(self) -> None:
        """Start the periodic saves."""
        self.thread.start()

    def save(self) -> None:
        """Save now."""
        with self.save_lock:
            save(self.store, self.path)

    def stop(self) -> None:
        """Stop and save a last time."""
        self.stopped.set()
        if self.thread.is_alive():
            self.thread.join(timeout=30)
        self.save()

    def _run(self) -> None:
        wait = self.interval
        while not self.stopped.wait(wait):
            if self.store.dirty:
                started = time.monotonic()
                self.save()
                # a big audience takes seconds to write: keep saving under ~10 % of the time
                wait = max(self.interval, 10 * (time.monotonic() - started))
