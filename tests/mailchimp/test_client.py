"""The Mailchimp client against the simulator: retries, typed errors, renames, paging, limits."""
from __future__ import annotations

import threading

import pytest

from portal.mailchimp import MailchimpClient, MailchimpError, RetryPolicy
from portal.mailchimp.errors import classify_batch_error
from portal.mailchimp.payload import build_member, default_mappings, subscriber_hash

FAST = RetryPolicy(max_attempts=8, base_delay=0.001, max_delay=0.01)


@pytest.fixture
def account(sim):
    """A fresh simulator account with one empty audience: ``(api_key, list_id)``."""
    key = sim.control.new_account("Adapter tests")
    created = sim.control.create_list(key, "Clients")
    list_id = created["id"] if isinstance(created, dict) else created
    yield key, list_id
    sim.control.clear_faults(key)


@pytest.fixture
def mc(sim, account):
    """A client for the fresh account, with near-instant retries."""
    client = MailchimpClient(account[0], base_url=sim.api_base, retry=FAST)
    yield client
    client.close()


def _statuses(sim, key, path=None):
    return [
        entry["status"] for entry in sim.control.requests_log()
        if entry.get("key_suffix") == key[-8:] and (path is None or entry["path"] == path)
    ]


def _people(n, **extra):
    return [
        build_member({"email": f"person{i}@exemple.fr", "first_name": f"P{i}", **extra}, default_mappings())
        for i in range(n)
    ]


def test_a_valid_key_pings_and_lists_its_audiences(mc, account):
    assert mc.ping()["health_status"]
    audiences = mc.get_lists()
    assert [a["id"] for a in audiences] == [account[1]]
    assert audiences[0]["name"] == "Clients" and audiences[0]["member_count"] == 0
    assert audiences[0]["subscribe_url_long"].startswith("http")


def test_a_malformed_key_is_refused_before_any_call():
    with pytest.raises(MailchimpError) as caught:
        MailchimpClient("not-a-key")
    assert caught.value.kind == "api_key_invalid"


def test_injected_429_500_503_are_retried_until_success(sim, mc, account):
    key, list_id = account
    sim.control.set_faults(key, error_rate=0.3, statuses=[429, 500, 503], seed=7)
    results = []
    while len(results) < 200 and not {429, 500, 503} <= set(_statuses(sim, key)):
        results.append(mc.ping())
    result = mc.batch_subscribe(list_id, _people(30))
    assert {429, 500, 503} <= set(_statuses(sim, key))
    assert all(r["health_status"] for r in results)
    assert result["total_created"] + result["total_updated"] == 30
    assert mc.stats.retries > 0 and mc.stats.failures == 0
    sim.control.clear_faults(key)
    assert len(list(mc.iter_members(list_id))) == 30


def test_revoked_key_raises_api_key_invalid_without_retrying(sim, mc, account):
    key, _ = account
    mc.ping()
    sim.control.revoke_key(key)
    calls_before = mc.stats.calls
    with pytest.raises(MailchimpError) as caught:
        mc.get_lists()
    error = caught.value
    assert error.kind == "api_key_invalid" and error.fix == "reconnect" and error.pauses_connector
    assert not error.transient and not error.contact_fault
    assert mc.stats.calls == calls_before + 1
    assert key not in str(error) and key not in error.message


def test_a_server_that_never_answers_in_time_raises_timeout_after_retries(sim, account):
    key, _ = account
    sim.control.set_faults(key, timeout_rate=1.0, timeout_seconds=1.0)
    client = MailchimpClient(key, base_url=sim.api_base, timeout=(2, 0.2),
                             retry=RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.01))
    with pytest.raises(MailchimpError) as caught:
        client.ping()
    assert caught.value.kind == "timeout" and caught.value.transient
    assert client.stats.calls == 3 and client.stats.retries == 2
    client.close()


def test_renaming_through_upsert_keeps_a_single_member(mc, account):
    _, list_id = account
    created = mc.upsert_member(list_id, "ancien@exemple.fr",
                               build_member({"email": "ancien@exemple.fr", "first_name": "Anne"},
                                            default_mappings(), status_key="status_if_new"))
    renamed = mc.upsert_member(list_id, "ancien@exemple.fr",
                               {"email_address": "nouveau@exemple.fr", "merge_fields": {"FNAME": "Anne"}})
    assert renamed["email_address"] == "nouveau@exemple.fr"
    assert renamed["id"] == subscriber_hash("nouveau@exemple.fr") != created["id"]
    assert mc.get_member(list_id, "ancien@exemple.fr") is None
    assert [m["email_address"] for m in mc.iter_members(list_id)] == ["nouveau@exemple.fr"]


def test_renaming_onto_an_address_already_in_the_audience_is_member_exists(mc, account):
    _, list_id = account
    mc.batch_subscribe(list_id, _people(2))
    with pytest.raises(MailchimpError) as caught:
        mc.upsert_member(list_id, "person0@exemple.fr", {"email_address": "person1@exemple.fr"})
    assert caught.value.kind == "member_exists" and caught.value.fix == "choose_owner"


def test_batch_reports_bad_contacts_per_member_and_keeps_the_rest(mc, account):
    _, list_id = account
    mc.create_merge_field(list_id, "COMPANY", "Société", "text")
    members = _people(3) + [
        build_member({"email": "pas-une-adresse"}, default_mappings()),
        build_member({"email": "long@exemple.fr", "company": "x" * 300}, default_mappings()),
    ]
    result = mc.batch_subscribe(list_id, members)
    assert result["total_created"] == 3
    kinds = {e["email_address"]: classify_batch_error(e) for e in result["errors"]}
    assert kinds["pas-une-adresse"].kind == "invalid_email"
    assert (kinds["long@exemple.fr"].kind, kinds["long@exemple.fr"].field) == ("value_too_long", "COMPANY")
    with pytest.raises(ValueError):
        mc.batch_subscribe(list_id, _people(501))


def test_batch_answer_can_be_narrowed_to_the_fields_the_caller_reads(mc, account):
    _, list_id = account
    result = mc.batch_subscribe(list_id, _people(2), fields=["new_members.email_address", "errors"])
    assert result == {"new_members": [{"email_address": "person0@exemple.fr"},
                                      {"email_address": "person1@exemple.fr"}], "errors": []}


def test_members_are_paged_without_loading_everything(mc, account):
    _, list_id = account
    mc.batch_subscribe(list_id, _people(7))
    pages_before = mc.stats.by_endpoint["GET /lists/{list_id}/members"]
    emails = [m["email_address"] for m in mc.iter_members(list_id, fields=["email_address"], page_size=3)]
    assert sorted(emails) == sorted(f"person{i}@exemple.fr" for i in range(7))
    assert mc.stats.by_endpoint["GET /lists/{list_id}/members"] - pages_before == 3


def test_archive_then_archive_again_reports_nothing_left_to_do(mc, account):
    _, list_id = account
    mc.batch_subscribe(list_id, _people(1))
    assert mc.archive_member(list_id, "person0@exemple.fr") is True
    assert mc.archive_member(list_id, "person0@exemple.fr") is False
    assert mc.get_member(list_id, "person0@exemple.fr")["status"] == "archived"


def test_permanently_deleted_member_cannot_come_back(mc, account):
    _, list_id = account
    mc.batch_subscribe(list_id, _people(1))
    mc.delete_member_permanently(list_id, "person0@exemple.fr")
    assert mc.get_member(list_id, "person0@exemple.fr") is None
    with pytest.raises(MailchimpError) as caught:
        mc.upsert_member(list_id, "person0@exemple.fr",
                         {"email_address": "person0@exemple.fr", "status_if_new": "subscribed"})
    assert caught.value.kind == "forgotten_email" and caught.value.fix == "resubscribe_guidance"


def test_tags_on_a_member_and_through_static_segments(mc, account):
    _, list_id = account
    mc.batch_subscribe(list_id, _people(3))
    mc.set_member_tags(list_id, "person0@exemple.fr", add=["Clients", "VIP"])
    mc.set_member_tags(list_id, "person0@exemple.fr", remove=["VIP"])
    assert [t["name"] for t in mc.get_member(list_id, "person0@exemple.fr")["tags"]] == ["Clients"]
    assert mc.get_member_tags(list_id, "person0@exemple.fr") == ["Clients"]
    segment = mc.create_segment(list_id, "Prospects", ["person1@exemple.fr"])
    answer = mc.update_segment_members(list_id, segment["id"], add=["person2@exemple.fr"],
                                       remove=["person1@exemple.fr"])
    assert answer["total_added"] == 1 and answer["total_removed"] == 1
    names = {s["name"] for s in mc.get_segments(list_id)}
    assert {"Clients", "Prospects"} <= names
    assert [t["name"] for t in mc.get_member(list_id, "person2@exemple.fr")["tags"]] == ["Prospects"]


def test_merge_fields_can_be_read_and_created(mc, account):
    _, list_id = account
    tags = {f["tag"] for f in mc.get_merge_fields(list_id)}
    assert {"FNAME", "LNAME"} <= tags
    created = mc.create_merge_field(list_id, "COMPANY", "Société", "text")
    assert created["tag"] == "COMPANY"
    assert "COMPANY" in {f["tag"] for f in mc.get_merge_fields(list_id)}


def test_missing_member_and_missing_audience_are_told_apart(mc, account):
    _, list_id = account
    with pytest.raises(MailchimpError) as member:
        mc.update_member(list_id, "personne@exemple.fr", {"merge_fields": {"FNAME": "X"}})
    assert member.value.kind == "not_found"
    with pytest.raises(MailchimpError) as audience:
        mc.batch_subscribe("0000000000", _people(1))
    assert audience.value.kind == "audience_gone" and audience.value.pauses_connector


def test_parallel_workers_sharing_a_key_stay_under_ten_connections(sim, account, redis_url):
    import redis

    key, _ = account
    sim.control.set_faults(key, latency_ms=30)
    conn = redis.Redis.from_url(redis_url)
    failures: list[BaseException] = []

    def worker():
        client = MailchimpClient(key, base_url=sim.api_base, redis=conn,
                                 retry=RetryPolicy(max_attempts=1))
        try:
            for _ in range(4):
                client.ping()
        except BaseException as exc:  # a 429 would land here: no retries allowed
            failures.append(exc)
        finally:
            client.close()

    threads = [threading.Thread(target=worker) for _ in range(25)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    conn.close()
    assert not failures
    statuses = _statuses(sim, key, "/3.0/ping")
    assert len(statuses) == 100 and set(statuses) == {200}


def test_backoff_doubles_up_to_its_cap_and_jitter_stays_within_half_and_full():
    import random

    policy = RetryPolicy(max_attempts=6, base_delay=0.5, max_delay=30, jitter=False)
    assert [policy.delay(n) for n in range(1, 9)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert policy.delay(1, retry_after=12) == 12
    assert policy.delay(1, retry_after=600) == 30
    jittered = RetryPolicy(base_delay=0.5, max_delay=30)
    rng = random.Random(3)
    for attempt in range(1, 10):
        cap = min(30, 0.5 * 2 ** (attempt - 1))
        assert all(cap / 2 <= jittered.delay(attempt, rng=rng) <= cap for _ in range(50))


def test_creating_is_not_retried_after_a_5xx_but_is_after_a_429(sim, mc, account):
    key, list_id = account
    sim.control.set_faults(key, error_rate=1.0, statuses=[500])
    with pytest.raises(MailchimpError) as caught:
        mc.create_segment(list_id, "Salon 2026")
    assert caught.value.kind == "unavailable"
    assert mc.stats.by_endpoint["POST /lists/{list_id}/segments"] == 1
    sim.control.set_faults(key, error_rate=1.0, statuses=[429])
    with pytest.raises(MailchimpError) as caught:
        mc.create_segment(list_id, "Salon 2026")
    assert caught.value.kind == "rate_limited"
    assert mc.stats.by_endpoint["POST /lists/{list_id}/segments"] == 1 + FAST.max_attempts


def test_logs_never_contain_the_api_key(sim, mc, account, caplog):
    key, _ = account
    sim.control.set_faults(key, error_rate=1.0, statuses=[503])
    with caplog.at_level("DEBUG"):
        with pytest.raises(MailchimpError):
            mc.ping()
    assert caplog.records
    assert key not in caplog.text and key.split("-")[0] not in caplog.text


def test_webhooks_on_a_loopback_url_can_be_registered_and_removed(mc, account):
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Hook(BaseHTTPRequestHandler):
        def do_GET(self):  # Mailchimp's validator
            self.send_response(200)
            self.end_headers()

        do_POST = do_GET

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        _, list_id = account
        url = f"http://127.0.0.1:{server.server_port}/webhooks/mailchimp?secret=s3cr3t"
        hook = mc.create_webhook(list_id, url, ["subscribe", "unsubscribe", "profile", "cleaned", "upemail"],
                                 ["user", "admin"])
        assert hook["url"] == url
        assert hook["sources"] == {"user": True, "admin": True, "api": False}
        assert [h["id"] for h in mc.get_webhooks(list_id)] == [hook["id"]]
        mc.delete_webhook(list_id, hook["id"])
        assert mc.get_webhooks(list_id) == []
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_campaign_activity_is_read_page_by_page(sim, mc, account):
    _, list_id = account
    mc.batch_subscribe(list_id, _people(12))
    sim.control.send_campaign(list_id, seed=3, open_rate=0.5, click_rate=0.3, unsubscribe_rate=0.2)
    campaigns = list(mc.get_campaigns(list_id))
    assert len(campaigns) == 1
    campaign_id = campaigns[0]["id"]
    sent = list(mc.iter_sent_to(campaign_id))
    assert sorted(r["email_address"] for r in sent) == sorted(f"person{i}@exemple.fr" for i in range(12))
    activity = list(mc.iter_email_activity(campaign_id))
    assert {a["email_address"] for a in activity} <= {r["email_address"] for r in sent}
    assert any(a["activity"] for a in activity)
    unsubscribed = list(mc.iter_unsubscribed(campaign_id))
    assert {u["email_address"] for u in unsubscribed} <= {r["email_address"] for r in sent}


def test_one_client_shared_by_threads_stays_under_the_limit(sim, account, redis_url):
    import redis

    key, _ = account
    sim.control.set_faults(key, latency_ms=30)
    conn = redis.Redis.from_url(redis_url)
    client = MailchimpClient(key, base_url=sim.api_base, redis=conn, retry=RetryPolicy(max_attempts=1))
    answers: list[dict] = []
    failures: list[BaseException] = []

    def worker():
        try:
            for _ in range(3):
                answers.append(client.ping())
        except BaseException as exc:  # a 429 would land here: no retries allowed
            failures.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    client.close()
    conn.close()
    assert not failures and len(answers) == 60
    assert client.stats.calls == 60 and client.stats.by_endpoint["GET /ping"] == 60
