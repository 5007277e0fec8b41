"""activity import: campaigns, activity occurrence, per-contact summary

Issue 11 (R18). Adds ``activity_campaign`` (title, subject, send time and the import's bookmarks
per campaign) and ``activity_summary`` (per contact: last campaign received, last open or click,
which the contacts table's "opened in the last N weeks" and "never opened" filters read); adds
``activity.occurrence`` to the natural key (two identical events in one second stay two
activities); drops the (contact, time) and workspace indexes of ``activity``, whose natural key
index (led by the contact) serves every read, so that the weekly import writes one index only.
``activity.campaign_title`` stays for one release (the previous release reads it while a
deployment rolls).

Revision ID: 8a992a90fb2f
Revises: 20b9a37e08c7
Create Date: 2026-11-30 07:45:09.706232

"""
from alembic import op
import sqlalchemy as sa

import portal.models.base


# revision identifiers, used by Alembic.
revision = '8a992a90fb2f'
down_revision = "20b9a37e08c7"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('activity_summary',
    sa.Column('contact_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('workspace_id', sa.Integer(), nullable=False),
    sa.Column('last_received_at', portal.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_engaged_at', portal.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('campaigns_received', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contact.id'], name=op.f('fk_activity_summary_contact_id_contact')),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], name=op.f('fk_activity_summary_workspace_id_workspace')),
    sa.PrimaryKeyConstraint('contact_id', name=op.f('pk_activity_summary'))
    )
    with op.batch_alter_table('activity_summary', schema=None) as batch_op:
        batch_op.create_index('ix_activity_summary_workspace_engaged', ['workspace_id', 'last_engaged_at'], unique=False)

    op.create_table('activity_campaign',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('workspace_id', sa.Integer(), nullable=False),
    sa.Column('connector_id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.String(length=40), nullable=False),
    sa.Column('list_id', sa.String(length=40), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('subject', sa.String(length=300), nullable=False),
    sa.Column('send_time', portal.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('emails_sent', sa.Integer(), nullable=False),
    sa.Column('recipients_done', sa.Boolean(), nullable=False),
    sa.Column('activity_since', portal.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('imported_at', portal.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', portal.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['connector_id'], ['connector.id'], name=op.f('fk_activity_campaign_connector_id_connector')),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], name=op.f('fk_activity_campaign_workspace_id_workspace')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_activity_campaign')),
    sa.UniqueConstraint('workspace_id', 'campaign_id', name='uq_activity_campaign_workspace_campaign')
    )
    with op.batch_alter_table('activity_campaign', schema=None) as batch_op:
        batch_op.create_index('ix_activity_campaign_connector_send', ['connector_id', 'send_time'], unique=False)

    with op.batch_alter_table('activity', schema=None) as batch_op:
        batch_op.add_column(sa.Column('occurrence', sa.SmallInteger(), server_default='0', nullable=False))
        batch_op.drop_index(batch_op.f('ix_activity_contact_time'))
        batch_op.drop_index(batch_op.f('ix_activity_workspace_id'))
        batch_op.drop_constraint(batch_op.f('uq_activity_natural'), type_='unique')
        batch_op.create_unique_constraint('uq_activity_natural', ['contact_id', 'campaign_id', 'action', 'occurred_at', 'url_key', 'occurrence'])



def downgrade():
    # The old natural key cannot hold two identical events of one second: keep the first.
    op.execute("DELETE FROM activity WHERE occurrence > 0")
    with op.batch_alter_table('activity', schema=None) as batch_op:
        batch_op.drop_constraint('uq_activity_natural', type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_activity_natural'), ['contact_id', 'campaign_id', 'action', 'occurred_at', 'url_key'])
        batch_op.create_index(batch_op.f('ix_activity_workspace_id'), ['workspace_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_activity_contact_time'), ['contact_id', 'occurred_at'], unique=False)
        batch_op.drop_column('occurrence')

    with op.batch_alter_table('activity_campaign', schema=None) as batch_op:
        batch_op.drop_index('ix_activity_campaign_connector_send')

    op.drop_table('activity_campaign')
    with op.batch_alter_table('activity_summary', schema=None) as batch_op:
        batch_op.drop_index('ix_activity_summary_workspace_engaged')

    op.drop_table('activity_summary')
