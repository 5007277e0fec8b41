"""Workspaces (one customer company each) and the people who log in."""
from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from portal.extensions import db
from portal.models.base import UTCDateTime, utcnow
from portal.models.enums import Role


def hash_token(token: str) -> str:
    """SHA-256 of an API token; only the hash is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_session_token() -> str:
    """A fresh random session token for a user (see :attr:`User.session_token`)."""
    return secrets.token_urlsafe(24)


class Workspace(db.Model):
    """A customer's account: its contacts, tags, users and connector."""

    __tablename__ = "workspace"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    api_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    consent_enabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def new_api_token(self) -> str:
        """Issue a fresh bearer token (returned once, stored hashed)."""
        token = "anb_" + secrets.token_urlsafe(32)
        self.api_token_hash = hash_token(token)
        return token


class User(UserMixin, db.Model):
    """Someone who logs in: a support agent (all workspaces) or a customer (one workspace)."""

    __tablename__ = "user"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(120), default="")
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))
    workspace_id: Mapped[int | None] = mapped_column(ForeignKey("workspace.id"), index=True)
    locale: Mapped[str | None] = mapped_column(String(8))
    active: Mapped[bool] = mapped_column(default=True)
    # Part of every session and remember-me cookie (Flask-Login's alternative id): replacing it
    # ends every session of the user at once (log out, password change).
    session_token: Mapped[str] = mapped_column(String(64), default=new_session_token)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    workspace: Mapped[Workspace | None] = relationship()

    ROLES = tuple(Role)

    @property
    def is_active(self) -> bool:
        """Whether the user may log in (Flask-Login reads it)."""
        return self.active

    @property
    def is_support(self) -> bool:
        """True for anaba's support agents."""
        return self.role == Role.SUPPORT

    def get_id(self) -> str:
        """What the session and remember-me cookies hold: the id and the current session token."""
        return f"{self.id}:{self.session_token or ''}"

    def has_session_token(self, token: str) -> bool:
        """Whether `token` is the user's current session token (constant time)."""
        return bool(self.session_token) and hmac.compare_digest(self.session_token, token)

    def end_sessions(self) -> None:
        """Replace the session token: every session and remember-me cookie of the user stops working."""
        self.session_token = new_session_token()

    def set_password(self, password: str) -> None:
        """Store a salted hash of `password`; the sessions opened with the old one end."""
        self.password_hash = generate_password_hash(password)
        self.end_sessions()

    def check_password(self, password: str) -> bool:
        """Whether `password` matches the stored hash."""
        return check_password_hash(self.password_hash, password)
