"""The anaba portal: create_app() is the only place where the pieces are wired together."""
from __future__ import annotations

import logging
import os
from datetime import timedelta
from pathlib import Path

from flask import Flask, request
from flask_login import current_user

from portal.config import LOCALES, ConfigError, load_settings

ROOT = Path(__file__).resolve().parent.parent


def select_locale() -> str:
    """The user's saved language, else the browser's preference, else French."""
    if current_user and getattr(current_user, "is_authenticated", False) and current_user.locale in LOCALES:
        return current_user.locale
    if request:
        return request.accept_languages.best_match(LOCALES, default="fr") or "fr"
    return "fr"


def create_app(overrides: dict | None = None) -> Flask:
    """Build the app: settings from the environment (plus `overrides`, for tests), extensions, blueprints."""
    app = Flask(
        "portal",
        instance_path=os.environ.get("ANABA_INSTANCE", str(ROOT / "instance")),
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
    )
    overrides = dict(overrides or {})
    env = dict(os.environ)
    env.update({k: str(v) for k, v in overrides.pop("env", {}).items()})
    try:
        settings = load_settings(env, app.instance_path)
    except ConfigError as exc:
        raise SystemExit(f"Configuration error: {exc}") from None
    app.config.from_mapping(settings.as_flask())
    app.config.update(
        SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": True},
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        # A session cookie is refused once it is older than a working day; a remember-me
        # cookie lasts longer. Both carry the user's session token (models.User.session_token).
        PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.SESSION_HOURS),
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SECURE=settings.SESSION_COOKIE_SECURE,
        REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_DURATION=timedelta(days=settings.REMEMBER_DAYS),
        BABEL_DEFAULT_LOCALE="fr",
        BABEL_TRANSLATION_DIRECTORIES=str(ROOT / "translations"),
        # CSRF tokens live in the session and expire with it.
        WTF_CSRF_TIME_LIMIT=settings.SESSION_HOURS * 3600,
        MAX_CONTENT_LENGTH=64 * 1024 * 1024,
        MAIL_SUPPRESS_SEND=False,
    )
    app.config.update(overrides)
    if app.config["PROXY_HOPS"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        # Behind PROXY_HOPS trusted reverse proxies: the client's address (login throttling)
        # and scheme come from their X-Forwarded-* headers, never from anyone else's.
        hops = app.config["PROXY_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    from portal.security import IdConverter

    app.url_map.converters["id"] = IdConverter

    _init_extensions(app)
    _register_blueprints(app)
    _register_listeners(app)
    from portal.cli import register_cli
    from portal.cli_connector import register as register_connector_cli

    register_cli(app)
    register_connector_cli(app)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return app


def _init_extensions(app: Flask) -> None:
    from portal import models  # noqa: F401  (registers the tables on the metadata)
    from portal.db_setup import configure_engine_events
    from portal.extensions import babel, csrf, db, login_manager, mail, migrate, redis_store

    db.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"), render_as_batch=True)
    csrf.init_app(app)
    mail.init_app(app)
    babel.init_app(app, locale_selector=select_locale)
    redis_store.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message_category = "info"
    from flask_babel import lazy_gettext

    login_manager.login_message = lazy_gettext("Please log in to see this page.")

    @login_manager.user_loader
    def load_user(session_id: str):
        # "<id>:<session token>" (User.get_id): a cookie from before a log-out or a password
        # change carries an old token and loads nobody.
        from portal.models import User
        from portal.security import parse_id

        user_id, _sep, token = str(session_id).partition(":")
        number = parse_id(user_id)
        user = db.session.get(User, number) if number and token else None
        return user if user is not None and user.has_session_token(token) else None

    with app.app_context():
        configure_engine_events(db.engine)

    from flask_babel import get_locale

    from portal import htmx, labels
    from portal.models import enums

    app.jinja_env.globals.update(
        get_locale=get_locale, labels=labels,
        **{name: getattr(enums, name) for name in enums.__all__},
    )
    htmx.init_app(app)
    from portal.security import add_security_headers

    app.after_request(add_security_headers)


def _register_blueprints(app: Flask) -> None:
    from portal.views import register_blueprints

    register_blueprints(app)


def _register_listeners(app: Flask) -> None:
    from portal.crm.events import contacts_changed
    from portal.jobs import background_problem, on_contacts_changed

    contacts_changed.connect(on_contacts_changed)
    # Pages say so when queued work cannot start (Redis down, no worker), instead of "in the background".
    app.jinja_env.globals["background_problem"] = background_problem
