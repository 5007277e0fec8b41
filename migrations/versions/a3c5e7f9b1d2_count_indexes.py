"""contact_sync: the state index also holds the reason; contact: partial indexes on deleted and on excluded contacts (counts at 1,000,000 contacts, issue 14)

Revision ID: a3c5e7f9b1d2
Revises: 6f0c3b9e2d41
Create Date: 2026-11-30 13:50:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a3c5e7f9b1d2'
down_revision = '6f0c3b9e2d41'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('contact_sync', schema=None) as batch_op:
        batch_op.drop_index('ix_contact_sync_connector_state')
        batch_op.create_index('ix_contact_sync_connector_state_reason',
                              ['connector_id', 'state', 'reason', 'error_kind'], unique=False)
    with op.batch_alter_table('contact', schema=None) as batch_op:
        batch_op.create_index('ix_contact_ws_deleted', ['workspace_id'], unique=False,
                              sqlite_where=sa.text('deleted_at IS NOT NULL'),
                              postgresql_where=sa.text('deleted_at IS NOT NULL'))
        batch_op.create_index('ix_contact_ws_excluded', ['workspace_id'], unique=False,
                              sqlite_where=sa.text('do_not_sync IS 1'), postgresql_where=sa.text('do_not_sync IS true'))


def downgrade():
    with op.batch_alter_table('contact', schema=None) as batch_op:
        batch_op.drop_index('ix_contact_ws_excluded', sqlite_where=sa.text('do_not_sync IS 1'),
                            postgresql_where=sa.text('do_not_sync IS true'))
        batch_op.drop_index('ix_contact_ws_deleted', sqlite_where=sa.text('deleted_at IS NOT NULL'),
                            postgresql_where=sa.text('deleted_at IS NOT NULL'))
    with op.batch_alter_table('contact_sync', schema=None) as batch_op:
        batch_op.drop_index('ix_contact_sync_connector_state_reason')
        batch_op.create_index('ix_contact_sync_connector_state', ['connector_id', 'state', 'error_kind'], unique=False)
