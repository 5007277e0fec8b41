"""docs/openapi.yaml tells the truth: real API responses (and the requests we document) validate against it."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from openapi_core import OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
from werkzeug.test import EnvironBuilder

import factories
from portal.extensions import db

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.fixture(scope="session")
def spec():
    """The project's OpenAPI description, checked against the OpenAPI 3.0 schema on load."""
    return OpenAPI.from_file_path(str(DOCS / "openapi.yaml"))


class CheckedClient:
    """Calls the API and validates every exchange against the spec.

    The request is rebuilt for the validator because the app has already read the body
    of the one the test client sent.
    """

    def __init__(self, app, spec, token: str) -> None:
        self.client = app.test_client()
        self.spec = spec
        self.token = token
        self.seen: set[tuple[str, int]] = set()

    def call(self, method: str, path: str, *, json=None, data=None, headers=None, query=None,
             token: str | None = "default", valid_request: bool = False):
        """Send the request; assert the response matches the spec (and the request, when it should)."""
        sent = dict(headers or {})
        if token == "default":
            token = self.token
        if token:
            sent["Authorization"] = f"Bearer {token}"
        kwargs = {"method": method, "headers": sent, "query_string": query}
        if json is not None:
            kwargs["json"] = json
        elif data is not None:
            kwargs["data"] = data
        response = self.client.open(path, **kwargs)
        request = EnvironBuilder(path=path, base_url="http://localhost/", **kwargs).get_request()
        if valid_request:
            self.spec.validate_request(WerkzeugOpenAPIRequest(request))
        self.spec.validate_response(WerkzeugOpenAPIRequest(request), WerkzeugOpenAPIResponse(response))
        self.seen.add((method, response.status_code))
        return response


@pytest.fixture
def checked(app, spec):
    """A spec-checking client holding a fresh workspace's token."""
    _, token = factories.workspace_with_token("Atelier OpenAPI")
    return CheckedClient(app, spec, token)


def test_spec_documents_exactly_the_routes_the_api_serves(app, spec):
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("api."):
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)[len("/api/v1"):]
            served |= {(path, m.lower()) for m in rule.methods - {"HEAD", "OPTIONS"}}
    documented = {
        (path, method)
        for path, item in spec.spec.read_value()["paths"].items()
        for method in item if method in ("get", "post", "patch", "put", "delete")
    }
    assert served == documented


def test_every_success_response_matches_the_spec(app, checked):
    created = checked.call("POST", "/api/v1/contacts", valid_request=True, json={
        "email": "jeanne.martin@example.org", "first_name": "Jeanne", "last_name": "Martin",
        "phone": "+33 6 12 34 56 78", "company": "Ardent", "job_title": "Gérante",
        "address": {"street": "3 rue des Lilas", "postal_code": "69003", "city": "Lyon", "country": "France"},
        "tags": ["VIP"], "consent": "opt_in",
    })
    assert created.status_code == 201
    contact = created.get_json()
    url = f"/api/v1/contacts/{contact['id']}"
    assert checked.call("GET", url).status_code == 200
    patched = checked.call("PATCH", url, json={"tags": ["Salon"], "address": None, "consent": {"value": "opt_out"}},
                           valid_request=True)
    assert patched.status_code == 200
    assert checked.call("PATCH", url, json=patched.get_json(), valid_request=True).status_code == 200
    second = checked.call("POST", "/api/v1/contacts", json={"company": "Atelier Sans Nom"}, valid_request=True)
    assert checked.call("GET", "/api/v1/contacts", query={"limit": 1}, valid_request=True).get_json()["has_more"]
    assert checked.call("DELETE", f"/api/v1/contacts/{second.get_json()['id']}").status_code == 204
    listing = checked.call("GET", "/api/v1/contacts", valid_request=True,
                           query={"updated_since": "2000-01-01T00:00:00Z", "limit": 200})
    assert [c["deleted"] for c in listing.get_json()["data"]] == [False, True]
    tags = checked.call("GET", "/api/v1/tags")
    assert [t["name"] for t in tags.get_json()["data"]] == ["Salon", "VIP"]


def test_contact_with_a_mailchimp_state_matches_the_spec(app, checked):
    from portal.models import Connector, ContactSync, Workspace

    contact = checked.call("POST", "/api/v1/contacts", json={"email": "a@example.org"}).get_json()
    ws = db.session.scalar(db.select(Workspace).where(Workspace.name == "Atelier OpenAPI"))
    connector = Connector(workspace_id=ws.id, status="active", api_key_encrypted="x", api_key_hint="…-us1",
                          audience_id="a1")
    db.session.add(connector)
    db.session.flush()
    db.session.add(ContactSync(connector_id=connector.id, workspace_id=ws.id, contact_id=contact["id"],
                               state="error", error_kind="invalid_email", error_message="Adresse refusée"))
    db.session.commit()
    checked.call("POST", "/api/v1/contacts", json={"email": "b@example.org"})
    listing = checked.call("GET", "/api/v1/contacts").get_json()["data"]
    # The second contact, created while the connector is active, waits for its push (R10, R17).
    assert [c["mailchimp"]["state"] for c in listing] == ["error", "pending"]


def test_every_documented_error_response_matches_the_spec(app, checked):
    from portal.crm import contacts as crm
    from portal.models import Workspace

    contact = checked.call("POST", "/api/v1/contacts", json={"email": "a@example.org", "consent": "opt_in"})
    contact_id = contact.get_json()["id"]
    url = f"/api/v1/contacts/{contact_id}"
    ws = db.session.scalar(db.select(Workspace).where(Workspace.name == "Atelier OpenAPI"))
    crm.set_consent(ws.id, contact_id, "opt_out", actor="Mailchimp", channel="mailchimp_webhook", locked=True)
    cases = [
        (checked.call("GET", "/api/v1/contacts", token=None), 401, "unauthorized"),
        (checked.call("GET", "/api/v1/tags", token="anb_wrong"), 401, "unauthorized"),
        (checked.call("GET", "/api/v1/contacts", query={"limit": 500}), 400, "bad_request"),
        (checked.call("POST", "/api/v1/contacts", data=b"{", headers={"Content-Type": "application/json"}),
         400, "invalid_json"),
        (checked.call("POST", "/api/v1/contacts", data=b"x", headers={"Content-Type": "text/plain"}),
         400, "bad_request"),
        (checked.call("POST", "/api/v1/contacts", json={"email": "nope"}), 422, "validation_failed"),
        (checked.call("PATCH", url, json={"address": {"city": 3}}), 422, "validation_failed"),
        (checked.call("PATCH", url, json={"consent": "opt_in"}), 409, "consent_locked"),
        (checked.call("GET", "/api/v1/contacts/424242"), 404, "not_found"),
        (checked.call("PATCH", "/api/v1/contacts/424242", json={}), 404, "not_found"),
        (checked.call("DELETE", "/api/v1/contacts/424242"), 404, "not_found"),
        (checked.call("POST", "/api/v1/contacts", data=b'{"a": "' + b"x" * (1024 * 1024) + b'"}',
                      headers={"Content-Type": "application/json"}), 413, "too_large"),
    ]
    for response, status, code in cases:
        assert (response.status_code, response.get_json()["code"]) == (status, code)


def test_a_response_that_breaks_the_spec_is_caught(app, spec, checked):
    """Guards the guard: if validation silently passed everything, the tests above would prove nothing."""
    from openapi_core.exceptions import OpenAPIError

    response = checked.client.get("/api/v1/tags", headers={"Authorization": f"Bearer {checked.token}"})
    response.set_data(b'{"data": [{"id": "one", "name": 3}]}')
    request = EnvironBuilder(path="/api/v1/tags", base_url="http://localhost/").get_request()
    with pytest.raises(OpenAPIError):
        spec.validate_response(WerkzeugOpenAPIRequest(request), WerkzeugOpenAPIResponse(response))


def test_api_doc_has_a_curl_example_per_operation_and_lists_every_error_code(spec):
    text = (DOCS / "api.md").read_text()
    document = spec.spec.read_value()
    for path, item in document["paths"].items():
        pattern = re.sub(r"\\\{\w+\\\}", r"\\d+", re.escape("/api/v1" + path)) + r"(?:[?\"' ]|$)"
        for method in item:
            if method not in ("get", "post", "patch", "delete"):
                continue
            curls = [c for c in re.findall(r"curl[^\n]*(?:\\\n[^\n]*)*", text) if re.search(pattern, c)]
            if method == "get":
                assert any("-X" not in c for c in curls), f"no curl example for GET {path}"
            else:
                assert any(f"-X {method.upper()}" in c for c in curls), f"no curl example for {method} {path}"
    codes = document["components"]["schemas"]["Error"]["properties"]["code"]["enum"]
    for code in codes:
        assert f"`{code}`" in text, f"error code {code} is not in docs/api.md"
