"""An audience that already has members (R4, R6), contacts Mailchimp refuses (R19), and
contacts sharing an e-mail (owner rule)."""
from __future__ import annotations

from sqlalchemy import select

from sync_helpers import add_contacts, members, sync_rows


def _tags(member) -> set[str]:
    return {t["name"] for t in member["tags"]}


def _contact_by_email(workspace, email):
    from portal.extensions import db
    from portal.models import Contact

    return db.session.scalar(select(Contact).where(Contact.workspace_id == workspace.id,
                                                   Contact.email_normalized == email))


def test_existing_members_are_overwritten_and_consent_is_imported(copy, workspace, sim, mc, audience):
    from portal.extensions import db
    from portal.models import ConsentEvent

    add_contacts(workspace, 8)  # person0 (Clients, VIP), person3 and person6 (Clients, +VIP for 6)…
    add_contacts(workspace, 1, email=lambda i: "unknown.consent@ardent-clients.fr", consent="unknown")
    add_contacts(workspace, 1, email=lambda i: "left.by.form@ardent-clients.fr")
    add_contacts(workspace, 1, email=lambda i: "left.by.admin@ardent-clients.fr")
    add_contacts(workspace, 1, email=lambda i: "bounced@ardent-clients.fr")
    list_id = audience[1]
    mc.batch_subscribe(list_id, [
        {"email_address": e, "status": "subscribed", "merge_fields": {"FNAME": "Ancien", "LNAME": "Nom"}}
        for e in ("person0@ardent-clients.fr", "person1@ardent-clients.fr", "unknown.consent@ardent-clients.fr",
                  "left.by.form@ardent-clients.fr", "left.by.admin@ardent-clients.fr", "bounced@ardent-clients.fr",
                  "stranger@ardent-clients.fr")
    ])
    mc.set_member_tags(list_id, "person1@ardent-clients.fr", add=["VIP", "Salon Mailchimp"])
    mc.set_member_tags(list_id, "stranger@ardent-clients.fr", add=["VIP"])
    sim.control.member_action(list_id, "left.by.form@ardent-clients.fr", "unsubscribe-via-form")
    sim.control.member_action(list_id, "left.by.admin@ardent-clients.fr", "unsubscribe-by-admin")
    sim.control.member_action(list_id, "bounced@ardent-clients.fr", "bounce")

    connector = copy()

    after = members(mc, list_id)
    # anaba's values and tags overwrite the member's; tags anaba does not know stay (R3, R4).
    assert after["person0@ardent-clients.fr"]["merge_fields"]["FNAME"] == "Prénom0"
    assert _tags(after["person0@ardent-clients.fr"]) == {"Clients", "VIP"}
    assert after["person1@ardent-clients.fr"]["merge_fields"]["LNAME"] == "Nom1"
    assert _tags(after["person1@ardent-clients.fr"]) == {"Salon Mailchimp"}
    # A member without an anaba contact is left alone.
    assert after["stranger@ardent-clients.fr"]["merge_fields"]["FNAME"] == "Ancien"
    assert _tags(after["stranger@ardent-clients.fr"]) == {"VIP"}
    # Consent came from the audience (R6) and decided who was sent.
    unknown = _contact_by_email(workspace, "unknown.consent@ardent-clients.fr")
    by_form = _contact_by_email(workspace, "left.by.form@ardent-clients.fr")
    by_admin = _contact_by_email(workspace, "left.by.admin@ardent-clients.fr")
    bounced = _contact_by_email(workspace, "bounced@ardent-clients.fr")
    assert unknown.consent == "opt_in"
    assert by_form.consent == "opt_out" and by_form.consent_locked
    assert by_admin.consent == "opt_out" and not by_admin.consent_locked
    assert bounced.email_bounced
    events = db.session.scalars(select(ConsentEvent).where(ConsentEvent.channel == "mailchimp_import")).all()
    assert {(e.contact_id, e.new, e.locked) for e in events} == {
        (unknown.id, "opt_in", False), (by_form.id, "opt_out", True), (by_admin.id, "opt_out", False)}
    assert all(e.actor == "Mailchimp" for e in events)
    rows = sync_rows(connector.id)
    assert rows[unknown.id].state == "synced"
    assert (rows[by_form.id].state, rows[by_form.id].reason) == ("not_synced", "consent_locked")
    assert (rows[by_admin.id].state, rows[by_admin.id].reason) == ("not_synced", "opt_out")
    assert rows[bounced.id].state == "bounced"
    # Nobody was re-subscribed against their will.
    assert after["left.by.form@ardent-clients.fr"]["status"] == "unsubscribed"
    assert after["left.by.admin@ardent-clients.fr"]["status"] == "unsubscribed"
    assert after["bounced@ardent-clients.fr"]["status"] == "cleaned"


def test_preview_reports_updates_skips_and_the_audience(submit, workspace, mc, audience):
    from portal.sync.runs import latest_run

    add_contacts(workspace, 5)
    add_contacts(workspace, 2, start=50, consent="opt_out")
    add_contacts(workspace, 1, start=60, consent="unknown")
    mc.batch_subscribe(audience[1], [
        {"email_address": "person2@ardent-clients.fr", "status": "subscribed", "merge_fields": {"FNAME": "Ancien"}},
        {"email_address": "stranger@ardent-clients.fr", "status": "subscribed"},
    ])
    connector = submit()
    result = latest_run(connector.id, "preview").result
    assert result["to_create"] == 4 and result["to_update"] == 1
    assert result["skipped"] == {"opt_out": 2, "no_consent": 1}
    assert result["audience"]["members"] == 2 and result["audience"]["unknown_members"] == 1
    assert result["update_samples"][0]["changes"]["FNAME"] == ["Ancien", "Prénom2"]


def test_contacts_mailchimp_refuses_get_their_error_and_the_rest_syncs(copy, workspace, mc, audience):
    from portal.extensions import db
    from portal.models import Contact
    from portal.sync import error_fixes
    from portal.sync.runs import latest_run

    good = add_contacts(workspace, 20)
    fake = add_contacts(workspace, 1, email=lambda i: "jeanne@example.com")
    invalid = add_contacts(workspace, 1, email=lambda i: "jeanne.martin@")
    too_long = add_contacts(workspace, 1, start=900)
    db.session.get(Contact, too_long[0]).street = "x" * 300  # anaba allows 300, a text merge field 255
    db.session.commit()
    mapping = [{"field": "first_name", "tag": "FNAME"}, {"field": "last_name", "tag": "LNAME"},
               {"field": "street", "tag": "STREET", "type": "text", "name": "Rue"}]

    connector = copy(mapping=mapping)

    preview = latest_run(connector.id, "preview").result
    assert preview["predicted_failures"]["invalid_email"]["count"] == 1
    assert preview["predicted_failures"]["value_too_long"]["samples"][0]["contact_id"] == too_long[0]
    rows = sync_rows(connector.id)
    assert all(rows[cid].state == "synced" for cid in good)
    assert (rows[fake[0]].state, rows[fake[0]].error_kind, rows[fake[0]].error_fix) == (
        "error", "fake_email", "edit_contact_and_retry")
    assert (rows[invalid[0]].state, rows[invalid[0]].error_kind) == ("error", "invalid_email")
    assert (rows[too_long[0]].state, rows[too_long[0]].error_kind, rows[too_long[0]].error_field) == (
        "error", "value_too_long", "STREET")
    assert rows[too_long[0]].error_message  # plain words, shown on hover (R17)
    assert len(members(mc, audience[1])) == 20
    assert connector.status == "active"
    groups = {g["kind"]: g for g in error_fixes.error_groups(workspace.id)}
    assert set(groups) == {"fake_email", "invalid_email", "value_too_long"}
    assert groups["value_too_long"]["items"][0][0].id == too_long[0]
    assert "STREET" in groups["value_too_long"]["message"]
    assert latest_run(connector.id, "initial_copy").error_count == 3


def test_fixed_contact_is_synced_by_a_retry(copy, workspace, mc, audience, run_jobs):
    from portal.extensions import db
    from portal.models import Contact
    from portal import jobs

    add_contacts(workspace, 3)
    fake = add_contacts(workspace, 1, email=lambda i: "jeanne@example.com")[0]
    connector = copy()
    contact = db.session.get(Contact, fake)
    contact.email = "jeanne.vraie@ardent-clients.fr"
    contact.refresh_derived()
    db.session.commit()
    jobs.queue_retry(connector.id)
    run_jobs()
    db.session.expire_all()
    assert sync_rows(connector.id)[fake].state == "synced"
    assert "jeanne.vraie@ardent-clients.fr" in members(mc, audience[1])


def test_the_oldest_contact_owns_a_shared_email_until_the_customer_chooses(copy, workspace, mc, audience, run_jobs):
    from portal.extensions import db
    from portal import jobs
    from portal.sync import error_fixes

    shared = lambda i: "famille.durand@ardent-clients.fr"  # noqa: E731
    first = add_contacts(workspace, 1, email=shared, first_name="Paul")[0]
    second = add_contacts(workspace, 1, email=shared, first_name="Lucie")[0]
    add_contacts(workspace, 3)
    connector = copy()
    rows = sync_rows(connector.id)
    assert rows[first].state == "synced"
    assert (rows[second].state, rows[second].reason) == ("not_synced", "shared_email")
    assert members(mc, audience[1])["famille.durand@ardent-clients.fr"]["merge_fields"]["FNAME"] == "Paul"
    groups = {g["kind"]: g for g in error_fixes.error_groups(workspace.id)}
    assert groups["duplicate_email"]["fix"] == "choose_owner"
    assert [c.id for c, _row in groups["duplicate_email"]["items"]] == [second]

    jobs.choose_email_owner(workspace.id, second)
    run_jobs()
    db.session.expire_all()
    rows = sync_rows(connector.id)
    assert rows[second].state == "synced" and rows[second].owner_chosen
    assert (rows[first].state, rows[first].reason) == ("not_synced", "shared_email")
    after = members(mc, audience[1])
    assert after["famille.durand@ardent-clients.fr"]["merge_fields"]["FNAME"] == "Lucie"
    assert len(after) == 4


def test_every_contact_gets_a_state_with_its_reason(copy, workspace):
    from portal.extensions import db
    from portal.models import Contact

    synced = add_contacts(workspace, 1)[0]
    unknown = add_contacts(workspace, 1, start=10, consent="unknown")[0]
    no_email = add_contacts(workspace, 1, start=20, email=lambda i: None)[0]
    excluded = add_contacts(workspace, 1, start=30)[0]
    db.session.get(Contact, excluded).do_not_sync = True
    db.session.commit()
    connector = copy()
    rows = sync_rows(connector.id)
    assert {cid: (rows[cid].state, rows[cid].reason) for cid in rows} == {
        synced: ("synced", ""), unknown: ("not_synced", "no_consent"),
        no_email: ("not_synced", "no_email"), excluded: ("not_synced", "do_not_sync"),
    }


def test_a_batch_mailchimp_refuses_whole_is_split_so_one_bad_contact_never_sinks_the_others(
        submit, workspace, support_user, run_jobs, sim, mc, audience):
    """R8: someone turned the audience's ADDRESS field into a text field after setup; Mailchimp now
    refuses any batch carrying an address object as a whole. The contacts with an address get the
    error with its fix; every other contact of the chunk is copied."""
    import requests

    from portal import jobs
    from portal.extensions import db
    from portal.models import Contact, SyncRun

    ids = add_contacts(workspace, 8)
    for cid in ids[2:4]:
        contact = db.session.get(Contact, cid)
        contact.street, contact.postal_code, contact.city = "3 rue du Port", "44000", "Nantes"
    db.session.commit()
    connector = submit()
    fields = {f["tag"]: f for f in mc.get_merge_fields(audience[1])}
    auth = ("anystring", audience[0])
    requests.delete(f"{sim.api_base}lists/{audience[1]}/merge-fields/{fields['ADDRESS']['merge_id']}", auth=auth,
                    timeout=10).raise_for_status()
    requests.post(f"{sim.api_base}lists/{audience[1]}/merge-fields", auth=auth, timeout=10,
                  json={"tag": "ADDRESS", "name": "Adresse", "type": "text"}).raise_for_status()
    run = jobs.validate_connector(connector.id, support_user)
    run_jobs()
    db.session.expire_all()
    assert db.session.get(SyncRun, run.id).status == "finished"
    rows = sync_rows(connector.id)
    assert {cid for cid, r in rows.items() if r.state == "error"} == set(ids[2:4])
    assert {rows[cid].error_kind for cid in ids[2:4]} == {"merge_field_invalid"}
    assert all(rows[cid].state == "synced" for cid in ids if cid not in ids[2:4])
    assert set(members(mc, audience[1])) == {f"person{i}@ardent-clients.fr" for i in (0, 1, 4, 5, 6, 7)}
