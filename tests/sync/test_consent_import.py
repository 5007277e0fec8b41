"""Consent imported from the audience at submission (R6, R16)."""
from __future__ import annotations

from sqlalchemy import select

from sync_helpers import add_contacts


def _contact(cid):
    from portal.extensions import db
    from portal.models import Contact

    return db.session.get(Contact, cid)


def test_a_resubscribed_member_unlocks_the_contact_and_absent_contacts_keep_their_consent(
        submit, workspace, mc, audience):
    from portal.extensions import db
    from portal.models import Contact, ConsentEvent, Workspace
    from portal.sync.runs import latest_run

    back = add_contacts(workspace, 1, email=lambda i: "back@ardent-clients.fr", consent="opt_out")[0]
    absent = add_contacts(workspace, 1, email=lambda i: "absent@ardent-clients.fr", consent="unknown")[0]
    refused = add_contacts(workspace, 1, email=lambda i: "refused@ardent-clients.fr", consent="opt_in")[0]
    locked = db.session.get(Contact, back)
    locked.consent_locked = True
    db.session.commit()
    mc.batch_subscribe(audience[1], [
        {"email_address": "Back@Ardent-Clients.fr", "status": "subscribed"},
        {"email_address": "refused@ardent-clients.fr", "status": "unsubscribed"},
    ])
    connector = submit()

    assert db.session.get(Workspace, workspace.id).consent_enabled
    assert (_contact(back).consent, _contact(back).consent_locked) == ("opt_in", False)
    assert _contact(absent).consent == "unknown"
    # Created unsubscribed through the API: an admin unsubscribe, reversible, so not locked.
    assert (_contact(refused).consent, _contact(refused).consent_locked) == ("opt_out", False)
    run = latest_run(connector.id, "consent_import")
    assert run.status == "finished"
    assert run.counts["members"] == 2 and run.counts["matched"] == 2 and run.counts["opt_in"] == 1
    assert db.session.scalar(select(ConsentEvent).where(ConsentEvent.contact_id == absent)) is None


def test_importing_twice_changes_nothing_the_second_time(submit, workspace, sim, mc, audience, run_jobs):
    from portal.extensions import db
    from portal.models import ConsentEvent
    from portal import jobs
    from portal.sync import runs as sync_runs
    from portal.sync.runs import latest_run

    cid = add_contacts(workspace, 1, consent="unknown")[0]
    mc.batch_subscribe(audience[1], [{"email_address": "person0@ardent-clients.fr", "status": "subscribed"}])
    sim.control.member_action(audience[1], "person0@ardent-clients.fr", "unsubscribe-via-form")
    connector = submit()
    assert (_contact(cid).consent, _contact(cid).consent_locked) == ("opt_out", True)
    before = db.session.scalars(select(ConsentEvent).where(ConsentEvent.contact_id == cid)).all()
    again = sync_runs.create_run(connector, "consent_import")
    db.session.commit()
    jobs.enqueue_run(again)
    run_jobs()
    after = db.session.scalars(select(ConsentEvent).where(ConsentEvent.contact_id == cid)).all()
    assert len(after) == len(before) == 1
    assert latest_run(connector.id, "consent_import").counts["unchanged"] == 1


def test_a_copy_validated_before_the_consent_import_ran_imports_it_first(mc_app, workspace, customer, support_user,
                                                                         audience, mc):
    from portal.extensions import db
    from portal import jobs
    from portal.sync.runs import latest_run

    cid = add_contacts(workspace, 1, consent="opt_in")[0]
    mc.batch_subscribe(audience[1], [{"email_address": "person0@ardent-clients.fr", "status": "unsubscribed"}])
    from portal.sync import initial_copy

    connector = jobs.submit_connector(workspace.id, customer, audience[0], audience[1])
    copy = jobs.validate_connector(connector.id, support_user)
    initial_copy.run(copy.id)  # the copy's job runs before the consent import's
    db.session.expire_all()
    assert latest_run(connector.id, "consent_import").status == "finished"
    assert _contact(cid).consent == "opt_out"
    members = {m["email_address"]: m for m in mc.iter_members(audience[1])}
    assert members["person0@ardent-clients.fr"]["status"] == "unsubscribed"  # not re-subscribed
