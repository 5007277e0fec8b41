"""The Alembic migrations build exactly the schema the models describe."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(bool(os.environ.get("TEST_DATABASE_URL")), reason="checked once, on a fresh SQLite file")
def test_migrations_upgrade_a_fresh_database_to_the_models_schema(tmp_path):
    env = dict(os.environ, DATABASE_URL=f"sqlite:///{tmp_path / 'm.sqlite'}", ANABA_INSTANCE=str(tmp_path),
               SECRET_KEY="x", FERNET_KEY="", REDIS_URL="redis://127.0.0.1:1/0")
    env.pop("FERNET_KEY")
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "app.py", "db", "upgrade"], cwd=ROOT, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    check = subprocess.run([sys.executable, "-m", "flask", "--app", "app.py", "db", "check"], cwd=ROOT, env=env,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
