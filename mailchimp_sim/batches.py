"""``/batches``: asynchronous batch operations (API-NOTES §3, §14.7).

A runner thread moves each batch pending → preprocessing → started → finalizing →
finished, runs its operations through the same handlers as the HTTP API (no connection
limit, no faults, not logged), and serves the results as a tar.gz of JSON arrays whose
``response`` is a JSON string, at ``/_sim/batch-results/{id}.tar.gz``.
"""

from __future__ import annotations

import io
import json
import queue
import secrets
import tarfile
import threading
import time

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from . import problems
from .render import link
from .validation import wrong_type
from .store import Batch, iso, now

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
STEP_SECONDS = 0.15
RESULTS_PER_FILE = 500


def batch_json(b: Batch) -> dict:
    """A batch as ``GET /batches/{id}`` shows it."""
    return {"id": b.id, "status": b.status, "total_operations": b.total_operations,
            "finished_operations": b.finished_operations,
            "errored_operations": b.errored_operations, "submitted_at": iso(b.submitted_at),
            "completed_at": iso(b.completed_at), "response_body_url": b.response_body_url,
            "_links": [link("self", f"/batches/{b.id}")]}


def post_batches(ctx):
    """``POST /batches``."""
    body = ctx.body()
    ops = body.get("operations") if isinstance(body, dict) else None
    if not isinstance(ops, list):
        raise problems.schema_invalid("", "Required fields were not provided: operations")
    for op in ops:
        if not isinstance(op, dict) or op.get("method") not in METHODS \
                or not isinstance(op.get("path"), str):
            raise problems.schema_invalid("operations", "Required fields were not provided: method, path")
        if "body" in op and not isinstance(op["body"], str):
            raise problems.schema_invalid("operations.body", wrong_type("string", op["body"]))
    pending = sum(1 for b in ctx.store.batches.values()
                  if b.api_key == ctx.api_key and b.status != "finished")
    if pending >= 500:
        raise problems.ApiError(429, "Too Many Requests",
                                "You have more than 500 pending batches.")
    batch = Batch(secrets.token_hex(5), ctx.api_key, ops)
    ctx.store.batches[batch.id] = batch
    ctx.app.batch_runner.submit(batch.id, ctx.root_url)
    return 200, batch_json(batch)


def get_batches(ctx):
    """``GET /batches``."""
    count, offset = ctx.page()
    items = [b for b in ctx.store.batches.values() if b.api_key == ctx.api_key]
    return 200, {"batches": [batch_json(b) for b in items[offset:offset + count]],
                 "total_items": len(items), "_links": [link("self", "/batches")]}


def _batch(ctx, batch_id) -> Batch:
    batch = ctx.store.batches.get(batch_id)
    if batch is None or batch.api_key != ctx.api_key:
        raise problems.not_found()
    return batch


def get_batch(ctx, batch_id):
    """``GET /batches/{batch_id}``."""
    return 200, batch_json(_batch(ctx, batch_id))


def delete_batch(ctx, batch_id):
    """``DELETE /batches/{batch_id}``: stop it; its results are gone."""
    batch = _batch(ctx, batch_id)
    batch.cancelled = True
    del ctx.store.batches[batch.id]
    return 204, None


class Runner:
    """Runs submitted batches one at a time on a background thread."""

    def __init__(self, app):
        self.app = app
        self.queue: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="batches", daemon=True)
        self.stopping = False

    def start(self) -> None:
        """Start the runner thread."""
        self.thread.start()

    def stop(self) -> None:
        """Stop after the current operation."""
        self.stopping = True
        self.queue.put(None)
        if self.thread.is_alive():
            self.thread.join(timeout=5)

    def submit(self, batch_id: str, root_url: str) -> None:
        """Queue a batch."""
        self.queue.put((batch_id, root_url))

    def _set(self, batch: Batch, **values) -> bool:
        time.sleep(STEP_SECONDS)
        with self.app.store.lock:
            if batch.cancelled:
                return False
            for key, value in values.items():
                setattr(batch, key, value)
        return True

    def _run(self) -> None:
        while not self.stopping:
            item = self.queue.get()
            if item is None:
                return
            batch_id, root_url = item
            with self.app.store.lock:
                batch = self.app.store.batches.get(batch_id)
                account = self.app.store.accounts.get(batch.api_key) if batch else None
            if batch is None or account is None:
                continue
            try:
                self._execute(batch, account, root_url)
            except Exception:  # keep the runner alive; the batch stays where it failed
                import traceback
                traceback.print_exc()

    def _execute(self, batch: Batch, account, root_url: str) -> None:
        if not self._set(batch, status="preprocessing"):
            return
        if not self._set(batch, status="started", total_operations=len(batch.operations)):
            return
        results = []
        for op in batch.operations:
            if self.stopping or batch.cancelled:
                return
            status, text = self.run_operation(op, account)
            results.append({"status_code": status, "operation_id": op.get("operation_id"),
                            "response": text})
            with self.app.store.lock:
                batch.finished_operations += 1
                if status >= 400:
                    batch.errored_operations += 1
        if not self._set(batch, status="finalizing"):
            return
        archive = build_archive(batch.id, results)
        self._set(batch, status="finished", completed_at=now(), archive=archive,
                  response_body_url=f"{root_url}/_sim/batch-results/{batch.id}.tar.gz")

    def run_operation(self, op: dict, account) -> tuple[int, str]:
        """Run one operation as its HTTP call would; problem documents get ``instance: ""``."""
        path = "/3.0/" + op["path"].lstrip("/")
        params = op.get("params") or {}
        builder = EnvironBuilder(path=path, method=op["method"], query_string=params,
                                 base_url="http://127.0.0.1/")
        try:
            environ = builder.get_environ()
        finally:
            builder.close()
        request = Request(environ)
        try:
            body = None
            if op.get("body"):
                try:
                    body = json.loads(op["body"])
                except ValueError:
                    raise problems.json_parse_error() from None
            try:
                endpoint, values = self.app.url_map.bind_to_environ(environ).match()
            except MethodNotAllowed as exc:
                raise problems.method_not_allowed(problems.allow_header(exc)) from None
            except NotFound:
                raise problems.not_found() from None
            if not endpoint.startswith("api:") or "batches" in endpoint:
                raise problems.not_found()
            response = self.app.run_handler(endpoint, values, request, account,
                                            account.api_key, "", internal_body=body)
            return response.status_code, response.get_data(as_text=True)
        except problems.ApiError as exc:
            return exc.status, json.dumps(exc.document(""))


def build_archive(batch_id: str, results: list) -> bytes:
    """The tar.gz: a directory of JSON files, each an array of result objects."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo(batch_id)
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        info.mtime = int(time.time())
        tar.addfile(info)
        for index in range(0, max(len(results), 1), RESULTS_PER_FILE):
            chunk = json.dumps(results[index:index + RESULTS_PER_FILE]).encode()
            info = tarfile.TarInfo(f"{batch_id}/{secrets.token_hex(5)}.json")
            info.size = len(chunk)
            info.mtime = int(time.time())
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(chunk))
    return buffer.getvalue()


ROUTES = [
    ("/batches", ["POST"], post_batches, True),
    ("/batches", ["GET"], get_batches, True),
    ("/batches/<batch_id>", ["GET"], get_batch, True),
    ("/batches/<batch_id>", ["DELETE"], delete_batch, True),
]
