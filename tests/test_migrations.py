"""The Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def empty_database_url(tmp_path):
    """A brand-new empty database of the kind this pass runs on (dropped afterwards)."""
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        yield f"sqlite:///{tmp_path / 'm.sqlite'}"
        return
    name = f"migrate_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    yield make_url(base).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE {name} WITH (FORCE)")
    admin.dispose()


def _flask(args, env):
    return subprocess.run([sys.executable, "-m", "flask", "--app", "app.py", "db", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True)


def test_migrations_upgrade_a_fresh_database_to_the_models_schema(empty_database_url, tmp_path):
    env = dict(os.environ, DATABASE_URL=empty_database_url, ANABA_INSTANCE=str(tmp_path), SECRET_KEY="x",
               REDIS_URL="redis://127.0.0.1:1/0")
    env.pop("FERNET_KEY", None)
    upgrade = _flask(["upgrade"], env)
    assert upgrade.returncode == 0, upgrade.stderr
    check = _flask(["check"], env)
    assert check.returncode == 0, check.stdout + check.stderr
    if empty_database_url.startswith("sqlite"):
        _search_index_follows_the_contacts(empty_database_url)
    downgrade = _flask(["downgrade", "base"], env)
    assert downgrade.returncode == 0, downgrade.stderr


def _search_index_follows_the_contacts(url: str) -> None:
    """SQLite's full-text search index, created by a migration, is kept by the database's triggers."""
    engine = create_engine(url)
    with engine.begin() as conn:
        required = {name: ("0" if kind.upper() in ("INTEGER", "BOOLEAN") else "''")
                    for _cid, name, kind, notnull, default, pk in conn.exec_driver_sql("PRAGMA table_info(contact)")
                    if notnull and default is None and not pk}
        required.update(workspace_id="1", search_text="'zoe fontaine'")  # foreign keys are off here
        conn.exec_driver_sql(f"INSERT INTO contact ({', '.join(required)}) VALUES ({', '.join(required.values())})")
        found = conn.exec_driver_sql("SELECT rowid FROM contact_search WHERE search_text LIKE '%fontaine%'").all()
        conn.exec_driver_sql("UPDATE contact SET search_text = 'zoe fontenelle'")
        renamed = conn.exec_driver_sql("SELECT rowid FROM contact_search WHERE search_text LIKE '%fontaine%'").all()
        conn.exec_driver_sql("DELETE FROM contact")
        deleted = conn.exec_driver_sql("SELECT rowid FROM contact_search WHERE search_text LIKE '%fontenelle%'").all()
    engine.dispose()
    assert found == [(1,)] and renamed == [] and deleted == []
