"""The copy with several batch calls in flight (R8, R20): a worker killed with calls in flight, and 20 %
injected 429/5xx with the latency model on, still end with the audience exactly as anaba says — and
the key never has more than 10 connections (the simulator's 429 on the 11th is the referee)."""
from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from sync_helpers import add_contacts, crash_worker, members, start_worker, stop_worker, sync_rows, wait_for

pytestmark = pytest.mark.slow


def _run(run_id):
    from portal.extensions import db
    from portal.models import SyncRun

    db.session.expire_all()
    return db.session.get(SyncRun, run_id)


def _assert_audience_is_exactly_anaba(connector, ids, mc, audience, tagged):
    from portal.extensions import db
    from portal.models import ContactSync

    after = members(mc, audience[1])
    assert set(after) == {f"person{i}@ardent-clients.fr" for i in range(len(ids))}  # nobody lost or doubled
    assert sum(1 for m in after.values() if "Clients" in {t["name"] for t in m["tags"]}) == tagged
    rows = db.session.execute(select(ContactSync.contact_id, func.count()).where(
        ContactSync.connector_id == connector.id).group_by(ContactSync.contact_id)).all()
    assert sorted(cid for cid, _n in rows) == ids and {n for _cid, n in rows} == {1}
    assert {r.state for r in sync_rows(connector.id).values()} == {"synced"}


def test_a_worker_killed_with_calls_in_flight_loses_and_doubles_nobody(submit, workspace, support_user, sim, mc,
                                                                       audience, app_env, short_lease, tmp_path):
    from portal import jobs

    ids = add_contacts(workspace, 6000, tags_every=2)
    connector = submit()
    sim.control.set_faults(audience[0], latency_ms=200, latency_per_member_ms=2)
    run_id = jobs.validate_connector(connector.id, support_user).id
    first = start_worker(app_env, sim, short_lease, tmp_path / "worker.log", MAILCHIMP_BULK_CONNECTIONS=8)
    try:
        wait_for(lambda: _run(run_id).cursor >= ids[1999], timeout=120)
        assert max(sim.control.peak_concurrency().values()) > 2  # several calls were in flight
    finally:
        crash_worker(first)
    assert _run(run_id).status == "running" and _run(run_id).cursor < ids[-1]
    time.sleep(short_lease + 0.5)
    assert jobs.resume_stale_runs() == [run_id]
    second = start_worker(app_env, sim, short_lease, tmp_path / "worker.log", MAILCHIMP_BULK_CONNECTIONS=8)
    try:
        wait_for(lambda: _run(run_id).status == "finished", 240, every=0.2)
    finally:
        stop_worker(second)
    sim.control.clear_faults(audience[0])
    _assert_audience_is_exactly_anaba(connector, ids, mc, audience, tagged=3000)
    counts = _run(run_id).counts
    assert counts["created"] + counts["updated"] >= 6000 and counts["errors"] == 0


def test_injected_faults_with_latency_change_nothing_and_never_exceed_ten_connections(
        submit, workspace, support_user, sim, mc, audience, run_jobs):
    from portal import jobs

    ids = add_contacts(workspace, 5000, tags_every=2)
    connector = submit()
    sim.control.clear_requests()
    sim.control.set_faults(audience[0], error_rate=0.2, statuses=(429, 500, 503), latency_ms=50,
                           latency_per_member_ms=1, seed=11)
    run_id = jobs.validate_connector(connector.id, support_user).id
    run_jobs()
    sim.control.clear_faults(audience[0])
    assert _run(run_id).status == "finished"
    assert any(r["status"] >= 429 for r in sim.control.requests_log()), "the fault injection did not fire"
    assert max(sim.control.peak_concurrency().values()) <= 10
    _assert_audience_is_exactly_anaba(connector, ids, mc, audience, tagged=2500)
