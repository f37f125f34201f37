"""personal workspaces; jobs created without a workspace move into their creator's

Revision ID: 0008_workspaces
Revises: 0001_core
"""
import datetime as dt

import sqlalchemy as sa
from alembic import op

import node.db

revision = '0008_workspaces'
down_revision = '0001_core'
branch_labels = None
depends_on = ('0002_jobs',)

PERSONAL_WORKSPACE_NAME = "Personal"


def upgrade() -> None:
    op.create_table('personal_workspaces',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('workspace_id', sa.Integer(), nullable=False),
    sa.Column('created_at', node.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_personal_workspaces_user_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_personal_workspaces_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_personal_workspaces')),
    sa.UniqueConstraint('workspace_id', name=op.f('uq_personal_workspaces_workspace_id'))
    )
    _move_jobs_into_personal_workspaces()


def _move_jobs_into_personal_workspaces() -> None:
    """Data: every job created without a workspace (the /v1 dialect before personal
    workspaces) moves into its creator's personal workspace, made here with the creator
    as owner. Jobs without a creator (seed 000 uploads, the open market) stay as they are."""
    conn = op.get_bind()
    jobs = sa.table(
        'jobs',
        sa.column('id', sa.Integer),
        sa.column('workspace_id', sa.Integer),
        sa.column('created_by', sa.Integer),
    )
    workspaces = sa.table(
        'workspaces',
        sa.column('id', sa.Integer),
        sa.column('name', sa.String),
        sa.column('created_by', sa.Integer),
        sa.column('created_at', node.db.UTCDateTime(timezone=True)),
    )
    members = sa.table(
        'workspace_members',
        sa.column('workspace_id', sa.Integer),
        sa.column('user_id', sa.Integer),
        sa.column('role', sa.String),
        sa.column('created_at', node.db.UTCDateTime(timezone=True)),
    )
    personal = sa.table(
        'personal_workspaces',
        sa.column('user_id', sa.Integer),
        sa.column('workspace_id', sa.Integer),
        sa.column('created_at', node.db.UTCDateTime(timezone=True)),
    )
    creators = conn.execute(
        sa.select(jobs.c.created_by)
        .where(jobs.c.workspace_id.is_(None), jobs.c.created_by.is_not(None))
        .distinct()
        .order_by(jobs.c.created_by)
    ).scalars().all()
    now = dt.datetime.now(dt.UTC)
    for user_id in creators:
        workspace_id = conn.execute(
            sa.insert(workspaces)
            .values(name=PERSONAL_WORKSPACE_NAME, created_by=user_id, created_at=now)
            .returning(workspaces.c.id)
        ).scalar_one()
        conn.execute(
            sa.insert(members).values(
                workspace_id=workspace_id, user_id=user_id, role='owner', created_at=now
            )
        )
        conn.execute(
            sa.insert(personal).values(user_id=user_id, workspace_id=workspace_id, created_at=now)
        )
        conn.execute(
            sa.update(jobs)
            .where(jobs.c.workspace_id.is_(None), jobs.c.created_by == user_id)
            .values(workspace_id=workspace_id)
        )


def downgrade() -> None:
    # The moved jobs stay in the (now ordinary) workspaces made for them.
    op.drop_table('personal_workspaces')
