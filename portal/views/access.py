"""Who may see what: role checks and the workspace every customer query is scoped to."""
from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import abort
from flask_login import current_user, login_required


def customer_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Logged-in customer (with a workspace) only; support agents get 403 here."""

    @wraps(view)
    @login_required
    def wrapped(*args, **kwargs):
        if current_user.role != "customer" or current_user.workspace_id is None:
            abort(403)
        return view(*args, **kwargs)

    return wrapped


def support_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Logged-in support agent only."""

    @wraps(view)
    @login_required
    def wrapped(*args, **kwargs):
        if not current_user.is_support:
            abort(403)
        return view(*args, **kwargs)

    return wrapped


def workspace_id() -> int:
    """The current customer's workspace id: the scope of every customer query."""
    return current_user.workspace_id
