"""Base databases seeded by the foundation: population (人口) and legal entities (法人).

The data resource pool (catalog, datasets, sharing, masking, quality) is described below them.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from citybrain.core.db import Base


class Resident(Base):
    __tablename__ = "resident"

    id: Mapped[int] = mapped_column(primary_key=True)
    id_number: Mapped[str] = mapped_column(String(18), unique=True)
    name: Mapped[str] = mapped_column(String(50))
    sex: Mapped[str] = mapped_column(String(1))
    birth_date: Mapped[date]
    mobile: Mapped[str] = mapped_column(String(11))
    township_code: Mapped[str] = mapped_column(String(9), index=True)
    address: Mapped[str] = mapped_column(String(200))
    household_id: Mapped[str] = mapped_column(String(32), index=True)
    synthetic: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]


class Enterprise(Base):
    __tablename__ = "enterprise"

    id: Mapped[int] = mapped_column(primary_key=True)
    credit_code: Mapped[str] = mapped_column(String(18), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    legal_representative: Mapped[str] = mapped_column(String(50))
    industry: Mapped[str] = mapped_column(String(1))
    industry_name: Mapped[str] = mapped_column(String(50))
    registered_on: Mapped[date]
    registered_capital_wan: Mapped[float] = mapped_column(Float)
    township_code: Mapped[str] = mapped_column(String(9), index=True)
    address: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(10))
    synthetic: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]


# --------------------------------------------------------------------------------------------
# Data resource pool (区级大数据中心): catalog, datasets, sharing, quality.
# A catalog entry's rows live in a table of their own (``ds_<entry id>``), created and altered by
# ``loading.py`` from the entry's information items, not by Alembic: their shape is data.
# --------------------------------------------------------------------------------------------


class CatalogEntry(Base):
    """One government information resource (政务信息资源) with the GB/T 21063 core metadata.

    Also the CKAN "package" (``package_id``, ``name``) with one datastore resource
    (``resource_id``) holding its rows.
    """

    __tablename__ = "data_catalog_entry"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)  # 前段码/后段码, e.g. 1010100/370306001-00001
    name: Mapped[str] = mapped_column(String(200))
    package_id: Mapped[str] = mapped_column(String(36), unique=True)  # uuid4, CKAN package id
    slug: Mapped[str] = mapped_column(String(100), unique=True)  # CKAN package name: [a-z0-9_-]
    resource_id: Mapped[str] = mapped_column(String(36), unique=True)  # uuid4, CKAN resource id
    class_kind: Mapped[str] = mapped_column(String(12), index=True)  # CatalogClass: base | thematic | department
    class_code: Mapped[str] = mapped_column(String(32), index=True)  # 类-项-目-细目, e.g. "1-01-001"
    class_name: Mapped[str] = mapped_column(String(100), default="")  # e.g. 人口基础信息
    database: Mapped[str | None] = mapped_column(String(40), index=True)  # base/thematic database key
    provider_department_id: Mapped[int] = mapped_column(ForeignKey("department.id"), index=True)
    provider_code: Mapped[str] = mapped_column(String(32))  # 提供方代码 (credit code or department code)
    abstract: Mapped[str] = mapped_column(Text, default="")
    keywords: Mapped[str] = mapped_column(String(300), default="")
    format: Mapped[str] = mapped_column(String(20), default="数据库")  # 信息资源格式: 数据库 / 电子表格 / ...
    sharing_type: Mapped[str] = mapped_column(String(16), index=True)  # SharingType
    sharing_conditions: Mapped[str] = mapped_column(Text, default="")
    sharing_method: Mapped[str] = mapped_column(String(50), default="接口")  # 共享方式
    open_type: Mapped[str] = mapped_column(String(12), default="closed")  # OpenType
    update_cycle: Mapped[str] = mapped_column(String(12), default="monthly")  # UpdateCycle
    published_on: Mapped[date | None]
    related_codes: Mapped[list[str]] = mapped_column(JSON, default=list)
    key_fields: Mapped[list[str]] = mapped_column(JSON, default=list)  # item codes forming the row key
    search_text: Mapped[str] = mapped_column(Text, default="")  # segmented words, space separated
    row_count: Mapped[int] = mapped_column(Integer, default=0)
    version: Mapped[int] = mapped_column(Integer, default=0)  # number of the last successful load
    loaded_at: Mapped[datetime | None]
    quality_score: Mapped[float | None] = mapped_column(Float)
    synthetic: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    items: Mapped[list[InfoItem]] = relationship(
        back_populates="entry", order_by="InfoItem.position", cascade="all, delete-orphan", lazy="selectin")


class InfoItem(Base):
    """An information item (信息项): one field of a resource, its type, and its authoritative source."""

    __tablename__ = "data_info_item"
    __table_args__ = (UniqueConstraint("entry_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("data_catalog_entry.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    code: Mapped[str] = mapped_column(String(40))  # column name: [a-z][a-z0-9_]*
    name: Mapped[str] = mapped_column(String(100))  # 信息项名称 (the header departments use)
    data_type: Mapped[str] = mapped_column(String(10))  # ItemType
    length: Mapped[int | None] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text, default="")
    required: Mapped[bool] = mapped_column(default=False)
    personal: Mapped[str | None] = mapped_column(String(20))  # masking kind: id_number | mobile | name | address ...
    # 一数一源: the resource and item that are authoritative for this field (None = this one is).
    source_entry_code: Mapped[str | None] = mapped_column(String(64))
    source_item_code: Mapped[str | None] = mapped_column(String(40))

    entry: Mapped[CatalogEntry] = relationship(back_populates="items")


class DataLoad(Base):
    """One attempt to load a file into a resource: a version when it succeeds, a report either way."""

    __tablename__ = "data_load"

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("data_catalog_entry.id", ondelete="CASCADE"), index=True)
    version: Mapped[int | None] = mapped_column(Integer)  # set when loaded
    mode: Mapped[str] = mapped_column(String(10))  # LoadMode: append | replace | upsert
    status: Mapped[str] = mapped_column(String(10))  # loaded | refused
    filename: Mapped[str] = mapped_column(String(200), default="")
    file_format: Mapped[str] = mapped_column(String(10), default="")  # csv | xlsx
    encoding: Mapped[str] = mapped_column(String(20), default="")
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    sha256: Mapped[str] = mapped_column(String(64), default="")
    rows_read: Mapped[int] = mapped_column(Integer, default=0)
    rows_inserted: Mapped[int] = mapped_column(Integer, default=0)
    rows_updated: Mapped[int] = mapped_column(Integer, default=0)
    rows_deleted: Mapped[int] = mapped_column(Integer, default=0)
    report: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # errors per row/column, warnings
    actor: Mapped[str] = mapped_column(String(100), default="")
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    created_at: Mapped[datetime]


class QualityRule(Base):
    """A quality rule declared as data: ``kind`` names the check, ``params`` configure it."""

    __tablename__ = "data_quality_rule"

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("data_catalog_entry.id", ondelete="CASCADE"), index=True)
    item_code: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(20))  # RuleKind
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    severity: Mapped[str] = mapped_column(String(10), default="error")  # error | warning
    description: Mapped[str] = mapped_column(String(300), default="")
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]


class QualityRun(Base):
    __tablename__ = "data_quality_run"

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("data_catalog_entry.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)  # dataset version checked
    rows: Mapped[int] = mapped_column(Integer)
    failed_rows: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)  # 0..100
    results: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)  # per rule: counts, samples
    disagreements: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)  # cross-source
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    actor: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(index=True)


class CorrectionTask(Base):
    """A request to the source department to correct what a quality run found (one open per entry)."""

    __tablename__ = "data_correction_task"

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("data_catalog_entry.id", ondelete="CASCADE"), index=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("department.id"), index=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("data_quality_run.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(10), default="open")  # open | resolved
    summary: Mapped[str] = mapped_column(Text, default="")
    failed_rows: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    resolved_run_id: Mapped[int | None] = mapped_column(Integer)


class ShareRequest(Base):
    """A consumer department's request to read a 有条件共享 resource, and the provider's decision."""

    __tablename__ = "data_share_request"

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("data_catalog_entry.id", ondelete="CASCADE"), index=True)
    consumer_department_id: Mapped[int] = mapped_column(ForeignKey("department.id"), index=True)
    requested_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    purpose: Mapped[str] = mapped_column(Text)
    fields: Mapped[list[str]] = mapped_column(JSON, default=list)  # item codes; empty = all
    unmasked: Mapped[bool] = mapped_column(default=False)  # asks to read personal fields in clear
    days: Mapped[int] = mapped_column(Integer, default=365)  # requested duration
    status: Mapped[str] = mapped_column(String(10), index=True)  # pending | approved | refused | withdrawn
    decided_by: Mapped[str] = mapped_column(String(100), default="")
    decision_reason: Mapped[str] = mapped_column(Text, default="")
    decided_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class Grant(Base):
    """Access a provider granted: per consumer department, per resource, per field set, until ``expires_at``."""

    __tablename__ = "data_grant"

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("data_catalog_entry.id", ondelete="CASCADE"), index=True)
    consumer_department_id: Mapped[int] = mapped_column(ForeignKey("department.id"), index=True)
    request_id: Mapped[int | None] = mapped_column(ForeignKey("data_share_request.id", ondelete="SET NULL"))
    fields: Mapped[list[str]] = mapped_column(JSON, default=list)  # empty = all items
    unmasked: Mapped[bool] = mapped_column(default=False)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    granted_by: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime]


class AccessLog(Base):
    """Every read of resource rows: who, what, how many rows, masked or not."""

    __tablename__ = "data_access_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("data_catalog_entry.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    actor: Mapped[str] = mapped_column(String(100))
    department_id: Mapped[int | None] = mapped_column(Integer)
    grant_id: Mapped[int | None] = mapped_column(Integer)
    via: Mapped[str] = mapped_column(String(20))  # api | ckan | page | export
    fields: Mapped[list[str]] = mapped_column(JSON, default=list)
    rows: Mapped[int] = mapped_column(Integer)
    unmasked: Mapped[bool] = mapped_column(default=False)
    query: Mapped[str] = mapped_column(Text, default="")
