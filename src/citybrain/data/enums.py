"""The data pool's closed vocabularies (GB/T 21063 terms carry their Chinese name)."""

from __future__ import annotations

from enum import StrEnum


class CatalogClass(StrEnum):
    BASE = "base"  # 基础信息资源
    THEMATIC = "thematic"  # 主题信息资源
    DEPARTMENT = "department"  # 部门信息资源


class SharingType(StrEnum):
    UNCONDITIONAL = "unconditional"  # 无条件共享
    CONDITIONAL = "conditional"  # 有条件共享
    NONE = "none"  # 不予共享


class OpenType(StrEnum):
    OPEN = "open"  # 无条件开放
    CONDITIONAL = "conditional"  # 有条件开放
    CLOSED = "closed"  # 不予开放


class UpdateCycle(StrEnum):
    REALTIME = "realtime"  # 实时
    DAILY = "daily"  # 每日
    WEEKLY = "weekly"  # 每周
    MONTHLY = "monthly"  # 每月
    QUARTERLY = "quarterly"  # 每季度
    YEARLY = "yearly"  # 每年
    IRREGULAR = "irregular"  # 不定期


class ItemType(StrEnum):
    STRING = "string"  # 字符型
    INTEGER = "integer"  # 整数型
    DECIMAL = "decimal"  # 数值型
    DATE = "date"  # 日期型
    DATETIME = "datetime"  # 日期时间型
    BOOLEAN = "boolean"  # 布尔型


class LoadMode(StrEnum):
    APPEND = "append"
    REPLACE = "replace"
    UPSERT = "upsert"


class LoadStatus(StrEnum):
    LOADED = "loaded"
    REFUSED = "refused"


class RuleKind(StrEnum):
    NOT_NULL = "not_null"
    UNIQUE = "unique"
    IN_SET = "in_set"
    RANGE = "range"
    REGEX = "regex"
    DATE = "date"
    REFERENCE = "reference"  # value must exist as the key of another resource
    ID_NUMBER = "id_number"  # GB 11643
    CREDIT_CODE = "credit_code"  # GB 32100
    ORG_CODE = "org_code"  # GB 11714
    MOBILE = "mobile"
    CROSS_SOURCE = "cross_source"  # 多元校核: agree with the authoritative source


class RequestStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REFUSED = "refused"
    WITHDRAWN = "withdrawn"


class TaskStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"
