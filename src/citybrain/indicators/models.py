"""Indicator definitions (loaded from ``data/indicators.csv``) and department reports."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Float, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from citybrain.core.db import Base


class Indicator(Base):
    """One row of the plan's indicator table: configuration data, not code."""

    __tablename__ = "indicator"

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    position: Mapped[int]  # order in the plan's table
    domain: Mapped[str] = mapped_column(String(50))
    domain_en: Mapped[str] = mapped_column(String(80), default="")
    name: Mapped[str] = mapped_column(String(120))
    name_en: Mapped[str] = mapped_column(String(200), default="")
    unit: Mapped[str] = mapped_column(String(20), default="")
    baseline_2020: Mapped[float | None] = mapped_column(Float)  # None: not stated ("per plan")
    target_2025: Mapped[float | None] = mapped_column(Float)
    target_op: Mapped[str] = mapped_column(String(2))  # >= | > | = | <=
    basis: Mapped[str] = mapped_column(Text, default="")  # 依据
    department_code: Mapped[str] = mapped_column(String(32))  # responsible department
    source: Mapped[str] = mapped_column(String(10))  # computed | reported
    min_value: Mapped[float] = mapped_column(Float)  # valid range of a reported value
    max_value: Mapped[float] = mapped_column(Float)
    active: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[datetime]


class IndicatorReport(Base):
    """A value reported by the responsible department, with its evidence file. Never edited:
    a correction is a new report; the latest is the one with the latest as-of date."""

    __tablename__ = "indicator_report"
    __table_args__ = (Index("ix_indicator_report_code_as_of", "indicator_code", "as_of"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    indicator_code: Mapped[str] = mapped_column(ForeignKey("indicator.code"))
    value: Mapped[float] = mapped_column(Float)
    as_of: Mapped[date]
    note: Mapped[str] = mapped_column(Text, default="")
    department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"))
    reported_by: Mapped[str] = mapped_column(String(100))  # actor label
    reported_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    evidence_filename: Mapped[str] = mapped_column(String(200))
    evidence_content_type: Mapped[str] = mapped_column(String(100))
    evidence_size: Mapped[int]
    evidence_sha256: Mapped[str] = mapped_column(String(64))
    evidence_path: Mapped[str] = mapped_column(String(300))  # relative to the data directory
    synthetic: Mapped[bool] = mapped_column(default=False)  # demo data, not a real figure
    created_at: Mapped[datetime]
