"""Live replication (R10–R14, R17, R19): every change made in anaba after the copy reaches Mailchimp,
through the simulator, with the replication job run in-process."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from sync_helpers import add_contacts, member_writes, members, sync_rows, writes, last_seq


@pytest.fixture
def live(copy, workspace, run_jobs):
    """An active connector whose copy is done (12 opt-in contacts, some tagged); returns (connector, ids)."""
    ids = add_contacts(workspace, 12)
    connector = copy()
    assert connector.status == "active"
    run_jobs()
    return connector, ids


def _crm():
    from portal.crm import contacts

    return contacts


def edit(workspace, contact_id, **fields):
    """Change a contact through the contact base, as the pages and the API do."""
    return _crm().update_contact(workspace.id, contact_id, fields, actor="test", channel="ui")


def member(mc, audience, email):
    """The member as Mailchimp holds it (archived ones included), or None."""
    return mc.get_member(audience[1], email)


def event_kinds(contact_id):
    from portal.extensions import db
    from portal.models import SyncEvent

    return [e.kind for e in db.session.scalars(select(SyncEvent).where(SyncEvent.contact_id == contact_id)
                                               .order_by(SyncEvent.id))]


def test_an_edit_made_after_the_copy_reaches_the_member(live, workspace, run_jobs, mc, audience, sim):
    connector, ids = live
    seq = last_seq(sim)
    edit(workspace, ids[0], first_name="Léonie")
    assert sync_rows(connector.id)[ids[0]].state == "pending"  # R17: shown pending until it is sent
    run_jobs()
    assert member(mc, audience, "person0@ardent-clients.fr")["merge_fields"]["FNAME"] == "Léonie"
    row = sync_rows(connector.id)[ids[0]]
    assert row.state == "synced" and row.dirty_at is None
    assert len(member_writes(sim, seq)) == 1  # one batch subscribe, nothing else written


def test_a_new_opt_in_contact_is_created_and_an_unknown_one_is_not(live, workspace, run_jobs, mc, audience):
    _crm().create_contact(workspace.id, {"email": "nouvelle@ardent-clients.fr", "first_name": "Nina",
                                         "consent": "opt_in"}, actor="test", channel="api")
    _crm().create_contact(workspace.id, {"email": "inconnue@ardent-clients.fr", "first_name": "Ivo"},
                          actor="test", channel="api")
    run_jobs()
    assert member(mc, audience, "nouvelle@ardent-clients.fr")["status"] == "subscribed"
    assert member(mc, audience, "inconnue@ardent-clients.fr") is None  # R14: unknown consent is not sent


def test_an_unchanged_contact_sends_nothing(live, workspace, run_jobs, sim):
    from portal import jobs

    connector, ids = live
    seq = last_seq(sim)
    jobs.queue_retry(connector.id, ids[:5])  # asked to push, but nothing changed since the last push
    run_jobs()
    assert writes(sim, seq) == []
    assert {sync_rows(connector.id)[cid].state for cid in ids[:5]} == {"synced"}


def test_bursts_coalesce_into_at_most_two_pushes_the_last_with_the_final_state(live, workspace, run_jobs, mc,
                                                                                audience, sim, monkeypatch):
    from portal.sync import replication

    connector, ids = live
    for n in range(5):
        edit(workspace, ids[1], first_name=f"Brouillon {n}")
    real = replication.send_prepared
    calls = []

    def send_while_editing(client, prepared, audience_id, **options):
        calls.append(1)
        if len(calls) == 1:  # five more edits land while the first push is on its way
            for n in range(5, 10):
                edit(workspace, ids[1], first_name=f"Brouillon {n}")
        return real(client, prepared, audience_id, **options)

    monkeypatch.setattr(replication, "send_prepared", send_while_editing)
    seq = last_seq(sim)
    run_jobs()
    assert len(member_writes(sim, seq)) == 2
    assert member(mc, audience, "person1@ardent-clients.fr")["merge_fields"]["FNAME"] == "Brouillon 9"
    assert sync_rows(connector.id)[ids[1]].dirty_at is None


def test_tags_added_and_removed_in_anaba_follow_and_tags_anaba_does_not_know_stay(live, workspace, run_jobs, mc,
                                                                                   audience, sim):
    connector, ids = live
    email = "person0@ardent-clients.fr"  # tagged Clients and VIP by the copy
    mc.set_member_tags(audience[1], email, add=["Atelier de mai"])  # set in Mailchimp, unknown to anaba
    seq = last_seq(sim)
    edit(workspace, ids[0], tags=["Clients", "Salon 2026"])
    run_jobs()
    assert set(mc.get_member_tags(audience[1], email)) == {"Clients", "Salon 2026", "Atelier de mai"}
    calls = writes(sim, seq)
    assert calls and all("/tags" in c["path_template"] or "/segments" in c["path_template"] for c in calls)
    assert sorted(sync_rows(connector.id)[ids[0]].synced_tags) == ["Clients", "Salon 2026"]


def test_a_member_with_more_than_fifty_tags_loses_the_tag_anaba_removed(live, workspace, run_jobs, mc, audience):
    """R3: the member object shows 50 tags; the one anaba removes may be past them."""
    connector, ids = live
    email = "person2@ardent-clients.fr"
    mc.set_member_tags(audience[1], email, add=[f"Mailchimp {n:02d}" for n in range(60)])
    mc.set_member_tags(audience[1], email, add=["Clients"])  # the 61st: anaba knows it, the contact does not have it
    edit(workspace, ids[2], first_name="Cinquante")
    run_jobs()
    tags = set(mc.get_member_tags(audience[1], email))
    assert "Clients" not in tags and len(tags) == 60


def test_consent_drives_the_member_status(live, workspace, run_jobs, mc, audience):
    """R14, R15: opt-out → unsubscribed; opt-in again → subscribed; unknown → unsubscribed with the reason."""
    connector, ids = live
    _crm().set_consent(workspace.id, ids[3], "opt_out", actor="test", channel="ui")
    run_jobs()
    assert member(mc, audience, "person3@ardent-clients.fr")["status"] == "unsubscribed"
    row = sync_rows(connector.id)[ids[3]]
    assert (row.state, row.reason) == ("unsubscribed", "opt_out")
    _crm().set_consent(workspace.id, ids[3], "opt_in", actor="test", channel="ui")
    run_jobs()
    assert member(mc, audience, "person3@ardent-clients.fr")["status"] == "subscribed"
    _crm().set_consent(workspace.id, ids[4], "unknown", actor="test", channel="ui")
    run_jobs()
    assert member(mc, audience, "person4@ardent-clients.fr")["status"] == "unsubscribed"
    row = sync_rows(connector.id)[ids[4]]
    assert (row.state, row.reason) == ("unsubscribed", "no_consent")


def test_a_locked_consent_is_never_sent_as_subscribed(live, workspace, run_jobs, mc, audience, sim):
    """R16: the person unsubscribed through a Mailchimp link; anaba knows it (locked opt-out). Told
    without the webhook's evidence that Mailchimp holds it, the push makes sure: one unsubscribe (which
    keeps the person's own reason in Mailchimp), then nothing more."""
    connector, ids = live
    sim.control.member_action(audience[1], "person5@ardent-clients.fr", "unsubscribe-via-form")
    _crm().set_consent(workspace.id, ids[5], "opt_out", actor="Mailchimp", channel="mailchimp_webhook", locked=True,
                       lock_reason="self_unsubscribe")
    edit(workspace, ids[5], first_name="Verrouillée")
    seq = last_seq(sim)
    run_jobs()
    assert len(member_writes(sim, seq)) <= 1
    held = member(mc, audience, "person5@ardent-clients.fr")
    assert held["status"] == "unsubscribed" and held["unsubscribe_reason"] != "N/A (Unsubscribed by admin)"
    row = sync_rows(connector.id)[ids[5]]
    assert (row.state, row.reason) == ("unsubscribed", "consent_locked")
    seq = last_seq(sim)
    edit(workspace, ids[5], job_title="Gérante")  # not a mapped field: nothing to send
    run_jobs()
    assert member_writes(sim, seq) == []


def test_an_email_change_renames_the_same_member(live, workspace, run_jobs, mc, audience):
    """R11: PUT on the old address's hash with the new address: the member is renamed, not duplicated."""
    connector, ids = live
    before = len(members(mc, audience[1]))
    old = member(mc, audience, "person6@ardent-clients.fr")
    edit(workspace, ids[6], email="person6.nouvelle@ardent-clients.fr")
    run_jobs()
    assert len(members(mc, audience[1])) == before
    assert member(mc, audience, "person6@ardent-clients.fr") is None
    renamed = member(mc, audience, "person6.nouvelle@ardent-clients.fr")
    assert renamed["contact_id"] == old["contact_id"] and renamed["status"] == "subscribed"
    assert {t["name"] for t in renamed["tags"]} == {t["name"] for t in old["tags"]}
    row = sync_rows(connector.id)[ids[6]]
    assert row.state == "synced" and row.member_email == "person6.nouvelle@ardent-clients.fr"
    assert "renamed" in event_kinds(ids[6])


def test_an_email_change_to_an_address_already_in_the_audience_is_an_error_with_its_fix(live, workspace, run_jobs,
                                                                                         mc, audience):
    connector, ids = live
    mc.batch_subscribe(audience[1], [{"email_address": "deja.la@ardent-clients.fr", "status": "subscribed"}])
    before = len(members(mc, audience[1]))
    edit(workspace, ids[7], email="deja.la@ardent-clients.fr")
    run_jobs()
    row = sync_rows(connector.id)[ids[7]]
    assert (row.state, row.error_kind, row.error_fix) == ("error", "email_taken", "edit_contact_and_retry")
    assert len(members(mc, audience[1])) == before  # nothing duplicated
    assert member(mc, audience, "person7@ardent-clients.fr")["status"] == "subscribed"  # the old member is kept


def test_an_email_change_to_a_permanently_deleted_address_is_an_error(live, workspace, run_jobs, mc, audience, sim):
    connector, ids = live
    mc.batch_subscribe(audience[1], [{"email_address": "efface@ardent-clients.fr", "status": "subscribed"}])
    sim.control.member_action(audience[1], "efface@ardent-clients.fr", "delete-permanently")
    edit(workspace, ids[8], email="efface@ardent-clients.fr")
    run_jobs()
    row = sync_rows(connector.id)[ids[8]]
    assert (row.state, row.error_kind) == ("error", "forgotten_email")
    assert member(mc, audience, "person8@ardent-clients.fr")["status"] == "subscribed"


def test_deleting_a_contact_archives_its_member(live, workspace, run_jobs, mc, audience):
    """R12."""
    connector, ids = live
    _crm().delete_contact(workspace.id, ids[9], actor="test", channel="ui")
    run_jobs()
    assert member(mc, audience, "person9@ardent-clients.fr")["status"] == "archived"
    assert "archived" in event_kinds(ids[9])


def test_erase_deletes_the_member_for_good_and_the_history_says_so(live, workspace, run_jobs, mc, audience):
    """R12: the GDPR erasure; the contact stays in anaba, "deleted in Mailchimp", never pushed again."""
    from portal import jobs

    connector, ids = live
    jobs.erase_from_mailchimp(workspace.id, ids[10])
    run_jobs()
    assert member(mc, audience, "person10@ardent-clients.fr") is None
    assert sync_rows(connector.id)[ids[10]].state == "deleted_in_mc"
    assert "erased" in event_kinds(ids[10])
    edit(workspace, ids[10], first_name="Revenante")
    run_jobs()
    assert member(mc, audience, "person10@ardent-clients.fr") is None


def test_a_member_archived_in_mailchimp_is_not_brought_back_until_someone_acts(live, workspace, run_jobs, mc,
                                                                               audience, sim):
    """R13: Mailchimp sends no webhook for an archive; the next push looks for archives first."""
    from portal import jobs

    connector, ids = live
    sim.control.member_action(audience[1], "person11@ardent-clients.fr", "archive")
    edit(workspace, ids[11], first_name="Archivée")
    run_jobs()
    assert member(mc, audience, "person11@ardent-clients.fr")["status"] == "archived"
    assert sync_rows(connector.id)[ids[11]].state == "archived_in_mc"
    jobs.push_again(workspace.id, ids[11])  # someone acts: the contact is opt-in, the member comes back
    run_jobs()
    assert member(mc, audience, "person11@ardent-clients.fr")["status"] == "subscribed"
    assert sync_rows(connector.id)[ids[11]].state == "synced"


def test_a_member_deleted_in_mailchimp_shows_deleted_and_is_not_pushed(live, workspace, run_jobs, mc, audience, sim):
    connector, ids = live
    sim.control.member_action(audience[1], "person0@ardent-clients.fr", "delete-permanently")
    edit(workspace, ids[0], first_name="Supprimée")
    run_jobs()
    assert sync_rows(connector.id)[ids[0]].state == "deleted_in_mc"
    seq = last_seq(sim)
    edit(workspace, ids[0], first_name="Encore")
    run_jobs()
    assert member_writes(sim, seq) == []


def test_a_shared_email_freed_by_its_owner_goes_to_the_other_contact(live, workspace, run_jobs, mc, audience):
    connector, ids = live
    twin = _crm().create_contact(workspace.id, {"email": "person1@ardent-clients.fr", "first_name": "Jumelle",
                                                "consent": "opt_in"}, actor="test", channel="ui")
    run_jobs()
    assert sync_rows(connector.id)[twin.id].reason == "shared_email"
    _crm().delete_contact(workspace.id, ids[1], actor="test", channel="ui")
    run_jobs()
    assert sync_rows(connector.id)[twin.id].state == "synced"
    assert member(mc, audience, "person1@ardent-clients.fr")["merge_fields"]["FNAME"] == "Jumelle"


def test_mailchimp_down_leaves_changes_pending_never_blames_the_contact_and_catches_up(live, workspace, run_jobs,
                                                                                       mc, audience, sim):
    """R19, R20: a whole-call failure is retried with backoff, then later; the contact shows pending."""
    from portal import jobs
    from portal.extensions import db
    from portal.models import Connector

    connector, ids = live
    sim.control.set_faults(audience[0], error_rate=1.0, statuses=(503,))
    edit(workspace, ids[2], first_name="Patiente")
    run_jobs()
    row = sync_rows(connector.id)[ids[2]]
    assert row.state == "pending" and row.dirty_at is not None and row.error_kind == ""
    db.session.expire_all()
    assert db.session.get(Connector, connector.id).last_error_kind == "unavailable"
    sim.control.clear_faults(audience[0])
    jobs.queue_replication(connector.id)  # what the scheduled retry (or the minute sweep) does
    run_jobs()
    assert member(mc, audience, "person2@ardent-clients.fr")["merge_fields"]["FNAME"] == "Patiente"
    assert sync_rows(connector.id)[ids[2]].state == "synced"


def test_a_revoked_key_pauses_the_connector_and_blames_no_contact(live, workspace, run_jobs, audience, sim):
    from portal.extensions import db
    from portal.models import Connector

    connector, ids = live
    sim.control.revoke_key(audience[0])
    edit(workspace, ids[3], first_name="Révoquée")
    run_jobs()
    db.session.expire_all()
    assert db.session.get(Connector, connector.id).status == "paused"
    assert sync_rows(connector.id)[ids[3]].state == "pending"


def test_changes_made_during_the_copy_are_pushed_once_it_ends(submit, workspace, support_user, run_jobs, mc,
                                                              audience):
    from portal import jobs

    ids = add_contacts(workspace, 3)
    connector = submit()
    jobs.validate_connector(connector.id, support_user)
    edit(workspace, ids[0], first_name="Pendant")  # the copy has not run yet: the change waits
    run_jobs()
    assert member(mc, audience, "person0@ardent-clients.fr")["merge_fields"]["FNAME"] == "Pendant"
    assert sync_rows(connector.id)[ids[0]].state == "synced"


def test_the_minute_sweep_sends_changes_whose_job_was_lost(live, workspace, run_jobs, mc, audience):
    """Redis lost the job (or was down when the change was made): the cron's sweep re-queues it."""
    from datetime import timedelta

    from portal import jobs
    from portal.extensions import db, redis_store
    from portal.models import ContactSync

    connector, ids = live
    edit(workspace, ids[4], first_name="Oubliée")
    redis_store.redis.flushdb()
    row = db.session.scalar(select(ContactSync).where(ContactSync.contact_id == ids[4]))
    row.dirty_at = row.dirty_at - timedelta(minutes=2)
    db.session.commit()
    jobs.resume_stale_runs()
    run_jobs()
    assert member(mc, audience, "person4@ardent-clients.fr")["merge_fields"]["FNAME"] == "Oubliée"


def test_a_contact_mailchimp_refuses_for_now_during_the_copy_is_sent_once_the_refusal_lifts(copy, workspace, run_jobs,
                                                                                             sim, mc, audience):
    """R8, R19: a sign-up throttle on one address during the copy leaves that contact pending (never
    in error: it is not its fault), with a push planned for when the throttle may have lifted."""
    from datetime import timedelta

    from portal import jobs
    from portal.extensions import db
    from portal.models import ContactSync, SyncState, utcnow

    ids = add_contacts(workspace, 12)
    sim.control.throttle_address("person5@ardent-clients.fr")
    connector = copy()
    run_jobs()
    row = db.session.scalar(select(ContactSync).where(ContactSync.contact_id == ids[5]))
    assert row.state == SyncState.PENDING and row.error_kind == ""
    assert row.dirty_at is not None and row.dirty_at > utcnow() + timedelta(minutes=30)  # Mailchimp: retry much later
    assert member(mc, audience, "person5@ardent-clients.fr") is None

    sim.control.release_address("person5@ardent-clients.fr")
    row.dirty_at = utcnow() - timedelta(minutes=1)  # the hour has passed
    db.session.commit()
    jobs.resume_stale_runs()
    run_jobs()
    assert member(mc, audience, "person5@ardent-clients.fr")["status"] == "subscribed"
    assert sync_rows(connector.id)[ids[5]].state == SyncState.SYNCED


def test_bulk_changes_go_through_the_batch_endpoints(copy, workspace, run_jobs, sim, mc, audience):
    """R10: a tag put on 1,200 contacts costs one static-segment call per 500 e-mails; an opt-out of
    600 contacts one batch-subscribe call per 500 members — never a call per contact."""
    ids = add_contacts(workspace, 1200, tags_every=0)
    copy()
    run_jobs()
    crm = _crm()
    seq = last_seq(sim)
    assert crm.add_tag_to(workspace.id, ids, "Salon 2026", actor="test", channel="api") == 1200
    run_jobs()
    tag_calls = writes(sim, seq)
    assert len(tag_calls) == 3 and all("/segments" in c["path_template"] for c in tag_calls)
    assert "Salon 2026" in {t["name"] for t in member(mc, audience, "person1199@ardent-clients.fr")["tags"]}
    seq = last_seq(sim)
    assert crm.set_consent_of(workspace.id, ids[:600], "opt_out", actor="test", channel="api") == 600
    run_jobs()
    consent_calls = writes(sim, seq)
    assert [c["path_template"] for c in consent_calls] == ["/3.0/lists/{list_id}"] * 2
    assert member(mc, audience, "person599@ardent-clients.fr")["status"] == "unsubscribed"
    assert member(mc, audience, "person600@ardent-clients.fr")["status"] == "subscribed"


def test_a_bulk_change_keeps_several_calls_in_flight_within_the_bulk_budget(copy, workspace, run_jobs, sim, mc,
                                                                          audience, app):
    """R20, issue 14: a tag on 3,000 contacts and an opt-out of 3,000 are bulk work — their calls go
    out several at once, never more than MAILCHIMP_BULK_CONNECTIONS, and still one per 500."""
    ids = add_contacts(workspace, 3000, tags_every=0)
    connector = copy()
    run_jobs()
    app.config["MAILCHIMP_BULK_CONNECTIONS"] = 3  # rounds of 1,500 contacts, three calls at once
    sim.control.set_faults(audience[0], latency_ms=150)
    crm = _crm()
    seq = last_seq(sim)
    sim.control.clear_requests()
    crm.add_tag_to(workspace.id, ids, "Salon 2026", actor="test", channel="api")
    run_jobs()
    assert len(writes(sim, seq)) == 6  # one per 500 e-mails; the first creates the tag on its own
    assert max(sim.control.peak_concurrency().values()) == 3
    seq = last_seq(sim)
    sim.control.clear_requests()
    crm.set_consent_of(workspace.id, ids, "opt_out", actor="test", channel="api")
    run_jobs()
    assert [c["path_template"] for c in writes(sim, seq)] == ["/3.0/lists/{list_id}"] * 6
    assert max(sim.control.peak_concurrency().values()) == 3
    sim.control.clear_faults(audience[0])
    everyone = members(mc, audience[1])
    assert len(everyone) == 3000 and {m["status"] for m in everyone.values()} == {"unsubscribed"}
    assert all("Salon 2026" in {t["name"] for t in m["tags"]} for m in everyone.values())
    assert {r.state for r in sync_rows(connector.id).values()} == {"unsubscribed"}
