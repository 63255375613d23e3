"""Loading files into a resource: encodings, XLSX, modes, counts, versions (both backends)."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime

import pytest
from openpyxl import Workbook
from sqlalchemy import select

from citybrain.core.actor import Actor, system_actor
from citybrain.core.errors import Forbidden, Invalid
from citybrain.data import loading, storage
from citybrain.data.models import DataLoad
from data_factories import make_entry

ADMIN = system_actor("test")
HEADER = "公民身份号码,姓名,出生日期,手机号码,住址,户内人数"


def csv_bytes(lines: list[str], encoding: str = "utf-8") -> bytes:
    return ("\n".join(lines) + "\n").encode(encoding)


def stored(db, entry) -> list[dict]:
    table = storage.table_for(entry)
    rows = db.execute(select(table).order_by(table.c.id_number)).mappings()
    return [{k: v for k, v in r.items() if k != "_id"} for r in rows]


def xlsx_bytes(rows: list[list], title: str = "Sheet1") -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.title = title
    for row in rows:
        ws.append(row)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def test_a_gb18030_csv_is_detected_and_typed_in_chinese_date_forms(db) -> None:
    entry = make_entry(db)
    data = csv_bytes([HEADER, "370306199001011234,张三,1990-01-01,13800138000,周村区丝绸路1号,3",
                      "370306198502023456,李四,1985/2/2,,周村区正阳街2号,",
                      "370306200003033458,王五,20000303,13900139000,,1",
                      "370306197012123452,赵六,1970年12月12日,,,2"], "gb18030")
    load = loading.load_file(db, entry_id=entry.id, data=data, filename="人口.csv", mode="append", actor=ADMIN)
    assert (load.status, load.encoding, load.file_format, load.version) == ("loaded", "gb18030", "csv", 1)
    assert (load.rows_read, load.rows_inserted, load.report["errors_total"]) == (4, 4, 0)
    assert len(load.sha256) == 64 and load.size_bytes == len(data)
    rows = stored(db, entry)
    assert [r["birth_date"] for r in rows] == [date(1970, 12, 12), date(1985, 2, 2), date(1990, 1, 1), date(2000, 3, 3)]
    assert rows[2]["name"] == "张三" and rows[2]["household_size"] == 3 and rows[1]["mobile"] is None
    assert {r["_load"] for r in rows} == {1}
    assert (entry.version, entry.row_count) == (1, 4) and entry.loaded_at is not None


def test_a_utf8_csv_with_bom_and_item_codes_as_header_loads(db) -> None:
    entry = make_entry(db)
    data = b"\xef\xbb\xbf" + csv_bytes(["id_number,name,birth_date", "370306199001011234,张三,1990-1-1"])
    load = loading.load_file(db, entry_id=entry.id, data=data, filename="p.csv", mode="append", actor=ADMIN)
    assert (load.status, load.encoding) == ("loaded", "utf-8-sig")
    assert load.report["header"][0] == {"column": "id_number", "item": "id_number"}
    assert stored(db, entry)[0]["name"] == "张三"


def test_an_xlsx_with_excel_dates_and_numbers_loads_from_the_sheet_named_like_the_resource(db) -> None:
    entry = make_entry(db)
    wb = Workbook()
    wb.active.append(["something else"])
    ws = wb.create_sheet(entry.name)
    ws.append([])
    ws.append(["公民身份号码", "姓名", "出生日期", "手机号码", "户内人数"])
    ws.append(["370306199001011234", "张三", datetime(1990, 1, 1), 13800138000, 4])
    ws.append(["370306198502023456", "李四", "1985年2月2日", None, 2.0])
    out = io.BytesIO()
    wb.save(out)
    load = loading.load_file(db, entry_id=entry.id, data=out.getvalue(), filename="p.xlsx", mode="append",
                             actor=ADMIN)
    assert load.status == "loaded", load.report
    assert load.file_format == "xlsx"
    rows = stored(db, entry)
    assert [r["birth_date"] for r in rows] == [date(1985, 2, 2), date(1990, 1, 1)]
    assert rows[1]["mobile"] == "13800138000" and rows[0]["household_size"] == 2


def test_append_replace_and_upsert_count_and_version_what_they_do(db) -> None:
    entry = make_entry(db)
    first = [{"公民身份号码": f"37030619900101{n:04d}", "姓名": f"人{n}", "户内人数": n} for n in range(3)]
    one = loading.load_rows(db, entry_id=entry.id, rows=first, mode="append", actor=ADMIN)
    assert (one.version, one.rows_inserted, entry.row_count) == (1, 3, 3)
    more = [{"id_number": "370306199001019999", "name": "新人"}]
    two = loading.load_rows(db, entry_id=entry.id, rows=more, mode="append", actor=ADMIN)
    assert (two.version, two.rows_inserted, entry.row_count) == (2, 1, 4)
    upsert = [{"id_number": "370306199001010001", "name": "改名", "household_size": 9},
              {"id_number": "370306199001018888", "name": "又一人"}]
    three = loading.load_rows(db, entry_id=entry.id, rows=upsert, mode="upsert", actor=ADMIN)
    assert (three.version, three.rows_inserted, three.rows_updated, entry.row_count) == (3, 1, 1, 5)
    rows = {r["id_number"]: r for r in stored(db, entry)}
    assert rows["370306199001010001"]["name"] == "改名" and rows["370306199001010001"]["_load"] == 3
    assert rows["370306199001010000"]["_load"] == 1  # untouched rows keep the version that wrote them
    four = loading.load_rows(db, entry_id=entry.id, rows=[{"id_number": "x1", "name": "唯一"}], mode="replace",
                             actor=ADMIN)
    assert (four.version, four.rows_inserted, four.rows_deleted, entry.row_count) == (4, 1, 5, 1)
    assert [r["id_number"] for r in stored(db, entry)] == ["x1"]
    history = db.scalars(select(DataLoad).where(DataLoad.entry_id == entry.id).order_by(DataLoad.id)).all()
    assert [(h.mode, h.status, h.version) for h in history] == [
        ("append", "loaded", 1), ("append", "loaded", 2), ("upsert", "loaded", 3), ("replace", "loaded", 4)]


def test_upsert_keeps_columns_the_file_leaves_out(db) -> None:
    entry = make_entry(db)
    loading.load_rows(db, entry_id=entry.id, rows=[{"id_number": "a1", "name": "甲", "mobile": "13800138000"}],
                      mode="append", actor=ADMIN)
    loading.load_rows(db, entry_id=entry.id, rows=[{"id_number": "a1", "name": "乙"}], mode="upsert", actor=ADMIN)
    assert stored(db, entry)[0]["mobile"] == "13800138000" and stored(db, entry)[0]["name"] == "乙"


def test_composite_keys_upsert_and_datetimes_and_booleans_are_typed(db) -> None:
    items = [{"code": "site", "name": "站点", "data_type": "string", "length": 20, "required": True},
             {"code": "at", "name": "监测时间", "data_type": "datetime", "required": True},
             {"code": "ok", "name": "是否达标", "data_type": "boolean"},
             {"code": "pm25", "name": "PM2.5", "data_type": "decimal"}]
    entry = make_entry(db, code="2120100/ecology-00001", name="空气监测", department="ecology",
                       class_kind="thematic", class_code="2-12-001", items=items, key_fields=["site", "at"],
                       sharing="conditional")
    rows = [{"站点": "S1", "监测时间": "2026-11-01 08:00", "是否达标": "是", "PM2.5": "35.5"},
            {"站点": "S1", "监测时间": "2026-11-01T09:00:00+08:00", "是否达标": "否", "PM2.5": "1,234.5"}]
    assert loading.load_rows(db, entry_id=entry.id, rows=rows, mode="append", actor=ADMIN).status == "loaded"
    again = [{"站点": "S1", "监测时间": "2026/11/1 08:00:00", "是否达标": "false", "PM2.5": "40"}]
    load = loading.load_rows(db, entry_id=entry.id, rows=again, mode="upsert", actor=ADMIN)
    assert (load.status, load.rows_updated, load.rows_inserted) == ("loaded", 1, 0)
    table = storage.table_for(entry)
    got = db.execute(select(table.c.at, table.c.ok, table.c.pm25).order_by(table.c.at)).all()
    assert got[0] == (datetime(2026, 11, 1, 0, 0, tzinfo=UTC), False, 40.0)
    assert got[1] == (datetime(2026, 11, 1, 1, 0, tzinfo=UTC), False, 1234.5)


def test_a_withheld_resource_is_still_loaded_by_its_provider(db) -> None:
    entry = make_entry(db, sharing="none")
    staff = Actor(user_id=None, username="police-staff", role="staff", department_id=entry.provider_department_id,
                  permissions=frozenset({"data:read", "data:publish"}))
    load = loading.load_rows(db, entry_id=entry.id, rows=[{"id_number": "a1", "name": "甲"}], mode="append",
                             actor=staff)
    assert load.status == "loaded" and load.actor == "police-staff"


def test_another_department_cannot_load_and_nothing_is_recorded(db) -> None:
    entry = make_entry(db)
    outsider = Actor(user_id=None, username="x", role="staff", department_id=-1,
                     permissions=frozenset({"data:read", "data:publish"}))
    with pytest.raises(Forbidden):
        loading.load_rows(db, entry_id=entry.id, rows=[{"id_number": "a1", "name": "甲"}], mode="append",
                          actor=outsider)
    assert db.scalars(select(DataLoad).where(DataLoad.entry_id == entry.id)).all() == []


def test_upsert_needs_key_fields_and_modes_are_closed(db) -> None:
    entry = make_entry(db, key_fields=[])
    with pytest.raises(Invalid, match="upsert needs key fields"):
        loading.load_rows(db, entry_id=entry.id, rows=[{"id_number": "a1", "name": "甲"}], mode="upsert",
                          actor=ADMIN)
    with pytest.raises(Invalid, match="unknown load mode"):
        loading.load_rows(db, entry_id=entry.id, rows=[{"id_number": "a1", "name": "甲"}], mode="merge",
                          actor=ADMIN)


def test_preview_types_the_first_rows_and_stores_nothing(db) -> None:
    entry = make_entry(db)
    data = csv_bytes([HEADER, "370306199001011234,张三,1990-01-01,,,3", "370306199001011235,李四,bad,,,x"])
    result = loading.preview_file(db, entry_id=entry.id, data=data, filename="p.csv", actor=ADMIN)
    assert result["encoding"] == "utf-8" and not result["acceptable"]
    assert result["rows"][0] == {"id_number": "370306199001011234", "name": "张三", "birth_date": "1990-01-01",
                                 "mobile": None, "address": None, "household_size": 3}
    assert result["report"]["error_counts"] == {"not a date": 1, "not an integer": 1}
    assert stored(db, entry) == [] and entry.version == 0
    assert db.scalars(select(DataLoad).where(DataLoad.entry_id == entry.id)).all() == []


@pytest.mark.parametrize(("kind", "raw", "expected"), [
    ("date", "2024年1月5日", date(2024, 1, 5)),
    ("date", "2024.1.5", date(2024, 1, 5)),
    ("date", datetime(2024, 1, 5), date(2024, 1, 5)),
    ("datetime", "2024年1月5日 8时30分", datetime(2024, 1, 5, 0, 30, tzinfo=UTC)),
    ("datetime", "2024-01-05 08:30:15", datetime(2024, 1, 5, 0, 30, 15, tzinfo=UTC)),
    ("datetime", "2024-01-05T08:30:15Z", datetime(2024, 1, 5, 8, 30, 15, tzinfo=UTC)),
    ("boolean", "否", False),
    ("boolean", 1.0, True),
    ("integer", "1,234", 1234),
    ("decimal", "-1.5e2", -150.0),
])
def test_cells_are_typed_in_the_forms_departments_write(kind, raw, expected) -> None:
    from citybrain.data import values
    from citybrain.data.models import InfoItem

    assert values.converter(InfoItem(code="x", name="x", data_type=kind))(raw).__eq__(expected) is True


@pytest.mark.parametrize(("kind", "raw"), [("date", "2024-02-30"), ("date", "05/01/2024"), ("integer", "1.5"),
                                           ("integer", True), ("decimal", "nan"), ("decimal", "1_000"),
                                           ("boolean", "maybe"), ("datetime", "2024-01-05 25:00")])
def test_cells_that_are_not_their_type_are_refused(kind, raw) -> None:
    from citybrain.data import values
    from citybrain.data.models import InfoItem

    with pytest.raises(values.BadValue):
        values.converter(InfoItem(code="x", name="x", data_type=kind))(raw)
