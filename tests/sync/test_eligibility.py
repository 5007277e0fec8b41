"""Which contacts go to Mailchimp and the state each one shows (R2, R14, R16, R17, R19): the one
place that decides it (``portal.sync.eligibility``) and the one that writes it
(``portal.sync.contact_state``)."""
from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from portal.mailchimp import MailchimpError
from portal.models import Consent, NotSyncedReason, SyncState
from portal.sync.contact_state import SyncRow
from portal.sync.eligibility import judge, own_reason, state_for_reason

from sync_helpers import add_contacts


def _contact(**changes) -> SimpleNamespace:
    values = {"id": 1, "email": "jeanne@ardent-clients.fr", "email_normalized": "jeanne@ardent-clients.fr",
              "consent": Consent.OPT_IN, "consent_locked": False, "email_bounced": False, "do_not_sync": False,
              "deleted_at": None}
    values.update(changes)
    return SimpleNamespace(**values)


# --- one contact, on its own ---------------------------------------------------------------------

def test_a_live_opt_in_contact_with_a_valid_address_goes_to_mailchimp():
    """R2: valid e-mail, opt-in, not deleted: eligible."""
    assert own_reason(_contact()) == ""


@pytest.mark.parametrize(("changes", "reason"), [
    ({"consent": Consent.UNKNOWN}, NotSyncedReason.NO_CONSENT),
    ({"consent": Consent.OPT_OUT}, NotSyncedReason.OPT_OUT),
    ({"consent": Consent.OPT_OUT, "consent_locked": True}, NotSyncedReason.CONSENT_LOCKED),
])
def test_only_opt_in_contacts_are_synced(changes, reason):
    """R14: unknown or opt-out consent keeps the contact out, and says which (R16: a self-unsubscribe
    reads as locked consent, whose fix is re-subscription through Mailchimp)."""
    assert own_reason(_contact(**changes)) == reason


@pytest.mark.parametrize(("changes", "reason"), [
    ({"email": "", "email_normalized": None}, NotSyncedReason.NO_EMAIL),
    ({"email": "   ", "email_normalized": None}, NotSyncedReason.NO_EMAIL),
    ({"email": "jeanne@@ardent", "email_normalized": None}, NotSyncedReason.INVALID_EMAIL),
    ({"deleted_at": datetime(2026, 1, 1, tzinfo=timezone.utc)}, NotSyncedReason.DELETED),
    ({"do_not_sync": True}, NotSyncedReason.DO_NOT_SYNC),
    ({"email_bounced": True}, NotSyncedReason.BOUNCED),
])
def test_a_contact_left_out_says_why(changes, reason):
    """R2, R17: no e-mail, an address Mailchimp would refuse, deleted in anaba, marked "not to be
    synced" (R19), bounced: each a reason of its own."""
    assert own_reason(_contact(**changes)) == reason


def test_the_first_reason_that_applies_is_the_one_shown():
    """R17: a deleted contact with no e-mail and no consent reads "deleted"; one with no e-mail
    and no consent reads "no e-mail" (the fix the customer needs first)."""
    assert own_reason(_contact(deleted_at=datetime.now(timezone.utc), email="", consent=Consent.UNKNOWN)) \
        == NotSyncedReason.DELETED
    assert own_reason(_contact(email="", consent=Consent.UNKNOWN)) == NotSyncedReason.NO_EMAIL


def test_a_bounced_address_shows_the_bounced_state_and_every_other_reason_not_synced():
    """R17: "bounced" is a state of its own; the other reasons show "not synced (reason)"."""
    assert state_for_reason(NotSyncedReason.BOUNCED) == SyncState.BOUNCED
    assert {state_for_reason(r) for r in NotSyncedReason if r != NotSyncedReason.BOUNCED} == {SyncState.NOT_SYNCED}


# --- contacts sharing an address (the owner rule) ---------------------------------------------------

def test_of_contacts_sharing_an_address_the_oldest_eligible_one_owns_it(app, workspace):
    """R2, R19: one Mailchimp member per address; the others are "not synced: shared address"."""
    ids = add_contacts(workspace, 3, email=lambda i: "accueil@ardent-clients.fr")
    verdicts = judge(workspace.id, None, _rows(ids))
    assert verdicts[ids[0]].eligible
    assert [verdicts[i].reason for i in ids[1:]] == [NotSyncedReason.SHARED_EMAIL] * 2


def test_a_twin_that_cannot_be_sent_does_not_take_the_address(app, workspace):
    """R2, R14: an opt-out (or deleted) older twin is not a candidate: the opt-in one owns the address."""
    older = add_contacts(workspace, 1, consent="opt_out", email=lambda i: "accueil@ardent-clients.fr")
    newer = add_contacts(workspace, 1, start=1, email=lambda i: "accueil@ardent-clients.fr")
    verdicts = judge(workspace.id, None, _rows(older + newer))
    assert verdicts[older[0]].reason == NotSyncedReason.OPT_OUT and verdicts[newer[0]].eligible


def test_the_owner_the_customer_chose_keeps_the_address(app, workspace):
    """R19 "choose which contact owns a shared e-mail": the chosen one is sent, the oldest is not."""
    from portal.extensions import db
    from portal.models import Connector, ConnectorStatus, ContactSync

    ids = add_contacts(workspace, 2, email=lambda i: "accueil@ardent-clients.fr")
    connector = Connector(workspace_id=workspace.id, status=ConnectorStatus.ACTIVE, api_key_encrypted="x",
                          api_key_hint="…", audience_id="a1", audience_name="Clients", field_mapping=[],
                          merge_fields_to_create=[], sent_back_reason="", paused_reason="")
    db.session.add(connector)
    db.session.flush()
    db.session.add(ContactSync(connector_id=connector.id, workspace_id=workspace.id, contact_id=ids[1],
                               state=SyncState.NOT_SYNCED, reason=NotSyncedReason.SHARED_EMAIL, synced_tags=[],
                               error_kind="", error_message="", error_fix="", error_field="", attempts=0,
                               owner_chosen=True, erase_requested=False))
    db.session.commit()
    verdicts = judge(workspace.id, connector.id, _rows(ids))
    assert verdicts[ids[1]].eligible and verdicts[ids[0]].reason == NotSyncedReason.SHARED_EMAIL


def test_a_chunk_is_judged_against_contacts_outside_it(app, workspace):
    """R2: a contact judged alone still loses its address to an older twin that is not in the chunk."""
    older = add_contacts(workspace, 1, email=lambda i: "accueil@ardent-clients.fr")
    newer = add_contacts(workspace, 1, start=1, email=lambda i: "accueil@ardent-clients.fr")
    assert judge(workspace.id, None, _rows(newer))[newer[0]].reason == NotSyncedReason.SHARED_EMAIL
    assert judge(workspace.id, None, _rows(older))[older[0]].eligible


def _rows(ids):
    from portal.extensions import db
    from portal.models import Contact

    return [db.session.get(Contact, i) for i in ids]


# --- the state a contact shows (R17) --------------------------------------------------------------

def _row(**values) -> SyncRow:
    return SyncRow({"state": SyncState.PENDING, "reason": "", "synced_tags": [], "error_kind": "",
                    "error_message": "", "error_fix": "", "error_field": "", "attempts": 0, **values}, 7)


def test_a_successful_push_shows_synced_with_its_time_and_clears_the_error():
    """R17, R19: the red error goes once Mailchimp takes the contact; the time is shown."""
    row = _row(state=SyncState.ERROR, error_kind="invalid_email", error_message="bad", error_fix="edit", attempts=2)
    at = datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc)
    row.synced(email="jeanne@ardent-clients.fr", member_hash="abc", fingerprint="f1", tags=["VIP", "Clients"], at=at)
    assert (row.state, row.last_synced_at, row.error_kind, row.error_fix, row.attempts) == (
        SyncState.SYNCED, at, "", "", 0)
    assert row.synced_tags == ["Clients", "VIP"] and row.changed


def test_an_opt_out_pushed_shows_unsubscribed_with_its_reason():
    """R15, R17: anaba unsubscribed the member: the contact shows "unsubscribed"."""
    row = _row()
    row.synced(email="j@ardent-clients.fr", member_hash="h", fingerprint="f", tags=[],
               at=datetime.now(timezone.utc), unsubscribed=True, reason=NotSyncedReason.OPT_OUT)
    assert (row.state, row.reason) == (SyncState.UNSUBSCRIBED, NotSyncedReason.OPT_OUT)


def test_a_refusal_shows_the_error_with_its_fix_and_forgets_what_was_sent():
    """R17, R19: error (red) with Mailchimp's words and the fix; the next push sends everything again."""
    row = _row(state=SyncState.SYNCED, fingerprint="f1")
    row.failed(MailchimpError("invalid_email", status=400, title="Invalid Resource",
                              detail="Please provide a valid email address.", field="email_address"))
    assert row.state == SyncState.ERROR and row.error_kind == "invalid_email" and row.error_fix
    assert row.fingerprint is None and row.error_field == "email_address"


def test_a_transient_refusal_leaves_the_contact_pending_not_in_error():
    """R19: rate limits and outages are retried and never shown as the contact's fault."""
    row = _row(state=SyncState.PENDING)
    row.deferred()
    assert row.state == SyncState.PENDING and row.error_kind == ""


def test_a_contact_left_out_is_sent_in_full_when_it_comes_back():
    """R2: what was sent before no longer counts once the contact is left out (e.g. opt-out then opt-in)."""
    row = _row(state=SyncState.SYNCED, fingerprint="f1")
    row.left_out(NotSyncedReason.NO_CONSENT)
    assert (row.state, row.reason, row.fingerprint) == (SyncState.NOT_SYNCED, NotSyncedReason.NO_CONSENT, None)


def test_archived_or_deleted_in_mailchimp_is_shown_as_such():
    """R13: the member archived or deleted in Mailchimp: the contact says so."""
    for state in (SyncState.ARCHIVED_IN_MC, SyncState.DELETED_IN_MC):
        row = _row(state=SyncState.SYNCED, fingerprint="f")
        row.gone_from_mailchimp(state)
        assert row.state == state and row.fingerprint is None


def test_a_row_that_does_not_change_is_not_written():
    """A push over an unchanged contact writes nothing (R10: an unchanged contact sends nothing)."""
    row = _row(state=SyncState.SYNCED)
    row.restore_state()
    assert not row.changed
