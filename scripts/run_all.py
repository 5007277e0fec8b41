"""`make run`: Redis, the SMTP sink, the Mailchimp simulator, migrations + demo data, the RQ worker
and the portal on http://portal.localhost:5000 — all started here and all stopped on Ctrl-C.

The address printed is PUBLIC_BASE_URL, the one the e-mails link to: a `*.localhost` name reaches
this machine in browsers (no DNS, no /etc/hosts), so a link in an e-mail opens the portal you are
logged in to, and, being a name rather than a loopback address, it keeps the Mailchimp webhook
registration possible (mailchimp3 refuses loopback and private addresses, API-NOTES §12)."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = str(ROOT / ".venv" / "bin" / "python")
INSTANCE = ROOT / "instance"
DEMO_MC_KEY = "0" * 31 + "1-us1"
DEMO_AUDIENCE = "Newsletter Atelier Lumière"
DEMO_WORKSPACE_NAME = "Atelier Lumière (démo)"
PORTS = {"web": 5000, "redis": 6389, "smtp": 8025, "sim": 8470}


def wait_port(port: int, timeout: float = 30) -> None:
    """Block until something listens on 127.0.0.1:port."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"nothing is listening on port {port} after {timeout}s — see the output above")


def port_busy(port: int) -> bool:
    """True when the port is already taken (another `make run`?)."""
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def banner(env: dict, api_token: str | None) -> str:
    """What `make run` prints once everything listens: the address (PUBLIC_BASE_URL, the one in the
    e-mails), the logins, the API token, the simulator."""
    token = (f"  API token (Atelier Lumière): {api_token}  (shown once; a new one: "
             f"flask --app app.py workspace new-token \"{DEMO_WORKSPACE_NAME}\")"
             if api_token else
             f"  API token: printed on the first run only; a new one: "
             f"flask --app app.py workspace new-token \"{DEMO_WORKSPACE_NAME}\"")
    return f"""
  anaba portal:   {env['PUBLIC_BASE_URL']}   (links in e-mails open here; the outbox is /support/outbox)
  support login:  support@anaba.localhost / support-demo
  customer login: camille@atelier-lumiere.localhost / client-demo
{token}
  Mailchimp simulator: {env['MAILCHIMP_API_BASE']}  (demo API key {DEMO_MC_KEY})
  Ctrl-C stops everything.
"""


def api_token_in(output: str) -> str | None:
    """The API token `flask seed-demo` printed (only when it created the demo workspace)."""
    for line in output.splitlines():
        if line.startswith("demo API token:"):
            return line.split(":", 1)[1].strip()
    return None


def main() -> None:
    """Start everything, print the address and the logins, wait for Ctrl-C, stop everything."""
    INSTANCE.mkdir(exist_ok=True)
    busy = [f"{name} ({port})" for name, port in PORTS.items() if port_busy(port)]
    if busy:
        raise SystemExit(f"ports already in use: {', '.join(busy)}. Is another `make run` running?")
    env = dict(os.environ)
    env.setdefault("REDIS_URL", f"redis://127.0.0.1:{PORTS['redis']}/0")
    env.setdefault("MAILCHIMP_API_BASE", f"http://127.0.0.1:{PORTS['sim']}/3.0/")
    env.setdefault("MAIL_SERVER", "127.0.0.1")
    env.setdefault("MAIL_PORT", str(PORTS["smtp"]))
    env.setdefault("PUBLIC_BASE_URL", f"http://portal.localhost:{PORTS['web']}")
    env.setdefault("FLASK_APP", "app.py")
    env["PYTHONUNBUFFERED"] = "1"

    procs: list[tuple[str, subprocess.Popen]] = []

    def start(name: str, cmd: list[str], **extra_env: str) -> None:
        procs.append((name, subprocess.Popen(cmd, cwd=ROOT, env={**env, **extra_env})))

    def stop_all(*_args) -> None:
        # One at a time, newest first: the web and workers stop while Redis is still there.
        for name, proc in reversed(procs):
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        print("\nall services stopped.")
        sys.exit(0)

    signal.signal(signal.SIGINT, stop_all)
    signal.signal(signal.SIGTERM, stop_all)
    try:
        start("redis", [shutil.which("redis-server") or "redis-server", "--port", str(PORTS["redis"]),
                        "--bind", "127.0.0.1", "--dir", str(INSTANCE), "--dbfilename", "redis.rdb",
                        "--save", "60 1", "--appendonly", "no"])
        start("smtp", [PY, "scripts/smtp_sink.py", "--port", str(PORTS["smtp"])])
        start("simulator", [PY, "-m", "mailchimp_sim", "--host", "127.0.0.1", "--port", str(PORTS["sim"]),
                            "--data", str(INSTANCE / "mailchimp-sim.sqlite"), "--bootstrap-key", DEMO_MC_KEY,
                            "--bootstrap-list", DEMO_AUDIENCE])
        for port in (PORTS["redis"], PORTS["smtp"], PORTS["sim"]):
            wait_port(port)
        flask = [PY, "-m", "flask", "--app", "app.py"]
        subprocess.run(flask + ["db", "upgrade"], cwd=ROOT, env=env, check=True)
        seeded = subprocess.run(flask + ["seed-demo"], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
        print(seeded.stdout, end="", flush=True)
        api_token = api_token_in(seeded.stdout)
        subprocess.run([PY, "scripts/seed_demo_audience.py", DEMO_MC_KEY, DEMO_AUDIENCE], cwd=ROOT, env=env,
                       check=True)
        start("worker", [PY, "worker.py"])
        # rq reads cron expressions in the process's local time: "Saturday 02:00" is Paris time (R18).
        start("cron", [PY, "worker.py", "cron"], TZ="Europe/Paris")
        start("web", [PY, "-m", "gunicorn", "--no-control-socket", "-b", f"127.0.0.1:{PORTS['web']}",
                      "-w", "2", "--threads", "4", "--access-logfile", "-", "app:app"])
        wait_port(PORTS["web"])
    except (subprocess.CalledProcessError, SystemExit) as exc:
        for stream in (getattr(exc, "stdout", None), getattr(exc, "stderr", None)):
            if stream:
                print(stream, end="")
        print(f"start-up failed: {exc}")
        stop_all()
    print(banner(env, api_token), flush=True)
    while True:
        for name, proc in procs:
            if proc.poll() is not None:
                print(f"{name} exited with code {proc.returncode}; stopping the rest.")
                stop_all()
        time.sleep(1)


if __name__ == "__main__":
    main()
