"""Fixtures for the sync engine's tests: an audience on the simulator, contacts in bulk, and
helpers that drive a connector from submission to the end of its copy."""
from __future__ import annotations

import pytest


@pytest.fixture
def audience(mc_app, sim, sim_key):
    """An empty audience on the simulator: ``(api_key, list_id)``."""
    lst = sim.control.create_list(sim_key, "Clients Ardent")
    return sim_key, lst["id"]


@pytest.fixture
def mc(mc_app, audience):
    """A Mailchimp client on the test audience's key (for arranging and checking the audience)."""
    from portal.sync.mailchimp_access import client_for

    client = client_for(audience[0])
    yield client
    client.close()


@pytest.fixture
def short_lease(mc_app):
    """Runs count as abandoned after 2 s without a heartbeat."""
    before = mc_app.config["RUN_LEASE_SECONDS"]
    mc_app.config["RUN_LEASE_SECONDS"] = 2
    yield 2
    mc_app.config["RUN_LEASE_SECONDS"] = before


@pytest.fixture
def submit(mc_app, workspace, customer, audience, run_jobs):
    """Submit a connector for `workspace` on the test audience and run its consent import and preview."""
    from portal import jobs

    def do(**kwargs):
        connector = jobs.submit_connector(workspace.id, customer, audience[0], audience[1], **kwargs)
        run_jobs()
        return connector

    return do


@pytest.fixture
def copy(submit, support_user, run_jobs):
    """Submit, validate and run the whole initial copy in-process; returns the connector."""
    from portal.extensions import db
    from portal import jobs

    def do(**kwargs):
        connector = submit(**kwargs)
        jobs.validate_connector(connector.id, support_user)
        run_jobs()
        db.session.expire_all()
        return connector

    return do
