"""batches

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 19:17:59.204215
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('batch',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('endpoint', sa.String(length=128), nullable=False),
    sa.Column('algorithm_status', sa.String(length=32), nullable=True),
    sa.Column('algorithm_version', sa.String(length=128), nullable=True),
    sa.Column('source', sa.Text(), nullable=True),
    sa.Column('total', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_batch'))
    )
    with op.batch_alter_table('ml_request', schema=None) as batch_op:
        batch_op.add_column(sa.Column('batch_position', sa.Integer(), nullable=True))
        batch_op.drop_index(batch_op.f('ix_ml_request_batch_id'))
        batch_op.create_index('ix_ml_request_batch_position', ['batch_id', 'batch_position'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('ml_request', schema=None) as batch_op:
        batch_op.drop_index('ix_ml_request_batch_position')
        batch_op.create_index(batch_op.f('ix_ml_request_batch_id'), ['batch_id'], unique=False)
        batch_op.drop_column('batch_position')

    op.drop_table('batch')
