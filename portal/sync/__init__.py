"""The sync engine: everything between anaba's contact base and a Mailchimp audience.

Modules by responsibility (SPEC rules in brackets):

- :mod:`.lifecycle` — create, validate, send back, pause, reconnect, delete a connector (R5–R9);
- :mod:`.mailchimp_access` — the connector's Mailchimp client, the API-key check (R5, R20);
- :mod:`.audience` — the audience's merge fields, the proposed mapping, the validation checks (R5, R7);
- :mod:`.consent_import` — consent from the audience at setup (R6, R16);
- :mod:`.preview` — the dry-run preview (R7);
- :mod:`.initial_copy` — the resumable copy (R8);
- :mod:`.push` — the one write path for members (R1, R3, R4, R10);
- :mod:`.eligibility` — who is sent and why the others are not (R2, R14, R17);
- :mod:`.contact_state` — each contact's sync state, read and written (R17);
- :mod:`.error_fixes` — the error list and its fix actions (R19);
- :mod:`.activity_import` — the weekly import of campaign activity onto each contact (R18);
- :mod:`.notifications` — the e-mails to customers and support;
- :mod:`.runs` — a connector's background runs (rows, progress, outcomes).

It reaches Mailchimp only through :mod:`portal.mailchimp`, and never enqueues anything: work
meant for the background is created as a run row and returned; ``portal.jobs`` enqueues it.
"""
from __future__ import annotations


class ConnectorError(Exception):
    """A connector operation refused, with a human `.message` (already translated) to show as is."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
