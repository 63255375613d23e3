"""Catalog entries for the data-pool tests (built through the catalog service, like a department would)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from citybrain.core.actor import Actor, system_actor
from citybrain.data import catalog
from citybrain.data.models import CatalogEntry
from citybrain.data.schemas import EntryIn

PEOPLE_ITEMS: list[dict[str, Any]] = [
    {"code": "id_number", "name": "公民身份号码", "data_type": "string", "length": 18, "required": True,
     "personal": "id_number"},
    {"code": "name", "name": "姓名", "data_type": "string", "length": 50, "required": True, "personal": "name"},
    {"code": "birth_date", "name": "出生日期", "data_type": "date"},
    {"code": "mobile", "name": "手机号码", "data_type": "string", "length": 11, "personal": "mobile"},
    {"code": "address", "name": "住址", "data_type": "string", "length": 200, "personal": "address"},
    {"code": "household_size", "name": "户内人数", "data_type": "integer"},
]


def make_entry(db: Session, *, code: str = "1010100/police-00001", name: str = "户籍人口信息",
               department: str = "police", sharing: str = "conditional", items: list[dict[str, Any]] | None = None,
               key_fields: list[str] | None = None, actor: Actor | None = None, **extra: Any) -> CatalogEntry:
    data = {
        "code": code,
        "name": name,
        "class_kind": extra.pop("class_kind", "base"),
        "class_code": extra.pop("class_code", "1-01-001"),
        "provider_department_code": department,
        "abstract": extra.pop("abstract", "周村区户籍人口的基本信息"),
        "sharing_type": sharing,
        "sharing_conditions": extra.pop("sharing_conditions", "" if sharing == "unconditional" else "仅用于政务服务"),
        "items": items if items is not None else PEOPLE_ITEMS,
        "key_fields": key_fields if key_fields is not None else ["id_number"],
        **extra,
    }
    return catalog.create_entry(db, data=EntryIn.model_validate(data), actor=actor or system_actor("test"))
