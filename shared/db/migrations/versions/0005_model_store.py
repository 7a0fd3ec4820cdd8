"""model store: blobs in the database, algorithms with schema and runtime, retired status

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_STATUSES = "('testing', 'staging', 'production', 'ab_testing')"
NEW_STATUSES = "('testing', 'staging', 'production', 'ab_testing', 'retired')"
JSON = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "model_blob",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("chunks", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_model_blob")),
    )
    op.create_table(
        "model_blob_chunk",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["sha256"],
            ["model_blob.sha256"],
            name=op.f("fk_model_blob_chunk_sha256_model_blob"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("sha256", "seq", name=op.f("pk_model_blob_chunk")),
    )
    op.create_table(
        "worker_model",
        sa.Column("worker", sa.String(length=255), nullable=False),
        sa.Column("algorithm_id", sa.Integer(), nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["algorithm_id"],
            ["ml_algorithm.id"],
            name=op.f("fk_worker_model_algorithm_id_ml_algorithm"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("worker", "algorithm_id", name=op.f("pk_worker_model")),
    )
    with op.batch_alter_table("endpoint") as batch:
        batch.add_column(
            sa.Column("isolated", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("ml_algorithm") as batch:
        batch.add_column(
            sa.Column("created_by", sa.String(length=128), nullable=False, server_default="")
        )
        batch.add_column(
            sa.Column("kind", sa.String(length=16), nullable=False, server_default="classifier")
        )
        batch.add_column(
            sa.Column("runtime", sa.String(length=16), nullable=False, server_default="onnx")
        )
        batch.add_column(sa.Column("runtime_note", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("serving_sha256", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("classes", JSON, nullable=True))
        batch.add_column(sa.Column("manifest", JSON, nullable=True))
        batch.create_check_constraint("kind", "kind IN ('classifier', 'regressor')")
        batch.create_check_constraint("runtime", "runtime IN ('onnx', 'sklearn')")
    with op.batch_alter_table("ml_algorithm_status") as batch:
        batch.add_column(sa.Column("reason", sa.Text(), nullable=False, server_default=""))
        batch.drop_constraint(op.f("ck_ml_algorithm_status_status"), type_="check")
        batch.create_check_constraint("status", f"status IN {NEW_STATUSES}")
    with op.batch_alter_table("ml_request") as batch:
        batch.add_column(sa.Column("value", sa.Double(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        # A version names one artifact forever: the database refuses to change the hash
        # of a registered algorithm, whatever code tries.
        op.execute(
            """
            CREATE FUNCTION mlq_artifact_is_immutable() RETURNS trigger AS $$
            BEGIN
                IF OLD.artifact_sha256 IS NOT NULL
                   AND NEW.artifact_sha256 IS DISTINCT FROM OLD.artifact_sha256 THEN
                    RAISE EXCEPTION 'the artifact of % % % cannot change (sha256 %)',
                        OLD.endpoint_id, OLD.name, OLD.version, OLD.artifact_sha256;
                END IF;
                RETURN NEW;
            END $$ LANGUAGE plpgsql
            """
        )
        op.execute(
            "CREATE TRIGGER ml_algorithm_artifact_is_immutable BEFORE UPDATE ON ml_algorithm "
            "FOR EACH ROW EXECUTE FUNCTION mlq_artifact_is_immutable()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER ml_algorithm_artifact_is_immutable ON ml_algorithm")
        op.execute("DROP FUNCTION mlq_artifact_is_immutable()")
    with op.batch_alter_table("ml_request") as batch:
        batch.drop_column("value")
    with op.batch_alter_table("ml_algorithm_status") as batch:
        batch.drop_constraint(op.f("ck_ml_algorithm_status_status"), type_="check")
        batch.create_check_constraint("status", f"status IN {OLD_STATUSES}")
        batch.drop_column("reason")
    with op.batch_alter_table("ml_algorithm") as batch:
        batch.drop_constraint(op.f("ck_ml_algorithm_kind"), type_="check")
        batch.drop_constraint(op.f("ck_ml_algorithm_runtime"), type_="check")
        for column in ("manifest", "classes", "serving_sha256", "runtime_note", "runtime", "kind"):
            batch.drop_column(column)
        batch.drop_column("created_by")
    with op.batch_alter_table("endpoint") as batch:
        batch.drop_column("isolated")
    op.drop_table("worker_model")
    op.drop_table("model_blob_chunk")
    op.drop_table("model_blob")
