"""One vocabulary: every status, state, reason and error kind has one label, in French by default
and in English on request, read the same by pages, e-mails and the API."""
from __future__ import annotations

import pytest
from flask_babel import force_locale

from portal import labels
from portal.mailchimp.errors import KINDS
from portal.models import ConnectorStatus, Consent, NotSyncedReason, RunKind, RunStatus, SyncState

TABLES = [
    (labels.connector_status, ConnectorStatus), (labels.run_kind, RunKind), (labels.run_status, RunStatus),
    (labels.sync_state, SyncState), (labels.reason, NotSyncedReason), (labels.consent, Consent),
]


@pytest.mark.parametrize(("label", "enum"), TABLES, ids=lambda x: getattr(x, "__name__", ""))
def test_every_value_of_the_vocabulary_has_a_french_and_an_english_label(app, label, enum):
    for value in enum:
        with force_locale("fr"):
            french = label(value)
        with force_locale("en"):
            english = label(value)
        assert french and english and "_" not in english, value
        assert french != value and english != value, value


def test_every_error_kind_reads_in_french_and_in_english_with_its_field(app):
    for kind in KINDS:
        with force_locale("fr"):
            french = labels.error_message(kind, "FNAME")
        with force_locale("en"):
            english = labels.error_message(kind, "FNAME")
        assert french != english, kind
        assert "{" not in french and "{" not in english, kind
    with force_locale("fr"):
        assert "FNAME" in labels.error_message("value_too_long", "FNAME")
        assert "{field}" not in labels.error_message("value_too_long")


def test_the_not_synced_reason_r14_reads_the_same_on_the_page_and_in_the_copy_e_mail(app):
    # R14: only opt-in contacts are synced; the "no consent" reason is one label everywhere.
    with force_locale("fr"):
        assert labels.reason(NotSyncedReason.NO_CONSENT) == labels.reason("no_consent")
