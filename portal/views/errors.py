"""Error pages (HTML) and JSON errors for the API: never a bare 500 for bad input."""
from __future__ import annotations

from flask import Flask, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from portal.crm.errors import CrmError


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def register(app: Flask) -> None:
    """Install the handlers."""

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError) -> ResponseReturnValue:
        message = _("Your session expired or the form was sent twice. Reload the page and try again.")
        if _wants_json():
            return jsonify(code="csrf_failed", message=message), 400
        return render_template("errors/error.html", code=400, message=message), 400

    @app.errorhandler(CrmError)
    def crm_error(exc: CrmError) -> ResponseReturnValue:
        if _wants_json():
            body = {"code": exc.code, "message": exc.message}
            if hasattr(exc, "errors"):
                body["errors"] = exc.errors
            return jsonify(body), exc.status
        return render_template("errors/error.html", code=exc.status, message=exc.message), exc.status

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> ResponseReturnValue:
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
            codes = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                     405: "method_not_allowed", 413: "too_large"}
            allow = [(k, v) for k, v in exc.get_headers() if k == "Allow"]
            return jsonify(code=codes.get(exc.code, "error"), message=message), exc.code, allow
        return render_template("errors/error.html", code=exc.code, message=message), exc.code

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> ResponseReturnValue:
        app.logger.exception("unexpected error on %s", request.path)
        message = _("Something went wrong on our side. The team has been told; please try again.")
        if _wants_json():
            return jsonify(code="internal_error", message=message), 500
        return render_template("errors/error.html", code=500, message=message), 500
