"""The copy survives what production throws at it (R8, R19, R20): Mailchimp faults, a revoked
key, a second worker, a re-run, and a worker killed mid-copy."""
from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from sync_helpers import (add_contacts, crash_worker, member_writes, members, start_worker, stop_worker, sync_rows,
                          wait_for, writes)


def _copy_run(connector_id):
    from portal.sync.runs import latest_run

    return latest_run(connector_id, "initial_copy")


def test_injected_faults_lose_nobody(submit, workspace, support_user, sim, mc, audience, run_jobs):
    from portal.extensions import db
    from portal import jobs

    ids = add_contacts(workspace, 1100, tags_every=2)
    connector = submit()
    sim.control.set_faults(audience[0], error_rate=0.1, statuses=(429, 500, 503), seed=7)
    jobs.validate_connector(connector.id, support_user)
    run_jobs()
    sim.control.clear_faults(audience[0])
    db.session.expire_all()
    failed = [r for r in sim.control.requests_log() if r["status"] >= 429]
    assert failed, "the fault injection did not fire"
    assert connector.status == "active" and _copy_run(connector.id).status == "finished"
    after = members(mc, audience[1])
    assert len(after) == 1100
    assert sum(1 for m in after.values() if {"name": "Clients"} in [{"name": t["name"]} for t in m["tags"]]) == 550
    rows = sync_rows(connector.id)
    assert set(rows) == set(ids) and {r.state for r in rows.values()} == {"synced"}


def test_revoked_key_mid_copy_pauses_with_a_reconnect_message(submit, workspace, support_user, sim, audience,
                                                              run_jobs, monkeypatch, mailbox):
    from portal.extensions import db
    from portal import jobs
    from portal.sync import ConnectorError
    from portal.sync import initial_copy

    ids = add_contacts(workspace, 1200)
    connector = submit()
    real_send = initial_copy.send_prepared
    calls = []

    def revoke_before_the_second_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            sim.control.revoke_key(audience[0])
        return real_send(*args, **kwargs)

    monkeypatch.setattr(initial_copy, "send_prepared", revoke_before_the_second_chunk)
    mailbox.clear()
    jobs.validate_connector(connector.id, support_user)
    run_jobs()
    db.session.expire_all()
    run = _copy_run(connector.id)
    assert run.status == "paused" and run.cursor == ids[499]
    assert connector.status == "paused"
    assert connector.paused_reason == "api_key_invalid"
    rows = sync_rows(connector.id)
    assert [cid for cid, r in rows.items() if r.state == "synced"] == ids[:500]
    assert not [r for r in rows.values() if r.state == "error"]
    assert [m["To"] for m in mailbox] == ["camille@ardent.test"]
    with pytest.raises(ConnectorError):
        jobs.reconnect_connector(connector.id, None)  # the key is still refused


def test_a_rerun_with_nothing_changed_writes_nothing(copy, workspace, sim, audience, run_jobs):
    from portal import jobs
    from portal.crm import contacts as crm
    from portal.extensions import db
    from portal.models import Contact

    ids = add_contacts(workspace, 600)
    connector = copy()
    seq = sim.control.requests_log()[-1]["seq"]
    jobs.copy_again(connector.id)
    run_jobs()
    assert writes(sim, seq) == []
    assert _copy_run(connector.id).counts["unchanged"] == 600

    seq = sim.control.requests_log()[-1]["seq"]
    jobs.copy_again(connector.id)
    # Changed through the contact base, as every change is: the copy sends it, once.
    crm.update_contact(workspace.id, ids[7], {"first_name": "Changée"}, actor="test", channel="ui")
    run_jobs()
    assert len(member_writes(sim, seq)) == 1
    assert _copy_run(connector.id).counts["updated"] == 1
    assert db.session.get(Contact, ids[7]).first_name == "Changée"


def test_only_one_worker_holds_a_run(copy, workspace, short_lease):
    from portal.extensions import db
    from portal.models import SyncRun
    from portal import background
    from portal.sync import runs as sync_runs

    add_contacts(workspace, 2)
    connector = copy()
    run = sync_runs.create_run(connector, "initial_copy")
    db.session.commit()
    first = background.claim(SyncRun, run.id)
    assert first is not None
    assert background.claim(SyncRun, run.id) is None  # held, heartbeat fresh
    time.sleep(2.2)
    second = background.claim(SyncRun, run.id)
    assert second is not None and second != first  # stale: taken over
    with pytest.raises(background.LeaseLost):
        background.checkpoint(db.session.get(SyncRun, run.id), first)  # the old holder can no longer commit


def test_resume_stale_runs_requeues_an_abandoned_copy(copy, workspace, short_lease, run_jobs):
    from portal.extensions import db
    from portal.models import SyncRun, utcnow
    from portal import background, jobs
    from portal.sync import runs as sync_runs

    add_contacts(workspace, 3)
    connector = copy()
    run = sync_runs.create_run(connector, "initial_copy")
    db.session.commit()
    background.claim(SyncRun, run.id)
    assert jobs.resume_stale_runs() == []
    db.session.get(SyncRun, run.id).heartbeat_at = utcnow().replace(year=2020)
    db.session.commit()
    assert jobs.resume_stale_runs() == [run.id]
    from portal import jobs as job_queues
    assert job_queues.queue("bulk").count == 1
    run_jobs()
    db.session.expire_all()
    assert db.session.get(SyncRun, run.id).status == "finished"


@pytest.mark.slow
def test_copy_killed_mid_way_resumes_in_a_new_worker(submit, workspace, support_user, sim, mc, audience,
                                                    app_env, short_lease, tmp_path):
    from portal.extensions import db
    from portal import jobs
    from portal.models import ContactSync, SyncRun

    ids = add_contacts(workspace, 2600, tags_every=2)
    connector = submit()
    sim.control.set_faults(audience[0], latency_ms=150)
    run_id = jobs.validate_connector(connector.id, support_user).id

    def cursor():
        db.session.expire_all()
        return db.session.get(SyncRun, run_id).cursor

    first = start_worker(app_env, sim, short_lease, tmp_path / "worker.log")
    try:
        wait_for(lambda: cursor() >= ids[999])  # two chunks committed, the third under way
    finally:
        crash_worker(first)
    killed_at = cursor()
    assert killed_at < ids[-1]
    assert db.session.get(SyncRun, run_id).status == "running"

    time.sleep(short_lease + 0.5)
    assert jobs.resume_stale_runs() == [run_id]
    sim.control.clear_faults(audience[0])
    second = start_worker(app_env, sim, short_lease, tmp_path / "worker.log")
    try:
        wait_for(lambda: (db.session.expire_all(), db.session.get(SyncRun, run_id).status)[1] == "finished", 120)
    finally:
        stop_worker(second)

    db.session.expire_all()
    expected = {f"person{i}@ardent-clients.fr" for i in range(2600)}
    after = members(mc, audience[1])
    assert set(after) == expected  # nobody lost; e-mails are unique, so nobody duplicated
    assert sum(1 for m in after.values() if "Clients" in {t["name"] for t in m["tags"]}) == 1300
    rows = db.session.execute(select(ContactSync.contact_id, func.count()).where(
        ContactSync.connector_id == connector.id).group_by(ContactSync.contact_id)).all()
    assert sorted(cid for cid, _n in rows) == ids and {n for _cid, n in rows} == {1}
    assert {r.state for r in sync_rows(connector.id).values()} == {"synced"}
    db.session.refresh(connector)
    assert connector.status == "active"


def test_audience_deleted_mid_copy_pauses_without_failing_contacts(submit, workspace, support_user, sim, audience,
                                                                   run_jobs, monkeypatch):
    import requests

    from portal.extensions import db
    from portal import jobs
    from portal.sync import initial_copy

    add_contacts(workspace, 700)
    connector = submit()
    real_send = initial_copy.send_prepared
    calls = []

    def delete_audience_before_the_second_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            requests.delete(f"{sim.api_base}lists/{audience[1]}", auth=("x", audience[0]), timeout=10)
        return real_send(*args, **kwargs)

    monkeypatch.setattr(initial_copy, "send_prepared", delete_audience_before_the_second_chunk)
    jobs.validate_connector(connector.id, support_user)
    run_jobs()
    db.session.expire_all()
    assert connector.status == "paused" and _copy_run(connector.id).status == "paused"
    assert connector.paused_reason == "audience_gone"
    assert not [r for r in sync_rows(connector.id).values() if r.state == "error"]


def test_reconnecting_a_paused_copy_continues_where_it_stopped(submit, workspace, support_user, sim, mc, audience,
                                                               run_jobs, monkeypatch):
    from portal.extensions import db
    from portal.mailchimp import MailchimpError
    from portal import jobs
    from portal.sync import initial_copy

    ids = add_contacts(workspace, 1300)
    connector = submit()
    real_send = initial_copy.send_prepared
    calls = []

    def refused_after_one_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise MailchimpError("api_key_invalid", status=401, title="API Key Invalid")
        return real_send(*args, **kwargs)

    monkeypatch.setattr(initial_copy, "send_prepared", refused_after_one_chunk)
    jobs.validate_connector(connector.id, support_user)
    run_jobs()
    db.session.expire_all()
    assert connector.status == "paused" and _copy_run(connector.id).cursor == ids[499]
    monkeypatch.setattr(initial_copy, "send_prepared", real_send)
    seq = sim.control.requests_log()[-1]["seq"]

    jobs.reconnect_connector(connector.id, None)  # the same key works again
    run_jobs()
    db.session.expire_all()
    run = _copy_run(connector.id)
    assert connector.status == "active" and connector.paused_reason == ""
    assert run.status == "finished" and run.cursor == ids[-1]
    batch_calls = [r for r in member_writes(sim, seq) if r["path_template"].endswith("/lists/{list_id}")]
    assert len(batch_calls) == 2  # the first 500 were not sent again
    assert len(members(mc, audience[1])) == 1300
    assert {r.state for r in sync_rows(connector.id).values()} == {"synced"}
