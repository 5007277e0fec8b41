"""SQLite: a trigram full-text index of contact.search_text kept by triggers (search at 1,000,000 contacts, issue 14); PostgreSQL has its trigram index already

Revision ID: b7d2f4a6c8e0
Revises: a3c5e7f9b1d2
Create Date: 2026-11-30 14:00:00.000000

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = 'b7d2f4a6c8e0'
down_revision = 'a3c5e7f9b1d2'
branch_labels = None
depends_on = None

DDL = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS contact_search USING fts5(search_text, content='contact', "
    "content_rowid='id', tokenize='trigram', detail='none')",
    "CREATE TRIGGER IF NOT EXISTS contact_search_insert AFTER INSERT ON contact BEGIN "
    "INSERT INTO contact_search(rowid, search_text) VALUES (new.id, new.search_text); END",
    "CREATE TRIGGER IF NOT EXISTS contact_search_delete AFTER DELETE ON contact BEGIN "
    "INSERT INTO contact_search(contact_search, rowid, search_text) VALUES ('delete', old.id, old.search_text); END",
    "CREATE TRIGGER IF NOT EXISTS contact_search_update AFTER UPDATE OF search_text ON contact BEGIN "
    "INSERT INTO contact_search(contact_search, rowid, search_text) VALUES ('delete', old.id, old.search_text); "
    "INSERT INTO contact_search(rowid, search_text) VALUES (new.id, new.search_text); END",
    "INSERT INTO contact_search(contact_search) VALUES ('rebuild')",  # the contacts already there
)


def upgrade():
    if op.get_bind().dialect.name != "sqlite":
        return
    for statement in DDL:
        op.execute(statement)


def downgrade():
    if op.get_bind().dialect.name != "sqlite":
        return
    for trigger in ("insert", "delete", "update"):
        op.execute(f"DROP TRIGGER IF EXISTS contact_search_{trigger}")
    op.execute("DROP TABLE IF EXISTS contact_search")
