"""jobs: per-job event sequence, log streams and limits; webhooks and their deliveries

`job_events.seq` numbers a job's events 1, 2, 3... (existing rows numbered in id order),
taken from `jobs.event_seq`; `stream` is stdout/stderr for a log line where known.
`jobs.log_lines`/`log_dropped` count the stored and dropped lines against the per-job
limit. `webhooks` are subscriptions; `webhook_deliveries` their outbox.

Revision ID: 0021_job_events
Revises: 0015_jobs
"""
import sqlalchemy as sa
from alembic import op

import node.db

revision = '0021_job_events'
down_revision = '0015_jobs'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('event_seq', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('log_lines', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(
            sa.Column('log_dropped', sa.Integer(), server_default='0', nullable=False)
        )
    with op.batch_alter_table('job_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('seq', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('stream', sa.String(length=8), nullable=True))
    op.execute(
        "UPDATE job_events SET seq = (SELECT COUNT(*) FROM job_events AS e2 "
        "WHERE e2.job_id = job_events.job_id AND e2.id <= job_events.id)"
    )
    op.execute(
        "UPDATE jobs SET event_seq = (SELECT COUNT(*) FROM job_events AS e "
        "WHERE e.job_id = jobs.id), log_lines = (SELECT COUNT(*) FROM job_events AS e "
        "WHERE e.job_id = jobs.id AND e.type = 'log')"
    )
    with op.batch_alter_table('job_events', schema=None) as batch_op:
        batch_op.alter_column('seq', existing_type=sa.Integer(), nullable=False)
        batch_op.create_index('ux_job_events_job_seq', ['job_id', 'seq'], unique=True)
        batch_op.create_index('ix_job_events_type_created', ['type', 'created_at'], unique=False)

    op.create_table('webhooks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('workspace_id', sa.Integer(), nullable=True),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('events', sa.JSON(), nullable=False),
    sa.Column('secret', sa.LargeBinary(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('disabled_reason', sa.Text(), nullable=True),
    sa.Column('consecutive_failures', sa.Integer(), nullable=False),
    sa.Column('created_at', node.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('webhooks', schema=None) as batch_op:
        batch_op.create_index('ix_webhooks_workspace_id', ['workspace_id'], unique=False)

    op.create_table('webhook_deliveries',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('webhook_id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('event_seq', sa.Integer(), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('body', sa.LargeBinary(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', node.db.UTCDateTime(), nullable=True),
    sa.Column('last_status_code', sa.Integer(), nullable=True),
    sa.Column('last_latency_ms', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('history', sa.JSON(), nullable=False),
    sa.Column('created_at', node.db.UTCDateTime(), nullable=False),
    sa.Column('expires_at', node.db.UTCDateTime(), nullable=False),
    sa.Column('delivered_at', node.db.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['webhook_id'], ['webhooks.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_webhook_deliveries_due', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index(
            'ix_webhook_deliveries_webhook_created', ['webhook_id', 'created_at'], unique=False
        )


def downgrade() -> None:
    op.drop_table('webhook_deliveries')
    op.drop_table('webhooks')
    with op.batch_alter_table('job_events', schema=None) as batch_op:
        batch_op.drop_index('ix_job_events_type_created')
        batch_op.drop_index('ux_job_events_job_seq')
        batch_op.drop_column('stream')
        batch_op.drop_column('seq')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('log_dropped')
        batch_op.drop_column('log_lines')
        batch_op.drop_column('event_seq')
