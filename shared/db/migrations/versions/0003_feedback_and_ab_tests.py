"""feedback and ab tests

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 19:42:51.210689
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('feedback',
    sa.Column('request_id', sa.String(length=128), nullable=False),
    sa.Column('label', sa.String(length=128), nullable=False),
    sa.Column('times_given', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('request_id', name=op.f('pk_feedback'))
    )
    with op.batch_alter_table('ab_test', schema=None) as batch_op:
        batch_op.add_column(sa.Column('alpha', sa.Float(), nullable=False, server_default='0.05'))
        batch_op.create_check_constraint('alpha', 'alpha > 0 AND alpha < 1')
        batch_op.add_column(sa.Column('ended_by', sa.String(length=128), nullable=True))
        batch_op.create_index('uq_ab_test_one_running', ['endpoint_id'], unique=True, postgresql_where=sa.text('ended_at IS NULL'), sqlite_where=sa.text('ended_at IS NULL'))

    with op.batch_alter_table('ml_request', schema=None) as batch_op:
        batch_op.drop_column('feedback')
        batch_op.drop_column('feedback_at')



def downgrade() -> None:
    with op.batch_alter_table('ml_request', schema=None) as batch_op:
        batch_op.add_column(sa.Column('feedback_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('feedback', sa.String(length=128), nullable=True))

    with op.batch_alter_table('ab_test', schema=None) as batch_op:
        batch_op.drop_index('uq_ab_test_one_running', postgresql_where=sa.text('ended_at IS NULL'), sqlite_where=sa.text('ended_at IS NULL'))
        batch_op.drop_constraint(op.f('ck_ab_test_alpha'), type_='check')
        batch_op.drop_column('ended_by')
        batch_op.drop_column('alpha')

    op.drop_table('feedback')
