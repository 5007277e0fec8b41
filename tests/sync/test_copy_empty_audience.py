"""The whole path on an empty audience: submit, consent import, preview, validate, copy (R5–R8)."""
from __future__ import annotations

from sync_helpers import add_contacts, members, sync_rows


def test_copy_fills_an_empty_audience_and_activates_the_connector(copy, workspace, mc, audience, mailbox):
    from portal.models import SyncRun
    from portal.extensions import db

    ids = add_contacts(workspace, 30)
    connector = copy()
    assert connector.status == "active" and connector.activated_at is not None
    audience_now = members(mc, audience[1])
    assert len(audience_now) == 30
    assert audience_now["person0@ardent-clients.fr"]["merge_fields"]["FNAME"] == "Prénom0"
    rows = sync_rows(connector.id)
    assert set(rows) == set(ids) and {r.state for r in rows.values()} == {"synced"}
    run = db.session.query(SyncRun).filter_by(connector_id=connector.id, kind="initial_copy").one()
    assert run.status == "finished" and run.counts["created"] == 30
