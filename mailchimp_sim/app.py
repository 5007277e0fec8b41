"""The WSGI application: Mailchimp's API under ``/3.0/`` and the control API under ``/_sim/``.

Every ``/3.0`` request is authenticated, counted against its key's 10-connection budget,
subjected to the key's faults, run under the store lock and logged (``GET /_sim/requests``).
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
import time
import traceback

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from . import problems
from .problems import ApiError

JSON_TYPE = "application/json; charset=utf-8"
PROBLEM_TYPE = "application/problem+json; charset=utf-8"
MAX_CONNECTIONS = 10


class Ctx:
    """What a handler gets: the request, the account (for ``/3.0``), the app and its store."""

    def __init__(self, app, request, account=None, api_key="", internal_body=None):
        self.app = app
        self.store = app.store
        self.request = request
        self.account = account
        self.api_key = api_key
        self.args = request.args
        self._body = internal_body
        self.items = 0  # members or items this call handled (per-member latency model)

    @property
    def root_url(self) -> str:
        """``http://host:port`` as the client reached it."""
        return self.request.host_url.rstrip("/")

    def body(self) -> dict:
        """The JSON body (``{}`` when empty); a parse failure is Mailchimp's JSON Parse Error."""
        if self._body is None:
            raw = self.request.get_data(cache=True)
            if not raw.strip():
                self._body = {}
            else:
                try:
                    self._body = json.loads(raw)
                except ValueError:
                    raise problems.json_parse_error() from None
        return self._body

    def flag(self, name: str) -> bool:
        """A boolean query parameter."""
        return self.args.get(name, "").lower() in ("true", "1", "yes")

    def page(self) -> tuple[int, int]:
        """``count`` (default 10, clamped to 1000) and ``offset``."""
        try:
            count = int(self.args.get("count", 10))
            offset = int(self.args.get("offset", 0))
        except ValueError:
            raise problems.schema_invalid("count", "This value should be of type integer") from None
        return max(0, min(count, 1000)), max(0, offset)


def template_of(rule: str) -> str:
    """``/3.0/lists/<list_id>`` → ``/3.0/lists/{list_id}`` (converters dropped)."""
    out, i = [], 0
    while i < len(rule):
        if rule[i] == "<":
            j = rule.index(">", i)
            out.append("{" + rule[i + 1:j].split(":")[-1] + "}")
            i = j + 1
        else:
            out.append(rule[i])
            i += 1
    return "".join(out)


class SimApp:
    """The simulator's WSGI callable."""

    def __init__(self, store, dispatcher, latency_ms: float = 0.0,
                 latency_per_member_ms: float = 0.0):
        from . import api, batches, control
        self.store = store
        self.dispatcher = dispatcher
        self.latency_ms = latency_ms
        self.latency_per_member_ms = latency_per_member_ms
        self.peak: dict[str, int] = {}  # key suffix -> most simultaneous requests seen
        self.handlers: dict = {}
        self.locked: dict = {}
        rules = []
        for path, methods, handler, locked in api.ROUTES + batches.ROUTES:
            name = f"api:{path}:{methods[0]}"
            rules.append(Rule("/3.0" + path, endpoint=name, methods=methods))
            self.handlers[name] = handler
            self.locked[name] = locked
        for path, methods, handler in control.ROUTES:
            name = f"sim:{path}:{methods[0]}"
            rules.append(Rule("/_sim" + path, endpoint=name, methods=methods))
            self.handlers[name] = handler
        self.url_map = Map(rules, strict_slashes=False, merge_slashes=False)
        self.templates = {r.endpoint: template_of(r.rule) for r in self.url_map.iter_rules()}
        self.log: list[dict] = []
        self.log_lock = threading.Lock()
        self.seq = itertools.count(1)
        self.limit_lock = threading.Lock()
        self.batch_runner = batches.Runner(self)

    # ----- plumbing ---------------------------------------------------------------------
    def __call__(self, environ, start_response):
        request = Request(environ)
        if request.method != "GET":
            self.store.dirty = True
        if request.path.startswith("/_sim"):
            response = self._control(request)
        else:
            response = self._api(request)
        return response(environ, start_response)

    def _json(self, status: int, doc, request_id: str, headers: dict | None = None) -> Response:
        body = b"" if doc is None else json.dumps(doc, separators=(",", ":")).encode()
        response = Response(body, status=status, content_type=JSON_TYPE)
        response.headers["X-Request-Id"] = request_id
        for key, value in (headers or {}).items():
            response.headers[key] = value
        return response

    def problem(self, error: ApiError, request_id: str) -> Response:
        """The problem document response for ``error``."""
        if error.status == 502:
            response = Response("<html><body><h1>502 Bad Gateway</h1></body></html>",
                                status=502, content_type="text/html")
            return response
        response = self._json(error.status, error.document(request_id), request_id, error.headers)
        response.headers["Content-Type"] = PROBLEM_TYPE
        response.headers["Link"] = problems.LINK_HEADER
        return response

    def _control(self, request: Request) -> Response:
        adapter = self.url_map.bind_to_environ(request.environ)
        request_id = problems.new_instance()
        try:
            endpoint, values = adapter.match()
            if not endpoint.startswith("sim:"):
                raise NotFound()
            result = self.handlers[endpoint](Ctx(self, request), **values)
            if isinstance(result, Response):
                return result
            status, doc = result
            return self._json(status, doc, request_id)
        except ApiError as exc:
            return self.problem(exc, request_id)
        except MethodNotAllowed as exc:
            return self.problem(problems.method_not_allowed(problems.allow_header(exc)), request_id)
        except NotFound:
            return self.problem(problems.not_found(), request_id)

    def _authenticate(self, request: Request):
        header = request.headers.get("Authorization", "")
        key = ""
        if header.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(header[6:].strip()).decode("utf-8", "replace")
            except ValueError:
                decoded = ""
            key = decoded.split(":", 1)[1] if ":" in decoded else decoded
        elif header.lower().startswith(("bearer ", "apikey ")):
            key = header.split(None, 1)[1].strip()
        if not key:
            raise problems.key_missing()
        # no store lock: a dict lookup is atomic, and a long locked call (a 100,000-member
        # campaign) must not hold up every other key's requests at the door
        account = self.store.accounts.get(key)
        if account is None or account.revoked:
            raise problems.key_invalid()
        return account, key

    def _api(self, request: Request) -> Response:
        started = time.monotonic()
        request_id = problems.new_instance()
        adapter = self.url_map.bind_to_environ(request.environ)
        endpoint, template, key, account, counted = None, request.path, "", None, False
        hold = 0.0
        modelled = 0.0
        ctx = None
        try:
            try:
                endpoint, values = adapter.match()
                template = self.templates[endpoint]
            except NotFound:
                values = None
            except MethodNotAllowed as exc:
                values = exc
            account, key = self._authenticate(request)
            suffix = key[-8:]
            with self.limit_lock:
                account.inflight += 1
                counted = True
                over = account.inflight > MAX_CONNECTIONS
                if account.inflight > self.peak.get(suffix, 0):
                    self.peak[suffix] = account.inflight
                faults = account.faults
            delay = self.latency_ms
            per_member = self.latency_per_member_ms
            fault_error = None
            if faults is not None:
                delay += faults.latency_ms
                per_member += faults.latency_per_member_ms
                draw = faults.rng.random()
                if draw < faults.error_rate:
                    fault_error = faults.rng.choice(faults.statuses)
                elif draw < faults.error_rate + faults.timeout_rate:
                    hold = faults.timeout_seconds
            modelled = delay
            if delay:
                time.sleep(delay / 1000.0)
            if over:
                raise problems.too_many_requests()
            if fault_error is not None:
                raise fault_problem(fault_error)
            if values is None or endpoint is None or not endpoint.startswith("api:"):
                if isinstance(values, MethodNotAllowed):
                    raise problems.method_not_allowed(problems.allow_header(values))
                raise problems.not_found()
            ctx = Ctx(self, request, account, key)
            response = self.run_handler(endpoint, values, request, account, key, request_id,
                                        ctx=ctx)
            if per_member and ctx.items:
                # after the handler, outside the store lock: other requests go on meanwhile
                extra = per_member * ctx.items
                modelled += extra
                time.sleep(extra / 1000.0)
        except ApiError as exc:
            response = self.problem(exc, request_id)
        except Exception:  # a bug in the simulator: answer like Mailchimp's 5xx, keep serving
            traceback.print_exc()
            response = self.problem(problems.internal_error(), request_id)
        if hold:
            time.sleep(hold)
        if counted:
            with self.limit_lock:
                account.inflight -= 1
        duration = (time.monotonic() - started) * 1000.0
        entry = {"method": request.method, "path": request.path, "path_template": template,
                 "status": response.status_code, "duration_ms": round(duration, 2),
                 "modelled_latency_ms": round(modelled, 3),
                 "items": ctx.items if ctx is not None else 0,
                 "key_suffix": key[-8:] if key else ""}
        with self.log_lock:
            entry["seq"] = next(self.seq)
            self.log.append(entry)
            if len(self.log) > 200000:
                del self.log[:50000]
        return response

    def run_handler(self, endpoint, values, request, account, key, request_id,
                    internal_body=None, ctx: Ctx | None = None) -> Response:
        """Run one API handler (under the store lock unless it locks itself)."""
        if ctx is None:
            ctx = Ctx(self, request, account, key, internal_body)
        handler = self.handlers[endpoint]
        if request.method in ("POST", "PUT", "PATCH"):
            ctx.body()  # parse before taking the lock: a 500-member body is ~100 KB
        if self.locked[endpoint]:
            with self.store.lock:
                result = handler(ctx, **values)
        else:
            result = handler(ctx, **values)
        status, doc = result
        return self._json(status, doc, request_id)

    def requests_since(self, since: int) -> list[dict]:
        """Logged API calls with ``seq`` > ``since``."""
        with self.log_lock:
            return [e for e in self.log if e["seq"] > since]

    def clear_requests(self) -> None:
        """Empty the request log (sequence numbers keep increasing) and restart the peak
        concurrency counts from what is in flight now."""
        with self.log_lock:
            self.log.clear()
        with self.limit_lock:
            self.peak = {a.api_key[-8:]: a.inflight
                         for a in list(self.store.accounts.values()) if a.inflight}

    def peak_concurrency(self) -> dict[str, int]:
        """Most simultaneous ``/3.0`` requests seen per key suffix since the last clear
        (the 11th of a key counts too, though it was answered 429)."""
        with self.limit_lock:
            return dict(self.peak)


def fault_problem(status: int) -> ApiError:
    """The error a fault of that status answers."""
    if status == 429:
        return problems.too_many_requests()
    if status == 500:
        return problems.internal_error()
    if status == 503:
        return problems.service_unavailable()
    if status == 502:
        return ApiError(502, "Bad Gateway", "")
    return ApiError(status, "Error", "Injected fault.")
