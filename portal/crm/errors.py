"""Errors the contact base raises; views and the API turn them into messages and status codes."""
from __future__ import annotations


class CrmError(Exception):
    """Base class: `code` is stable (the API exposes it), `message` is for people."""

    code = "crm_error"
    status = 400

    def __init__(self, message: str = "", **extra) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra


class ValidationFailed(CrmError):
    """Some fields are invalid; `errors` maps field name to a human message."""

    code = "validation_failed"
    status = 422

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


class ContactNotFound(CrmError):
    """No such contact in this workspace (also what another workspace's id gives)."""

    code = "not_found"
    status = 404


class ConsentLocked(CrmError):
    """The contact unsubscribed themself in Mailchimp: only Mailchimp can opt them back in (R16)."""

    code = "consent_locked"
    status = 409
