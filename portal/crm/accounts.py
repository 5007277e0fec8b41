"""Workspaces and the people who log in: creating them, finding a workspace by its API token,
logging in (throttled, with the same work whether the account exists or not) and out."""
from __future__ import annotations

from functools import lru_cache

from sqlalchemy import func, select
from werkzeug.security import check_password_hash, generate_password_hash

from portal.extensions import db
from portal.models import Contact, Role, User, Workspace
from portal.models.workspace import hash_token
from portal.security import LoginThrottle, has_control_characters, is_invisible

WORKSPACE_NAME_MAX = 120


class AccountError(ValueError):
    """An account cannot be created as asked; the message says why."""


def check_workspace_name(name: str) -> str:
    """The name, trimmed; AccountError when it cannot name a workspace (it goes into e-mail subjects
    and headers, so no line break or other control character)."""
    name = (name or "").strip()
    if "\n" in name or "\r" in name or "\t" in name or has_control_characters(name):
        raise AccountError("a workspace name is one line, without control characters")
    if is_invisible(name):
        raise AccountError("a workspace name needs visible characters")
    if len(name) > WORKSPACE_NAME_MAX:
        raise AccountError(f"a workspace name has at most {WORKSPACE_NAME_MAX} characters")
    return name


def get_or_create_workspace(name: str) -> tuple[Workspace, str | None]:
    """The workspace called `name`, created if needed; the new API token when created. Commits.

    AccountError for a name that cannot be used (:func:`check_workspace_name`).
    """
    name = check_workspace_name(name)
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


@lru_cache(maxsize=1)
def _decoy_hash() -> str:
    return generate_password_hash("not anyone's password")


def authenticate(email: str, password: str, address: str = "") -> User | None:
    """The active user with this e-mail and password, or None.

    Raises :class:`~portal.security.LoginThrottled` when this e-mail or this client `address` failed too often
    lately (counted in Redis, so across web processes). An unknown e-mail costs the same
    password hashing as a known one: the time taken never tells which accounts exist.
    """
    throttle = LoginThrottle(email, address)
    throttle.check()
    user = find_user(email)
    if user is None:
        check_password_hash(_decoy_hash(), password)
        matches = False
    else:
        matches = user.check_password(password)
    if not (matches and user is not None and user.active):
        throttle.failed()
        return None
    throttle.succeeded()
    return user


def end_sessions(user: User) -> None:
    """Log the user out everywhere: every session and remember-me cookie stops working. Commits."""
    user.end_sessions()
    db.session.commit()


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
