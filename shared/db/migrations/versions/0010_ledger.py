"""ledger of accepted work (single requests and batch chunks), worker leases, dead
letters, applied feedback messages

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 08:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "accepted_request",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("endpoint", sa.String(length=128), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("producer", sa.String(length=16), nullable=False),
        sa.Column("accepted_at", WHEN, nullable=False),
        sa.Column("overdue_at", WHEN, nullable=True),
        sa.Column("resent_at", WHEN, nullable=True),
        sa.Column("resends", sa.Integer(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accepted_request")),
    )
    op.create_index(
        op.f("ix_accepted_request_accepted_at"), "accepted_request", ["accepted_at"]
    )
    op.create_table(
        "batch_chunk",
        sa.Column("batch_id", sa.String(length=64), nullable=False),
        sa.Column("start", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("sent_at", WHEN, nullable=False),
        sa.Column("overdue_at", WHEN, nullable=True),
        sa.Column("resent_at", WHEN, nullable=True),
        sa.Column("resends", sa.Integer(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("batch_id", "start", name=op.f("pk_batch_chunk")),
    )
    op.create_index(op.f("ix_batch_chunk_sent_at"), "batch_chunk", ["sent_at"])
    op.create_table(
        "worker_lease",
        sa.Column("task_id", sa.String(length=255), nullable=False),
        sa.Column("worker", sa.String(length=255), nullable=False),
        sa.Column("delivery_tag", sa.String(length=255), nullable=True),
        sa.Column("renewed_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("task_id", name=op.f("pk_worker_lease")),
    )
    op.create_index(op.f("ix_worker_lease_renewed_at"), "worker_lease", ["renewed_at"])
    op.create_table(
        "dead_letter",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("task_name", sa.String(length=128), nullable=False),
        sa.Column("task_id", sa.String(length=255), nullable=False),
        sa.Column("kwargs", JSON, nullable=False),
        sa.Column("error_code", sa.String(length=64), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("replayed_at", WHEN, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letter")),
    )
    op.create_index(op.f("ix_dead_letter_task_id"), "dead_letter", ["task_id"])
    op.create_table(
        "applied_message",
        sa.Column("task_id", sa.String(length=255), nullable=False),
        sa.Column("result", JSON, nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("task_id", name=op.f("pk_applied_message")),
    )
    op.create_index(op.f("ix_applied_message_created_at"), "applied_message", ["created_at"])


def downgrade() -> None:
    for table in ("applied_message", "dead_letter", "worker_lease", "batch_chunk"):
        op.drop_table(table)
    op.drop_table("accepted_request")
