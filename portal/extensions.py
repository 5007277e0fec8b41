"""Extension objects, created unbound here and bound to the app in create_app()."""
from __future__ import annotations

from flask import Flask
from flask_babel import Babel
from flask_login import LoginManager
from flask_mail import Mail
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from redis import Redis
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with stable constraint names (Alembic needs them on SQLite)."""

    metadata = MetaData(naming_convention=NAMING)


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
mail = Mail()
babel = Babel()


class RedisConnection:
    """The app's Redis connection (RQ's queues, the Mailchimp connection semaphore); connects lazily."""

    def __init__(self) -> None:
        self.app = None

    def init_app(self, app: Flask) -> None:
        """Bind to the app's REDIS_URL."""
        self.app = app
        # Timeouts: a Redis that is down or hung answers the web request in seconds, never holds it
        # (RQ's worker raises the read timeout of its own connection for its long BLPOP).
        app.extensions["redis"] = Redis.from_url(
            app.config["REDIS_URL"], health_check_interval=30, socket_connect_timeout=2.0,
            socket_timeout=float(app.config.get("REDIS_SOCKET_TIMEOUT") or 5.0),
        )

    @property
    def redis(self) -> Redis:
        """The Redis client of the current app."""
        from flask import current_app

        return current_app.extensions["redis"]


redis_store = RedisConnection()
