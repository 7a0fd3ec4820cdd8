"""request log for years: ml_request partitioned by day on created_at (PostgreSQL),
primary key (id, created_at), JSON instead of JSONB for inputs and responses, no
foreign keys, only the indexes queries use; batch rows carry their batch's created_at;
batch.written_at; ml_request_summary (what `mlq db prune` keeps of dropped days)

Existing rows are copied into the new table: a batch's rows take their batch's
created_at (the new partition key of every batch row), the rest keep theirs; partitions
are made for every day that has rows and for the days ahead.

Revision ID: 0011
Revises: 0009
Create Date: 2026-12-01 09:00:00
"""

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = "ml_request_0009"
COLUMNS = (
    "id, endpoint, algorithm_id, input, response, label, probability, value, status, "
    "error_code, error_message, latency_ms, batch_id, batch_position, ab_test_id, ab_arm"
)
OLD_INDEXES = (
    "ix_ml_request_ab_test_id",
    "ix_ml_request_algorithm_id",
    "ix_ml_request_created_at",
    "ix_ml_request_batch_position",
)


def _columns(json: Any) -> list[Any]:
    return [
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("endpoint", sa.String(length=128), nullable=False),
        sa.Column("algorithm_id", sa.Integer(), nullable=True),
        sa.Column("input", json, nullable=False),
        sa.Column("response", json, nullable=False),
        sa.Column("label", sa.String(length=128), nullable=True),
        sa.Column("probability", sa.Double(), nullable=True),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("latency_ms", sa.Double(), nullable=True),
        sa.Column("batch_id", sa.String(length=64), nullable=True),
        sa.Column("batch_position", sa.Integer(), nullable=True),
        sa.Column("ab_test_id", sa.Integer(), nullable=True),
        sa.Column("ab_arm", sa.String(length=1), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('OK', 'ERROR')", name=op.f("ck_ml_request_status")),
    ]


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("batch") as batch:
        batch.add_column(sa.Column("written_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "ml_request_summary",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", sa.DateTime(timezone=True), nullable=False),
        sa.Column("endpoint", sa.String(length=128), nullable=False),
        sa.Column("algorithm_id", sa.Integer(), nullable=True),
        sa.Column("ab_test_id", sa.Integer(), nullable=True),
        sa.Column("ab_arm", sa.String(length=1), nullable=True),
        sa.Column("batch", sa.Boolean(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        sa.Column("labelled", sa.BigInteger(), nullable=False),
        sa.Column("correct", sa.BigInteger(), nullable=False),
        sa.Column("abs_error_sum", sa.Double(), nullable=True),
        sa.Column("latency_ms_sum", sa.Double(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ml_request_summary")),
    )
    op.create_index("ix_ml_request_summary_day", "ml_request_summary", ["day"])

    # The old table steps aside, without its indexes (names are global in both
    # databases) and, on PostgreSQL, with its constraints renamed likewise.
    for name in OLD_INDEXES:
        op.drop_index(name, table_name="ml_request")
    op.rename_table("ml_request", OLD)
    if postgres:
        op.execute(f"ALTER TABLE {OLD} RENAME CONSTRAINT pk_ml_request TO pk_{OLD}")
        op.execute(f"ALTER TABLE {OLD} RENAME CONSTRAINT ck_ml_request_status TO ck_{OLD}_status")
        op.create_table(
            "ml_request",
            *_columns(sa.JSON()),
            sa.PrimaryKeyConstraint("id", "created_at", name=op.f("pk_ml_request")),
            postgresql_partition_by="RANGE (created_at)",
        )
        _make_partitions()
    else:
        op.create_table(
            "ml_request",
            *_columns(sa.JSON()),
            sa.PrimaryKeyConstraint("id", "created_at", name=op.f("pk_ml_request")),
        )
    # A batch's rows take their batch's created_at: the key a redelivered chunk writes.
    as_json = "::json" if postgres else ""
    select = ", ".join(
        f"r.{c.strip()}{as_json}" if c.strip() in ("input", "response") else f"r.{c.strip()}"
        for c in COLUMNS.split(",")
    )
    op.execute(
        f"INSERT INTO ml_request ({COLUMNS}, created_at) "
        f"SELECT {select}, COALESCE(b.created_at, r.created_at) "
        f"FROM {OLD} r LEFT JOIN batch b ON b.id = r.batch_id"
    )
    op.execute(
        f"UPDATE batch SET written_at = (SELECT max(r.created_at) FROM {OLD} r "
        f"WHERE r.batch_id = batch.id)"
    )
    # A shadow answer's time is its request's.
    op.execute(
        "UPDATE ab_shadow_answer SET created_at = (SELECT b.created_at FROM "
        f"{OLD} r JOIN batch b ON b.id = r.batch_id WHERE r.id = ab_shadow_answer.request_id) "
        f"WHERE request_id IN (SELECT r.id FROM {OLD} r JOIN batch b ON b.id = r.batch_id)"
    )
    op.drop_table(OLD)
    _new_indexes(postgres)


def _new_indexes(postgres: bool) -> None:
    where_batch = sa.text("batch_id IS NOT NULL")
    where_ab = sa.text("ab_test_id IS NOT NULL")
    op.create_index(
        "ix_ml_request_batch_position",
        "ml_request",
        ["batch_id", "batch_position"],
        postgresql_where=where_batch,
        sqlite_where=where_batch,
    )
    op.create_index(
        "ix_ml_request_ab_test_id",
        "ml_request",
        ["ab_test_id"],
        postgresql_where=where_ab,
        sqlite_where=where_ab,
    )
    op.create_index(
        "ix_ml_request_created_at",
        "ml_request",
        ["created_at"],
        postgresql_using="brin" if postgres else None,
    )


def _make_partitions() -> None:
    from shared.db.partitions import DAYS_AHEAD, create_partitions

    bind = op.get_bind()
    days = {
        day
        for (day,) in bind.execute(
            sa.text(
                "SELECT DISTINCT CAST(COALESCE(b.created_at, r.created_at) AT TIME ZONE 'UTC' "
                f"AS date) FROM {OLD} r LEFT JOIN batch b ON b.id = r.batch_id"
            )
        )
    }
    today = datetime.now(UTC).date()
    days |= {today + timedelta(days=n) for n in range(-1, DAYS_AHEAD + 1)}
    create_partitions(bind, sorted(d if isinstance(d, date) else d.date() for d in days))


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    for name in OLD_INDEXES:
        op.drop_index(name, table_name="ml_request")
    op.rename_table("ml_request", OLD)
    if postgres:
        op.execute(f"ALTER TABLE {OLD} RENAME CONSTRAINT pk_ml_request TO pk_{OLD}")
        op.execute(f"ALTER TABLE {OLD} RENAME CONSTRAINT ck_ml_request_status TO ck_{OLD}_status")
    op.create_table(
        "ml_request",
        *_columns(json),
        sa.ForeignKeyConstraint(
            ["ab_test_id"], ["ab_test.id"], name=op.f("fk_ml_request_ab_test_id_ab_test")
        ),
        sa.ForeignKeyConstraint(
            ["algorithm_id"],
            ["ml_algorithm.id"],
            name=op.f("fk_ml_request_algorithm_id_ml_algorithm"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ml_request")),
    )
    cast = "::jsonb" if postgres else ""
    select = ", ".join(
        f"{c.strip()}{cast}" if c.strip() in ("input", "response") else c.strip()
        for c in COLUMNS.split(",")
    )
    op.execute(
        f"INSERT INTO ml_request ({COLUMNS}, created_at) SELECT {select}, created_at FROM {OLD}"
    )
    op.drop_table(OLD)
    op.create_index("ix_ml_request_ab_test_id", "ml_request", ["ab_test_id"])
    op.create_index("ix_ml_request_algorithm_id", "ml_request", ["algorithm_id"])
    op.create_index("ix_ml_request_created_at", "ml_request", ["created_at"])
    op.create_index("ix_ml_request_batch_position", "ml_request", ["batch_id", "batch_position"])
    op.drop_index("ix_ml_request_summary_day", table_name="ml_request_summary")
    op.drop_table("ml_request_summary")
    with op.batch_alter_table("batch") as batch:
        batch.drop_column("written_at")
