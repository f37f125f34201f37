"""document jobs (seed 004): transformer templates; per-job webhooks

`transformer_templates` holds the named transformer templates of a workspace. `webhooks.job_id`
marks a per-job webhook (seed 004's `parameters.webhook`), `bearer_token` its
`Authorization: Bearer` token and `client_job_id` the client's own `jobId`.

Revision ID: 0023_handlers
Revises: 0022_plugin_core
"""
import sqlalchemy as sa
from alembic import op

import node.db

revision = '0023_handlers'
down_revision = '0022_plugin_core'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('transformer_templates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('workspace_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('output_format', sa.String(length=16), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', node.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', node.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], ),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('transformer_templates', schema=None) as batch_op:
        batch_op.create_index('ux_transformer_templates_ws_name', ['workspace_id', 'name'], unique=True)
    with op.batch_alter_table('webhooks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('job_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('bearer_token', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('client_job_id', sa.String(length=256), nullable=True))
        batch_op.create_index('ix_webhooks_job_id', ['job_id'], unique=False)
        batch_op.create_foreign_key(
            'fk_webhooks_job_id_jobs', 'jobs', ['job_id'], ['id'], ondelete='CASCADE'
        )


def downgrade() -> None:
    with op.batch_alter_table('webhooks', schema=None) as batch_op:
        batch_op.drop_constraint('fk_webhooks_job_id_jobs', type_='foreignkey')
        batch_op.drop_index('ix_webhooks_job_id')
        batch_op.drop_column('client_job_id')
        batch_op.drop_column('bearer_token')
        batch_op.drop_column('job_id')
    with op.batch_alter_table('transformer_templates', schema=None) as batch_op:
        batch_op.drop_index('ux_transformer_templates_ws_name')
    op.drop_table('transformer_templates')
