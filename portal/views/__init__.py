"""Blueprints, one per area; register_blueprints() is called by create_app()."""
from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask) -> None:
    """Attach every area's blueprint and the error handlers."""
    from portal.views import api, auth, contacts, errors, main, support

    for module in (auth, main, contacts, support, api):
        app.register_blueprint(module.bp)
    errors.register(app)
    import importlib

    for optional in ("connector", "support_connectors"):  # areas that arrive with the connector issue
        try:
            module = importlib.import_module(f"portal.views.{optional}")
        except ModuleNotFoundError as exc:
            if exc.name != f"portal.views.{optional}":
                raise
            continue
        app.register_blueprint(module.bp)
