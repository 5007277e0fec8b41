"""The landing page after login: customers go to their contacts, support to its queue."""
from __future__ import annotations

from flask import Blueprint, redirect, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required

bp = Blueprint("main", __name__)


@bp.get("/")
@login_required
def home() -> ResponseReturnValue:
    """Send each role to its main screen."""
    if current_user.is_support:
        return redirect(url_for("support.home"))
    return redirect(url_for("contacts.index"))
