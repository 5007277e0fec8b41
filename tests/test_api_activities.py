"""GET /api/v1/contacts/{id}/activities (R18): a contact's campaign activity through the API, paged
by id, filtered, scoped to the token's workspace, and as docs/openapi.yaml describes it."""
from __future__ import annotations

from datetime import timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import factories
from activity_helpers import active_connector, activity, ago, campaign
from portal.extensions import db
from portal.models import ActivityCampaign
from test_api_openapi import CheckedClient


@pytest.fixture
def ws(app):
    """A workspace with an active connector, and its token."""
    workspace, token = factories.workspace_with_token("Atelier Activité")
    active_connector(workspace)
    return workspace, token


@pytest.fixture
def client(app, ws):
    """Calls the API with the workspace's token and checks every exchange against docs/openapi.yaml."""
    from openapi_core import OpenAPI

    from test_api_openapi import DOCS

    return CheckedClient(app, OpenAPI.from_file_path(str(DOCS / "openapi.yaml")), ws[1])


@pytest.fixture
def history(ws):
    """A contact who received two campaigns, opened and clicked the first, unsubscribed from the second."""
    from portal.models import Connector

    workspace, _ = ws
    connector = db.session.scalar(db.select(Connector))
    contact = factories.contact(workspace, email="ines.moreau@atelier.example.fr")
    campaign(workspace, connector, "cmp-nov", days_ago=20, title="Lettre de novembre", subject="Nos nouveautés")
    campaign(workspace, connector, "cmp-dec", days_ago=4, title="Lettre de décembre", subject="Fêtes")
    rows = [
        activity(contact, "cmp-nov", "sent", ago(20)),
        activity(contact, "cmp-nov", "open", ago(19.5)),
        activity(contact, "cmp-nov", "click", ago(19.4), url="https://atelier.example.fr/hiver"),
        activity(contact, "cmp-dec", "sent", ago(4)),
        activity(contact, "cmp-dec", "unsubscribe", ago(3)),
    ]
    return contact, rows


def url(contact) -> str:
    return f"/api/v1/contacts/{contact.id}/activities"


def test_a_contacts_activities_come_with_their_campaign(client, history):
    contact, rows = history
    response = client.call("GET", url(contact), valid_request=True)
    assert response.status_code == 200
    body = response.get_json()
    assert [a["id"] for a in body["data"]] == [r.id for r in rows]
    assert [a["action"] for a in body["data"]] == ["sent", "open", "click", "sent", "unsubscribe"]
    click = body["data"][2]
    assert click["url"] == "https://atelier.example.fr/hiver" and body["data"][1]["url"] is None
    sent_at = db.session.scalar(db.select(ActivityCampaign.send_time).where(ActivityCampaign.campaign_id == "cmp-nov"))
    assert click["campaign"] == {"id": "cmp-nov", "title": "Lettre de novembre", "subject": "Nos nouveautés",
                                 "send_time": sent_at.replace(tzinfo=timezone.utc).isoformat().replace("+00:00", "Z")}
    assert click["occurred_at"].endswith("Z")
    assert body["has_more"] is False and body["next_after"] is None and body["next_url"] is None
    assert response.headers["Cache-Control"] == "no-store"


def test_pages_follow_next_url_and_later_imports_show_after_the_last_id(client, history):
    contact, rows = history
    seen, next_url, pages = [], f"{url(contact)}?limit=2", 0
    while next_url:
        response = client.call("GET", next_url.replace("http://localhost", ""))
        page = response.get_json()
        seen += [a["id"] for a in page["data"]]
        if page["next_url"]:
            assert response.headers["Link"] == f'<{page["next_url"]}>; rel="next"'
        next_url, pages = page["next_url"], pages + 1
    assert seen == [r.id for r in rows] and pages == 3
    later = activity(contact, "cmp-dec", "open", ago(1))
    fresh = client.call("GET", url(contact), query={"after": seen[-1]}).get_json()
    assert [a["id"] for a in fresh["data"]] == [later.id]


def test_activities_filter_by_action_and_time(client, history):
    contact, rows = history
    clicks = client.call("GET", url(contact), query={"action": "click"}, valid_request=True).get_json()["data"]
    assert [a["id"] for a in clicks] == [rows[2].id]
    recent = client.call("GET", url(contact), query={"since": ago(10).isoformat()}).get_json()["data"]
    assert [a["action"] for a in recent] == ["sent", "unsubscribe"]


def test_a_contact_without_activity_has_an_empty_list(client, ws):
    contact = factories.contact(ws[0], email="personne@atelier.example.fr")
    body = client.call("GET", url(contact)).get_json()
    assert body == {"data": [], "has_more": False, "next_after": None, "next_url": None}


@pytest.mark.parametrize(("query", "field"), [
    ({"limit": "0"}, "limit"), ({"limit": "201"}, "limit"), ({"after": "-1"}, "after"), ({"after": "x"}, "after"),
    ({"action": "opened"}, "action"), ({"since": "yesterday"}, "since"), ({"since": "9" * 80}, "since"),
])
def test_bad_parameters_answer_400_naming_the_parameter(client, history, query, field):
    contact, _ = history
    response = client.call("GET", url(contact), query=query)
    assert response.status_code == 400
    body = response.get_json()
    assert body["code"] == "bad_request" and field in body["errors"]


def test_other_workspaces_deleted_and_unknown_contacts_are_404(client, history, app):
    from portal.crm import contacts as crm

    contact, _ = history
    other, other_token = factories.workspace_with_token("Fleuriste Bleu")
    stranger = factories.contact(other, email="x@bleu.example.org")
    activity(stranger, "cmp-x", "open", ago(1))
    assert client.call("GET", url(stranger)).status_code == 404
    assert client.call("GET", "/api/v1/contacts/424242/activities").status_code == 404
    assert client.call("GET", f"/api/v1/contacts/{2**31}/activities").status_code == 404
    crm.delete_contact(contact.workspace_id, contact.id, actor="test", channel="ui")
    assert client.call("GET", url(contact)).get_json()["code"] == "not_found"
    # and the other workspace's own token sees only its own contact
    theirs = app.test_client().get(url(stranger), headers={"Authorization": f"Bearer {other_token}"})
    assert [a["campaign"]["id"] for a in theirs.get_json()["data"]] == ["cmp-x"]
    assert theirs.get_json()["data"][0]["campaign"]["title"] is None  # a campaign it has no row for


def test_the_endpoint_needs_the_token(client, history):
    contact, _ = history
    response = client.call("GET", url(contact), token=None)
    assert response.status_code == 401 and response.get_json()["code"] == "unauthorized"


@settings(max_examples=80, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(query=st.dictionaries(st.sampled_from(["limit", "after", "since", "action"]), st.text(max_size=30), max_size=4))
def test_random_query_strings_never_cause_a_server_error(app, ws, query):
    contact = factories.contact(ws[0], email="fuzz@atelier.example.fr")
    response = app.test_client().get(f"/api/v1/contacts/{contact.id}/activities", query_string=query,
                                     headers={"Authorization": f"Bearer {ws[1]}"})
    assert response.status_code in (200, 400), response.get_json()
