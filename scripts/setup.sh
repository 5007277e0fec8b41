#!/usr/bin/env bash
# Install what is missing for `make run` (mode run) or `make test` (mode test), idempotently:
# Debian packages through apt, the .venv from the pinned requirements, compiled translations.
set -euo pipefail
mode="${1:-run}"
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
if [ "$mode" = "test" ]; then
  [ -x /usr/bin/chromium ] || need+=(chromium)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing Debian packages: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

# One venv for both commands (the dev extras cost seconds, and two venvs would drift apart).
stamp=".venv/.installed-$(cat requirements.txt requirements-dev.txt | sha1sum | cut -c1-12)"
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  python3 -m venv .venv
fi
if [ ! -f "$stamp" ]; then
  echo "== installing Python packages (requirements-dev.txt)"
  .venv/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt 2>&1 | grep -v "is ignored" || true
  .venv/bin/pip check >/dev/null
  rm -f .venv/.installed-*
  touch "$stamp"
fi

.venv/bin/pybabel compile -d translations >/dev/null 2>&1
