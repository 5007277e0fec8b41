"""The "contacts changed" announcement: the seam where replication plugs in (R10).

A blinker signal (Flask's own mechanism). :func:`announce` is called *after* the change is
committed, so a receiver never sees uncommitted data, and a failing receiver is logged but
never undoes or hides the change. Receivers are connected in ``create_app``.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable

from blinker import Namespace

from portal.models import ContactChange

log = logging.getLogger(__name__)

_signals = Namespace()
contacts_changed = _signals.signal("contacts-changed")
"""Sent with ``workspace_id``, ``contact_ids`` (list) and ``change`` (:class:`ContactChange`)."""


def announce(workspace_id: int, contact_ids: Iterable[int], change: ContactChange) -> None:
    """Tell the receivers that these contacts changed (call after commit)."""
    ids = list(contact_ids)
    if not ids:
        return
    for receiver in contacts_changed.receivers_for(workspace_id):
        try:
            receiver(workspace_id, contact_ids=ids, change=ContactChange(change))
        except Exception:  # a receiver failure must not undo or hide a committed change
            log.exception("contacts-changed receiver %r failed for %d contacts", receiver, len(ids))
