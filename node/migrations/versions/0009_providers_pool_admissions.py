"""provider admissions to workspace pools

Revision ID: 0009_providers
Revises: 0007_providers
"""
import sqlalchemy as sa
from alembic import op

import node.db

revision = '0009_providers'
down_revision = '0007_providers'
branch_labels = None
depends_on = ('0003_auth',)


def upgrade() -> None:
    op.create_table('provider_admissions',
    sa.Column('provider_id', sa.Integer(), nullable=False),
    sa.Column('api_key_id', sa.Integer(), nullable=False),
    sa.Column('workspace_id', sa.Integer(), nullable=False),
    sa.Column('created_at', node.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['api_key_id'], ['api_keys.id'], name=op.f('fk_provider_admissions_api_key_id_api_keys'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['provider_id'], ['providers.id'], name=op.f('fk_provider_admissions_provider_id_providers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_provider_admissions_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('provider_id', 'api_key_id', name=op.f('pk_provider_admissions'))
    )
    with op.batch_alter_table('provider_admissions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_provider_admissions_api_key_id'), ['api_key_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_provider_admissions_workspace_id'), ['workspace_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('provider_admissions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_provider_admissions_workspace_id'))
        batch_op.drop_index(batch_op.f('ix_provider_admissions_api_key_id'))

    op.drop_table('provider_admissions')
