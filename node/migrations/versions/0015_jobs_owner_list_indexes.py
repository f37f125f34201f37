"""jobs: list indexes for the jobs a caller owns outside any workspace

A list reads each branch of the caller's scope as one ordered seek
(`node.jobs.repository.keyset_jobs`). The branches for jobs without a workspace are
`workspace_id IS NULL AND created_by = ?` and `workspace_id IS NULL AND requester_address
= ?`: with the workspace in the index, both seek straight to their rows in (created_at,
id) order. The indexes they replace walked every job of that creator or wallet, in
workspaces too.

Revision ID: 0015_jobs
Revises: 0013_jobs
"""
from alembic import op

revision = '0015_jobs'
down_revision = '0013_jobs'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_created_by_created_id')
        batch_op.drop_index(batch_op.f('ix_jobs_requester_address'))
        batch_op.create_index(
            'ix_jobs_creator_workspace_created_id',
            ['created_by', 'workspace_id', 'created_at', 'id'],
            unique=False,
        )
        batch_op.create_index(
            'ix_jobs_requester_workspace_created_id',
            ['requester_address', 'workspace_id', 'created_at', 'id'],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_requester_workspace_created_id')
        batch_op.drop_index('ix_jobs_creator_workspace_created_id')
        batch_op.create_index(
            batch_op.f('ix_jobs_requester_address'), ['requester_address'], unique=False
        )
        batch_op.create_index(
            'ix_jobs_created_by_created_id', ['created_by', 'created_at', 'id'], unique=False
        )
