"""The "contacts changed" announcement: the seam where live replication plugs in (R10).

Listeners are registered per app in create_app() and called after the change is committed,
so a listener never sees uncommitted data and a failing listener never loses the change.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from flask import current_app

log = logging.getLogger(__name__)

Listener = Callable[[int, list[int], str], None]
CHANGES = ("created", "updated", "deleted", "consent", "imported")


def on_contacts_changed(app, listener: Listener) -> None:
    """Register `listener(workspace_id, contact_ids, change)` on `app`."""
    app.extensions.setdefault("contact_listeners", []).append(listener)


def contacts_changed(workspace_id: int, contact_ids: Iterable[int], change: str) -> None:
    """Tell every listener that these contacts changed (call after commit)."""
    ids = list(contact_ids)
    if not ids:
        return
    for listener in current_app.extensions.get("contact_listeners", []):
        try:
            listener(workspace_id, ids, change)
        except Exception:  # a listener failure must not undo or hide a committed change
            log.exception("contact listener %r failed for %s contacts", listener, len(ids))
