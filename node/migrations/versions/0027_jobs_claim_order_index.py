"""jobs: the claim's indexes: the claim's order, and the claimant's active jobs

`ix_jobs_status_priority_created` (status, priority_rank, created_at) could not give a
claim its order (`priority_rank` descending, then `created_at` and `id` ascending): a
PostgreSQL index is read in one direction, so each claim sorted every pending job before
taking the first (issue 12's profile: most of PostgreSQL's CPU per claim, growing with
the queue). `ix_jobs_claim_order` is (status, priority_rank DESC, created_at, id).

`ix_jobs_lease_holder_status`: a claim counts the claimant's active jobs, which read every
claimed and running job of every provider without it. Partial (jobs with a lease holder):
a new job is not written to it.

Revision ID: 0027_claim_order
Revises: 0026_job_metrics
"""
import sqlalchemy as sa
from alembic import op

revision = '0027_claim_order'
down_revision = '0026_job_metrics'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_status_priority_created')
        batch_op.create_index(
            'ix_jobs_claim_order',
            ['status', sa.text('priority_rank DESC'), 'created_at', 'id'],
            unique=False,
        )
        batch_op.create_index(
            'ix_jobs_lease_holder_status',
            ['lease_holder', 'status'],
            unique=False,
            sqlite_where=sa.text('lease_holder IS NOT NULL'),
            postgresql_where=sa.text('lease_holder IS NOT NULL'),
        )


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_lease_holder_status')
        batch_op.drop_index('ix_jobs_claim_order')
        batch_op.create_index(
            'ix_jobs_status_priority_created',
            ['status', 'priority_rank', 'created_at'],
            unique=False,
        )
