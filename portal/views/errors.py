"""Error pages (HTML) and JSON errors for the API: never a bare 500 for bad input.

Every handler rolls the database session back before rendering: a failed statement leaves the
session unusable, and the page (its header reads the logged-in user) would fail in turn.
A Redis outage is a 503 with "background processing is unavailable, try again in a minute".
A request that needs a login answers an htmx request with ``HX-Redirect`` to the login page
(the whole page goes there, not a fragment), and a page request with a redirect.
"""
from __future__ import annotations

import logging

from flask import Flask, flash, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from redis.exceptions import RedisError
from werkzeug.exceptions import HTTPException

from portal.crm.errors import CrmError
from portal.extensions import db, login_manager
from portal.htmx import is_htmx
from portal.security import current_page

log = logging.getLogger(__name__)


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def _rollback() -> None:
    try:
        db.session.rollback()
    except Exception:  # the connection itself may be gone: the page must still render
        log.exception("rollback failed while handling an error")


def background_unavailable_message() -> str:
    """What people read when Redis (the background processing) cannot be reached."""
    return _("Background processing is unavailable right now. Try again in a minute.")


def _login_redirect() -> ResponseReturnValue:
    """To the login page, coming back to the page the user was on; the whole page for htmx."""
    target = url_for("auth.login", next=current_page())
    if is_htmx():
        return "", 401, {"HX-Redirect": target}
    flash(str(login_manager.login_message), login_manager.login_message_category)
    return redirect(target)


def register(app: Flask) -> None:
    """Install the handlers."""

    login_manager.unauthorized_handler(_login_redirect)

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError) -> ResponseReturnValue:
        _rollback()
        if is_htmx() and not current_user.is_authenticated:
            return _login_redirect()  # the session expired (its CSRF token went with it)
        message = _("Your session expired or the form was sent twice. Reload the page and try again.")
        if _wants_json():
            return jsonify(code="csrf_failed", message=message), 400
        return render_template("errors/error.html", code=400, message=message), 400

    @app.errorhandler(CrmError)
    def crm_error(exc: CrmError) -> ResponseReturnValue:
        _rollback()
        if _wants_json():
            body = {"code": exc.code, "message": exc.message}
            if hasattr(exc, "errors"):
                body["errors"] = exc.errors
            return jsonify(body), exc.status
        return render_template("errors/error.html", code=exc.status, message=exc.message), exc.status

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> ResponseReturnValue:
        _rollback()
        messages = {
            400: _("The request was not understood."),
            401: _("Please log in."),
            403: _("You do not have access to this page."),
            404: _("This page does not exist, or it belongs to another workspace."),
            405: _("This action is not allowed here."),
            413: _("The file is too large."),
        }
        message = messages.get(exc.code, exc.description)
        if _wants_json():
            if exc.code == 413:
                message = _("The request body is too large (1 MiB at most).")
            codes = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                     405: "method_not_allowed", 413: "too_large"}
            allow = [(k, v) for k, v in exc.get_headers() if k == "Allow"]
            return jsonify(code=codes.get(exc.code, "error"), message=message), exc.code, allow
        return render_template("errors/error.html", code=exc.code, message=message), exc.code

    @app.errorhandler(RedisError)
    def redis_down(exc: RedisError) -> ResponseReturnValue:
        _rollback()
        app.logger.warning("Redis unavailable on %s: %s", request.path, exc)
        message = background_unavailable_message()
        headers = {"Retry-After": "60"}
        if _wants_json():
            return jsonify(code="unavailable", message=message), 503, headers
        if is_htmx():
            # A fragment on top of the page (static/js/app.js swaps a 503 that names its target),
            # not an error page inside a form.
            body = render_template("errors/_unavailable.html", message=message)
            return body, 503, {**headers, "HX-Retarget": "main", "HX-Reswap": "afterbegin"}
        return render_template("errors/error.html", code=503, message=message), 503, headers

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> ResponseReturnValue:
        _rollback()
        app.logger.exception("unexpected error on %s", request.path)
        message = _("Something went wrong on our side. The team has been told; please try again.")
        if _wants_json():
            return jsonify(code="internal_error", message=message), 500
        return render_template("errors/error.html", code=500, message=message), 500
