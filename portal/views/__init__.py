"""Blueprints, one per area; register_blueprints() is called by create_app()."""
from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask) -> None:
    """Attach every area's blueprint and the error handlers."""
    from portal.views import api, auth, connector, contacts, errors, main, support, support_connectors, webhooks

    for module in (auth, main, contacts, connector, support, support_connectors, api, webhooks):
        app.register_blueprint(module.bp)
    errors.register(app)
