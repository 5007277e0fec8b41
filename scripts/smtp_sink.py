"""A local SMTP server that accepts every message and prints a one-line summary (dev and demo only).

Nothing leaves the machine; the full messages are also in the portal's Outbox page.
"""
from __future__ import annotations

import argparse
import signal
import threading
from email import message_from_bytes, policy

from aiosmtpd.controller import Controller


class PrintingSink:
    """Prints the recipients and subject of each message it receives."""

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd hook
        msg = message_from_bytes(envelope.content, policy=policy.default)
        print(f"[smtp-sink] to={','.join(envelope.rcpt_tos)} subject={msg['Subject']!r}", flush=True)
        return "250 OK"


def main() -> None:
    """Serve until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    args = parser.parse_args()
    controller = Controller(PrintingSink(), hostname=args.host, port=args.port)
    controller.start()
    print(f"[smtp-sink] listening on {args.host}:{args.port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
