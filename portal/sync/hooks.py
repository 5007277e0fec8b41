"""Where the contact base's "contacts changed" announcement reaches the sync side.

Live replication (R10–R13) is a later issue; until then a change only marks the contact's
sync state as pending when its workspace has an active connector, so the screen never
claims "synced" for data Mailchimp has not seen.
"""
from __future__ import annotations

from flask import Flask

from portal.crm.events import on_contacts_changed


def contacts_changed(workspace_id: int, contact_ids: list[int], change: str) -> None:
    """React to committed contact changes (placeholder for live replication, R10)."""
    from portal.sync import state

    state.mark_changed(workspace_id, contact_ids)


def register(app: Flask) -> None:
    """Subscribe the sync side to contact changes."""
    on_contacts_changed(app, contacts_changed)
