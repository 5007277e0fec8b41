"""contact_sync: a partial index on the rows whose owner a customer chose (counts of shared addresses to decide at 1,000,000 contacts, issue 14)

Revision ID: 6f0c3b9e2d41
Revises: 358d28bae3c0
Create Date: 2026-11-30 12:20:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '6f0c3b9e2d41'
down_revision = '358d28bae3c0'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('contact_sync', schema=None) as batch_op:
        batch_op.create_index('ix_contact_sync_owner_chosen', ['connector_id', 'contact_id'], unique=False,
                              sqlite_where=sa.text('owner_chosen IS 1'), postgresql_where=sa.text('owner_chosen IS true'))


def downgrade():
    with op.batch_alter_table('contact_sync', schema=None) as batch_op:
        batch_op.drop_index('ix_contact_sync_owner_chosen', sqlite_where=sa.text('owner_chosen IS 1'),
                            postgresql_where=sa.text('owner_chosen IS true'))
