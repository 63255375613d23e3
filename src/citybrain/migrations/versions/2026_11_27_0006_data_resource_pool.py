"""data resource pool

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27

Catalog (GB/T 21063), loads, quality rules and runs, correction tasks, sharing requests, grants
and the access log. Each catalog entry's rows live in a table of their own (ds_<entry id>), made by
citybrain.data.loading from its information items, not here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "data_catalog_entry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("package_id", sa.String(length=36), nullable=False),
        sa.Column("slug", sa.String(length=100), nullable=False),
        sa.Column("resource_id", sa.String(length=36), nullable=False),
        sa.Column("class_kind", sa.String(length=12), nullable=False),
        sa.Column("class_code", sa.String(length=32), nullable=False),
        sa.Column("class_name", sa.String(length=100), nullable=False),
        sa.Column("database", sa.String(length=40), nullable=True),
        sa.Column("provider_department_id", sa.Integer(), nullable=False),
        sa.Column("provider_code", sa.String(length=32), nullable=False),
        sa.Column("abstract", sa.Text(), nullable=False),
        sa.Column("keywords", sa.String(length=300), nullable=False),
        sa.Column("format", sa.String(length=20), nullable=False),
        sa.Column("sharing_type", sa.String(length=16), nullable=False),
        sa.Column("sharing_conditions", sa.Text(), nullable=False),
        sa.Column("sharing_method", sa.String(length=50), nullable=False),
        sa.Column("open_type", sa.String(length=12), nullable=False),
        sa.Column("update_cycle", sa.String(length=12), nullable=False),
        sa.Column("published_on", sa.Date(), nullable=True),
        sa.Column("related_codes", sa.JSON(), nullable=False),
        sa.Column("key_fields", sa.JSON(), nullable=False),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("quality_score", sa.Float(), nullable=True),
        sa.Column("synthetic", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["provider_department_id"],
            ["department.id"],
            name=op.f("fk_data_catalog_entry_provider_department_id_department"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_catalog_entry")),
        sa.UniqueConstraint("code", name=op.f("uq_data_catalog_entry_code")),
        sa.UniqueConstraint("package_id", name=op.f("uq_data_catalog_entry_package_id")),
        sa.UniqueConstraint("resource_id", name=op.f("uq_data_catalog_entry_resource_id")),
        sa.UniqueConstraint("slug", name=op.f("uq_data_catalog_entry_slug")),
    )
    with op.batch_alter_table("data_catalog_entry", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_data_catalog_entry_class_code"), ["class_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_data_catalog_entry_class_kind"), ["class_kind"], unique=False)
        batch_op.create_index(batch_op.f("ix_data_catalog_entry_database"), ["database"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_data_catalog_entry_provider_department_id"), ["provider_department_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_data_catalog_entry_sharing_type"), ["sharing_type"], unique=False)

    op.create_table(
        "data_access_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=True),
        sa.Column("grant_id", sa.Integer(), nullable=True),
        sa.Column("via", sa.String(length=20), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("unmasked", sa.Boolean(), nullable=False),
        sa.Column("query", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["data_catalog_entry.id"],
            name=op.f("fk_data_access_log_entry_id_data_catalog_entry"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user_account.id"], name=op.f("fk_data_access_log_user_id_user_account"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_access_log")),
    )
    with op.batch_alter_table("data_access_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_data_access_log_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_data_access_log_entry_id"), ["entry_id"], unique=False)

    op.create_table(
        "data_info_item",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("data_type", sa.String(length=10), nullable=False),
        sa.Column("length", sa.Integer(), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.Column("personal", sa.String(length=20), nullable=True),
        sa.Column("source_entry_code", sa.String(length=64), nullable=True),
        sa.Column("source_item_code", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["data_catalog_entry.id"],
            name=op.f("fk_data_info_item_entry_id_data_catalog_entry"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_info_item")),
        sa.UniqueConstraint("entry_id", "code", name=op.f("uq_data_info_item_entry_id")),
    )
    with op.batch_alter_table("data_info_item", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_data_info_item_entry_id"), ["entry_id"], unique=False)

    op.create_table(
        "data_load",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("mode", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("file_format", sa.String(length=10), nullable=False),
        sa.Column("encoding", sa.String(length=20), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("rows_read", sa.Integer(), nullable=False),
        sa.Column("rows_inserted", sa.Integer(), nullable=False),
        sa.Column("rows_updated", sa.Integer(), nullable=False),
        sa.Column("rows_deleted", sa.Integer(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["data_catalog_entry.id"],
            name=op.f("fk_data_load_entry_id_data_catalog_entry"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user_account.id"], name=op.f("fk_data_load_user_id_user_account"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_load")),
    )
    with op.batch_alter_table("data_load", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_data_load_entry_id"), ["entry_id"], unique=False)

    op.create_table(
        "data_quality_rule",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("item_code", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("severity", sa.String(length=10), nullable=False),
        sa.Column("description", sa.String(length=300), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["data_catalog_entry.id"],
            name=op.f("fk_data_quality_rule_entry_id_data_catalog_entry"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_quality_rule")),
    )
    with op.batch_alter_table("data_quality_rule", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_data_quality_rule_entry_id"), ["entry_id"], unique=False)

    op.create_table(
        "data_quality_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("failed_rows", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("results", sa.JSON(), nullable=False),
        sa.Column("disagreements", sa.JSON(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["data_catalog_entry.id"],
            name=op.f("fk_data_quality_run_entry_id_data_catalog_entry"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_quality_run")),
    )
    with op.batch_alter_table("data_quality_run", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_data_quality_run_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_data_quality_run_entry_id"), ["entry_id"], unique=False)

    op.create_table(
        "data_share_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("consumer_department_id", sa.Integer(), nullable=False),
        sa.Column("requested_by_user_id", sa.Integer(), nullable=True),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("unmasked", sa.Boolean(), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("decided_by", sa.String(length=100), nullable=False),
        sa.Column("decision_reason", sa.Text(), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["consumer_department_id"],
            ["department.id"],
            name=op.f("fk_data_share_request_consumer_department_id_department"),
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["data_catalog_entry.id"],
            name=op.f("fk_data_share_request_entry_id_data_catalog_entry"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["requested_by_user_id"],
            ["user_account.id"],
            name=op.f("fk_data_share_request_requested_by_user_id_user_account"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_share_request")),
    )
    with op.batch_alter_table("data_share_request", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_data_share_request_consumer_department_id"), ["consumer_department_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_data_share_request_entry_id"), ["entry_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_data_share_request_status"), ["status"], unique=False)

    op.create_table(
        "data_correction_task",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("failed_rows", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_run_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["department_id"], ["department.id"], name=op.f("fk_data_correction_task_department_id_department")
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["data_catalog_entry.id"],
            name=op.f("fk_data_correction_task_entry_id_data_catalog_entry"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["data_quality_run.id"],
            name=op.f("fk_data_correction_task_run_id_data_quality_run"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_correction_task")),
    )
    with op.batch_alter_table("data_correction_task", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_data_correction_task_department_id"), ["department_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_data_correction_task_entry_id"), ["entry_id"], unique=False)

    op.create_table(
        "data_grant",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("consumer_department_id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=True),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("unmasked", sa.Boolean(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("granted_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["consumer_department_id"], ["department.id"], name=op.f("fk_data_grant_consumer_department_id_department")
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["data_catalog_entry.id"],
            name=op.f("fk_data_grant_entry_id_data_catalog_entry"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["data_share_request.id"],
            name=op.f("fk_data_grant_request_id_data_share_request"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_grant")),
    )
    with op.batch_alter_table("data_grant", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_data_grant_consumer_department_id"), ["consumer_department_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_data_grant_entry_id"), ["entry_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("data_grant", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_data_grant_entry_id"))
        batch_op.drop_index(batch_op.f("ix_data_grant_consumer_department_id"))

    op.drop_table("data_grant")
    with op.batch_alter_table("data_correction_task", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_data_correction_task_entry_id"))
        batch_op.drop_index(batch_op.f("ix_data_correction_task_department_id"))

    op.drop_table("data_correction_task")
    with op.batch_alter_table("data_share_request", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_data_share_request_status"))
        batch_op.drop_index(batch_op.f("ix_data_share_request_entry_id"))
        batch_op.drop_index(batch_op.f("ix_data_share_request_consumer_department_id"))

    op.drop_table("data_share_request")
    with op.batch_alter_table("data_quality_run", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_data_quality_run_entry_id"))
        batch_op.drop_index(batch_op.f("ix_data_quality_run_created_at"))

    op.drop_table("data_quality_run")
    with op.batch_alter_table("data_quality_rule", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_data_quality_rule_entry_id"))

    op.drop_table("data_quality_rule")
    with op.batch_alter_table("data_load", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_data_load_entry_id"))

    op.drop_table("data_load")
    with op.batch_alter_table("data_info_item", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_data_info_item_entry_id"))

    op.drop_table("data_info_item")
    with op.batch_alter_table("data_access_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_data_access_log_entry_id"))
        batch_op.drop_index(batch_op.f("ix_data_access_log_at"))

    op.drop_table("data_access_log")
    with op.batch_alter_table("data_catalog_entry", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_data_catalog_entry_sharing_type"))
        batch_op.drop_index(batch_op.f("ix_data_catalog_entry_provider_department_id"))
        batch_op.drop_index(batch_op.f("ix_data_catalog_entry_database"))
        batch_op.drop_index(batch_op.f("ix_data_catalog_entry_class_kind"))
        batch_op.drop_index(batch_op.f("ix_data_catalog_entry_class_code"))

    op.drop_table("data_catalog_entry")
