"""Settings read from the environment, typed and checked once when the app starts."""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse


LOCALES = ("fr", "en")
"""The portal's languages; French is the default."""


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the message says which and how to fix it."""


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _int(env: dict, name: str, default: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None


def _seconds(env: dict, name: str, default: float) -> float:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be more than 0 seconds, got {raw!r}")
    return value


def _persistent_secret(instance: Path, name: str, make) -> str:
    """Read a dev secret from instance/, creating it on first use (never used when the env sets it)."""
    path = instance / name
    if path.exists():
        return path.read_text().strip()
    instance.mkdir(parents=True, exist_ok=True)
    value = make()
    path.write_text(value)
    path.chmod(0o600)
    return value


@dataclass
class Settings:
    """Everything the portal reads from its environment."""

    SECRET_KEY: str
    SQLALCHEMY_DATABASE_URI: str
    REDIS_URL: str
    FERNET_KEY: str
    PUBLIC_BASE_URL: str
    MAILCHIMP_API_BASE: str | None
    MAILCHIMP_TIMEOUT: float
    MAILCHIMP_MAX_CONNECTIONS: int
    MAILCHIMP_BULK_CONNECTIONS: int
    MAIL_SERVER: str
    MAIL_PORT: int
    MAIL_DEFAULT_SENDER: str
    MAIL_USERNAME: str | None
    MAIL_PASSWORD: str | None
    MAIL_USE_TLS: bool
    MAIL_USE_SSL: bool
    RUN_LEASE_SECONDS: int
    REPLICATION_LOCK_SECONDS: int
    REPLICATION_SWEEP_SECONDS: int
    SUPPORT_EMAIL: str
    SESSION_COOKIE_SECURE: bool
    ENV_NAME: str
    MAILCHIMP_WEB_TIMEOUT: float
    LOGIN_MAX_FAILURES_PER_ACCOUNT: int
    LOGIN_MAX_FAILURES_PER_ADDRESS: int
    LOGIN_THROTTLE_SECONDS: int
    SESSION_HOURS: int
    REMEMBER_DAYS: int
    PROXY_HOPS: int
    REDIS_SOCKET_TIMEOUT: float
    extra: dict = field(default_factory=dict)

    def as_flask(self) -> dict:
        """The settings as Flask config keys."""
        data = {k: v for k, v in self.__dict__.items() if k != "extra"}
        data.update(self.extra)
        return data


def load_settings(env: dict | None = None, instance_path: str | Path = "instance") -> Settings:
    """Build settings from `env` (default: os.environ), raising ConfigError with a clear message."""
    env = dict(os.environ if env is None else env)
    instance = Path(instance_path)
    db_url = env.get("DATABASE_URL") or f"sqlite:///{(instance / 'anaba.sqlite').resolve()}"
    if db_url.startswith("postgres://"):
        db_url = "postgresql+psycopg://" + db_url[len("postgres://"):]
    elif db_url.startswith("postgresql://"):
        db_url = "postgresql+psycopg://" + db_url[len("postgresql://"):]
    if not db_url.startswith(("sqlite:", "postgresql+psycopg:")):
        raise ConfigError("DATABASE_URL must be a sqlite:/// or postgresql:// URL")

    redis_url = env.get("REDIS_URL", "redis://127.0.0.1:6389/0")
    if urlparse(redis_url).scheme not in {"redis", "rediss", "unix"}:
        raise ConfigError("REDIS_URL must look like redis://host:port/db")

    env_name = env.get("ANABA_ENV", "development")
    secret = env.get("SECRET_KEY")
    fernet = env.get("FERNET_KEY")
    if env_name == "production" and (not secret or not fernet):
        raise ConfigError("SECRET_KEY and FERNET_KEY must be set in production")
    if not secret:
        secret = _persistent_secret(instance, "secret_key", lambda: secrets.token_hex(32))
    if not fernet:
        from cryptography.fernet import Fernet

        fernet = _persistent_secret(instance, "fernet_key", lambda: Fernet.generate_key().decode())

    public = env.get("PUBLIC_BASE_URL", "http://portal.localhost:5000").rstrip("/")
    if urlparse(public).scheme not in {"http", "https"}:
        raise ConfigError("PUBLIC_BASE_URL must be an http(s) URL")

    api_base = env.get("MAILCHIMP_API_BASE") or None
    if api_base:
        api_base = api_base.rstrip("/") + "/"

    timeout = _seconds(env, "MAILCHIMP_TIMEOUT", 30.0)
    web_timeout = _seconds(env, "MAILCHIMP_WEB_TIMEOUT", 4.0)

    max_connections = _int(env, "MAILCHIMP_MAX_CONNECTIONS", 10)
    bulk_connections = _int(env, "MAILCHIMP_BULK_CONNECTIONS", max(1, max_connections - 2))
    if not 1 <= bulk_connections <= max_connections:
        raise ConfigError("MAILCHIMP_BULK_CONNECTIONS must be between 1 and MAILCHIMP_MAX_CONNECTIONS")

    return Settings(
        SECRET_KEY=secret,
        SQLALCHEMY_DATABASE_URI=db_url,
        REDIS_URL=redis_url,
        FERNET_KEY=fernet,
        PUBLIC_BASE_URL=public,
        MAILCHIMP_API_BASE=api_base,
        MAILCHIMP_TIMEOUT=timeout,
        MAILCHIMP_MAX_CONNECTIONS=max_connections,
        MAILCHIMP_BULK_CONNECTIONS=bulk_connections,
        MAIL_SERVER=env.get("MAIL_SERVER", "127.0.0.1"),
        MAIL_PORT=_int(env, "MAIL_PORT", 8025),
        MAIL_DEFAULT_SENDER=env.get("MAIL_DEFAULT_SENDER", "anaba <no-reply@anaba.localhost>"),
        MAIL_USERNAME=env.get("MAIL_USERNAME") or None,
        MAIL_PASSWORD=env.get("MAIL_PASSWORD") or None,
        MAIL_USE_TLS=_bool(env.get("MAIL_USE_TLS"), False),
        MAIL_USE_SSL=_bool(env.get("MAIL_USE_SSL"), False),
        RUN_LEASE_SECONDS=_int(env, "RUN_LEASE_SECONDS", 60),
        REPLICATION_LOCK_SECONDS=_int(env, "REPLICATION_LOCK_SECONDS", 60),
        REPLICATION_SWEEP_SECONDS=_int(env, "REPLICATION_SWEEP_SECONDS", 30),
        SUPPORT_EMAIL=env.get("SUPPORT_EMAIL", "support@anaba.localhost"),
        SESSION_COOKIE_SECURE=_bool(env.get("SESSION_COOKIE_SECURE"), public.startswith("https://")),
        ENV_NAME=env_name,
        MAILCHIMP_WEB_TIMEOUT=min(web_timeout, timeout),
        LOGIN_MAX_FAILURES_PER_ACCOUNT=_int(env, "LOGIN_MAX_FAILURES_PER_ACCOUNT", 5),
        LOGIN_MAX_FAILURES_PER_ADDRESS=_int(env, "LOGIN_MAX_FAILURES_PER_ADDRESS", 20),
        LOGIN_THROTTLE_SECONDS=_int(env, "LOGIN_THROTTLE_SECONDS", 15 * 60),
        SESSION_HOURS=_int(env, "SESSION_HOURS", 12),
        REMEMBER_DAYS=_int(env, "REMEMBER_DAYS", 30),
        PROXY_HOPS=_int(env, "PROXY_HOPS", 0),
        REDIS_SOCKET_TIMEOUT=_seconds(env, "REDIS_SOCKET_TIMEOUT", 5.0),
    )
