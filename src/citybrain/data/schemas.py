"""Request and response models of the data pool: catalog entries and their information items."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from .enums import CatalogClass, ItemType, OpenType, SharingType, UpdateCycle

# A column name in the resource's own table: lower-case ASCII, never one of ours (leading "_").
ITEM_CODE_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
# 类-项-目-细目: class 1 digit, item 2, catalogue 3, then an optional sub-catalogue of 1-6 digits.
CLASS_CODE_RE = re.compile(r"^[1-9]-\d{2}-\d{3}(-\d{1,6})?$")
# GB/T 21063 resource code: 前段码 (classification) "/" 后段码 (provider code + sequence).
ENTRY_CODE_RE = re.compile(r"^[0-9A-Za-z-]{1,30}/[0-9A-Za-z-]{1,33}$")
RESERVED_CODES = frozenset({"id", "oid", "ctid", "xmin", "xmax", "rowid", "select", "from", "where", "table", "order",
                            "group", "user", "limit", "offset"})

Text200 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class InfoItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    code: str = Field(min_length=1, max_length=40)
    name: str = Field(min_length=1, max_length=100)
    data_type: ItemType = ItemType.STRING
    length: int | None = Field(default=None, ge=1, le=10_000)
    description: str = Field(default="", max_length=2000)
    required: bool = False
    personal: str | None = Field(default=None, max_length=20)
    source_entry_code: str | None = Field(default=None, max_length=64)
    source_item_code: str | None = Field(default=None, max_length=40)

    @field_validator("code")
    @classmethod
    def _code(cls, v: str) -> str:
        if not ITEM_CODE_RE.match(v) or v in RESERVED_CODES:
            raise ValueError(f"item code {v!r} must be lower-case ASCII letters, digits and _ starting with a "
                             "letter (at most 40), and not a reserved word")
        return v

    @model_validator(mode="after")
    def _source_pair(self) -> InfoItemIn:
        if bool(self.source_entry_code) != bool(self.source_item_code):
            raise ValueError(f"item {self.code}: the authoritative source needs both its resource code "
                             "and its item code")
        return self


class EntryIn(BaseModel):
    """A catalog entry as a department describes it (GB/T 21063 core metadata)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    code: str = Field(min_length=3, max_length=64)
    name: Text200
    class_kind: CatalogClass
    class_code: str
    class_name: str = Field(default="", max_length=100)
    database: str | None = Field(default=None, max_length=40)
    provider_department_code: str = Field(min_length=1, max_length=32)
    provider_code: str | None = Field(default=None, max_length=32)
    abstract: str = Field(default="", max_length=4000)
    keywords: str = Field(default="", max_length=300)
    format: str = Field(default="数据库", max_length=20)
    sharing_type: SharingType
    sharing_conditions: str = Field(default="", max_length=2000)
    sharing_method: str = Field(default="接口", max_length=50)
    open_type: OpenType = OpenType.CLOSED
    update_cycle: UpdateCycle = UpdateCycle.MONTHLY
    published_on: date | None = None
    related_codes: list[str] = Field(default_factory=list, max_length=50)
    key_fields: list[str] = Field(default_factory=list, max_length=5)
    items: list[InfoItemIn] = Field(min_length=1, max_length=300)

    @field_validator("code")
    @classmethod
    def _entry_code(cls, v: str) -> str:
        if not ENTRY_CODE_RE.match(v):
            raise ValueError(f"resource code {v!r} must be 前段码/后段码 "
                             "(letters, digits and '-' on both sides of one '/')")
        return v

    @field_validator("class_code")
    @classmethod
    def _class_code(cls, v: str) -> str:
        if not CLASS_CODE_RE.match(v):
            raise ValueError(f"classification code {v!r} must be 类-项-目[-细目], e.g. 1-01-001")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> EntryIn:
        codes = [i.code for i in self.items]
        dupes = sorted({c for c in codes if codes.count(c) > 1})
        if dupes:
            raise ValueError(f"duplicate information item code(s): {', '.join(dupes)}")
        names = [i.name for i in self.items]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate information item name(s): {', '.join(dupes)}")
        unknown = [k for k in self.key_fields if k not in codes]
        if unknown:
            raise ValueError(f"key field(s) {', '.join(unknown)} are not information items")
        if self.sharing_type == SharingType.CONDITIONAL and not self.sharing_conditions:
            raise ValueError("a 有条件共享 (conditional) resource must state its sharing conditions")
        if self.sharing_type == SharingType.NONE and not self.sharing_conditions:
            raise ValueError("a 不予共享 resource must state the legal basis for not sharing (sharing_conditions)")
        kind_digit = {CatalogClass.BASE: "1", CatalogClass.THEMATIC: "2", CatalogClass.DEPARTMENT: "3"}[self.class_kind]
        if not self.class_code.startswith(kind_digit):
            raise ValueError(f"a {self.class_kind.value} resource's classification code starts with {kind_digit} "
                             f"(基础 1, 主题 2, 部门 3), not {self.class_code[0]}")
        return self
