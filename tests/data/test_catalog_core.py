"""Creating and changing catalog entries, and the data table each one gets."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from sqlalchemy import inspect, select

from citybrain.core.actor import Actor
from citybrain.core.errors import Conflict, Forbidden, Invalid
from citybrain.data import catalog, storage
from citybrain.data.models import CatalogEntry
from citybrain.data.schemas import EntryIn
from data_factories import PEOPLE_ITEMS, make_entry


def test_an_entry_gets_ckan_ids_search_words_and_a_typed_table(db) -> None:
    entry = make_entry(db)
    assert entry.slug == "1010100-police-00001"
    assert len(entry.package_id) == 36 and entry.package_id != entry.resource_id
    assert " 人口 " in entry.search_text and " 户籍 " in entry.search_text
    cols = {c["name"]: c for c in inspect(db.connection()).get_columns(storage.table_name(entry.id))}
    assert list(cols)[:2] == ["_id", "_load"]
    assert {"id_number", "name", "birth_date", "household_size"} <= set(cols)


def test_a_duplicate_code_is_refused_and_nothing_is_added(db) -> None:
    make_entry(db)
    before = db.scalar(select(CatalogEntry.id).order_by(CatalogEntry.id.desc()))
    with pytest.raises(Conflict):
        make_entry(db)
    assert db.scalar(select(CatalogEntry.id).order_by(CatalogEntry.id.desc())) == before


@pytest.mark.parametrize(("change", "message"), [
    ({"class_code": "1-1-001"}, "类-项-目"),
    ({"class_kind": "thematic"}, "starts with 2"),
    ({"sharing_type": "conditional", "sharing_conditions": ""}, "sharing conditions"),
    ({"items": PEOPLE_ITEMS + [{"code": "Name", "name": "x"}]}, "lower-case"),
    ({"items": PEOPLE_ITEMS + [{"code": "_id", "name": "x"}]}, "lower-case"),
    ({"items": PEOPLE_ITEMS + [{"code": "name", "name": "别名"}]}, "duplicate information item code"),
    ({"key_fields": ["nope"]}, "not information items"),
    ({"code": "no-slash"}, "前段码/后段码"),
])
def test_bad_metadata_is_refused_with_a_reason(change, message) -> None:
    data = {"code": "1010100/police-00009", "name": "x", "class_kind": "base", "class_code": "1-01-001",
            "provider_department_code": "police", "sharing_type": "conditional", "sharing_conditions": "c",
            "items": PEOPLE_ITEMS} | change
    with pytest.raises(ValidationError, match=message):
        EntryIn.model_validate(data)


def test_staff_describe_only_their_own_department_resources(db) -> None:
    outsider = Actor(user_id=None, username="x", role="staff", department_id=-1,
                     permissions=frozenset({"data:read", "data:publish"}))
    with pytest.raises(Forbidden):
        make_entry(db, actor=outsider)


def test_new_items_become_columns_and_items_holding_data_keep_their_type(db) -> None:
    entry = make_entry(db)
    data = EntryIn.model_validate({
        "code": entry.code, "name": entry.name, "class_kind": "base", "class_code": "1-01-001",
        "provider_department_code": "police", "sharing_type": "conditional", "sharing_conditions": "c",
        "key_fields": ["id_number"],
        "items": PEOPLE_ITEMS + [{"code": "ethnicity", "name": "民族"}]})
    catalog.update_entry(db, entry_id=entry.id, data=data, actor=_admin())
    cols = {c["name"] for c in inspect(db.connection()).get_columns(storage.table_name(entry.id))}
    assert "ethnicity" in cols
    entry.row_count = 1  # as if loaded
    raw = data.model_dump()
    raw["items"][-1]["data_type"] = "integer"
    retyped = EntryIn.model_validate(raw)
    with pytest.raises(Invalid, match="cannot change type"):
        catalog.update_entry(db, entry_id=entry.id, data=retyped, actor=_admin())


def _admin():
    from citybrain.core.actor import system_actor

    return system_actor("test")
