"""The columns of the 信息资源目录 sheet: header, field, how a cell is read, how a value is written.

The sheet's vocabularies are the Chinese terms of GB/T 21063 and the 2017 编制指南 (无条件共享,
每月, 字符型 ...); our enum values are also accepted so a sheet edited by a script still reads.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from . import databases
from .enums import CatalogClass, ItemType, OpenType, SharingType, UpdateCycle
from .schemas import EntryIn, InfoItemIn

SHARING = {"无条件共享": SharingType.UNCONDITIONAL, "有条件共享": SharingType.CONDITIONAL, "不予共享": SharingType.NONE}
OPEN = {"无条件开放": OpenType.OPEN, "有条件开放": OpenType.CONDITIONAL, "不予开放": OpenType.CLOSED}
OPEN_ALIASES = {"开放": OpenType.OPEN, "不开放": OpenType.CLOSED}
CYCLE = {"实时": UpdateCycle.REALTIME, "每日": UpdateCycle.DAILY, "每周": UpdateCycle.WEEKLY,
         "每月": UpdateCycle.MONTHLY, "每季度": UpdateCycle.QUARTERLY, "每年": UpdateCycle.YEARLY,
         "不定期": UpdateCycle.IRREGULAR}
CYCLE_ALIASES = {"每天": UpdateCycle.DAILY, "每季": UpdateCycle.QUARTERLY}
ITEM_TYPE = {"字符型": ItemType.STRING, "整数型": ItemType.INTEGER, "数值型": ItemType.DECIMAL,
             "日期型": ItemType.DATE, "日期时间型": ItemType.DATETIME, "布尔型": ItemType.BOOLEAN}
ITEM_TYPE_ALIASES = {"字符串": ItemType.STRING, "整型": ItemType.INTEGER, "数字型": ItemType.DECIMAL}
PERSONAL = {"身份证号码": "id_number", "手机号码": "mobile", "姓名": "name", "地址": "address"}
PERSONAL_ALIASES = {"公民身份号码": "id_number", "身份证号": "id_number", "手机号": "mobile", "住址": "address"}
YES, NO = "是", "否"
KIND_BY_DIGIT = {"1": CatalogClass.BASE, "2": CatalogClass.THEMATIC, "3": CatalogClass.DEPARTMENT}
_PERSONAL_CODE = re.compile(r"^[a-z][a-z_]{0,19}$")
_LIST_SPLIT = re.compile(r"[;；,，、\s]+")


def text(value: Any) -> str:
    if isinstance(value, bool):
        return YES if value else NO
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value).strip()


def same(a: Any, b: Any) -> bool:
    return text(a) == text(b)


def _vocabulary(terms: dict[str, Any], aliases: dict[str, Any], what: str) -> Callable[[Any], Any]:
    values = {str(v): v for v in terms.values()}

    def parse(raw: Any) -> Any:
        t = text(raw)
        found = terms.get(t) or aliases.get(t) or values.get(t.lower())
        if found is None:
            raise ValueError(f"{t!r} is not a {what}; use one of {'、'.join(terms)}")
        return found

    return parse


def _length(raw: Any) -> int:
    t = text(raw)
    if not t.isdigit():
        raise ValueError(f"{t!r} is not a whole number of characters")
    return int(t)


def _flag(raw: Any) -> bool:
    t = text(raw).lower()
    if t in (YES, "y", "yes", "true", "1"):
        return True
    if t in (NO, "n", "no", "false", "0"):
        return False
    raise ValueError(f"{t!r} is not 是 or 否")


def _date(raw: Any) -> date:
    if isinstance(raw, datetime):
        return raw.date()
    if isinstance(raw, date):
        return raw
    t = text(raw).replace("/", "-").replace(".", "-")
    try:
        return date.fromisoformat(t)
    except ValueError:
        raise ValueError(f"{text(raw)!r} is not a date (YYYY-MM-DD)") from None


def _database(raw: Any) -> str:
    t = text(raw)
    for d in databases.DATABASES:
        if t in (d.key, d.name):
            return d.key
    raise ValueError(f"{t!r} is not a database; use one of {'、'.join(d.name for d in databases.DATABASES)}")


def _personal(raw: Any) -> str:
    t = text(raw)
    found = PERSONAL.get(t) or PERSONAL_ALIASES.get(t) or (t if _PERSONAL_CODE.match(t) else None)
    if found is None:
        raise ValueError(f"{t!r} is not a personal information kind; use one of {'、'.join(PERSONAL)}")
    return found


def _codes(raw: Any) -> list[str]:
    return [c for c in _LIST_SPLIT.split(text(raw)) if c]


@dataclass(frozen=True)
class Column:
    header: str
    field: str  # EntryIn / InfoItemIn field; "provider_department" and "key" are the sheet's own
    item: bool  # True: one value per information item (row); False: per resource
    required: bool = False
    parse: Callable[[Any], Any] = text
    note: str = ""
    width: int = 14


CLASS = Column("信息资源分类", "class_code", False, True,
               note="类-项-目[-细目], e.g. 1-01-001 (1 基础, 2 主题, 3 部门)")
NAME = Column("信息资源名称", "name", False, True, width=24)
CODE = Column("信息资源代码", "code", False, True, note="前段码/后段码, on every row", width=26)
PROVIDER = Column("信息资源提供方", "provider_department", False, True, note="department name (or code)", width=20)
ITEM_CODE = Column("信息项代码", "code", True, True, note="column name: a-z, 0-9, _")
ITEM_NAME = Column("信息项名称", "name", True, True, width=18)
COLUMNS: tuple[Column, ...] = (
    CLASS, NAME, CODE, PROVIDER,
    Column("提供方代码", "provider_code", False, note="defaults to the department code"),
    Column("信息资源摘要", "abstract", False, width=40),
    Column("信息资源格式", "format", False, note="数据库 / 电子表格 / ..., default 数据库"),
    ITEM_NAME,
    Column("数据类型", "data_type", True, True, _vocabulary(ITEM_TYPE, ITEM_TYPE_ALIASES, "data type"),
           note="、".join(ITEM_TYPE)),
    Column("数据长度", "length", True, parse=_length, width=10),
    Column("共享类型", "sharing_type", False, True, _vocabulary(SHARING, {}, "sharing type"), note="、".join(SHARING)),
    Column("共享条件", "sharing_conditions", False, note="required for 有条件共享 and 不予共享", width=24),
    Column("共享方式", "sharing_method", False, note="default 接口"),
    Column("开放类型", "open_type", False, parse=_vocabulary(OPEN, OPEN_ALIASES, "open type"), note="、".join(OPEN)),
    Column("更新周期", "update_cycle", False, parse=_vocabulary(CYCLE, CYCLE_ALIASES, "update cycle"),
           note="、".join(CYCLE)),
    Column("发布日期", "published_on", False, parse=_date, note="YYYY-MM-DD"),
    Column("关联资源代码", "related_codes", False, parse=_codes, note="codes separated by ; or 、", width=24),
    ITEM_CODE,
    Column("是否主键", "key", True, parse=_flag, note="是 / 否: the item is part of the row key"),
    Column("个人信息类别", "personal", True, parse=_personal, note="、".join(PERSONAL) + " (masked when shared)"),
    Column("权威来源资源代码", "source_entry_code", True, note="一数一源: the authoritative resource", width=26),
    Column("权威来源信息项", "source_item_code", True, note="that resource's item code"),
    Column("分类名称", "class_name", False, note="e.g. 人口基础信息"),
    Column("所属数据库", "database", False, parse=_database, note="、".join(d.name for d in databases.DATABASES)),
    Column("关键词", "keywords", False),
    Column("信息项描述", "description", True, width=24),
    Column("是否必填", "required", True, parse=_flag, note="是 / 否"),
)
BY_HEADER = {c.header: c for c in COLUMNS}
RESOURCE_COLUMNS = tuple(c for c in COLUMNS if not c.item)
ITEM_COLUMNS = tuple(c for c in COLUMNS if c.item)
RESOURCE_FIELD_HEADER = {c.field: c.header for c in RESOURCE_COLUMNS} | {
    "provider_department_code": PROVIDER.header, "class_kind": CLASS.header, "key_fields": "是否主键"}
ITEM_FIELD_HEADER = {c.field: c.header for c in ITEM_COLUMNS}


def _term(terms: dict[str, Any], value: Any) -> str:
    return next(k for k, v in terms.items() if v == value)


def sheet_row(data: EntryIn, item: InfoItemIn, department_name: str, *, first: bool) -> list[Any]:
    """One row of the sheet: the item's cells, and the resource's cells when ``first``."""
    db_names = {d.key: d.name for d in databases.DATABASES}
    values: dict[str, Any] = {
        "信息项代码": item.code, "信息项名称": item.name, "数据类型": _term(ITEM_TYPE, item.data_type),
        "数据长度": item.length, "是否主键": YES if item.code in data.key_fields else None,
        "个人信息类别": _term(PERSONAL, item.personal) if item.personal in PERSONAL.values() else item.personal,
        "权威来源资源代码": item.source_entry_code, "权威来源信息项": item.source_item_code,
        "信息项描述": item.description or None, "是否必填": YES if item.required else None,
        "信息资源代码": data.code,
    }
    if first:
        values |= {
            "信息资源分类": data.class_code, "信息资源名称": data.name, "信息资源提供方": department_name,
            "提供方代码": data.provider_code, "信息资源摘要": data.abstract or None, "信息资源格式": data.format,
            "共享类型": _term(SHARING, data.sharing_type), "共享条件": data.sharing_conditions or None,
            "共享方式": data.sharing_method, "开放类型": _term(OPEN, data.open_type),
            "更新周期": _term(CYCLE, data.update_cycle), "发布日期": data.published_on,
            "关联资源代码": "; ".join(data.related_codes) or None, "分类名称": data.class_name or None,
            "所属数据库": db_names.get(data.database or ""), "关键词": data.keywords or None,
        }
    return [values.get(c.header) for c in COLUMNS]
