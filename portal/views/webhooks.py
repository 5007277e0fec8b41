"""The Mailchimp audience webhook endpoint (R21): ``/webhooks/mailchimp/<secret>``.

Mailchimp checks the URL with a ``GET`` when the webhook is registered, then ``POST``\\s each event
form-encoded, and gives up after 10 s. So the endpoint only stores the raw event and answers
(:func:`portal.jobs.receive_webhook`); a job applies it. Answers: 200 (stored, or a duplicate),
400 (malformed, or another audience's event: kept for inspection), 404 (unknown secret: logged),
413 (too large), 503 when the database cannot store it (Mailchimp retries). Never 410, which
would disable the webhook, and never a 500: whatever goes wrong after the event is stored is the
job's business. Mailchimp carries no session cookie and signs
nothing (the secret in the URL is the authentication), so CSRF does not apply to this blueprint:
the only exempt one besides the token API.
"""
from __future__ import annotations

import logging

from flask import Blueprint, Response, request
from flask.typing import ResponseReturnValue

from portal import jobs
from portal.extensions import csrf
from portal.sync import webhooks

log = logging.getLogger(__name__)

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
csrf.exempt(bp)


def _plain(status: int, text: str) -> Response:
    response = Response(text + "\n", status=status, mimetype="text/plain")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/mailchimp/<secret>", methods=["GET", "HEAD"])
def validate(secret: str) -> ResponseReturnValue:
    """Mailchimp's validator (``GET`` when the webhook is registered): 200 for a connector's URL."""
    if not webhooks.knows_secret(secret):
        log.warning("webhook validation for an unknown secret from %s", request.remote_addr)
        return _plain(404, "unknown")
    return _plain(200, "ok")


@bp.post("/mailchimp/<secret>")
def receive(secret: str) -> ResponseReturnValue:
    """One event: stored durably, then answered (the job applies it)."""
    length = request.content_length
    too_large = length is not None and length > webhooks.MAX_BODY
    body = b"" if too_large else request.stream.read(webhooks.MAX_BODY + 1)
    if len(body) > webhooks.MAX_BODY:
        too_large, body = True, body[:webhooks.MAX_BODY]
    receipt = jobs.receive_webhook(secret, body if not too_large else body[:webhooks.KEEP_REJECTED],
                                   content_type=request.content_type or "", remote_addr=request.remote_addr or "",
                                   too_large=too_large)
    response = _plain(receipt.status, receipt.outcome)
    if receipt.status == 503:
        response.headers["Retry-After"] = "60"
    if too_large:
        response.headers["Connection"] = "close"  # the rest of the body is never read
    return response
