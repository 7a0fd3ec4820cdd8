"""batch external ids (the caller's row id of each batch record)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('batch_external_id',
    sa.Column('batch_id', sa.String(length=64), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('external_id', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('batch_id', 'position', name=op.f('pk_batch_external_id'))
    )


def downgrade() -> None:
    op.drop_table('batch_external_id')
