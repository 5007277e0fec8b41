"""The nightly reconciliation (R22, R1, R13): what someone changed in Mailchimp is found, reported
and repaired (anaba wins); a second run with nothing changed writes nothing."""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from unittest import mock

import pytest

from sync_helpers import add_contacts, last_seq, sync_rows, writes


@pytest.fixture
def live(copy, workspace, run_jobs):
    """An active connector whose copy is done (8 opt-in contacts); returns (connector, ids)."""
    ids = add_contacts(workspace, 8)
    connector = copy()
    run_jobs()
    return connector, ids


def reconcile(connector, run_jobs):
    """Reconcile now, as support or the nightly schedule does; returns the finished run."""
    from portal import jobs
    from portal.extensions import db
    from portal.models import SyncRun

    run = jobs.reconcile_now(connector.id)
    run_jobs()
    db.session.expire_all()
    return db.session.get(SyncRun, run.id)


def test_a_member_edited_in_mailchimp_gets_anabas_values_back(live, sim, audience, mc, run_jobs):
    connector, ids = live
    email = "person0@ardent-clients.fr"
    sim.control.member_action(audience[1], email, "edit-profile", merge_fields={"FNAME": "Changé dans Mailchimp"})
    time.sleep(1.1)  # Mailchimp's since filters have one-second precision
    run = reconcile(connector, run_jobs)
    assert run.status == "finished"
    assert run.result["drift"] == {"fields": 1}
    assert run.result["samples"][0]["contact_id"] == ids[0] and run.result["samples"][0]["fields"] == ["FNAME"]
    assert mc.get_member(audience[1], email)["merge_fields"]["FNAME"] == "Prénom0"  # anaba wins (R1)


def test_tags_changed_in_mailchimp_are_put_back_and_tags_anaba_does_not_know_stay(live, sim, audience, mc,
                                                                                 run_jobs):
    connector, ids = live
    email = "person0@ardent-clients.fr"  # Clients and VIP in anaba
    mc.set_member_tags(audience[1], email, add=["Foire de Lyon"], remove=["VIP"])
    time.sleep(1.1)
    run = reconcile(connector, run_jobs)
    assert run.result["drift"] == {"tags": 1}
    assert set(mc.get_member_tags(audience[1], email)) == {"Clients", "VIP", "Foire de Lyon"}


def test_members_archived_or_deleted_in_mailchimp_are_shown_so_and_left_alone(live, sim, audience, run_jobs):
    """R13."""
    connector, ids = live
    sim.control.member_action(audience[1], "person1@ardent-clients.fr", "archive")
    sim.control.member_action(audience[1], "person2@ardent-clients.fr", "delete-permanently")
    time.sleep(1.1)
    run = reconcile(connector, run_jobs)
    assert run.result["drift"] == {"archived": 1, "deleted": 1}
    rows = sync_rows(connector.id)
    assert rows[ids[1]].state == "archived_in_mc" and rows[ids[2]].state == "deleted_in_mc"


def test_a_second_run_with_nothing_changed_writes_nothing(live, sim, audience, run_jobs):
    connector, ids = live
    sim.control.member_action(audience[1], "person3@ardent-clients.fr", "edit-profile", merge_fields={"LNAME": "X"})
    time.sleep(1.1)
    first = reconcile(connector, run_jobs)
    assert first.result["drift"] == {"fields": 1}
    seq = last_seq(sim)
    second = reconcile(connector, run_jobs)
    assert second.status == "finished" and second.result["drift"] == {}
    assert writes(sim, seq) == []


@contextmanager
def local_time_zone(name: str):
    """Run the block as a process whose local time zone is `name` (what TZ does to the cron process)."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = name
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = before
        time.tzset()


def test_the_nightly_reconciliation_is_registered_for_three_in_the_morning_in_paris(app, redis_conn):
    """Checked with a fixed clock: in winter 03:00 Paris is 02:00 UTC."""
    from rq.cron import CronScheduler

    from portal import jobs
    from portal.schedule import SCHEDULE

    def due_at(moment: datetime) -> list[str]:
        with mock.patch("rq.cron.now", return_value=moment):
            return [job.func_name for job in scheduler.enqueue_jobs()]

    with local_time_zone("Europe/Paris"), mock.patch("rq.cron.now",
                                                       return_value=datetime(2026, 12, 1, 12, tzinfo=timezone.utc)):
        scheduler = CronScheduler(connection=redis_conn, name="test-cron")
        for periodic in SCHEDULE:
            if periodic.func is jobs.reconcile_all:
                scheduler.register(periodic.func, periodic.queue, cron=periodic.cron)
    with local_time_zone("Europe/Paris"):
        assert due_at(datetime(2026, 12, 2, 1, 59, 59, tzinfo=timezone.utc)) == []
        assert due_at(datetime(2026, 12, 2, 2, 0, 1, tzinfo=timezone.utc)) == ["portal.jobs.reconcile_all"]
