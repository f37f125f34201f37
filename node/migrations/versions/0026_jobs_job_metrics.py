"""jobs: job_metrics, the resource and per-epoch training samples of a job

One row per sample (`node.models.metrics.JobMetric`): resource columns for a resource
sample, `epoch` and `metrics` for a training entry; read by `GET /v1/jobs/{id}/metrics`
(`node.jobs.metrics`), bounded per job and pruned after `events.metrics_retention_days`.

Revision ID: 0026_job_metrics
Revises: 0023_handlers
"""
import sqlalchemy as sa
from alembic import op

import node.db

revision = '0026_job_metrics'
down_revision = '0023_handlers'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('job_metrics',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('at', node.db.UTCDateTime(), nullable=False),
    sa.Column('cpu_millicores', sa.Float(), nullable=True),
    sa.Column('memory_bytes', sa.BigInteger(), nullable=True),
    sa.Column('network_rx_bytes', sa.BigInteger(), nullable=True),
    sa.Column('network_tx_bytes', sa.BigInteger(), nullable=True),
    sa.Column('gpu_utilization', sa.Float(), nullable=True),
    sa.Column('gpu_memory_bytes', sa.BigInteger(), nullable=True),
    sa.Column('epoch', sa.Integer(), nullable=True),
    sa.Column('metrics', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('job_metrics', schema=None) as batch_op:
        batch_op.create_index('ix_job_metrics_job_at', ['job_id', 'at'], unique=False)
        batch_op.create_index('ix_job_metrics_at', ['at'], unique=False)


def downgrade() -> None:
    op.drop_table('job_metrics')
