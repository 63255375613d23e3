"""events: categories, events, timeline, assignments, photos, dispatch rules

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dispatch_rule",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("category_code", sa.String(length=16), nullable=True),
        sa.Column("major_code", sa.String(length=8), nullable=True),
        sa.Column("township_code", sa.String(length=12), nullable=True),
        sa.Column("department_code", sa.String(length=32), nullable=False),
        sa.Column("to_township_office", sa.Boolean(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("note", sa.String(length=200), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dispatch_rule")),
    )
    op.create_table(
        "event_category",
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("major_code", sa.String(length=8), nullable=False),
        sa.Column("major_name", sa.String(length=50), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("department_code", sa.String(length=32), nullable=False),
        sa.Column("township_handles", sa.Boolean(), nullable=False),
        sa.Column("urgency", sa.String(length=10), nullable=False),
        sa.Column("time_limits", sa.JSON(), nullable=False),
        sa.Column("keywords", sa.String(length=300), nullable=False),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_event_category")),
    )
    op.create_table(
        "event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tracking_no", sa.String(length=24), nullable=False),
        sa.Column("channel", sa.String(length=12), nullable=False),
        sa.Column("external_id", sa.String(length=64), nullable=True),
        sa.Column("category_code", sa.String(length=16), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("address", sa.String(length=300), nullable=False),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("location_state", sa.String(length=10), nullable=False),
        sa.Column("township_code", sa.String(length=12), nullable=True),
        sa.Column("grid_code", sa.String(length=20), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("urgency", sa.String(length=10), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=True),
        sa.Column("dispatch_reason", sa.String(length=300), nullable=False),
        sa.Column("reporter_name", sa.String(length=50), nullable=False),
        sa.Column("reporter_phone", sa.String(length=20), nullable=False),
        sa.Column("reporter_email", sa.String(length=120), nullable=False),
        sa.Column("reporter_user_id", sa.Integer(), nullable=True),
        sa.Column("duplicate_of_id", sa.Integer(), nullable=True),
        sa.Column("stage", sa.String(length=10), nullable=True),
        sa.Column("stage_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("overdue", sa.Boolean(), nullable=False),
        sa.Column("rework_count", sa.Integer(), nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("extension_request", sa.JSON(), nullable=True),
        sa.Column("suspension", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["category_code"], ["event_category.code"], name=op.f("fk_event_category_code_event_category")
        ),
        sa.ForeignKeyConstraint(["department_id"], ["department.id"], name=op.f("fk_event_department_id_department")),
        sa.ForeignKeyConstraint(["duplicate_of_id"], ["event.id"], name=op.f("fk_event_duplicate_of_id_event")),
        sa.ForeignKeyConstraint(
            ["reporter_user_id"], ["user_account.id"], name=op.f("fk_event_reporter_user_id_user_account")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event")),
        sa.UniqueConstraint("tracking_no", name=op.f("uq_event_tracking_no")),
    )
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_event_category_code"), ["category_code"], unique=False)
        batch_op.create_index("ix_event_created", ["created_at"], unique=False)
        batch_op.create_index("ix_event_channel_external", ["channel", "external_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_event_department_id"), ["department_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_event_status"), ["status"], unique=False)
        batch_op.create_index("ix_event_status_due", ["status", "due_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_event_township_code"), ["township_code"], unique=False)

    op.create_table(
        "event_assignment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=10), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["department_id"], ["department.id"], name=op.f("fk_event_assignment_department_id_department")
        ),
        sa.ForeignKeyConstraint(
            ["event_id"], ["event.id"], name=op.f("fk_event_assignment_event_id_event"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_assignment")),
    )
    with op.batch_alter_table("event_assignment", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_event_assignment_department_id"), ["department_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_event_assignment_event_id"), ["event_id"], unique=False)

    op.create_table(
        "event_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"], ["event.id"], name=op.f("fk_event_log_event_id_event"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_log")),
    )
    with op.batch_alter_table("event_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_event_log_event_id"), ["event_id"], unique=False)

    op.create_table(
        "event_photo",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(length=12), nullable=False),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("content_type", sa.String(length=40), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("path", sa.String(length=300), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"], ["event.id"], name=op.f("fk_event_photo_event_id_event"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_photo")),
    )
    with op.batch_alter_table("event_photo", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_event_photo_event_id"), ["event_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("event_photo", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_event_photo_event_id"))

    op.drop_table("event_photo")
    with op.batch_alter_table("event_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_event_log_event_id"))

    op.drop_table("event_log")
    with op.batch_alter_table("event_assignment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_event_assignment_event_id"))
        batch_op.drop_index(batch_op.f("ix_event_assignment_department_id"))

    op.drop_table("event_assignment")
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_event_township_code"))
        batch_op.drop_index("ix_event_status_due")
        batch_op.drop_index(batch_op.f("ix_event_status"))
        batch_op.drop_index(batch_op.f("ix_event_department_id"))
        batch_op.drop_index("ix_event_created")
        batch_op.drop_index("ix_event_channel_external")
        batch_op.drop_index(batch_op.f("ix_event_category_code"))

    op.drop_table("event")
    op.drop_table("event_category")
    op.drop_table("dispatch_rule")
