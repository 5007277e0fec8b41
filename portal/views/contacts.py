"""Contacts area (placeholder; the contacts helper replaces this module)."""
from __future__ import annotations

from flask import Blueprint

from portal.views.access import customer_required

bp = Blueprint("contacts", __name__, url_prefix="/contacts")


@bp.get("/")
@customer_required
def index():
    """The contacts table."""
    return "contacts"
