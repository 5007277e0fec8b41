"""Helpers for the sync engine's tests: contacts in bulk, the audience and sync rows as they are."""
from __future__ import annotations

from sqlalchemy import insert, select


def add_contacts(ws, count: int, *, start: int = 0, consent: str = "opt_in", tags_every: int = 3,
                 email=None, **fields) -> list[int]:
    """Insert `count` contacts fast (no events); every `tags_every`-th gets tags. Their ids."""
    from portal.crm.demo import ensure_tags
    from portal.extensions import db
    from portal.models import Contact, contact_tags, utcnow

    tag_ids = ensure_tags(ws.id, ("Clients", "VIP", "Newsletter"))
    now = utcnow()
    rows = []
    for i in range(start, start + count):
        address = email(i) if email else f"person{i}@ardent-clients.fr"
        contact = Contact(workspace_id=ws.id, email=address, first_name=fields.get("first_name", f"Prénom{i}"),
                          last_name=fields.get("last_name", f"Nom{i}"), company=fields.get("company", "Ardent"),
                          phone="", street="", postal_code="", city="", country="", job_title="",
                          consent=consent, consent_locked=False, consent_lock_reason="", email_bounced=False,
                          do_not_sync=False, created_at=now, updated_at=now)
        contact.refresh_derived()
        rows.append({c.name: getattr(contact, c.name) for c in Contact.__table__.columns if c.name != "id"})
    ids = db.session.scalars(insert(Contact).returning(Contact.id, sort_by_parameter_order=True), rows).all()
    links = []
    for n, cid in enumerate(ids):
        if tags_every and n % tags_every == 0:
            links.append({"contact_id": cid, "tag_id": tag_ids["Clients"]})
            if n % (tags_every * 2) == 0:
                links.append({"contact_id": cid, "tag_id": tag_ids["VIP"]})
    if links:
        db.session.execute(insert(contact_tags), links)
    db.session.commit()
    return list(ids)


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
