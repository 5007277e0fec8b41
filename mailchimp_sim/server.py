"""Running the simulator: a threaded HTTP/1.1 server (keep-alive) plus its background
threads (webhook delivery, batches, saving), stopped cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import gc
import signal
import sys
import threading

from werkzeug.serving import WSGIRequestHandler, make_server

from . import persistence
from .app import SimApp
from .store import Store
from .webhooks import Dispatcher


class QuietHandler(WSGIRequestHandler):
    """HTTP/1.1 so pooled clients keep their connection; no per-request log line."""

    protocol_version = "HTTP/1.1"
    server_version = "openresty"
    sys_version = ""

    def log_request(self, *args, **kwargs):
        """Requests are logged in ``GET /_sim/requests`` instead."""

    def log(self, type, message, *args):  # noqa: A002 - werkzeug's signature
        """Only errors reach stderr."""
        if type == "error":
            super().log(type, message, *args)


def parse_args(argv=None) -> argparse.Namespace:
    """The command line of ``python -m mailchimp_sim``."""
    p = argparse.ArgumentParser(prog="python -m mailchimp_sim",
                                description="A stateful Mailchimp Marketing API v3 simulator.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8470, help="0 picks a free port")
    p.add_argument("--latency-ms", type=float, default=0.0,
                   help="added to every /3.0 call (simulates the network)")
    p.add_argument("--data", help="SQLite file to load at start and save to")
    p.add_argument("--save-interval", type=float, default=5.0, help="seconds between saves")
    p.add_argument("--bootstrap-key", help="create an account with this exact API key")
    p.add_argument("--bootstrap-list", help="and an audience of this name if it has none")
    p.add_argument("--webhook-retry-scale", type=float, default=1.0,
                   help="multiply Mailchimp's 5/25/75-minute retry schedule (0.004 → ~1 s)")
    return p.parse_args(argv)


def bootstrap(store: Store, key: str, list_name: str | None) -> None:
    """Ensure the account with ``key`` exists and, if asked, that it has an audience."""
    account = store.add_account("Demo", key)
    if list_name and not account.list_ids:
        store.add_list(account, default_list_body(list_name))


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


def main(argv=None) -> int:
    """Start, print the ready line, serve until SIGTERM/SIGINT, then stop everything."""
    args = parse_args(argv)
    # 100,000 members are ~1M tracked objects: default thresholds make full collections
    # pause batch calls for 100+ ms; there are no reference cycles worth chasing here.
    gc.set_threshold(200_000, 50, 100)
    store = Store()
    if args.data:
        persistence.load(store, args.data)
    if args.bootstrap_key:
        bootstrap(store, args.bootstrap_key, args.bootstrap_list)
    dispatcher = Dispatcher(store, retry_scale=args.webhook_retry_scale)
    app = SimApp(store, dispatcher, latency_ms=args.latency_ms)
    saver = persistence.Saver(store, args.data, args.save_interval) if args.data else None
    app.saver = saver
    server = make_server(args.host, args.port, app, threaded=True, request_handler=QuietHandler)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    dispatcher.start()
    app.batch_runner.start()
    if saver:
        saver.start()
    serving = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    serving.start()
    host, port = server.server_address[:2]
    print(f"mailchimp_sim listening on http://{host}:{port}", flush=True)
    while not stop.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    dispatcher.stop()
    app.batch_runner.stop()
    if saver:
        saver.stop()
    print("mailchimp_sim stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
