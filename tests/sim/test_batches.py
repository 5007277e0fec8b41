"""``/batches``: asynchronous operations with a tar.gz of results (API-NOTES §3, §14.7)."""

from __future__ import annotations

import io
import json
import tarfile
import time

import requests


def wait_finished(mc, batch_id, timeout=15.0):
    """Poll the batch until finished; returns it and the statuses seen."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = mc.batches.get(batch_id)
        if not seen or seen[-1] != batch["status"]:
            seen.append(batch["status"])
        if batch["status"] == "finished":
            return batch, seen
        time.sleep(0.03)
    raise AssertionError(f"batch stuck in {seen}")


def results_of(batch):
    """Download and unpack the results archive."""
    data = requests.get(batch["response_body_url"], timeout=10).content
    out = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            if member.isfile():
                out.extend(json.load(tar.extractfile(member)))
    return out


def test_batch_starts_pending_with_no_operations_counted(mc, list_id):
    batch = mc.batches.create({"operations": [
        {"method": "GET", "path": f"/lists/{list_id}"}]})
    assert batch["status"] == "pending"
    assert batch["total_operations"] == 0
    assert batch["completed_at"] == "" and batch["response_body_url"] == ""


def test_batch_moves_to_finished_and_serves_results(mc, list_id):
    ops = [
        {"method": "POST", "path": f"lists/{list_id}/members", "operation_id": "create-a",
         "body": json.dumps({"email_address": "a@anaba.fr", "status": "subscribed"})},
        {"method": "POST", "path": f"lists/{list_id}/members",
         "body": json.dumps({"email_address": "a@anaba.fr", "status": "subscribed"})},
        {"method": "GET", "path": f"lists/{list_id}/members", "params": {"count": 5}},
    ]
    batch = mc.batches.create({"operations": ops})
    finished, seen = wait_finished(mc, batch["id"])
    assert seen[0] in ("pending", "preprocessing", "started") and seen[-1] == "finished"
    assert (finished["total_operations"], finished["finished_operations"],
            finished["errored_operations"]) == (3, 3, 1)
    assert finished["completed_at"]
    results = results_of(finished)
    assert [r["status_code"] for r in results] == [200, 400, 200]
    assert [r["operation_id"] for r in results] == ["create-a", None, None]
    assert all(isinstance(r["response"], str) for r in results)
    error = json.loads(results[1]["response"])
    assert error["title"] == "Member Exists" and error["instance"] == ""
    listing = json.loads(results[2]["response"])
    assert listing["total_items"] == 1
    assert mc.lists.members.get(list_id, "a@anaba.fr")["status"] == "subscribed"


def test_batch_ops_do_not_count_as_api_calls(mc, control, list_id):
    since = control.requests_log()[-1]["seq"]
    batch = mc.batches.create({"operations": [
        {"method": "GET", "path": f"lists/{list_id}"} for _ in range(5)]})
    wait_finished(mc, batch["id"])
    templates = {e["path_template"] for e in control.requests_log(since)}
    assert templates <= {"/3.0/batches", "/3.0/batches/{batch_id}"}


def test_batches_are_listed_and_deletable(mc, list_id):
    batch = mc.batches.create({"operations": [{"method": "GET", "path": "ping"}]})
    assert batch["id"] in [b["id"] for b in mc.batches.all(get_all=False)["batches"]]
    mc.batches.delete(batch["id"])
    assert batch["id"] not in [b["id"] for b in mc.batches.all(get_all=False)["batches"]]


def test_more_than_500_pending_batches_is_429(sim, api_key):
    with requests.Session() as session:
        session.auth = ("x", api_key)
        body = {"operations": [{"method": "GET", "path": "ping"}]}
        statuses = []
        while len(statuses) < 540 and 429 not in statuses:
            statuses.append(session.post(sim.api_base + "batches", json=body, timeout=10).status_code)
    # the runner may finish a few batches meanwhile: the limit counts unfinished ones
    assert statuses[-1] == 429
    assert statuses[:-1] == [200] * (len(statuses) - 1) and len(statuses) > 500
