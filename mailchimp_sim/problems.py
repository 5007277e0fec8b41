"""Mailchimp problem documents (API-NOTES §1.6, §1.7): the one error type of the simulator."""

from __future__ import annotations

import uuid

ERROR_TYPE = "https://mailchimp.com/developer/marketing/docs/errors/"
SCHEMA_DETAIL = (
    "The resource submitted could not be validated. "
    "For field-specific details, see the 'errors' array."
)
NOT_FOUND_DETAIL = "The requested resource could not be found."
METHOD_DETAIL = (
    "The requested method and resource are not compatible. "
    "See the Allow header for this resource's available methods."
)
LINK_HEADER = (
    '<https://us1.api.mailchimp.com/schema/3.0/Definitions/ProblemDetailDocument.json>; '
    'rel="describedBy"'
)


class ApiError(Exception):
    """An error answered as an ``application/problem+json`` document.

    ``with_type=False`` reproduces the bodies observed without ``type`` ("Member Exists",
    "Member In Compliance State"); ``errors`` becomes the ``errors[{field, message}]`` array.
    """

    def __init__(self, status: int, title: str, detail: str, errors: list | None = None,
                 with_type: bool = True, headers: dict | None = None,
                 type_value: str = ERROR_TYPE):
        super().__init__(f"{status} {title}: {detail}")
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors
        self.with_type = with_type
        self.headers = headers or {}
        self.type_value = type_value

    def document(self, instance: str) -> dict:
        """The JSON body, with ``instance`` (the request id, or "" inside batch results)."""
        doc: dict = {}
        if self.with_type:
            doc["type"] = self.type_value
        doc.update(title=self.title, status=self.status, detail=self.detail, instance=instance)
        if self.errors is not None:
            doc["errors"] = self.errors
        return doc


def new_instance() -> str:
    """A fresh request id (Mailchimp uses UUIDs for ``instance`` and ``X-Request-Id``)."""
    return str(uuid.uuid4())


def not_found() -> ApiError:
    """404 Resource Not Found, for unknown lists, members, campaigns, routes..."""
    return ApiError(404, "Resource Not Found", NOT_FOUND_DETAIL)


def method_not_allowed(allow: str) -> ApiError:
    """405 for a method a route does not support, with its ``Allow`` header."""
    return ApiError(405, "Method Not Allowed", METHOD_DETAIL, headers={"Allow": allow})


def invalid(detail: str, errors: list | None = None) -> ApiError:
    """400 Invalid Resource with a free detail (and optional field errors)."""
    return ApiError(400, "Invalid Resource", detail, errors)


def schema_invalid(field: str, message: str) -> ApiError:
    """400 Invalid Resource for a body that fails the request schema."""
    return ApiError(400, "Invalid Resource", SCHEMA_DETAIL, [{"field": field, "message": message}])


def merge_invalid(errors: list) -> ApiError:
    """400 "Your merge fields were invalid." with one ``{field, message}`` per bad value."""
    return ApiError(400, "Invalid Resource", "Your merge fields were invalid.", errors)


def member_exists(email: str) -> ApiError:
    """400 Member Exists (observed without ``type``)."""
    return ApiError(400, "Member Exists",
                    f"{email} is already a list member. Use PUT to insert or update list members.",
                    with_type=False)


def compliance_state(email: str) -> ApiError:
    """400 Member In Compliance State (observed without ``type``)."""
    return ApiError(400, "Member In Compliance State",
                    f"{email} is in a compliance state due to unsubscribe, bounce, or compliance "
                    "review and cannot be subscribed.", with_type=False)


def forgotten(email: str) -> ApiError:
    """400 Forgotten Email Not Subscribed, for any re-add after a permanent delete."""
    return ApiError(400, "Forgotten Email Not Subscribed",
                    f"{email} was permanently deleted and cannot be re-imported. "
                    "The contact must re-subscribe to get back on the list.")


def key_invalid() -> ApiError:
    """401 API Key Invalid (unknown or revoked key)."""
    return ApiError(401, "API Key Invalid",
                    "Your API key may be invalid, or you've attempted to access the wrong datacenter.")


def key_missing() -> ApiError:
    """401 when no key is sent at all (body unverified, API-NOTES §15: an assumption)."""
    return ApiError(401, "API Key Missing", "Your request did not include an API key.")


def too_many_requests() -> ApiError:
    """429 for the 11th simultaneous request of one API key."""
    return ApiError(429, "Too Many Requests",
                    "You have exceeded the limit of 10 simultaneous connections.")


def json_parse_error() -> ApiError:
    """400 for a body that is not JSON."""
    return ApiError(400, "JSON Parse Error", "We encountered an unspecified JSON parsing error.")


def internal_error() -> ApiError:
    """500 as reported for unexpected failures (``type`` is ``about:blank`` there)."""
    return ApiError(500, "Internal Server Error",
                    "A deep, internal error has occurred during the processing of your request. "
                    "Please contact support.", type_value="about:blank")


def service_unavailable() -> ApiError:
    """503, used by fault injection."""
    return ApiError(503, "Service Unavailable",
                    "The service is temporarily unavailable. Please try again later.")


METHOD_ORDER = ("GET", "POST", "PUT", "PATCH", "DELETE")


def allow_header(exc) -> str:
    """The ``Allow`` value for a 405: the route's own methods, without the ``HEAD`` and
    ``OPTIONS`` werkzeug adds on its own (Mailchimp lists e.g. ``GET, PUT``)."""
    methods = set(exc.valid_methods or ()) - {"HEAD", "OPTIONS"}
    return ", ".join(m for m in METHOD_ORDER if m in methods)
