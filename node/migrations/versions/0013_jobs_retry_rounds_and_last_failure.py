"""jobs: retry rounds and the provider that last failed a job

`retry_base_attempt` is the attempt number a manual retry starts its round of provider
attempts from (`attempt` keeps counting, it is the fencing token), so a retried job gets
its `max_retries` + 1 attempts again. `last_failed_by` is the provider whose attempt last
failed or timed out, whom the claim path does not hand the job straight back to while
others are available.

Revision ID: 0013_jobs
Revises: 0002_jobs
"""
import sqlalchemy as sa
from alembic import op

revision = '0013_jobs'
down_revision = '0002_jobs'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('retry_base_attempt', sa.Integer(), server_default='0', nullable=False)
        )
        batch_op.add_column(sa.Column('last_failed_by', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('last_failed_by')
        batch_op.drop_column('retry_base_attempt')
