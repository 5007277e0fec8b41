"""One definition of every count (issue 12, R7, R8, R17, R19): the preview, the consent import, the
copy's summary, where contacts stand now, the error list, the health panel, support's overview and
the e-mail give the same numbers for a workspace holding every kind of contact."""
from __future__ import annotations

import re

import pytest

import every_kind
import factories
from portal.extensions import db
from portal.models import ContactSync, RunKind, SyncRun
from test_connector_views import _error_row, audience, make_connector, mc


# --- the definitions ----------------------------------------------------------------------------

def _run(kind, **fields):
    return SyncRun(kind=kind, counts=fields.pop("counts", {}), result=fields.pop("result", {}), **fields)


def test_a_shared_address_is_not_synced_in_the_preview_as_in_the_copy():
    from portal.sync import counts

    preview = _run(RunKind.PREVIEW, result={
        "to_create": 10, "to_update": 2, "up_to_date": 1, "skipped": {"no_email": 3},
        # a preview computed before issue 12 listed shared addresses as failures
        "predicted_failures": {"invalid_email": {"count": 2, "samples": []}, "shared_email": {"count": 4}}})
    figures = counts.from_preview(preview)
    assert figures.not_synced == {"no_email": 3, "shared_email": 4}
    assert figures.errors == {"invalid_email": 2}
    # the first copy writes every matched member: the one already current is counted among the updated
    assert (figures.created, figures.updated, figures.unchanged, figures.already_current) == (10, 3, 0, 1)
    assert figures.contacts == 10 + 3 + 7 + 2 and figures.predicted


def test_a_copy_counts_each_contact_once_and_names_unexplained_errors():
    from portal.sync import counts

    copy = _run(RunKind.INITIAL_COPY, counts={
        "created": 5, "updated": 1, "unchanged": 2, "errors": 3, "error_kinds": {"fake_email": 2},
        "skipped": {"opt_out": 1, "archived_in_mc": 1}, "deferred": 1, "member_writes": 9, "tag_calls": 4})
    figures = counts.from_copy(copy)
    assert figures.errors == {"fake_email": 2, "unknown": 1}
    assert figures.not_synced == {"opt_out": 1, "archived_in_mc": 1}
    assert (figures.sent, figures.pending, figures.contacts) == (8, 1, 14)
    assert counts.from_preview(None) is None and counts.from_copy(None) is None


def test_members_matched_count_addresses_and_contacts_apart():
    from types import SimpleNamespace

    from portal.sync import counts

    contacts = [SimpleNamespace(email_normalized=e) for e in ("a@x.fr", "a@x.fr", "b@x.fr")]
    assert counts.match_members(["a@x.fr", "b@x.fr", "c@x.fr"], contacts) == (2, 3)


@pytest.fixture
def active_with_rows(mc_app, sim, sim_key, customer, workspace):
    """An active connector (no copy run) whose contacts' rows are set by each test."""
    connector = make_connector(workspace, customer, sim_key, audience(sim, sim_key))
    connector.status = "active"
    db.session.commit()
    return connector


def test_where_contacts_stand_counts_every_live_contact_once(active_with_rows, workspace):
    from portal.sync import counts

    connector = active_with_rows
    synced = factories.contact(workspace, email="a@courriel.fr", consent="opt_in")
    refused = factories.contact(workspace, email="b@courriel.fr", consent="opt_in")
    excluded = factories.contact(workspace, email="c@courriel.fr", consent="opt_in")
    bounced = factories.contact(workspace, email="d@courriel.fr", consent="opt_in")
    deleted = factories.contact(workspace, email="e@courriel.fr", consent="opt_in")
    # Deleted contacts in every kind of state: none of them counts (the counts read the sync rows'
    # index and take the deleted contacts' rows out).
    gone = [factories.contact(workspace, email=f"gone{n}@courriel.fr", consent="opt_in") for n in range(3)]
    _error_row(connector, gone[0], state="synced")
    _error_row(connector, gone[1], state="not_synced", reason="opt_out")
    _error_row(connector, gone[2], state="unsubscribed")
    factories.contact(workspace, email="f@courriel.fr", consent="opt_in")  # never sent: waits
    _error_row(connector, synced, state="synced")
    _error_row(connector, refused, state="error", error_kind="fake_email")
    _error_row(connector, excluded, state="error", error_kind="value_too_long")
    _error_row(connector, bounced, state="bounced", reason="bounced")
    _error_row(connector, deleted, state="error", error_kind="fake_email")
    excluded.do_not_sync = True
    deleted.deleted_at = db.func.now()
    for contact in gone:
        contact.deleted_at = db.func.now()
    db.session.commit()
    db.session.execute(db.update(ContactSync).where(ContactSync.contact_id.notin_(
        [synced.id, refused.id, excluded.id, bounced.id, deleted.id, *(c.id for c in gone)])).values(state="pending"))
    db.session.commit()

    standing = counts.standing(connector)
    assert standing.contacts == 5  # the deleted contact is not counted anywhere
    assert standing.synced == 1 and standing.pending == 1
    assert standing.errors == {"fake_email": 1}  # the excluded contact's error is no longer one to fix
    assert standing.not_synced == {"do_not_sync": 1, "bounced": 1}
    assert standing.unsubscribed == 0 and standing.to_fix == 1
    assert counts.errors_by_kind(connector.id) == {"fake_email": 1}
    assert counts.problems_by_connector() == {connector.id: (1, 0)}


def test_an_address_to_decide_leaves_the_counts_once_its_owner_is_chosen(active_with_rows, workspace, customer):
    from portal import jobs
    from portal.sync import counts, error_fixes

    connector = active_with_rows
    first = factories.contact(workspace, email="famille@courriel.fr", first_name="Paul", consent="opt_in")
    second = factories.contact(workspace, email="famille@courriel.fr", first_name="Lucie", consent="opt_in")
    third = factories.contact(workspace, email="famille@courriel.fr", first_name="Jean", consent="opt_in")
    _error_row(connector, first, state="synced")
    _error_row(connector, second, state="not_synced", reason="shared_email")
    _error_row(connector, third, state="not_synced", reason="shared_email")
    assert counts.addresses_to_decide(connector.id) == 1  # one address, however many contacts share it
    groups = {g["kind"]: g for g in error_fixes.error_groups(workspace.id, connector.id)}
    shared = groups["duplicate_email"]
    assert shared["count"] == 1 and [a.email for a in shared["addresses"]] == ["famille@courriel.fr"]
    assert [c.id for c, _row in shared["addresses"][0].contacts] == [first.id, second.id, third.id]
    assert shared["addresses"][0].owner_id == first.id

    jobs.choose_email_owner(workspace.id, first.id, actor=customer.email)  # keep the owner it has

    assert counts.addresses_to_decide(connector.id) == 0
    assert "duplicate_email" not in {g["kind"] for g in error_fixes.error_groups(workspace.id, connector.id)}
    assert counts.problems_by_connector() == {}
    standing = counts.standing(connector)
    assert standing.errors_total == 0 and standing.addresses_to_decide == 0
    assert standing.pending == 3  # the three are pushed again: the owner overwrites the member


# --- a workspace with every kind of contact, from the preview to the e-mail ------------------------

def _figures(f) -> dict:
    return {"contacts": f.contacts, "created": f.created, "updated": f.updated, "unchanged": f.unchanged,
            "not_synced": f.not_synced_total, "errors": f.errors_total}


def _email_numbers(body: str) -> dict[str, int]:
    """'Label : 4' lines of the copy e-mail, by label."""
    return {label.strip(" -"): int(re.sub(r"\D", "", n)) for label, n in
            re.findall(r"^(.+?)\s*:\s*(\d[\d\u202f\u00a0 ]*?)\s*$", body, re.M)}


def test_preview_copy_standing_errors_support_and_email_agree(mc_app, sim, sim_key, workspace, customer,
                                                               support_user, run_jobs, mailbox):
    from portal import jobs
    from portal.sync import counts, error_fixes, health, overview
    from portal.sync import runs as sync_runs

    world = every_kind.build(workspace, sim, sim_key, mc_request=lambda m, p, **kw: mc(sim, sim_key, m, p, **kw))
    connector = make_connector(workspace, customer, sim_key, world["list_id"])
    run_jobs()  # consent import, then the preview

    consent = sync_runs.latest_run(connector.id, RunKind.CONSENT_IMPORT)
    assert consent.counts["members"] == 4 and consent.counts["matched"] == 3  # the 4th member has no contact
    preview_run = sync_runs.latest_run(connector.id, RunKind.PREVIEW)
    assert preview_run.result["audience"]["matched"] == consent.counts["matched"]  # the same definition
    preview = counts.from_preview(preview_run)
    assert _figures(preview) == every_kind.EXPECTED
    assert preview.not_synced == every_kind.EXPECTED_NOT_SYNCED and preview.errors == every_kind.EXPECTED_ERRORS
    assert preview.already_current == 1  # Chloé
    assert preview_run.error_count == 1  # the shared address is no predicted failure

    jobs.validate_connector(connector.id, support_user)
    run_jobs()
    db.session.expire_all()
    copy = counts.from_copy(sync_runs.latest_run(connector.id, RunKind.INITIAL_COPY))
    assert _figures(copy) == every_kind.EXPECTED
    assert copy.not_synced == preview.not_synced and copy.errors == preview.errors

    standing = counts.standing(connector)
    assert standing.contacts == copy.contacts and standing.synced == copy.sent
    assert standing.not_synced == copy.not_synced and standing.errors == copy.errors
    assert standing.addresses_to_decide == 1
    assert health.connector_health(connector).errors_by_kind == copy.errors
    groups = error_fixes.error_groups(workspace.id, connector.id)
    assert sum(g["count"] for g in groups if g["kind"] != "duplicate_email") == copy.errors_total
    view = overview.support_overview()
    assert [(c.id, e, s) for c, _w, e, s in view.with_errors] == [(connector.id, 1, 1)]
    assert [(r.errors, r.addresses_to_decide, r.contacts) for r in view.workspaces] == [(1, 1, 12)]

    mail = [m for m in mailbox if m["To"] == customer.email and "Mailchimp" in m["Subject"]][-1]
    body = mail.get_body(("plain",)).get_content()
    numbers = _email_numbers(body)
    assert numbers, body
    assert numbers["Créés dans Mailchimp"] == copy.created
    assert numbers["Mis à jour dans Mailchimp"] == copy.updated
    assert numbers["Déjà à jour"] == copy.unchanged
    assert numbers["Non synchronisés"] == copy.not_synced_total
    assert numbers["Refusés par Mailchimp"] == copy.errors_total
    assert numbers["consentement pas encore donné"] == 1 and numbers["pas d'adresse e-mail"] == 1
