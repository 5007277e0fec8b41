"""Workspaces and the people who log in: creating them, finding a workspace by its API token."""
from __future__ import annotations

from sqlalchemy import func, select

from portal.extensions import db
from portal.models import Contact, Role, User, Workspace
from portal.models.workspace import hash_token


class AccountError(ValueError):
    """An account cannot be created as asked; the message says why."""


def get_or_create_workspace(name: str) -> tuple[Workspace, str | None]:
    """The workspace called `name`, created if needed; the new API token when created. Commits."""
    ws = db.session.scalar(select(Workspace).where(Workspace.name == name))
    if ws:
        return ws, None
    ws = Workspace(name=name)
    token = ws.new_api_token()
    db.session.add(ws)
    db.session.commit()
    return ws, token


def find_workspace(name: str) -> Workspace | None:
    """The workspace called `name`, if any."""
    return db.session.scalar(select(Workspace).where(Workspace.name == name))


def new_api_token(workspace: Workspace) -> str:
    """Replace the workspace's API token; the new one (shown once). Commits."""
    token = workspace.new_api_token()
    db.session.commit()
    return token


def workspace_id_for_token(token: str) -> int | None:
    """The workspace an API bearer token belongs to (tokens are stored hashed)."""
    if not token:
        return None
    return db.session.scalar(select(Workspace.id).where(Workspace.api_token_hash == hash_token(token)))


def find_user(email: str) -> User | None:
    """The user with this e-mail (case-insensitive)."""
    return db.session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))


def create_user(email: str, role: str, password: str, workspace: Workspace | None, name: str = "") -> User:
    """Create a user (or reset an existing one's password and role). Commits."""
    if role not in User.ROLES:
        raise AccountError(f"role must be one of {', '.join(User.ROLES)}")
    if role == Role.CUSTOMER and workspace is None:
        raise AccountError("a customer needs a workspace")
    workspace_id = workspace.id if (workspace and role == Role.CUSTOMER) else None
    user = find_user(email)
    if user is None:
        user = User(email=email)
    user.role = role
    user.name = name or user.name or email.split("@")[0]
    user.workspace_id = workspace_id
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    return user


def authenticate(email: str, password: str) -> User | None:
    """The active user with this e-mail and password, or None."""
    user = find_user(email)
    if user and user.active and user.check_password(password):
        return user
    return None


def set_locale(user: User, locale: str) -> None:
    """Save the user's language. Commits."""
    user.locale = locale
    db.session.commit()


def workspaces_with_counts() -> list[tuple[Workspace, int]]:
    """Every workspace with its number of live contacts, by name (support's home)."""
    rows = db.session.execute(
        select(Workspace, func.count(Contact.id))
        .outerjoin(Contact, (Contact.workspace_id == Workspace.id) & Contact.deleted_at.is_(None))
        .group_by(Workspace.id).order_by(Workspace.name)
    ).all()
    return [tuple(row) for row in rows]


def contact_count(workspace_id: int) -> int:
    """How many contacts the workspace holds, deleted ones included."""
    return db.session.scalar(select(func.count()).select_from(Contact).where(Contact.workspace_id == workspace_id)) or 0
