"""Catalog entries as XLSX: the round trip, and every refused input named by row, column and reason.

A refused resource changes nothing; the good resources of the same file are kept."""

from __future__ import annotations

import io
import zipfile
from datetime import date
from typing import Any

import pytest
from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select

from citybrain.core.actor import Actor
from citybrain.core.errors import Forbidden, Invalid
from citybrain.data import catalog, catalog_xlsx
from citybrain.data import catalog_xlsx_columns as cols
from citybrain.data.models import CatalogEntry
from citybrain.data.schemas import EntryIn
from data_factories import make_entry

HEADERS = [c.header for c in cols.COLUMNS]
POLICE_A = "1010100/police-07001"
POLICE_B = "1010100/police-07002"


def sheet(rows: list[dict[str, Any]], headers: list[str] | None = None, title: str = catalog_xlsx.SHEET) -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.title = title
    headers = headers or HEADERS
    ws.append(headers)
    for row in rows:
        ws.append([row.get(h) for h in headers])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def resource(code: str = POLICE_A, name: str = "流动人口登记", provider: str = "police", **extra: Any) -> list[dict]:
    first = {"信息资源分类": "1-01-002", "信息资源名称": name, "信息资源代码": code, "信息资源提供方": provider,
             "共享类型": "有条件共享", "共享条件": "仅用于人口服务管理", "更新周期": "每月", "发布日期": "2026-10-01",
             "信息项代码": "id_number", "信息项名称": "公民身份号码", "数据类型": "字符型", "数据长度": 18,
             "是否主键": "是", "个人信息类别": "身份证号码"}
    second = {"信息资源代码": code, "信息项代码": "name", "信息项名称": "姓名", "数据类型": "字符型",
              "个人信息类别": "姓名"}
    third = {"信息资源代码": code, "信息项代码": "arrived_on", "信息项名称": "来周日期", "数据类型": "日期型"}
    first |= extra
    return [first, second, third]


def count(db) -> int:
    db.expire_all()
    return db.scalar(select(func.count()).select_from(CatalogEntry))


def police_staff(db) -> Actor:
    from citybrain.org import service as org_service

    dept = org_service.get_department_by_code(db, code="police")
    return Actor(user_id=None, username="police-staff", role="staff", department_id=dept.id,
                 permissions=frozenset({"data:read", "data:publish"}))


def errors_of(report) -> list[tuple[int, str]]:
    return [(e.row, e.column) for e in report.errors]


def test_export_then_import_gives_the_same_entries(db, admin_actor) -> None:
    savepoint = db.begin_nested()
    a = make_entry(db, code=POLICE_A, name="户籍人口信息", database="population", published_on=date(2026, 3, 1),
                   related_codes=["101001/police-00001", "102001/market-00001"], keywords="户籍 人口",
                   abstract="=SUM(A1:A9) 不是公式", update_cycle="daily", open_type="conditional",
                   class_name="人口基础信息")
    b = make_entry(db, code=POLICE_B, name="暂住登记", sharing="none", sharing_conditions="《居住证暂行条例》",
                   items=[{"code": "permit_no", "name": "居住证编号", "length": 20, "required": True,
                           "description": "发证机关编号", "source_entry_code": POLICE_A,
                           "source_item_code": "id_number"}], key_fields=["permit_no"])
    before = [catalog.entry_input(db, entry=e) for e in (a, b)]
    data = catalog_xlsx.export_entries(db, entries=[a, b])
    savepoint.rollback()
    assert db.scalar(select(CatalogEntry).where(CatalogEntry.code == POLICE_A)) is None

    report = catalog_xlsx.import_entries(db, data=data, actor=admin_actor)
    assert report.created == [POLICE_A, POLICE_B] and report.errors == []
    after = [catalog.entry_input(db, entry=catalog.get_by_code(db, code=c)) for c in (POLICE_A, POLICE_B)]
    assert after == before

    again = catalog_xlsx.import_entries(db, data=data, actor=admin_actor)
    assert again.unchanged == [POLICE_A, POLICE_B] and again.counts["created"] == 0


def test_the_export_writes_values_never_formulas(db) -> None:
    entry = make_entry(db, code=POLICE_A, abstract="=HYPERLINK(\"http://x\")")
    ws = load_workbook(io.BytesIO(catalog_xlsx.export_entries(db, entries=[entry])))[catalog_xlsx.SHEET]
    abstract = ws.cell(row=2, column=HEADERS.index("信息资源摘要") + 1)
    assert abstract.data_type == "s" and abstract.value.startswith("=HYPERLINK")
    assert ws.cell(row=2, column=HEADERS.index("共享类型") + 1).value == "有条件共享"
    assert ws.cell(row=3, column=HEADERS.index("共享类型") + 1).value is None  # resource cells on its first row


def test_a_changed_resource_is_updated_and_others_stay_unchanged(db, admin_actor) -> None:
    report = catalog_xlsx.import_entries(db, data=sheet(resource() + resource(POLICE_B, "暂住人口")),
                                         actor=admin_actor)
    assert report.created == [POLICE_A, POLICE_B]
    changed = resource() + resource(POLICE_B, "暂住人口", 信息资源摘要="新的摘要")
    report = catalog_xlsx.import_entries(db, data=sheet(changed), actor=admin_actor)
    assert (report.unchanged, report.updated) == ([POLICE_A], [POLICE_B])
    assert catalog.get_by_code(db, code=POLICE_B).abstract == "新的摘要"


def test_a_dry_run_reports_and_keeps_nothing(db, admin_actor) -> None:
    before = count(db)
    report = catalog_xlsx.import_entries(db, data=sheet(resource()), actor=admin_actor, dry_run=True)
    assert report.dry_run and report.created == [POLICE_A]
    assert count(db) == before


def test_resource_cells_may_repeat_on_every_row_but_not_differ(db, admin_actor) -> None:
    rows = resource()
    for row in rows[1:]:
        row |= {"信息资源名称": rows[0]["信息资源名称"], "共享类型": "有条件共享"}
    assert catalog_xlsx.import_entries(db, data=sheet(rows), actor=admin_actor).created == [POLICE_A]
    rows = resource(POLICE_B)
    rows[2]["共享类型"] = "无条件共享"
    report = catalog_xlsx.import_entries(db, data=sheet(rows), actor=admin_actor)
    assert report.refused == [POLICE_B]
    assert errors_of(report) == [(4, "共享类型")] and "first row (2)" in report.errors[0].reason


@pytest.mark.parametrize(("change", "where", "reason"), [
    ({0: {"信息资源提供方": "外星事务局"}}, (2, "信息资源提供方"), "unknown department"),
    ({0: {"共享类型": "随便共享"}}, (2, "共享类型"), "not a sharing type"),
    ({0: {"更新周期": "每世纪"}}, (2, "更新周期"), "not a update cycle"),
    ({0: {"开放类型": "半开放"}}, (2, "开放类型"), "not a open type"),
    ({1: {"数据类型": "文本型"}}, (3, "数据类型"), "not a data type"),
    ({1: {"数据长度": "十八"}}, (3, "数据长度"), "whole number"),
    ({1: {"是否主键": "也许"}}, (3, "是否主键"), "是 or 否"),
    ({0: {"发布日期": "去年"}}, (2, "发布日期"), "not a date"),
    ({1: {"个人信息类别": "血型!"}}, (3, "个人信息类别"), "personal information kind"),
    ({2: {"信息项名称": "姓名"}}, (4, "信息项名称"), "repeats row 6"),
    ({2: {"信息项代码": "name"}}, (4, "信息项代码"), "repeats row 6"),
    ({2: {"信息项代码": "Arrived On"}}, (4, "信息项代码"), "lower-case"),
    ({0: {"信息资源分类": "9-01-001"}}, (2, "信息资源分类"), "must start with 1"),
    ({0: {"信息资源分类": "1-1-1"}}, (2, "信息资源分类"), "类-项-目"),
    ({0: {"共享条件": None}}, (2, ""), "sharing conditions"),
    ({0: {"信息资源名称": None}}, (2, "信息资源名称"), "must be filled in"),
    ({0: {"所属数据库": "火星库"}}, (2, "所属数据库"), "not a database"),
])
def test_a_bad_value_refuses_its_resource_with_row_column_and_reason(db, admin_actor, change, where,
                                                                     reason) -> None:
    bad = resource(POLICE_B)
    for index, cells in change.items():
        bad[index] |= cells
    report = catalog_xlsx.import_entries(db, data=sheet(resource() + bad), actor=admin_actor)
    assert report.created == [POLICE_A]  # the good resource of the same file is kept
    assert report.refused == [POLICE_B]
    shifted = (where[0] + 3, where[1])  # the bad resource starts on row 5 (rows given as if it started on 2)
    assert shifted in errors_of(report), report.errors
    assert any(reason in e.reason for e in report.errors), report.errors
    assert all(e.code == POLICE_B for e in report.errors)
    assert db.scalar(select(CatalogEntry).where(CatalogEntry.code == POLICE_B)) is None


def test_a_refused_update_leaves_the_entry_as_it_was(db, admin_actor) -> None:
    catalog_xlsx.import_entries(db, data=sheet(resource()), actor=admin_actor)
    before = catalog.entry_input(db, entry=catalog.get_by_code(db, code=POLICE_A))
    bad = resource(信息资源摘要="改了", 共享类型="随便共享")
    report = catalog_xlsx.import_entries(db, data=sheet(bad), actor=admin_actor)
    assert report.refused == [POLICE_A]
    db.expire_all()
    assert catalog.entry_input(db, entry=catalog.get_by_code(db, code=POLICE_A)) == before


def test_a_formula_cell_is_refused_with_its_row_and_column(db, admin_actor) -> None:
    bad = resource(POLICE_B)
    bad[1]["数据长度"] = "=10+8"
    report = catalog_xlsx.import_entries(db, data=sheet(resource() + bad), actor=admin_actor)
    assert (report.created, report.refused) == ([POLICE_A], [POLICE_B])
    assert errors_of(report) == [(6, "数据长度")] and "formula" in report.errors[0].reason


def test_staff_import_only_their_own_department_resources(db) -> None:
    rows = resource() + resource("3010100/market-07001", "市场巡查记录", "market", 信息资源分类="3-01-001")
    report = catalog_xlsx.import_entries(db, data=sheet(rows), actor=police_staff(db))
    assert report.created == [POLICE_A] and report.refused == ["3010100/market-07001"]
    assert errors_of(report) == [(5, "")] and "own department" in report.errors[0].reason
    citizen = Actor(user_id=None, username="c", role="citizen", department_id=None, permissions=frozenset())
    with pytest.raises(Forbidden):
        catalog_xlsx.import_entries(db, data=sheet(resource(POLICE_B)), actor=citizen)


def test_a_row_without_its_resource_code_is_reported(db, admin_actor) -> None:
    rows = resource()
    rows.append({"信息项代码": "x", "信息项名称": "孤行"})
    report = catalog_xlsx.import_entries(db, data=sheet(rows), actor=admin_actor)
    assert report.created == [POLICE_A] and errors_of(report) == [(5, "信息资源代码")]


def _zip_without_workbook() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("hello.txt", "not a workbook")
    return out.getvalue()


@pytest.mark.parametrize(("data", "message"), [
    (b"\x00\x01garbage" * 100, "not an XLSX"),
    ("信息资源名称,信息资源代码\n户籍,1/2\n".encode("gb18030"), "not an XLSX"),
    (_zip_without_workbook(), "not a readable XLSX"),
    (b"PK\x03\x04" + b"\x00" * 200, "not a readable XLSX"),
    (sheet(resource(), headers=[h for h in HEADERS if h not in ("数据类型", "共享类型")]),
     "required column(s) missing: 数据类型, 共享类型"),
    (sheet(resource(), headers=[*HEADERS, "备注"]), "unknown column(s) 备注"),
    (sheet(resource(), headers=[*HEADERS, "信息项名称"]), "appears twice"),
    (sheet([]), "no information item rows"),
])
def test_a_bad_file_is_refused_whole_and_nothing_changes(db, admin_actor, data, message) -> None:
    before = count(db)
    with pytest.raises(Invalid, match=message.replace("(", r"\(").replace(")", r"\)")):
        catalog_xlsx.import_entries(db, data=data, actor=admin_actor)
    assert count(db) == before


def test_a_sheet_over_the_row_limit_is_refused(db, admin_actor, monkeypatch) -> None:
    monkeypatch.setattr(catalog_xlsx, "MAX_ROWS", 5)
    before = count(db)
    with pytest.raises(Invalid, match="more than 5 rows"):
        catalog_xlsx.import_entries(db, data=sheet(resource() + resource(POLICE_B)), actor=admin_actor)
    assert count(db) == before


def test_a_workbook_with_another_sheet_name_is_read_when_it_has_one_sheet(db, admin_actor) -> None:
    report = catalog_xlsx.import_entries(db, data=sheet(resource(), title="Sheet1"), actor=admin_actor)
    assert report.created == [POLICE_A]


def test_merged_resource_cells_read_as_filled_on_the_first_row(db, admin_actor) -> None:
    wb = load_workbook(io.BytesIO(sheet(resource())))
    ws = wb[catalog_xlsx.SHEET]
    for header in ("信息资源名称", "信息资源摘要"):
        column = HEADERS.index(header) + 1
        ws.cell(row=2, column=column).value = "流动人口登记" if header == "信息资源名称" else "合并单元格的摘要"
        ws.merge_cells(start_row=2, end_row=4, start_column=column, end_column=column)
    out = io.BytesIO()
    wb.save(out)
    assert catalog_xlsx.import_entries(db, data=out.getvalue(), actor=admin_actor).created == [POLICE_A]
    assert catalog.get_by_code(db, code=POLICE_A).abstract == "合并单元格的摘要"


def test_english_enum_values_are_accepted_too(db, admin_actor) -> None:
    rows = resource(共享类型="conditional", 更新周期="daily")
    rows[1]["数据类型"] = "string"
    assert catalog_xlsx.import_entries(db, data=sheet(rows), actor=admin_actor).created == [POLICE_A]
    entry = catalog.get_by_code(db, code=POLICE_A)
    assert (entry.sharing_type, entry.update_cycle) == ("conditional", "daily")
    assert EntryIn.model_validate(catalog.entry_input(db, entry=entry).model_dump()).key_fields == ["id_number"]
