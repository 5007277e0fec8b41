"""Issue 13: a chunk of the copy sent again after a crash counts the members its first send created
as created, not updated (the customer's e-mail and the summary say what really happened, R8),
while a member that was in the audience before stays "updated" (R4)."""
from __future__ import annotations

from sync_helpers import add_contacts, members


def test_a_chunk_replayed_after_a_crash_counts_its_new_members_as_created(submit, workspace, support_user, sim,
                                                                          audience, mc, run_jobs, monkeypatch,
                                                                          mailbox):
    from portal import jobs
    from portal.extensions import db
    from portal.models import SyncRun
    from portal.sync import initial_copy
    from portal.sync import runs as sync_runs

    ids = add_contacts(workspace, 1200)
    # One member was in the audience long before (R4): it is updated, replay or not.
    mc.batch_subscribe(audience[1], [{"email_address": "person700@ardent-clients.fr", "status": "subscribed",
                                      "timestamp_opt": "2025-03-01T09:00:00+00:00"}])
    connector = submit()
    real_record = initial_copy.record_push
    recorded = []

    def crash_once_mailchimp_took_the_second_chunk(*args, **kwargs):
        recorded.append(1)
        if len(recorded) == 2:  # chunks 2 and 3 were sent (pipelined); nothing of theirs is committed
            raise RuntimeError("worker killed")
        return real_record(*args, **kwargs)

    monkeypatch.setattr(initial_copy, "record_push", crash_once_mailchimp_took_the_second_chunk)
    run = jobs.validate_connector(connector.id, support_user)
    run_jobs()
    db.session.expire_all()
    run = db.session.get(SyncRun, run.id)
    assert run.status == "failed" and run.cursor == ids[499]
    assert len(members(mc, audience[1])) == 1200  # Mailchimp has them all already

    monkeypatch.setattr(initial_copy, "record_push", real_record)
    assert sync_runs.requeue(run)
    jobs.enqueue_run(run)
    mailbox.clear()
    run_jobs()
    db.session.expire_all()
    run = db.session.get(SyncRun, run.id)
    assert run.status == "finished"
    assert (run.counts["created"], run.counts["updated"]) == (1199, 1)
    assert run.result.get("in_flight") == []
    body = "".join(part.get_content() for m in mailbox for part in m.walk() if part.get_content_type() == "text/plain")
    assert "1199" in body.replace("\u202f", "").replace("\xa0", "").replace(" ", "")


def test_a_copy_sent_once_trusts_mailchimps_word(copy, workspace, audience, mc):
    from portal.sync.runs import latest_run

    add_contacts(workspace, 20)
    mc.batch_subscribe(audience[1], [{"email_address": "person3@ardent-clients.fr", "status": "subscribed"}])
    connector = copy()  # the member above opted in seconds ago: still "updated", nothing was replayed
    run = latest_run(connector.id, "initial_copy")
    assert (run.counts["created"], run.counts["updated"]) == (19, 1)
