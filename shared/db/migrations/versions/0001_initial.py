"""initial registry and requests

Revision ID: 0001
Revises:
Create Date: 2026-11-24 19:06:05.650280
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('endpoint',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('owner', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_endpoint')),
    sa.UniqueConstraint('name', name=op.f('uq_endpoint_name'))
    )
    op.create_table('ml_algorithm',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('endpoint_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('version', sa.String(length=128), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('code', sa.Text(), nullable=False),
    sa.Column('owner', sa.String(length=128), nullable=False),
    sa.Column('artifact_sha256', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['endpoint_id'], ['endpoint.id'], name=op.f('fk_ml_algorithm_endpoint_id_endpoint')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ml_algorithm')),
    sa.UniqueConstraint('endpoint_id', 'name', 'version', name=op.f('uq_ml_algorithm_endpoint_id_name_version'))
    )
    op.create_table('ab_test',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('endpoint_id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=256), nullable=False),
    sa.Column('created_by', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('algorithm_a_id', sa.Integer(), nullable=False),
    sa.Column('algorithm_b_id', sa.Integer(), nullable=False),
    sa.Column('split', sa.Float(), nullable=False),
    sa.Column('min_labelled', sa.Integer(), nullable=False),
    sa.Column('decision_rule', sa.String(length=32), nullable=False),
    sa.Column('summary', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=True),
    sa.Column('winner_id', sa.Integer(), nullable=True),
    sa.CheckConstraint('split > 0 AND split < 1', name=op.f('ck_ab_test_split')),
    sa.ForeignKeyConstraint(['algorithm_a_id'], ['ml_algorithm.id'], name=op.f('fk_ab_test_algorithm_a_id_ml_algorithm')),
    sa.ForeignKeyConstraint(['algorithm_b_id'], ['ml_algorithm.id'], name=op.f('fk_ab_test_algorithm_b_id_ml_algorithm')),
    sa.ForeignKeyConstraint(['endpoint_id'], ['endpoint.id'], name=op.f('fk_ab_test_endpoint_id_endpoint')),
    sa.ForeignKeyConstraint(['winner_id'], ['ml_algorithm.id'], name=op.f('fk_ab_test_winner_id_ml_algorithm')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ab_test'))
    )
    with op.batch_alter_table('ab_test', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ab_test_endpoint_id'), ['endpoint_id'], unique=False)

    op.create_table('ml_algorithm_status',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('algorithm_id', sa.Integer(), nullable=False),
    sa.Column('endpoint_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_by', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('testing', 'staging', 'production', 'ab_testing')", name=op.f('ck_ml_algorithm_status_status')),
    sa.ForeignKeyConstraint(['algorithm_id'], ['ml_algorithm.id'], name=op.f('fk_ml_algorithm_status_algorithm_id_ml_algorithm')),
    sa.ForeignKeyConstraint(['endpoint_id'], ['endpoint.id'], name=op.f('fk_ml_algorithm_status_endpoint_id_endpoint')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ml_algorithm_status'))
    )
    with op.batch_alter_table('ml_algorithm_status', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ml_algorithm_status_algorithm_id'), ['algorithm_id'], unique=False)
        batch_op.create_index('uq_ml_algorithm_status_one_active', ['algorithm_id'], unique=True, postgresql_where=sa.text('active'), sqlite_where=sa.text('active'))
        batch_op.create_index('uq_ml_algorithm_status_one_production', ['endpoint_id'], unique=True, postgresql_where=sa.text("active AND status = 'production'"), sqlite_where=sa.text("active AND status = 'production'"))

    op.create_table('ml_request',
    sa.Column('id', sa.String(length=128), nullable=False),
    sa.Column('endpoint', sa.String(length=128), nullable=False),
    sa.Column('algorithm_id', sa.Integer(), nullable=True),
    sa.Column('input', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.Column('response', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.Column('label', sa.String(length=128), nullable=True),
    sa.Column('probability', sa.Double(), nullable=True),
    sa.Column('feedback', sa.String(length=128), nullable=True),
    sa.Column('feedback_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('error_code', sa.String(length=64), nullable=True),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('latency_ms', sa.Double(), nullable=True),
    sa.Column('batch_id', sa.String(length=64), nullable=True),
    sa.Column('ab_test_id', sa.Integer(), nullable=True),
    sa.Column('ab_arm', sa.String(length=1), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('OK', 'ERROR')", name=op.f('ck_ml_request_status')),
    sa.ForeignKeyConstraint(['ab_test_id'], ['ab_test.id'], name=op.f('fk_ml_request_ab_test_id_ab_test')),
    sa.ForeignKeyConstraint(['algorithm_id'], ['ml_algorithm.id'], name=op.f('fk_ml_request_algorithm_id_ml_algorithm')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ml_request'))
    )
    with op.batch_alter_table('ml_request', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ml_request_ab_test_id'), ['ab_test_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ml_request_algorithm_id'), ['algorithm_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ml_request_batch_id'), ['batch_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ml_request_created_at'), ['created_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('ml_request', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ml_request_created_at'))
        batch_op.drop_index(batch_op.f('ix_ml_request_batch_id'))
        batch_op.drop_index(batch_op.f('ix_ml_request_algorithm_id'))
        batch_op.drop_index(batch_op.f('ix_ml_request_ab_test_id'))

    op.drop_table('ml_request')
    with op.batch_alter_table('ml_algorithm_status', schema=None) as batch_op:
        batch_op.drop_index('uq_ml_algorithm_status_one_production', postgresql_where=sa.text("active AND status = 'production'"), sqlite_where=sa.text("active AND status = 'production'"))
        batch_op.drop_index('uq_ml_algorithm_status_one_active', postgresql_where=sa.text('active'), sqlite_where=sa.text('active'))
        batch_op.drop_index(batch_op.f('ix_ml_algorithm_status_algorithm_id'))

    op.drop_table('ml_algorithm_status')
    with op.batch_alter_table('ab_test', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ab_test_endpoint_id'))

    op.drop_table('ab_test')
    op.drop_table('ml_algorithm')
    op.drop_table('endpoint')
