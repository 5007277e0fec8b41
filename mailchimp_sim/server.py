"""Running the simulator: gunicorn's threaded worker (one process, HTTP/1.1 keep-alive,
``--threads`` request threads) by default, or werkzeug's threaded server
(``--server werkzeug``, one thread per connection, no keep-alive); plus the background
threads (webhook delivery, batches, saving). SIGTERM/SIGINT stop it cleanly and save.

Measured choice (docs/simulator.md, "Performance"): both keep up with batch loads;
gunicorn keeps pooled connections open, which a ``requests.Session`` client benefits from.
"""

from __future__ import annotations

import argparse
import gc
import signal
import sys
import threading

from . import persistence
from .app import SimApp
from .store import Store
from .webhooks import Dispatcher


def parse_args(argv=None) -> argparse.Namespace:
    """The command line of ``python -m mailchimp_sim``."""
    p = argparse.ArgumentParser(prog="python -m mailchimp_sim",
                                description="A stateful Mailchimp Marketing API v3 simulator.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8470, help="0 picks a free port")
    p.add_argument("--latency-ms", type=float, default=0.0,
                   help="added to every /3.0 call (simulates the network)")
    p.add_argument("--latency-per-member-ms", type=float, default=0.0,
                   help="added per member/item of bulk calls and paged reads (latency model)")
    p.add_argument("--data", help="SQLite file to load at start and save to")
    p.add_argument("--save-interval", type=float, default=5.0, help="seconds between saves")
    p.add_argument("--bootstrap-key", help="create an account with this exact API key")
    p.add_argument("--bootstrap-list", help="and an audience of this name if it has none")
    p.add_argument("--webhook-retry-scale", type=float, default=1.0,
                   help="multiply Mailchimp's 5/25/75-minute retry schedule (0.004 → ~1 s)")
    p.add_argument("--server", choices=("gunicorn", "werkzeug"), default="gunicorn")
    p.add_argument("--threads", type=int, default=64, help="request threads (gunicorn)")
    return p.parse_args(argv)


def default_list_body(name: str) -> dict:
    """A complete ``POST /lists`` body for an audience called ``name``."""
    return {
        "name": name,
        "contact": {"company": "anaba", "address1": "1 rue de la Paix", "city": "Paris",
                    "state": "IDF", "zip": "75002", "country": "FR"},
        "permission_reminder": "Vous recevez ce message car vous êtes client.",
        "campaign_defaults": {"from_name": "anaba", "from_email": "newsletter@anaba.fr",
                              "subject": "", "language": "fr"},
        "email_type_option": False,
    }


class Runtime:
    """The store, the WSGI app and the background threads of one simulator process."""

    def __init__(self, args: argparse.Namespace):
        # 100,000 members are ~1M tracked objects: default thresholds make full collections
        # pause batch calls for 100+ ms; there are no reference cycles worth chasing here.
        gc.set_threshold(200_000, 50, 100)
        self.store = Store()
        if args.data:
            persistence.load(self.store, args.data)
        if args.bootstrap_key:
            account = self.store.add_account("Demo", args.bootstrap_key)
            if args.bootstrap_list and not account.list_ids:
                self.store.add_list(account, default_list_body(args.bootstrap_list))
        self.dispatcher = Dispatcher(self.store, retry_scale=args.webhook_retry_scale)
        self.app = SimApp(self.store, self.dispatcher, latency_ms=args.latency_ms,
                          latency_per_member_ms=args.latency_per_member_ms)
        self.saver = (persistence.Saver(self.store, args.data, args.save_interval)
                      if args.data else None)
        self.app.saver = self.saver
        self.stopped = False

    def start(self) -> None:
        """Start webhook delivery, the batch runner and periodic saves."""
        self.dispatcher.start()
        self.app.batch_runner.start()
        if self.saver:
            self.saver.start()

    def stop(self) -> None:
        """Stop the background threads and save a last time (once)."""
        if self.stopped:
            return
        self.stopped = True
        self.dispatcher.stop()
        self.app.batch_runner.stop()
        if self.saver:
            self.saver.stop()


def ready_line(host: str, port: int) -> None:
    """The line tests and scripts wait for."""
    print(f"mailchimp_sim listening on http://{host}:{port}", flush=True)


def serve_werkzeug(args: argparse.Namespace) -> int:
    """werkzeug's threaded server in this process."""
    from werkzeug.serving import WSGIRequestHandler, make_server

    class QuietHandler(WSGIRequestHandler):
        """No per-request log line; werkzeug's server with openresty's Server header."""

        server_version = "openresty"
        sys_version = ""

        def log_request(self, *a, **k):
            """Requests are logged in ``GET /_sim/requests`` instead."""

    runtime = Runtime(args)
    server = make_server(args.host, args.port, runtime.app, threaded=True,
                         request_handler=QuietHandler)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    runtime.start()
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    ready_line(args.host, server.server_address[1])
    while not stop.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    runtime.stop()
    print("mailchimp_sim stopped", flush=True)
    return 0


def _quick_exit_worker():
    """gunicorn's gthread worker, woken at once by SIGTERM instead of at its next 1 s poll."""
    from gunicorn.workers.gthread import ThreadWorker

    class QuickExitWorker(ThreadWorker):
        """Stops within milliseconds when idle, so test sessions end fast."""

        def handle_exit(self, sig, frame):
            """Stop as gthread does, then wake the event loop through its method queue."""
            super().handle_exit(sig, frame)
            self.method_queue.defer(lambda: None)

    return QuickExitWorker


def serve_gunicorn(args: argparse.Namespace) -> int:
    """gunicorn, one gthread worker holding all the state (built after the fork)."""
    import gunicorn.http.wsgi
    from gunicorn.app.base import BaseApplication

    gunicorn.http.wsgi.SERVER = "openresty"  # the Server header Mailchimp answers with (§1.6)
    holder: dict = {}

    def post_worker_init(worker):
        """Start the background threads in the worker, then say we are ready."""
        holder["runtime"].start()
        ready_line(args.host, worker.sockets[0].getsockname()[1])

    def worker_exit(server, worker):
        """Stop the background threads and save, in the worker."""
        runtime = holder.get("runtime")
        if runtime is not None:
            runtime.stop()
            print("mailchimp_sim stopped", flush=True)

    class Sim(BaseApplication):
        """gunicorn configured from our command line; the app is built after the fork."""

        def load_config(self):
            """One gthread worker, keep-alive, no control socket, warnings only."""
            settings = {
                "bind": f"{args.host}:{args.port}", "workers": 1,
                "worker_class": _quick_exit_worker(),
                "threads": args.threads, "keepalive": 5, "timeout": 300,
                "graceful_timeout": 5, "control_socket_disable": True, "accesslog": None,
                "errorlog": "-", "loglevel": "warning", "proc_name": "mailchimp_sim",
                "post_worker_init": post_worker_init, "worker_exit": worker_exit,
            }
            for key, value in settings.items():
                self.cfg.set(key, value)

        def load(self):
            """Build the runtime (load ``--data``, bootstrap) in the worker."""
            holder["runtime"] = Runtime(args)
            return holder["runtime"].app

    Sim().run()
    return 0


def main(argv=None) -> int:
    """Start, print the ready line, serve until SIGTERM/SIGINT, then stop everything."""
    args = parse_args(argv)
    if args.server == "werkzeug":
        return serve_werkzeug(args)
    return serve_gunicorn(args)


if __name__ == "__main__":
    sys.exit(main())
