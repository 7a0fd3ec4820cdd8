"""ab tests: modes (split, shadow, replay), stored settings, label delay, the challenger's
status before the test, shadow answers and replayed requests

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")
OLD_RUNNING = "ended_at IS NULL"
LIVE_RUNNING = "ended_at IS NULL AND mode <> 'replay'"


def _running_index(batch: object, where: str) -> None:
    batch.create_index(  # type: ignore[attr-defined]
        "uq_ab_test_one_running",
        ["endpoint_id"],
        unique=True,
        postgresql_where=sa.text(where),
        sqlite_where=sa.text(where),
    )


def upgrade() -> None:
    with op.batch_alter_table("ab_test") as batch:
        batch.add_column(
            sa.Column("mode", sa.String(length=16), nullable=False, server_default="split")
        )
        batch.add_column(sa.Column("settings", JSON, nullable=True))
        batch.add_column(
            sa.Column("label_delay_s", sa.Float(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("b_status_before", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("batch_id", sa.String(length=64), nullable=True))
        batch.create_check_constraint("mode", "mode IN ('split', 'shadow', 'replay')")
        batch.drop_index("uq_ab_test_one_running")
        _running_index(batch, LIVE_RUNNING)
    # The fixed-horizon rule is gone: tests still running are decided sequentially.
    op.execute(
        "UPDATE ab_test SET decision_rule = 'sequential' "
        "WHERE decision_rule = 'significance' AND ended_at IS NULL"
    )
    op.create_table(
        "ab_shadow_answer",
        sa.Column("ab_test_id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("algorithm_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("label", sa.String(length=128), nullable=True),
        sa.Column("probability", sa.Float(), nullable=True),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("control_latency_ms", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ab_test_id"], ["ab_test.id"], name=op.f("fk_ab_shadow_answer_ab_test_id_ab_test")
        ),
        sa.ForeignKeyConstraint(
            ["algorithm_id"],
            ["ml_algorithm.id"],
            name=op.f("fk_ab_shadow_answer_algorithm_id_ml_algorithm"),
        ),
        sa.PrimaryKeyConstraint("ab_test_id", "request_id", name=op.f("pk_ab_shadow_answer")),
    )
    op.create_table(
        "ab_replay_request",
        sa.Column("ab_test_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["ab_test_id"], ["ab_test.id"], name=op.f("fk_ab_replay_request_ab_test_id_ab_test")
        ),
        sa.PrimaryKeyConstraint("ab_test_id", "position", name=op.f("pk_ab_replay_request")),
    )


def downgrade() -> None:
    op.drop_table("ab_replay_request")
    op.drop_table("ab_shadow_answer")
    op.execute("DELETE FROM ab_test WHERE mode = 'replay'")
    with op.batch_alter_table("ab_test") as batch:
        batch.drop_index("uq_ab_test_one_running")
        _running_index(batch, OLD_RUNNING)
        batch.drop_constraint(op.f("ck_ab_test_mode"), type_="check")
        batch.drop_column("batch_id")
        batch.drop_column("b_status_before")
        batch.drop_column("label_delay_s")
        batch.drop_column("settings")
        batch.drop_column("mode")
