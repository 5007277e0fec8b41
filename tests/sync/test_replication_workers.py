"""Live replication with real worker processes (R10, R20): faults, a worker killed mid-burst, two
workers at once. Afterwards anaba and the audience are equal: nothing lost, nothing duplicated, no
older state of a contact pushed over a newer one, never more than 10 connections for the key."""
from __future__ import annotations

import random

import pytest
from sqlalchemy import func, select

from sync_helpers import add_contacts, crash_worker, members, start_worker, stop_worker, wait_for

pytestmark = pytest.mark.slow

SETTINGS = {"REPLICATION_LOCK_SECONDS": 3, "REPLICATION_SWEEP_SECONDS": 1}


@pytest.fixture
def active(copy, workspace, run_jobs):
    """An active connector over 200 opt-in contacts, its copy done; returns (connector, ids)."""
    ids = add_contacts(workspace, 200)
    connector = copy()
    run_jobs()
    return connector, ids


def _edit(workspace, contact_id, first_name):
    from portal.crm import contacts

    contacts.update_contact(workspace.id, contact_id, {"first_name": first_name}, actor="test", channel="api")


def _burst(workspace, ids, edits, seed):
    """`edits` edits spread over the contacts in random order; the final first name of each contact."""
    rng = random.Random(seed)
    final = {}
    for n in range(edits):
        cid = rng.choice(ids)
        final[cid] = f"Version {n}"
        _edit(workspace, cid, final[cid])
    return final


def _settled(connector_id):
    from portal.extensions import db
    from portal.models import ContactSync

    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(ContactSync).where(
        ContactSync.connector_id == connector_id, ContactSync.dirty_at.is_not(None))) == 0


def _assert_audience_equals_anaba(mc, audience, workspace, expected_count):
    from portal.extensions import db
    from portal.models import Contact

    audience_now = members(mc, audience[1])
    assert len(audience_now) == expected_count  # nobody duplicated, nobody lost
    for contact in db.session.scalars(select(Contact).where(Contact.workspace_id == workspace.id)):
        assert audience_now[contact.email_normalized]["merge_fields"]["FNAME"] == contact.first_name, contact.email


def test_a_thousand_edits_under_injected_faults_and_latency_end_equal(active, workspace, sim, audience, mc,
                                                                     app_env, tmp_path):
    connector, ids = active
    sim.control.set_faults(audience[0], error_rate=0.2, statuses=(429, 500, 503), latency_ms=15, seed=7)
    worker = start_worker(app_env, sim, 2, tmp_path / "worker.log", queues=("live", "bulk"), **SETTINGS)
    try:
        _burst(workspace, ids, 1000, seed=1)
        wait_for(lambda: _settled(connector.id), timeout=240, every=0.5)
    finally:
        stop_worker(worker)
    sim.control.clear_faults(audience[0])
    _assert_audience_equals_anaba(mc, audience, workspace, len(ids))


def test_a_worker_killed_mid_burst_loses_nothing(active, workspace, sim, audience, mc, app_env, tmp_path):
    connector, ids = active
    sim.control.set_faults(audience[0], latency_ms=40)
    first = start_worker(app_env, sim, 2, tmp_path / "worker.log", queues=("live", "bulk"), **SETTINGS)
    try:
        _burst(workspace, ids, 300, seed=2)
        wait_for(lambda: sim.control.requests_log()[-1]["method"] == "POST", timeout=30)  # pushing now
    finally:
        crash_worker(first)
    assert not _settled(connector.id)
    _burst(workspace, ids, 100, seed=3)  # more changes while no worker runs
    second = start_worker(app_env, sim, 2, tmp_path / "worker.log", queues=("live", "bulk"), **SETTINGS)
    try:  # the new worker re-queues what waits once the dead one's replication lock has expired
        wait_for(lambda: _settled(connector.id), timeout=180, every=0.5)
    finally:
        stop_worker(second)
    sim.control.clear_faults(audience[0])
    _assert_audience_equals_anaba(mc, audience, workspace, len(ids))


def test_two_workers_keep_each_contacts_order_and_the_connection_limit(active, workspace, sim, audience, mc, app_env,
                                                                       tmp_path):
    connector, ids = active
    sim.control.set_faults(audience[0], latency_ms=20)
    sim.control.clear_requests()
    workers = [start_worker(app_env, sim, 2, tmp_path / f"worker{n}.log", queues=("live", "bulk"), **SETTINGS)
               for n in range(2)]
    try:
        for seed in range(4):
            _burst(workspace, ids[:40], 150, seed=10 + seed)  # many edits of few contacts: order matters
        wait_for(lambda: _settled(connector.id), timeout=180, every=0.5)
    finally:
        for worker in workers:
            stop_worker(worker)
    sim.control.clear_faults(audience[0])
    assert max(sim.control.peak_concurrency().values()) <= 10
    _assert_audience_equals_anaba(mc, audience, workspace, len(ids))
