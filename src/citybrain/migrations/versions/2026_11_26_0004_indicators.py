"""indicators: the plan's indicator table and department reports with evidence

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "indicator",
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("domain", sa.String(length=50), nullable=False),
        sa.Column("domain_en", sa.String(length=80), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("name_en", sa.String(length=200), nullable=False),
        sa.Column("unit", sa.String(length=20), nullable=False),
        sa.Column("baseline_2020", sa.Float(), nullable=True),
        sa.Column("target_2025", sa.Float(), nullable=True),
        sa.Column("target_op", sa.String(length=2), nullable=False),
        sa.Column("basis", sa.Text(), nullable=False),
        sa.Column("department_code", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=10), nullable=False),
        sa.Column("min_value", sa.Float(), nullable=False),
        sa.Column("max_value", sa.Float(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_indicator")),
    )
    op.create_table(
        "indicator_report",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("indicator_code", sa.String(length=40), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=True),
        sa.Column("reported_by", sa.String(length=100), nullable=False),
        sa.Column("reported_by_user_id", sa.Integer(), nullable=True),
        sa.Column("evidence_filename", sa.String(length=200), nullable=False),
        sa.Column("evidence_content_type", sa.String(length=100), nullable=False),
        sa.Column("evidence_size", sa.Integer(), nullable=False),
        sa.Column("evidence_sha256", sa.String(length=64), nullable=False),
        sa.Column("evidence_path", sa.String(length=300), nullable=False),
        sa.Column("synthetic", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["indicator_code"], ["indicator.code"],
                                name=op.f("fk_indicator_report_indicator_code_indicator")),
        sa.ForeignKeyConstraint(["department_id"], ["department.id"],
                                name=op.f("fk_indicator_report_department_id_department")),
        sa.ForeignKeyConstraint(["reported_by_user_id"], ["user_account.id"],
                                name=op.f("fk_indicator_report_reported_by_user_id_user_account")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_indicator_report")),
    )
    with op.batch_alter_table("indicator_report", schema=None) as batch_op:
        batch_op.create_index("ix_indicator_report_code_as_of", ["indicator_code", "as_of"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("indicator_report", schema=None) as batch_op:
        batch_op.drop_index("ix_indicator_report_code_as_of")
    op.drop_table("indicator_report")
    op.drop_table("indicator")
