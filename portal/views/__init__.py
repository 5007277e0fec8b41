"""Blueprints, one per area; register_blueprints() is called by create_app()."""
from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask) -> None:
    """Attach every area's blueprint and the error handlers."""
    from portal.views import api, auth, contacts, errors, main, support

    for module in (auth, main, contacts, support, api):
        app.register_blueprint(module.bp)
    errors.register(app)
    try:
        from portal.views import connector
    except ImportError:  # the connector area arrives with its issue
        connector = None
    if connector is not None:
        app.register_blueprint(connector.bp)
