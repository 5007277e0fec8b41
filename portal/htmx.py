"""The one place that reads HX-* headers and decides between a full page and a fragment."""
from __future__ import annotations

from typing import Any

from flask import Flask, request
from jinja2_fragments.flask import render_block
from flask import render_template


def is_htmx() -> bool:
    """True when the request comes from htmx (and is not a history restore)."""
    return request.headers.get("HX-Request") == "true" and request.headers.get("HX-History-Restore-Request") != "true"


def render(template: str, block: str | None = None, **context: Any) -> str:
    """Render the whole page, or only `block` of it when htmx asked."""
    if block and is_htmx():
        return render_block(template, block, **context)
    return render_template(template, **context)


def init_app(app: Flask) -> None:
    """Mark every response as varying on HX-Request so caches keep page and fragment apart."""

    @app.after_request
    def _vary(response):
        response.vary.add("HX-Request")
        return response
