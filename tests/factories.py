"""Small builders for test data, going through the same domain functions the app uses."""
from __future__ import annotations

from portal.crm.accounts import create_user, get_or_create_workspace
from portal.crm import contacts as crm


def workspace(name: str = "Atelier Test"):
    """A workspace (created once per name)."""
    ws, _ = get_or_create_workspace(name)
    return ws


def workspace_with_token(name: str = "API Test"):
    """A new workspace and its API bearer token."""
    ws, token = get_or_create_workspace(name)
    assert token, "workspace already existed"
    return ws, token


def user(email: str, role: str, ws=None, password: str = "secret-pw"):
    """A user who can log in with `password`."""
    return create_user(email, role, password, ws)


def contact(ws, **fields):
    """A contact created through the contact base (tags=[...], consent=... accepted)."""
    data = {"email": fields.pop("email", "jeanne.martin@example.org"), "first_name": "Jeanne", "last_name": "Martin"}
    data.update(fields)
    return crm.create_contact(ws.id, data, actor="test", channel="ui")
