"""The support CLI drives a connector from creation to deletion (issue 4, R5, R7–R9)."""
from __future__ import annotations

import re

from sync_helpers import add_contacts, members, sync_rows


def test_cli_creates_validates_lists_and_deletes_a_connector(mc_app, workspace, customer, support_user, audience,
                                                            mc, run_jobs):
    from portal.extensions import db
    from portal.models import Connector

    add_contacts(workspace, 12)
    runner = mc_app.test_cli_runner()
    created = runner.invoke(args=["connector", "create", "--workspace", "Boulangerie Ardent",
                                  "--api-key", audience[0], "--audience", audience[1], "--by", customer.email])
    assert created.exit_code == 0, created.output
    connector_id = int(re.search(r"connector (\d+) created", created.output).group(1))
    run_jobs()
    listed = runner.invoke(args=["connector", "list"])
    assert f"{connector_id}\tpending_validation\tBoulangerie Ardent\t{audience[1]}" in listed.output
    assert audience[0] not in listed.output  # the key is never shown whole

    refused = runner.invoke(args=["connector", "validate", str(connector_id), "--by", customer.email])
    assert refused.exit_code != 0 and "not a support agent" in refused.output
    validated = runner.invoke(args=["connector", "validate", str(connector_id), "--by", support_user.email])
    assert validated.exit_code == 0, validated.output
    run_jobs()
    db.session.expire_all()
    assert db.session.get(Connector, connector_id).status == "active"
    assert len(members(mc, audience[1])) == 12
    assert {r.state for r in sync_rows(connector_id).values()} == {"synced"}

    again = runner.invoke(args=["connector", "validate", str(connector_id), "--by", support_user.email])
    assert again.exit_code != 0
    deleted = runner.invoke(args=["connector", "delete", str(connector_id), "--by", support_user.email])
    assert deleted.exit_code == 0, deleted.output
    db.session.expire_all()
    assert db.session.get(Connector, connector_id).status == "deleted"
    assert len(members(mc, audience[1])) == 12  # the audience is left as it is (R9)


def test_cli_reports_a_bad_key_plainly(mc_app, workspace, sim, audience):
    runner = mc_app.test_cli_runner()
    sim.control.revoke_key(audience[0])
    result = runner.invoke(args=["connector", "create", "--workspace", "Boulangerie Ardent",
                                 "--api-key", audience[0], "--audience", audience[1]])
    assert result.exit_code != 0
    assert "clé d'API" in result.output or "API key" in result.output
