"""Authentication, problem documents, the 10-connection limit, faults and the request log
(API-NOTES §1.6, §1.7, §10, §14.10, §14.11, §14.13)."""

from __future__ import annotations

import threading
import time

import pytest
import requests
from mailchimp3 import MailChimp
from mailchimp3.mailchimpclient import MailChimpError


def test_ping_answers_chimpy(mc):
    assert mc.ping.get() == {"health_status": "Everything's Chimpy!"}


def test_unknown_key_is_401_api_key_invalid(sim, control, client_for):
    client = client_for("f" * 32 + "-us1")
    with pytest.raises(MailChimpError) as info:
        client.ping.get()
    err = info.value.args[0]
    assert (err["status"], err["title"]) == (401, "API Key Invalid")
    assert err["detail"] == ("Your API key may be invalid, or you've attempted to access the "
                             "wrong datacenter.")


def test_revoked_key_gets_401_from_then_on(sim, control, api_key, mc):
    assert mc.ping.get()
    control.revoke_key(api_key)
    with pytest.raises(MailChimpError) as info:
        mc.lists.all()
    assert info.value.args[0]["title"] == "API Key Invalid"


def test_call_without_key_is_401(sim, control):
    response = requests.get(sim.api_base + "ping", timeout=10)
    assert response.status_code == 401 and response.json()["status"] == 401


def test_problem_document_headers_and_instance(mc, list_id):
    with pytest.raises(MailChimpError) as info:
        mc.lists.members.get(list_id, "0" * 32)
    response = info.value.args[0]["response"]
    doc = response.json()
    assert response.headers["Content-Type"] == "application/problem+json; charset=utf-8"
    assert response.headers["X-Request-Id"] == doc["instance"]
    assert 'rel="describedBy"' in response.headers["Link"]
    assert response.headers["Server"] == "openresty"
    assert doc["type"] == "https://mailchimp.com/developer/marketing/docs/errors/"
    assert set(doc) == {"type", "title", "status", "detail", "instance"}


def test_an_account_cannot_see_another_accounts_audience(sim, control, list_id, client_for):
    other = client_for(control.new_account("Other"))
    with pytest.raises(MailChimpError) as info:
        other.lists.get(list_id)
    assert info.value.args[0]["status"] == 404
    assert other.lists.all()["total_items"] == 0


def test_unsupported_method_is_405_with_allow(sim, api_key, list_id):
    response = requests.put(f"{sim.api_base}lists/{list_id}/members", auth=("x", api_key),
                            json={}, timeout=10)
    assert response.status_code == 405
    assert response.json()["detail"].startswith("The requested method and resource are not compatible.")
    assert set(response.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


def test_body_that_is_not_json_is_a_parse_error(sim, api_key, list_id):
    response = requests.post(f"{sim.api_base}lists/{list_id}/members", auth=("x", api_key),
                             data="{nope", headers={"Content-Type": "application/json"}, timeout=10)
    assert response.status_code == 400 and response.json()["title"] == "JSON Parse Error"


def test_base_url_without_trailing_slash_misses_the_api(sim, api_key):
    client = MailChimp(mc_api=api_key, timeout=10)
    client.base_url = sim.api_base.rstrip("/")
    with pytest.raises(MailChimpError) as info:
        client.ping.get()
    assert info.value.args[0]["status"] == 404


def _parallel_pings(sim, key, n):
    """``n`` simultaneous pings, one mailchimp3 client per thread (as it must be used)."""
    statuses, lock = [], threading.Lock()

    def one():
        """One ping through its own mailchimp3 client."""
        client = MailChimp(mc_api=key, timeout=30)
        client.base_url = sim.api_base
        try:
            client.ping.get()
            outcome = (200, None)
        except MailChimpError as exc:
            outcome = (exc.args[0]["status"], exc.args[0]["detail"])
        with lock:
            statuses.append(outcome)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses


def test_eleventh_simultaneous_request_of_a_key_gets_429(sim, control, api_key):
    control.set_faults(api_key, latency_ms=2500)
    statuses = _parallel_pings(sim, api_key, 11)
    codes = sorted(s for s, _ in statuses)
    assert codes == [200] * 10 + [429]
    assert ("You have exceeded the limit of 10 simultaneous connections." in
            [d for s, d in statuses if s == 429])


def test_connection_limit_is_per_key(sim, control, api_key):
    other = control.new_account("Other")
    control.set_faults(api_key, latency_ms=2500)
    control.set_faults(other, latency_ms=2500)
    results = []
    threads = [threading.Thread(target=lambda k=k: results.extend(_parallel_pings(sim, k, 6)))
               for k in (api_key, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(s for s, _ in results) == [200] * 12


def test_error_faults_answer_the_chosen_status(mc, control, api_key):
    control.set_faults(api_key, error_rate=1.0, statuses=(503,))
    with pytest.raises(MailChimpError) as info:
        mc.ping.get()
    assert info.value.args[0]["status"] == 503
    control.clear_faults(api_key)
    assert mc.ping.get()


def test_non_json_error_leaves_only_the_response_in_mailchimperror(mc, control, api_key):
    control.set_faults(api_key, error_rate=1.0, statuses=(502,))
    with pytest.raises(MailChimpError) as info:
        mc.ping.get()
    assert list(info.value.args[0]) == ["response"]
    assert info.value.args[0]["response"].status_code == 502


def test_timeout_fault_surfaces_as_raw_requests_timeout(sim, control, api_key, list_id, client_for):
    control.set_faults(api_key, timeout_rate=1.0, timeout_seconds=1.5)
    client = MailChimp(mc_api=api_key, timeout=0.3)
    client.base_url = sim.api_base
    with pytest.raises(requests.exceptions.ReadTimeout):
        client.lists.members.create(list_id, {"email_address": "late@anaba.fr", "status": "subscribed"})
    control.clear_faults(api_key)
    # the write was processed even though its answer never arrived in time
    members = client_for(api_key).lists.members
    deadline = time.monotonic() + 10
    while True:  # on a busy machine the server may still be on it when the client gives up
        try:
            member = members.get(list_id, "late@anaba.fr")
            break
        except MailChimpError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    assert member["status"] == "subscribed"


def test_faults_with_a_seed_are_repeatable(mc, control, api_key):
    def run():
        """Twelve pings under the seeded faults."""
        control.set_faults(api_key, error_rate=0.5, statuses=(500,), seed=7)
        outcome = []
        for _ in range(12):
            try:
                mc.ping.get()
                outcome.append(200)
            except MailChimpError as exc:
                outcome.append(exc.args[0]["status"])
        return outcome

    first = run()
    assert set(first) == {200, 500}
    assert run() == first


def test_request_log_records_templates_statuses_and_key(mc, control, api_key, list_id):
    since = control.requests_log()[-1]["seq"]
    mc.lists.members.create(list_id, {"email_address": "log@anaba.fr", "status": "subscribed"})
    with pytest.raises(MailChimpError):
        mc.lists.members.get(list_id, "0" * 32)
    log = control.requests_log(since=since)
    assert [(e["method"], e["path_template"], e["status"]) for e in log] == [
        ("POST", "/3.0/lists/{list_id}/members", 200),
        ("GET", "/3.0/lists/{list_id}/members/{subscriber_hash}", 404)]
    assert all(e["key_suffix"] == api_key[-8:] and e["duration_ms"] >= 0 for e in log)
    assert log[0]["path"] == f"/3.0/lists/{list_id}/members"
    control.clear_requests()
    assert control.requests_log() == []


def test_allow_header_lists_only_the_routes_methods(sim, api_key, list_id):
    response = requests.put(f"{sim.api_base}lists/{list_id}/members", auth=("x", api_key),
                            json={}, timeout=10)
    assert response.headers["Allow"] == "GET, POST"
    response = requests.post(f"{sim.api_base}lists/{list_id}/members/{'0' * 32}",
                             auth=("x", api_key), json={}, timeout=10)
    assert response.headers["Allow"] == "GET, PUT, PATCH, DELETE"


def _fill(mc, list_id, n):
    mc.lists.update_members(list_id, {"members": [
        {"email_address": f"l{i:03d}@anaba.fr", "status": "subscribed"} for i in range(n)]})


def test_per_member_latency_is_modelled_and_logged(mc, control, api_key, list_id):
    _fill(mc, list_id, 12)
    control.set_faults(api_key, latency_ms=20, latency_per_member_ms=30)
    since = control.requests_log()[-1]["seq"]
    mc.lists.update_members(list_id, {"update_existing": True, "members": [
        {"email_address": f"l{i:03d}@anaba.fr", "status": "subscribed"} for i in range(10)]})
    mc.lists.members.all(list_id, count=5)
    segment = mc.lists.segments.create(list_id, {"name": "S", "static_segment": []})
    mc.lists.segments.update_members(list_id, segment["id"], {
        "members_to_add": ["l000@anaba.fr", "l001@anaba.fr"], "members_to_remove": ["l002@anaba.fr"]})
    mc.ping.get()
    log = control.requests_log(since)
    assert [(e["items"], e["modelled_latency_ms"]) for e in log] == [
        (10, 20 + 300), (5, 20 + 150), (0, 20), (3, 20 + 90), (0, 20)]
    assert all(e["duration_ms"] >= e["modelled_latency_ms"] for e in log)


def _timed_parallel(calls):
    """Run the callables at once; (results, wall seconds)."""
    results = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def run(i):
        """One call, started with the others."""
        barrier.wait()
        try:
            results[i] = calls[i]()
        except MailChimpError as exc:
            results[i] = exc.args[0]["status"]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, time.monotonic() - started


def test_a_sleeping_request_holds_up_no_other(sim, mc, control, api_key, list_id, client_for):
    _fill(mc, list_id, 10)
    control.set_faults(api_key, latency_per_member_ms=300)  # 10 items: 3 s per page read
    other = control.new_account("Other")
    other_list = control.create_list(other)["id"]
    fast = client_for(other)
    slow_calls = [lambda: client_for(api_key).lists.members.all(list_id, count=10)
                  for _ in range(10)]

    def fast_call():
        """The other key's read, timed from its own start."""
        time.sleep(0.5)  # the slow reads are sleeping by now
        started = time.monotonic()
        fast.lists.members.all(other_list)
        return time.monotonic() - started

    results, wall = _timed_parallel(slow_calls + [fast_call])
    assert all(isinstance(r, dict) and len(r["members"]) == 10 for r in results[:10])
    assert results[10] < 1.5
    assert wall < 3 * 2.5  # ten 3-second reads ran side by side, not one after another


def test_eleventh_connection_is_refused_exactly_with_latency_on(sim, mc, control, api_key, list_id,
                                                                client_for):
    _fill(mc, list_id, 10)
    control.set_faults(api_key, latency_per_member_ms=300)  # each read holds 3 s
    control.clear_requests()
    calls = [lambda: client_for(api_key).lists.members.all(list_id, count=10) for _ in range(11)]
    results, _ = _timed_parallel(calls)
    assert sorted(r if isinstance(r, int) else 200 for r in results) == [200] * 10 + [429]
    assert control.peak_concurrency() == {api_key[-8:]: 11}
    control.clear_requests()
    assert control.peak_concurrency() == {}
    results, _ = _timed_parallel(calls[:10])
    assert all(isinstance(r, dict) for r in results)
    assert control.peak_concurrency() == {api_key[-8:]: 10}
