"""plugin-core (seed 003): provider networks, job batches with a concurrency, templates

`providers.networks` lists the provider networks a daemon serves (`--pool`, default
`default`); `jobs.pool` the network a job is for (NULL: any, as before). `job_batches`
holds a batch's concurrency; `job_templates` a workspace's reusable job configurations.

Revision ID: 0022_plugin_core
Revises: 0021_job_events
"""
import sqlalchemy as sa
from alembic import op

import node.db

revision = '0022_plugin_core'
down_revision = '0021_job_events'
branch_labels = None
# providers and workspaces live on other branches of the history
depends_on = ('0009_providers', '0008_workspaces')


def upgrade() -> None:
    with op.batch_alter_table('providers', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('networks', sa.JSON(), server_default='["default"]', nullable=False)
        )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pool', sa.String(length=64), nullable=True))

    op.create_table('job_batches',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('workspace_id', sa.Integer(), nullable=True),
    sa.Column('concurrency', sa.Integer(), nullable=False),
    sa.Column('created_at', node.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('job_batches', schema=None) as batch_op:
        batch_op.create_index('ix_job_batches_workspace_id', ['workspace_id'], unique=False)

    op.create_table('job_templates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('workspace_id', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('created_at', node.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('job_templates', schema=None) as batch_op:
        batch_op.create_index('ix_job_templates_workspace_id', ['workspace_id'], unique=False)


def downgrade() -> None:
    op.drop_table('job_templates')
    op.drop_table('job_batches')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('pool')
    with op.batch_alter_table('providers', schema=None) as batch_op:
        batch_op.drop_column('networks')
