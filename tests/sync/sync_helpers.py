"""Helpers for the sync engine's tests: contacts in bulk, the audience and sync rows as they are."""
from __future__ import annotations

from sqlalchemy import select


def add_contacts(ws, count: int, *, start: int = 0, consent: str = "opt_in", tags_every: int = 3,
                 email=None, **fields) -> list[int]:
    """Insert `count` contacts fast (no events); every `tags_every`-th gets tags. Their ids."""
    from portal.crm.contacts import insert_contacts
    from portal.extensions import db

    rows, tags = [], []
    for n, i in enumerate(range(start, start + count)):
        rows.append({"email": email(i) if email else f"person{i}@ardent-clients.fr",
                     "first_name": fields.get("first_name", f"Prénom{i}"),
                     "last_name": fields.get("last_name", f"Nom{i}"), "company": fields.get("company", "Ardent"),
                     "consent": consent})
        names = []
        if tags_every and n % tags_every == 0:
            names.append("Clients")
            if n % (tags_every * 2) == 0:
                names.append("VIP")
        tags.append(names)
    ids = insert_contacts(ws.id, rows, tags)
    db.session.commit()
    return ids


def sync_rows(connector_id: int) -> dict:
    """Every ContactSync row of the connector, by contact id."""
    from portal.extensions import db
    from portal.models import ContactSync

    return {r.contact_id: r for r in db.session.scalars(select(ContactSync).where(ContactSync.connector_id == connector_id))}


def members(mc, list_id: str) -> dict:
    """The audience's members (all statuses but archived) by lower-cased e-mail."""
    return {m["email_address"].lower(): m for m in mc.iter_members(list_id)}


def writes(sim, since: int = 0) -> list[dict]:
    """Every logged API call that is not a GET, after sequence `since`."""
    return [r for r in sim.control.requests_log(since) if r["method"] != "GET"]


def member_writes(sim, since: int = 0) -> list[dict]:
    """Logged calls that write members: batch subscribe and any write under /members."""
    return [r for r in writes(sim, since)
            if r["path_template"].endswith("/lists/{list_id}") or "/members" in r["path_template"]]


def last_seq(sim) -> int:
    """The sequence number of the last logged API call (0 when none)."""
    log = sim.control.requests_log()
    return log[-1]["seq"] if log else 0
