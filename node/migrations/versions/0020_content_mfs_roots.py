"""content: one MFS root per user or API key (`ipfs files ...`)

Revision ID: 0020_content
Revises: 0004_content
"""
import sqlalchemy as sa
from alembic import op

import node.db

revision = '0020_content'
down_revision = '0004_content'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('mfs_roots',
    sa.Column('owner', sa.String(length=64), nullable=False),
    sa.Column('cid', sa.String(length=128), nullable=False),
    sa.Column('updated_at', node.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('owner', name=op.f('pk_mfs_roots'))
    )


def downgrade() -> None:
    op.drop_table('mfs_roots')
