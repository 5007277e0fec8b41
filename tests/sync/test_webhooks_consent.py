"""Consent both ways (R13, R15, R16, R21, R22): the simulator's member actions fire real webhooks to the
portal served over HTTP, the jobs apply them, and anaba's consent follows what the person did in
Mailchimp — locked when they unsubscribed themself — without writing anything back to Mailchimp."""
from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

import factories
from sync_helpers import add_contacts, last_seq, member_writes, sync_rows, writes
from webhook_helpers import delivered, public_base_on


@pytest.fixture
def hooked(copy, workspace, mc_app, live_server, run_jobs):
    """An active connector whose copy is done (8 opt-in contacts) and whose webhook is registered on
    the simulator's audience with the live test server's URL; returns (connector, contact ids)."""
    with public_base_on(mc_app, live_server):
        ids = add_contacts(workspace, 8)
        connector = copy()
        run_jobs()
        assert connector.status == "active" and connector.webhook_id and connector.webhook_problem == ""
        yield connector, ids


def email(n: int) -> str:
    return f"person{n}@ardent-clients.fr"


def crm():
    from portal.crm import contacts

    return contacts


def contact(contact_id):
    from portal.extensions import db
    from portal.models import Contact

    db.session.expire_all()
    return db.session.get(Contact, contact_id)


def consent_events(contact_id):
    from portal.extensions import db
    from portal.models import ConsentEvent

    return list(db.session.scalars(select(ConsentEvent).where(ConsentEvent.contact_id == contact_id)
                                   .order_by(ConsentEvent.id)))


def webhook_events(**where):
    from portal.extensions import db
    from portal.models import WebhookEvent

    query = select(WebhookEvent).order_by(WebhookEvent.id)
    for key, value in where.items():
        query = query.where(getattr(WebhookEvent, key) == value)
    return list(db.session.scalars(query))


def act(sim, audience, n, action, count=1, **data):
    """A member action on Mailchimp's side, its webhook delivered to the portal."""
    return delivered(sim, lambda: sim.control.member_action(audience[1], email(n), action, **data), count)


def apply(run_jobs):
    """What a worker does: apply the stored events, then replicate what changed."""
    from portal.extensions import db

    db.session.rollback()  # see what the web server thread committed
    run_jobs()
    db.session.expire_all()


# --- registration (R21) --------------------------------------------------------------------------

def test_activation_registers_our_webhook_for_user_and_admin_changes_never_api(hooked, mc, audience, app):
    from portal.sync import audience as audience_checks
    from portal.sync import health

    connector, _ids = hooked
    [hook] = mc.get_webhooks(audience[1])
    assert hook["url"] == f"{app.config['PUBLIC_BASE_URL']}/webhooks/mailchimp/{connector.webhook_secret}"
    assert hook["events"] == {"subscribe": True, "unsubscribe": True, "profile": True, "cleaned": True,
                              "upemail": True, "campaign": False}
    assert hook["sources"] == {"user": True, "admin": True, "api": False}
    assert str(hook["id"]) == connector.webhook_id
    status = health.connector_health(connector).webhook
    assert status.registered and status.problem == "" and status.url == hook["url"]
    check = [c for c in audience_checks.audience_checks(connector) if c["name"] == "Webhook"][0]
    assert check["ok"] is True  # the validation page's check is green


def test_deleting_the_connector_unregisters_the_webhook(hooked, mc, audience, support_user):
    from portal.sync import lifecycle

    connector, _ids = hooked
    lifecycle.delete_connector(connector.id, support_user)
    assert mc.get_webhooks(audience[1]) == []


def test_reconnecting_registers_the_webhook_again_and_applies_what_waited(hooked, mc, audience, customer, run_jobs):
    from portal import jobs
    from portal.mailchimp import MailchimpError
    from portal.sync import lifecycle

    connector, _ids = hooked
    mc.delete_webhook(audience[1], connector.webhook_id)  # lost while the connector was paused
    lifecycle.pause_connector(connector.id, MailchimpError("api_key_invalid"))
    jobs.reconnect_connector(connector.id, customer)
    apply(run_jobs)
    [hook] = mc.get_webhooks(audience[1])
    assert hook["url"].endswith(connector.webhook_secret)
    assert str(hook["id"]) == connector.webhook_id and connector.status == "active"


def test_re_register_replaces_a_webhook_changed_in_mailchimp(hooked, mc, audience, run_jobs):
    from portal import jobs

    connector, _ids = hooked
    mc.delete_webhook(audience[1], connector.webhook_id)
    mc.create_webhook(audience[1], connector.webhook_url, ["subscribe"], ["user", "admin", "api"])
    jobs.reregister_webhook(connector.id)
    apply(run_jobs)
    [hook] = mc.get_webhooks(audience[1])
    assert hook["sources"]["api"] is False and hook["events"]["unsubscribe"] is True


# --- applying events (R13, R15, R16) --------------------------------------------------------------

def test_a_self_unsubscribe_through_a_form_locks_the_consent_with_mailchimps_evidence(hooked, sim, audience,
                                                                                       run_jobs):
    connector, ids = hooked
    [delivery] = act(sim, audience, 0, "unsubscribe-via-form")
    assert delivery["status"] == 200
    seq = last_seq(sim)
    apply(run_jobs)
    person = contact(ids[0])
    assert (person.consent, person.consent_locked, person.consent_lock_reason) == ("opt_out", True, "self_unsubscribe")
    [event] = consent_events(ids[0])[-1:]
    [stored] = webhook_events(type="unsubscribe")
    assert (event.channel, event.actor, event.webhook_event_id) == ("mailchimp_webhook", "Mailchimp", stored.id)
    assert event.evidence_at.strftime("%Y-%m-%d %H:%M:%S") == delivery["fired_at"]
    assert event.evidence["by"] == "contact" and event.note == "N/A (Unsubscribed by user)"
    assert stored.status == "applied" and stored.contact_id == ids[0]
    row = sync_rows(connector.id)[ids[0]]
    assert (row.state, row.reason) == ("unsubscribed", "consent_locked")
    assert member_writes(sim, seq) == []  # no echo: Mailchimp already holds it


def test_an_admin_unsubscribe_opts_out_without_a_lock_and_writes_nothing(hooked, sim, audience, run_jobs, mc):
    connector, ids = hooked
    act(sim, audience, 1, "unsubscribe-by-admin")
    seq = last_seq(sim)
    apply(run_jobs)
    person = contact(ids[1])
    assert (person.consent, person.consent_locked) == ("opt_out", False)
    assert consent_events(ids[1])[-1].evidence["by"] == "admin"
    assert sync_rows(connector.id)[ids[1]].state == "unsubscribed"
    assert writes(sim, seq) == []
    crm().set_consent(person.workspace_id, ids[1], "opt_in", actor="camille", channel="ui")  # allowed: not locked
    apply(run_jobs)
    assert mc.get_member(audience[1], email(1))["status"] == "subscribed"


def test_a_complaint_locks_the_consent_as_a_spam_report(hooked, sim, audience, run_jobs):
    _connector, ids = hooked
    act(sim, audience, 2, "complain")
    apply(run_jobs)
    assert contact(ids[2]).consent_lock_reason == "complaint"


def test_an_unsubscribe_without_action_and_with_a_repeated_reason_is_read_again(hooked, sim, audience, run_jobs):
    """API-NOTES §6.4: 2017 payloads lacked data[action]; Mailchimp's sample repeats data[reason]."""
    _connector, ids = hooked
    [delivery] = act(sim, audience, 3, "unsubscribe-via-form", omit_action=True, repeat_reason=True)
    assert "data[action]" not in delivery["payload"]
    seq = last_seq(sim)
    apply(run_jobs)
    assert contact(ids[3]).consent_locked
    reads = [r for r in sim.control.requests_log(seq) if r["path_template"].endswith("/members/{subscriber_hash}")]
    assert reads and all(r["method"] == "GET" for r in reads)


def test_a_bounce_marks_the_address_and_the_contact_is_no_longer_sent(hooked, sim, audience, run_jobs):
    connector, ids = hooked
    act(sim, audience, 4, "bounce")
    seq = last_seq(sim)
    apply(run_jobs)
    assert contact(ids[4]).email_bounced
    assert sync_rows(connector.id)[ids[4]].state == "bounced"
    crm().update_contact(contact(ids[4]).workspace_id, ids[4], {"first_name": "Rebond"}, actor="t", channel="ui")
    apply(run_jobs)
    assert member_writes(sim, seq) == []


def test_a_permanent_delete_in_mailchimp_shows_deleted_and_is_not_pushed_back(hooked, sim, audience, run_jobs):
    """R13: unsubscribe with data[action]=delete."""
    connector, ids = hooked
    act(sim, audience, 5, "delete-permanently")
    apply(run_jobs)
    assert sync_rows(connector.id)[ids[5]].state == "deleted_in_mc"
    assert contact(ids[5]).consent == "opt_in"  # an admin deleted them: the person did not say no
    seq = last_seq(sim)
    crm().update_contact(contact(ids[5]).workspace_id, ids[5], {"first_name": "Partie"}, actor="t", channel="ui")
    apply(run_jobs)
    assert member_writes(sim, seq) == []


def test_an_archive_seen_when_the_member_is_read_again_gives_archived_in_mailchimp(hooked, sim, audience, run_jobs):
    """R13: Mailchimp sends no webhook for an archive; a late unsubscribe read again finds it archived."""
    connector, ids = hooked
    delivered(sim, lambda: (
        sim.control.member_action(audience[1], email(6), "unsubscribe-via-form", omit_action=True, webhook_delay_s=1),
        sim.control.member_action(audience[1], email(6), "archive")))
    apply(run_jobs)
    assert sync_rows(connector.id)[ids[6]].state == "archived_in_mc"
    assert contact(ids[6]).consent_locked


def test_a_changed_email_follows_and_the_member_is_not_renamed_back(hooked, sim, audience, run_jobs, mc):
    connector, ids = hooked
    new = "person7.nouvelle@ardent-clients.fr"
    act(sim, audience, 7, "change-email", new_email=new)
    seq = last_seq(sim)
    apply(run_jobs)
    assert contact(ids[7]).email == new
    row = sync_rows(connector.id)[ids[7]]
    assert (row.state, row.member_email) == ("synced", new)
    assert member_writes(sim, seq) == []
    crm().update_contact(contact(ids[7]).workspace_id, ids[7], {"first_name": "Nouvelle"}, actor="t", channel="ui")
    apply(run_jobs)
    assert mc.get_member(audience[1], new)["merge_fields"]["FNAME"] == "Nouvelle"
    assert mc.get_member(audience[1], email(7)) is None  # still one member, at the new address


def test_a_changed_email_another_contact_has_is_an_error_fixed_by_choosing_the_owner(hooked, sim, audience,
                                                                                      run_jobs, workspace, mc):
    from portal import jobs
    from portal.sync import error_fixes

    connector, ids = hooked
    taken = "accueil@ardent-clients.fr"
    other = factories.contact(workspace, email=taken, first_name="Accueil", consent="opt_out")
    act(sim, audience, 0, "change-email", new_email=taken)
    seq = last_seq(sim)
    apply(run_jobs)
    assert contact(ids[0]).email == email(0)  # not followed: another contact has the address
    row = sync_rows(connector.id)[ids[0]]
    assert (row.state, row.error_kind, row.error_fix) == ("error", "email_change_conflict", "choose_owner")
    [group] = [g for g in error_fixes.error_groups(workspace.id, connector.id) if g["kind"] == "email_change_conflict"]
    assert group["items"][0][0].id == ids[0]
    crm().update_contact(workspace.id, ids[0], {"first_name": "Patiente"}, actor="t", channel="ui")
    apply(run_jobs)
    assert member_writes(sim, seq) == []  # nothing renamed back while nobody chose
    jobs.choose_email_owner(workspace.id, ids[0])
    apply(run_jobs)
    assert contact(ids[0]).email == taken
    assert sync_rows(connector.id)[ids[0]].state == "synced"
    assert mc.get_member(audience[1], taken)["merge_fields"]["FNAME"] == "Patiente"
    assert sync_rows(connector.id)[other.id].state == "not_synced"


def test_a_profile_edited_in_mailchimp_is_not_copied_and_anabas_values_go_back(hooked, sim, audience, run_jobs, mc):
    """R1: anaba wins; the drift is noted and the next push restores anaba's values."""
    from portal.extensions import db
    from portal.models import SyncEvent

    connector, ids = hooked
    act(sim, audience, 1, "edit-profile", merge_fields={"FNAME": "Changé dans Mailchimp"})
    apply(run_jobs)
    assert contact(ids[1]).first_name == "Prénom1"
    assert mc.get_member(audience[1], email(1))["merge_fields"]["FNAME"] == "Prénom1"
    kinds = db.session.scalars(select(SyncEvent.kind).where(SyncEvent.contact_id == ids[1]))
    assert "drift_repaired" in list(kinds)


# --- late, repeated, out of order (R21) ------------------------------------------------------------

def test_the_same_event_delivered_twice_is_applied_once(hooked, sim, audience, run_jobs):
    _connector, ids = hooked
    [first] = act(sim, audience, 2, "unsubscribe-via-form")
    delivered(sim, lambda: sim.control.redeliver(first["seq"]))
    apply(run_jobs)
    assert len(webhook_events(type="unsubscribe")) == 1
    assert [e.new for e in consent_events(ids[2])].count("opt_out") == 1


def test_an_older_event_delivered_late_never_overwrites_a_newer_one(hooked, sim, audience, run_jobs):
    _connector, ids = hooked
    delivered(sim, lambda: sim.control.member_action(audience[1], email(3), "unsubscribe-by-admin",
                                                     webhook_delay_s=3), count=0)
    time.sleep(1.1)  # Mailchimp's times have whole seconds
    act(sim, audience, 3, "resubscribe-via-form")
    apply(run_jobs)
    assert contact(ids[3]).consent == "opt_in"
    sim.control.wait_for_deliveries(2, timeout=10)  # the late unsubscribe arrives
    apply(run_jobs)
    assert contact(ids[3]).consent == "opt_in"
    [late] = webhook_events(type="unsubscribe")
    assert late.status == "superseded"


def test_two_changes_in_the_same_second_end_as_the_member_is(hooked, sim, audience, run_jobs):
    """An unsubscribe and a sign-up in the same second, delivered in the wrong order."""
    _connector, ids = hooked
    delivered(sim, lambda: (
        sim.control.member_action(audience[1], email(4), "unsubscribe-via-form", webhook_delay_s=1),
        sim.control.member_action(audience[1], email(4), "resubscribe-via-form")), count=2)
    apply(run_jobs)
    person = contact(ids[4])
    assert (person.consent, person.consent_locked) == ("opt_in", False)


def test_a_sign_up_older_than_a_change_made_in_anaba_does_not_overwrite_it(hooked, sim, audience, run_jobs,
                                                                            workspace):
    _connector, ids = hooked
    act(sim, audience, 5, "unsubscribe-by-admin")
    apply(run_jobs)
    delivered(sim, lambda: sim.control.member_action(audience[1], email(5), "resubscribe-via-form",
                                                     webhook_delay_s=2.5), count=0)
    time.sleep(1.1)
    crm().set_consent(workspace.id, ids[5], "unknown", actor="camille", channel="ui")
    sim.control.wait_for_deliveries(2, timeout=10)
    apply(run_jobs)
    assert contact(ids[5]).consent == "unknown"


# --- the lock end to end (R16) ---------------------------------------------------------------------

def test_the_lock_end_to_end(hooked, sim, audience, run_jobs, mc, workspace, customer_client, app):
    """Self-unsubscribe in Mailchimp → locked in anaba → opt-in refused in the pages, the API and a CSV
    import → the person signs up again through the form → unlocked and opt-in → the next edit is
    replicated."""
    import io

    from portal.models import CsvImport

    connector, ids = hooked
    person_id = ids[6]
    act(sim, audience, 6, "unsubscribe-via-form")
    apply(run_jobs)
    assert contact(person_id).consent_locked
    # pages: the record refuses, explains, and shows the sign-up form's link
    page = customer_client.post(f"/contacts/{person_id}/consent", data={"consent": "opt_in"})
    assert page.status_code == 409
    assert connector.subscribe_url and connector.subscribe_url.replace("&", "&amp;") in page.get_data(as_text=True)
    # the API
    from portal.extensions import db

    api = app.test_client().patch(f"/api/v1/contacts/{person_id}", json={"consent": "opt_in"},
                                  headers={"Authorization": f"Bearer {_own_token(workspace)}"})
    assert api.status_code == 409 and api.get_json()["code"] == "consent_locked"
    # a CSV import
    customer_client.post("/contacts/import", data={"file": (io.BytesIO(f"email,consent\n{email(6)},oui\n".encode()),
                                                             "c.csv")}, content_type="multipart/form-data")
    imp = db.session.scalar(select(CsvImport).order_by(CsvImport.id.desc()))
    customer_client.post(f"/contacts/import/{imp.id}/start", data={f"col-{i}": c for i, c in
                                                                    enumerate(imp.mapping["columns"])})
    apply(run_jobs)
    imp = db.session.get(CsvImport, imp.id)
    assert imp.rejected == 1 and "Mailchimp" in imp.rejects[0][1]  # with the reason
    assert contact(person_id).consent == "opt_out"
    assert mc.get_member(audience[1], email(6))["status"] == "unsubscribed"
    # the person signs up again through the audience's form
    act(sim, audience, 6, "resubscribe-via-form")
    seq = last_seq(sim)
    apply(run_jobs)
    person = contact(person_id)
    assert (person.consent, person.consent_locked) == ("opt_in", False)
    history = consent_events(person_id)
    assert [(e.new, e.locked, e.channel) for e in history[-2:]] == [
        ("opt_out", True, "mailchimp_webhook"), ("opt_in", False, "mailchimp_webhook")]
    assert history[-1].evidence_ip == "203.0.113.7"  # the sign-up's IP, as Mailchimp gives it
    assert member_writes(sim, seq) == []
    assert sync_rows(connector.id)[person_id].state == "synced"
    crm().update_contact(workspace.id, person_id, {"first_name": "Revenue"}, actor="camille", channel="ui")
    apply(run_jobs)
    assert mc.get_member(audience[1], email(6))["merge_fields"]["FNAME"] == "Revenue"


def _own_token(workspace) -> str:
    from portal.crm.accounts import new_api_token
    from portal.extensions import db
    from portal.models import Workspace

    return new_api_token(db.session.get(Workspace, workspace.id))


# --- no echo, and what Redis or webhooks missed ---------------------------------------------------

def test_after_our_own_writes_settle_the_count_of_mailchimp_calls_stays_flat(hooked, sim, audience, run_jobs):
    """Sources user and admin only: anaba's pushes never come back as events, and applying an event
    writes nothing to Mailchimp."""
    _connector, ids = hooked
    act(sim, audience, 0, "unsubscribe-by-admin")
    act(sim, audience, 1, "unsubscribe-via-form")
    act(sim, audience, 2, "bounce")
    act(sim, audience, 3, "change-email", new_email="person3.bis@ardent-clients.fr")
    crm().update_contact(contact(ids[4]).workspace_id, ids[4], {"first_name": "Écho"}, actor="t", channel="ui")
    apply(run_jobs)
    time.sleep(1.0)  # our push (source api) would have fired its webhook by now
    apply(run_jobs)
    settled = len(sim.control.requests_log())
    api_deliveries = [d for d in sim.control.webhook_deliveries() if d["source"] == "api"]
    assert api_deliveries == []
    time.sleep(1.0)
    apply(run_jobs)
    assert len(sim.control.requests_log()) == settled
    assert len(webhook_events()) == 4


def test_the_minute_sweep_applies_events_stored_while_redis_was_down(hooked, sim, audience, run_jobs, monkeypatch):
    from datetime import timedelta

    from redis.exceptions import ConnectionError as RedisDown

    from portal import jobs
    from portal.extensions import db

    _connector, ids = hooked

    def down(_connector_id):
        raise RedisDown("redis is down")

    monkeypatch.setattr(jobs, "_wake_webhook_applier", down)
    [delivery] = act(sim, audience, 5, "unsubscribe-via-form")
    assert delivery["status"] == 200  # stored and answered all the same
    monkeypatch.undo()
    db.session.rollback()
    [stored] = webhook_events()
    assert stored.status == "received"
    stored.received_at -= timedelta(minutes=2)
    db.session.commit()
    jobs.resume_stale_runs()
    apply(run_jobs)
    assert contact(ids[5]).consent_locked


def test_the_nightly_reconciliation_applies_what_webhooks_missed_and_repairs_the_webhook(hooked, sim, audience,
                                                                                          run_jobs, mc):
    """R22: the webhook was deleted in Mailchimp; a self-unsubscribe and a sign-up happen unseen."""
    from portal import jobs
    from portal.extensions import db
    from portal.models import ConsentEvent

    connector, ids = hooked
    mc.delete_webhook(audience[1], connector.webhook_id)
    sim.control.member_action(audience[1], email(6), "unsubscribe-via-form")
    sim.control.member_action(audience[1], email(7), "unsubscribe-by-admin")
    time.sleep(1.1)
    sim.control.member_action(audience[1], email(7), "resubscribe-via-form")
    seq = last_seq(sim)
    run = jobs.reconcile_now(connector.id)
    apply(run_jobs)
    assert contact(ids[6]).consent_locked
    assert contact(ids[7]).consent == "opt_in"
    event = db.session.scalar(select(ConsentEvent).where(ConsentEvent.contact_id == ids[6])
                              .order_by(ConsentEvent.id.desc()))
    assert event.channel == "mailchimp_reconcile" and event.locked
    db.session.refresh(run)
    assert run.result["drift"].get("unsubscribed") == 1
    assert run.result["webhook"] == {"problem": "missing", "repaired": True}
    assert len(mc.get_webhooks(audience[1])) == 1
    assert member_writes(sim, seq) == []  # consent applied, nothing pushed back


def test_events_of_a_deleted_connector_are_refused(hooked, sim, audience, support_user, run_jobs, live_server):
    import requests

    from portal.sync import lifecycle

    connector, _ids = hooked
    url = connector.webhook_url.replace("portal.localhost", "127.0.0.1")
    lifecycle.delete_connector(connector.id, support_user)
    answer = requests.post(url, data={"type": "subscribe", "fired_at": "2026-11-30 10:00:00",
                                      "data[email]": email(0), "data[list_id]": audience[1]}, timeout=5)
    assert answer.status_code == 404


def test_an_event_for_a_contact_anaba_does_not_know_is_ignored(hooked, sim, audience, run_jobs, mc):
    act_email = "inconnue@ardent-clients.fr"
    delivered(sim, lambda: sim.control.member_action(audience[1], act_email, "resubscribe-via-form"))
    apply(run_jobs)
    [event] = webhook_events(type="subscribe")
    assert event.status == "ignored"
    from portal.extensions import db
    from portal.models import Contact

    assert db.session.scalar(select(func.count()).select_from(Contact).where(
        Contact.email_normalized == act_email)) == 0  # R4: members anaba does not know are left alone


def test_an_event_at_the_new_address_before_its_upemail_finds_the_contact(hooked, sim, audience, run_jobs, mc):
    """Profile vs upemail races: the person changes address, then unsubscribes; the upemail arrives
    last. Read again, the member's Mailchimp contact_id names the contact; its e-mail follows."""
    connector, ids = hooked
    new = "person2.ailleurs@ardent-clients.fr"
    delivered(sim, lambda: sim.control.member_action(audience[1], email(2), "change-email", new_email=new,
                                                     webhook_delay_s=2), count=0)
    delivered(sim, lambda: sim.control.member_action(audience[1], new, "unsubscribe-via-form"))
    apply(run_jobs)
    person = contact(ids[2])
    assert (person.email, person.consent, person.consent_locked) == (new, "opt_out", True)
    sim.control.wait_for_deliveries(2, timeout=10)
    seq = last_seq(sim)
    apply(run_jobs)
    assert [e.status for e in webhook_events(type="upemail")] == ["ignored"]  # followed already
    assert member_writes(sim, seq) == []
    assert sync_rows(connector.id)[ids[2]].member_email == new
