"""The JSON API (/api/v1): bearer-token auth, contacts CRUD, tags, consent, sync listing, errors."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

import factories
from portal.extensions import db
from portal.models import ConsentEvent, Contact


class ApiClient:
    """A test client that sends the workspace's bearer token and JSON bodies."""

    def __init__(self, app, token: str) -> None:
        self.client = app.test_client()
        self.token = token

    def _headers(self, headers):
        return {"Authorization": f"Bearer {self.token}", **(headers or {})}

    def get(self, path, **kw):
        return self.client.get(path, headers=self._headers(kw.pop("headers", None)), **kw)

    def delete(self, path, **kw):
        return self.client.delete(path, headers=self._headers(kw.pop("headers", None)), **kw)

    def post(self, path, body=None, **kw):
        if body is not None:
            kw["json"] = body
        return self.client.post(path, headers=self._headers(kw.pop("headers", None)), **kw)

    def patch(self, path, body=None, **kw):
        if body is not None:
            kw["json"] = body
        return self.client.patch(path, headers=self._headers(kw.pop("headers", None)), **kw)

    def put(self, path, body=None, **kw):
        return self.client.put(path, json=body, headers=self._headers(kw.pop("headers", None)), **kw)


@pytest.fixture
def ws_a(app):
    """Workspace A and its API token."""
    return factories.workspace_with_token("Atelier A")


@pytest.fixture
def ws_b(app):
    """Workspace B and its API token."""
    return factories.workspace_with_token("Atelier B")


@pytest.fixture
def api(app, ws_a):
    """An API client holding workspace A's token."""
    return ApiClient(app, ws_a[1])


@pytest.fixture
def api_b(app, ws_b):
    """An API client holding workspace B's token."""
    return ApiClient(app, ws_b[1])


def new_contact(api, **fields):
    """Create a contact through the API and return its JSON."""
    body = {"email": "lea.dupont@example.org", "first_name": "Léa", "last_name": "Dupont", **fields}
    response = api.post("/api/v1/contacts", body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def all_pages(api, query=""):
    """Follow next_url from the first page; every contact id seen, in order."""
    ids = []
    url = f"/api/v1/contacts?{query}"
    while url:
        page = api.get(url).get_json()
        ids += [c["id"] for c in page["data"]]
        url = page["next_url"]
    return ids


# --- authentication --------------------------------------------------------------------------


def test_request_without_token_is_refused_with_401_json_and_bearer_challenge(app, ws_a):
    response = app.test_client().get("/api/v1/contacts")
    assert response.status_code == 401
    assert response.get_json()["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("method, path", [
    ("GET", "/api/v1/contacts"), ("POST", "/api/v1/contacts"), ("GET", "/api/v1/contacts/1"),
    ("PATCH", "/api/v1/contacts/1"), ("DELETE", "/api/v1/contacts/1"), ("GET", "/api/v1/tags"),
])
def test_every_endpoint_needs_the_token_and_changes_nothing_without_it(app, api, method, path):
    contact_id = new_contact(api)["id"]
    response = app.test_client().open(path.replace("/1", f"/{contact_id}"), method=method,
                                      json={"email": "intruder@example.org", "first_name": "Intrus"})
    assert response.status_code == 401 and response.get_json()["code"] == "unauthorized"
    assert response.headers["Cache-Control"] == "no-store"
    assert [c["email"] for c in api.get("/api/v1/contacts").get_json()["data"]] == ["lea.dupont@example.org"]


@pytest.mark.parametrize("header", ["Bearer anb_not-a-real-token", "Basic dXNlcjpwdw==", "Bearer", "anb_x"])
def test_wrong_or_malformed_token_is_refused(app, ws_a, header):
    response = app.test_client().get("/api/v1/contacts", headers={"Authorization": header})
    assert response.status_code == 401
    body = response.get_json()
    assert body["code"] == "unauthorized" and body["message"]
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_a_replaced_token_stops_working(app, ws_a):
    ws, old_token = ws_a
    ws.new_api_token()
    db.session.commit()
    assert ApiClient(app, old_token).get("/api/v1/contacts").status_code == 401


def test_logged_in_session_alone_does_not_open_the_api(customer_client):
    response = customer_client.get("/api/v1/contacts")
    assert response.status_code == 401


def test_api_writes_need_no_csrf_token(api):
    response = api.post("/api/v1/contacts", {"email": "no-csrf@example.org"})
    assert response.status_code == 201


# --- create / read ---------------------------------------------------------------------------


def test_created_contact_is_returned_with_location_and_reads_back_identically(api):
    response = api.post("/api/v1/contacts", {
        "email": "Jeanne.Martin@example.org", "first_name": "Jeanne", "last_name": "Martin",
        "phone": "+33 6 12 34 56 78", "company": "Boulangerie Ardent", "job_title": "Gérante",
        "address": {"street": "3 rue des Lilas", "postal_code": "69003", "city": "Lyon", "country": "France"},
        "tags": ["VIP", "Salon 2026"], "consent": "opt_in",
    })
    assert response.status_code == 201
    created = response.get_json()
    assert response.headers["Location"].endswith(f"/api/v1/contacts/{created['id']}")
    assert created["email"] == "Jeanne.Martin@example.org"
    assert created["address"] == {"street": "3 rue des Lilas", "postal_code": "69003", "city": "Lyon",
                                  "country": "France"}
    assert created["tags"] == ["Salon 2026", "VIP"]
    assert created["consent"] == {"value": "opt_in", "locked": False, "lock_reason": None}
    assert created["deleted"] is False and created["mailchimp"] is None
    assert created["created_at"].endswith("Z") and created["updated_at"].endswith("Z")
    fetched = api.get(response.headers["Location"])
    assert fetched.status_code == 200
    assert fetched.get_json() == created


def test_consent_set_through_the_api_is_audited_with_api_channel_and_actor(api):
    created = new_contact(api, consent="opt_in")
    api.patch(f"/api/v1/contacts/{created['id']}", {"consent": "opt_out"})
    events = db.session.scalars(
        select(ConsentEvent).where(ConsentEvent.contact_id == created["id"]).order_by(ConsentEvent.id)
    ).all()
    assert [(e.old, e.new, e.channel, e.actor) for e in events] == [
        ("unknown", "opt_in", "api", "API token"),
        ("opt_in", "opt_out", "api", "API token"),
    ]


def test_api_changes_are_announced_to_the_sync_side(app, api):
    from portal.crm.events import contacts_changed

    heard = []

    def receiver(ws_id, *, contact_ids, change):
        heard.append((contact_ids, change))

    with contacts_changed.connected_to(receiver):
        contact_id = new_contact(api)["id"]
        api.patch(f"/api/v1/contacts/{contact_id}", {"first_name": "Léonie"})
        api.patch(f"/api/v1/contacts/{contact_id}", {"first_name": "Léonie"})  # no change: no announcement
        api.delete(f"/api/v1/contacts/{contact_id}")
    assert heard == [([contact_id], "created"), ([contact_id], "updated"), ([contact_id], "deleted")]


def test_contact_shows_its_mailchimp_state_once_a_connector_exists(api, ws_a):
    from portal.models import Connector, ContactSync

    contact_id = new_contact(api)["id"]
    connector = Connector(workspace_id=ws_a[0].id, status="active", api_key_encrypted="x", api_key_hint="…-us1",
                          audience_id="a1b2c3")
    db.session.add(connector)
    db.session.flush()
    db.session.add(ContactSync(connector_id=connector.id, workspace_id=ws_a[0].id, contact_id=contact_id,
                               state="error", error_kind="invalid_email", error_message="Adresse refusée",
                               error_fix="edit_contact", error_field="email"))
    db.session.commit()
    other_id = new_contact(api, email="autre@example.org")["id"]
    mc = api.get(f"/api/v1/contacts/{contact_id}").get_json()["mailchimp"]
    assert mc["connector_status"] == "active" and mc["state"] == "error"
    # The message is the plain-words sentence with its fix, in the API's language (French by default).
    assert mc["error"] == {"kind": "invalid_email", "fix": "edit_contact", "field": "email",
                           "message": "Cette adresse e-mail n'est pas valide. Corrigez-la sur la fiche du contact "
                                      "puis relancez."}
    # A contact created while the connector is active waits for its push (R10, R17).
    assert api.get(f"/api/v1/contacts/{other_id}").get_json()["mailchimp"]["state"] == "pending"


# --- update / delete -------------------------------------------------------------------------


def test_patch_changes_only_the_fields_sent(api):
    created = new_contact(api, company="Ardent", address={"city": "Lyon", "postal_code": "69003"})
    response = api.patch(f"/api/v1/contacts/{created['id']}", {"job_title": "Cheffe", "address": {"city": "Paris"}})
    assert response.status_code == 200
    updated = response.get_json()
    assert updated["job_title"] == "Cheffe"
    assert updated["address"]["city"] == "Paris" and updated["address"]["postal_code"] == "69003"
    assert updated["company"] == "Ardent" and updated["email"] == created["email"]


def test_patch_tags_replaces_the_whole_list(api):
    created = new_contact(api, tags=["VIP", "Lyon"])
    url = f"/api/v1/contacts/{created['id']}"
    assert api.patch(url, {"tags": ["Newsletter"]}).get_json()["tags"] == ["Newsletter"]
    assert api.patch(url, {"tags": []}).get_json()["tags"] == []


def test_a_contact_read_from_the_api_can_be_sent_back_as_a_patch(api):
    created = new_contact(api, tags=["VIP"], consent="opt_in")
    response = api.patch(f"/api/v1/contacts/{created['id']}", created)
    assert response.status_code == 200
    assert response.get_json() == created


def test_patch_cannot_opt_in_a_contact_locked_by_mailchimp_and_changes_nothing(api, ws_a):
    from portal.crm import contacts as crm

    created = new_contact(api, consent="opt_in")
    crm.set_consent(ws_a[0].id, created["id"], "opt_out", actor="Mailchimp", channel="mailchimp_webhook",
                    locked=True, lock_reason="self_unsubscribe")
    response = api.patch(f"/api/v1/contacts/{created['id']}", {"consent": "opt_in", "first_name": "Autre"})
    assert response.status_code == 409
    assert response.get_json()["code"] == "consent_locked"
    after = api.get(f"/api/v1/contacts/{created['id']}").get_json()
    assert after["first_name"] == "Léa"
    assert after["consent"] == {"value": "opt_out", "locked": True, "lock_reason": "self_unsubscribe"}


def test_deleted_contact_disappears_and_a_second_delete_is_404(api):
    contact_id = new_contact(api)["id"]
    response = api.delete(f"/api/v1/contacts/{contact_id}")
    assert response.status_code == 204 and response.data == b""
    assert api.get(f"/api/v1/contacts/{contact_id}").status_code == 404
    assert contact_id not in all_pages(api)
    assert api.patch(f"/api/v1/contacts/{contact_id}", {"first_name": "X"}).status_code == 404
    assert api.delete(f"/api/v1/contacts/{contact_id}").get_json()["code"] == "not_found"
    assert db.session.get(Contact, contact_id).deleted_at is not None  # the row stays for archiving (R12)


# --- tags ------------------------------------------------------------------------------------


def test_tags_lists_the_workspace_tags_with_live_contact_counts(api):
    new_contact(api, email="a@example.org", tags=["VIP", "Lyon"])
    gone = new_contact(api, email="b@example.org", tags=["VIP"])["id"]
    api.delete(f"/api/v1/contacts/{gone}")
    response = api.get("/api/v1/tags")
    assert response.status_code == 200
    assert [(t["name"], t["contact_count"]) for t in response.get_json()["data"]] == [("Lyon", 1), ("VIP", 1)]


# --- listing ---------------------------------------------------------------------------------


def test_list_pages_through_every_contact_once_with_next_links(api, ws_a):
    ids = [factories.contact(ws_a[0], email=f"c{i}@example.org").id for i in range(7)]
    first = api.get("/api/v1/contacts?limit=3")
    page = first.get_json()
    assert [c["id"] for c in page["data"]] == ids[:3]
    assert page["has_more"] is True and page["next_after"] == ids[2]
    assert first.headers["Link"] == f'<{page["next_url"]}>; rel="next"'
    assert all_pages(api, "limit=3") == ids
    last = api.get(f"/api/v1/contacts?limit=3&after={ids[5]}").get_json()
    assert [c["id"] for c in last["data"]] == ids[6:]
    assert last["has_more"] is False and last["next_url"] is None and last["next_after"] is None


def test_default_page_size_is_50(api, ws_a):
    from portal.crm.demo import insert_contacts

    insert_contacts(ws_a[0].id, 60, seed=1)
    page = api.get("/api/v1/contacts").get_json()
    assert len(page["data"]) == 50 and page["has_more"] is True


def test_pagination_neither_skips_nor_repeats_while_contacts_are_added(api, ws_a):
    before = [factories.contact(ws_a[0], email=f"old{i}@example.org").id for i in range(10)]
    seen = []
    url = "/api/v1/contacts?limit=4"
    while url:
        page = api.get(url).get_json()
        seen += [c["id"] for c in page["data"]]
        new_contact(api, email=f"new{len(seen)}@example.org")  # someone else writes between our pages
        url = page["next_url"]
        assert len(seen) < 100
    assert seen[:10] == before
    assert len(seen) == len(set(seen))


def test_filters_by_search_tag_and_consent(api):
    a = new_contact(api, email="elodie@example.org", first_name="Élodie", tags=["VIP"], consent="opt_in")["id"]
    b = new_contact(api, email="marc@example.org", first_name="Marc", company="Élan", tags=["vip"])["id"]
    c = new_contact(api, email="zoe@example.org", first_name="Zoé", consent="opt_in")["id"]
    assert all_pages(api, "q=elodie") == [a]
    assert all_pages(api, "q=ELAN") == [b]
    assert all_pages(api, "tag=VIP") == [a, b]
    assert all_pages(api, "consent=opt_in") == [a, c]
    assert all_pages(api, "consent=opt_in&tag=vip&limit=1") == [a]
    assert all_pages(api, "tag=nobody-has-this") == []


def test_updated_since_returns_changes_including_deletions(api, ws_a):
    untouched = new_contact(api, email="old@example.org")["id"]
    edited = new_contact(api, email="edited@example.org")["id"]
    deleted = new_contact(api, email="deleted@example.org")["id"]
    old = datetime(2020, 1, 1, tzinfo=timezone.utc)
    db.session.execute(Contact.__table__.update().values(updated_at=old, created_at=old))
    db.session.commit()
    api.patch(f"/api/v1/contacts/{edited}", {"tags": ["Relance"]})
    api.delete(f"/api/v1/contacts/{deleted}")
    added = new_contact(api, email="added@example.org")["id"]

    page = api.get("/api/v1/contacts?updated_since=2025-01-01T00:00:00Z").get_json()
    by_id = {c["id"]: c for c in page["data"]}
    assert list(by_id) == [edited, deleted, added]
    assert by_id[deleted]["deleted"] is True and by_id[deleted]["deleted_at"]
    assert by_id[edited]["deleted"] is False
    assert untouched in all_pages(api, "updated_since=2019-12-31")
    assert deleted not in all_pages(api)  # without updated_since, deleted contacts stay hidden


def test_updated_since_accepts_offsets_even_when_the_plus_sign_was_not_encoded(api):
    contact_id = new_contact(api)["id"]
    soon = (datetime.now(timezone.utc) + timedelta(hours=1)).astimezone(timezone(timedelta(hours=2)))
    stamp = soon.isoformat(timespec="seconds")  # e.g. 2026-11-27T12:40:00+02:00
    assert api.get("/api/v1/contacts", query_string={"updated_since": stamp}).get_json()["data"] == []
    raw = api.get(f"/api/v1/contacts?updated_since={stamp}")  # '+' arrives as a space
    assert raw.status_code == 200 and raw.get_json()["data"] == []
    past = (datetime.now(timezone.utc) - timedelta(hours=1)).astimezone(timezone(timedelta(hours=2)))
    ids = [c["id"] for c in api.get("/api/v1/contacts", query_string={
        "updated_since": past.isoformat()}).get_json()["data"]]
    assert ids == [contact_id]


@pytest.mark.parametrize("query, param", [
    ("limit=0", "limit"), ("limit=201", "limit"), ("limit=abc", "limit"), ("after=-1", "after"),
    ("after=99999999999999999999", "after"), ("updated_since=yesterday", "updated_since"),
    ("updated_since=2026-13-45", "updated_since"), ("consent=maybe", "consent"), ("q=a%00b", "q"),
    ("tag=" + "x" * 201, "tag"),
])
def test_bad_query_parameters_are_400_naming_the_parameter(api, query, param):
    response = api.get(f"/api/v1/contacts?{query}")
    assert response.status_code == 400
    body = response.get_json()
    assert body["code"] == "bad_request" and param in body["errors"]


# --- scoping ---------------------------------------------------------------------------------


def test_another_workspaces_token_never_sees_or_changes_a_contact(api, api_b, ws_a):
    contact_id = new_contact(api, tags=["Secret"])["id"]
    url = f"/api/v1/contacts/{contact_id}"
    assert api_b.get(url).status_code == 404
    assert api_b.patch(url, {"first_name": "Pirate"}).get_json()["code"] == "not_found"
    assert api_b.delete(url).status_code == 404
    assert all_pages(api_b) == [] and all_pages(api_b, "updated_since=2000-01-01") == []
    assert api_b.get("/api/v1/tags").get_json()["data"] == []
    mine = api.get(url).get_json()
    assert mine["first_name"] == "Léa" and mine["deleted"] is False


def test_tags_with_the_same_name_stay_per_workspace(api, api_b):
    new_contact(api, tags=["VIP"])
    b_contact = new_contact(api_b, tags=["VIP"])["id"]
    assert all_pages(api_b, "tag=VIP") == [b_contact]


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("data, content_type, code", [
    (b"{not json", "application/json", "invalid_json"),
    (b"", "application/json", "invalid_json"),
    (b"[1, 2]", "application/json", "invalid_json"),
    (b'"just a string"', "application/json", "invalid_json"),
    (b'{"first_name": NaN}', "application/json", "invalid_json"),
    (b"\xff\xfe{}", "application/json", "invalid_json"),
    (b"[" * 100000 + b"]" * 100000, "application/json", "invalid_json"),
    (b"email=a@example.org", "application/x-www-form-urlencoded", "bad_request"),
    (b'{"email": "a@example.org"}', "text/plain", "bad_request"),
    (b'{"email": "a@example.org"}', None, "bad_request"),
])
def test_unreadable_bodies_are_400_with_a_code(api, data, content_type, code):
    headers = {"Content-Type": content_type} if content_type else {}
    for response in (api.post("/api/v1/contacts", data=data, headers=headers),
                     api.patch(f"/api/v1/contacts/{new_contact(api)['id']}", data=data, headers=headers)):
        assert response.status_code == 400
        assert response.get_json()["code"] == code


@pytest.mark.parametrize("body, field", [
    ({"email": "not-an-email"}, "email"),
    ({"phone": "123"}, "email"),  # nothing to identify the person
    ({"email": "a@example.org", "firstname": "typo"}, "firstname"),
    ({"email": "a@example.org", "first_name": 42}, "first_name"),
    ({"email": "a@example.org", "first_name": "x" * 101}, "first_name"),
    ({"email": "a@example.org", "address": {"city": "y" * 121}}, "address.city"),
    ({"email": "a@example.org", "address": {"town": "Lyon"}}, "address.town"),
    ({"email": "a@example.org", "city": "Lyon"}, "city"),  # address fields live under "address"
    ({"email": "a@example.org", "address": "3 rue des Lilas"}, "address"),
    ({"email": "a@example.org", "tags": "VIP"}, "tags"),
    ({"email": "a@example.org", "tags": [1, 2]}, "tags"),
    ({"email": "a@example.org", "tags": [f"t{i}" for i in range(51)]}, "tags"),
    ({"email": "a@example.org", "consent": "yes"}, "consent"),
    ({"email": "a@example.org", "consent": {"value": True}}, "consent"),
    ({"email": "a@example.org", "company": "A\x00B"}, "company"),
])
def test_invalid_contact_fields_are_422_with_per_field_errors(api, body, field):
    response = api.post("/api/v1/contacts", body)
    assert response.status_code == 422
    payload = response.get_json()
    assert payload["code"] == "validation_failed" and field in payload["errors"]
    assert all_pages(api) == []


def test_lone_surrogate_in_a_string_is_422_not_a_crash(api):
    response = api.post("/api/v1/contacts", data=b'{"email": "a@example.org", "address": {"city": "\\ud800"}}',
                        headers={"Content-Type": "application/json"})
    assert response.status_code == 422 and "address.city" in response.get_json()["errors"]


def test_patch_that_would_leave_nobody_identifiable_is_422(api):
    created = new_contact(api, first_name="", last_name="")
    response = api.patch(f"/api/v1/contacts/{created['id']}", {"email": None})
    assert response.status_code == 422
    assert api.get(f"/api/v1/contacts/{created['id']}").get_json()["email"] == created["email"]


@pytest.mark.parametrize("path", ["/api/v1/contacts/999999", "/api/v1/contacts/abc", "/api/v1/nothing",
                                  "/api/v1/contacts/99999999999999999999999"])
def test_unknown_paths_and_ids_are_404_json(api, path):
    response = api.get(path)
    assert response.status_code == 404
    assert response.get_json()["code"] == "not_found"


def test_unsupported_method_is_405_json(api):
    contact_id = new_contact(api)["id"]
    response = api.put(f"/api/v1/contacts/{contact_id}", {"email": "x@example.org"})
    assert response.status_code == 405
    assert response.get_json()["code"] == "method_not_allowed"


def test_oversized_body_is_413_json(api):
    response = api.post("/api/v1/contacts", data=b'{"street": "' + b"x" * (2 * 1024 * 1024) + b'"}',
                        headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.get_json()["code"] == "too_large"


# --- never a 500 for bad input ---------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)
field_names = st.sampled_from(["email", "first_name", "last_name", "phone", "company", "job_title", "address",
                               "tags", "consent", "id", "deleted", "street", "city"])
contact_like = st.dictionaries(
    field_names,
    json_values | st.sampled_from(["opt_in", "opt_out", "unknown", "a@example.org", ""])
    | st.lists(st.text(max_size=12), max_size=5)
    | st.fixed_dictionaries({}, optional={"city": json_values, "street": json_values, "value": json_values}),
    max_size=6,
)
fuzz = settings(max_examples=120, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@fuzz
@given(body=contact_like | json_values)
def test_random_json_bodies_never_cause_a_server_error(api, body):
    created = api.post("/api/v1/contacts", body)
    assert created.status_code in (201, 400, 422), created.get_json()
    target = api.post("/api/v1/contacts", {"email": "fuzz@example.org"}).get_json()["id"]
    patched = api.patch(f"/api/v1/contacts/{target}", body)
    assert patched.status_code in (200, 400, 409, 422), patched.get_json()
    for response in (created, patched):
        assert set(response.get_json()) >= ({"code", "message"} if response.status_code >= 400 else {"id"})


@fuzz
@given(raw=st.binary(max_size=200), query=st.dictionaries(
    st.sampled_from(["limit", "after", "updated_since", "q", "tag", "consent"]), st.text(max_size=30), max_size=4))
def test_random_bytes_and_query_strings_never_cause_a_server_error(api, raw, query):
    assert api.post("/api/v1/contacts", data=raw, headers={"Content-Type": "application/json"}).status_code < 500
    assert api.get("/api/v1/contacts", query_string=query).status_code < 500


def test_error_bodies_are_json_objects_with_code_and_message(api, app):
    responses = [
        app.test_client().get("/api/v1/tags"),
        api.post("/api/v1/contacts", data=b"{", headers={"Content-Type": "application/json"}),
        api.post("/api/v1/contacts", {"email": "bad"}),
        api.get("/api/v1/contacts/424242"),
        api.client.open("/api/v1/tags", method="POST", headers={"Authorization": f"Bearer {api.token}"}),
    ]
    for response in responses:
        assert response.mimetype == "application/json"
        body = json.loads(response.data)
        assert isinstance(body["code"], str) and isinstance(body["message"], str) and body["message"]


def test_reusing_an_accented_capitalised_tag_is_not_a_server_error(api):
    new_contact(api, email="a@example.org", tags=["ÉTÉ"])
    response = api.post("/api/v1/contacts", {"email": "b@example.org", "tags": ["été"]})
    assert response.status_code == 201
    assert [t["name"] for t in api.get("/api/v1/tags").get_json()["data"]] == ["ÉTÉ"]
