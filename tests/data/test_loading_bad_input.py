"""Each bad file gets a clear reason, a recorded refused load, and leaves the stored version untouched."""

from __future__ import annotations

import io

import pytest
from openpyxl import Workbook
from sqlalchemy import inspect, select

from citybrain.core.actor import system_actor
from citybrain.data import loading, storage
from citybrain.data.load_report import MAX_ERRORS
from citybrain.data.models import DataLoad
from data_factories import make_entry

ADMIN = system_actor("test")
HEADER = "公民身份号码,姓名,出生日期,户内人数"
GOOD = [HEADER, "370306199001011234,张三,1990-01-01,3", "370306198502023456,李四,1985-02-02,2"]


def csv_bytes(lines: list[str], encoding: str = "utf-8") -> bytes:
    return ("\n".join(lines) + "\n").encode(encoding)


def xlsx_bytes(rows: list[list], merge: str | None = None, formula_at: str | None = None) -> bytes:
    wb = Workbook()
    ws = wb.active
    for row in rows:
        ws.append(row)
    if merge:
        ws.merge_cells(merge)
    if formula_at:
        ws[formula_at] = "=1+2"
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


XLSX_ROWS = [["公民身份号码", "姓名", "户内人数"], ["370306199001011111", "王五", 1], ["370306199001012222", "赵六", 2]]


@pytest.fixture
def loaded(db):
    """A resource holding version 1 (two rows), and a way to see it is exactly unchanged."""
    entry = make_entry(db)
    first = loading.load_file(db, entry_id=entry.id, data=csv_bytes(GOOD), filename="v1.csv", mode="append",
                              actor=ADMIN)
    assert first.status == "loaded"
    table = storage.table_for(entry)

    def snapshot():
        rows = db.execute(select(table).order_by(table.c._id)).all()
        return [tuple(r) for r in rows], entry.version, entry.row_count

    before = snapshot()
    assert before[1:] == (1, 2)
    return entry, snapshot, before


BAD_FILES = [
    ("big5", "戶籍人口信息,張三,臺灣省\n".encode("big5") * 3, "x.csv", "cannot tell the file's encoding"),
    ("latin-1", csv_bytes(["id_number,name", "370306199001011234,José Müller"], "latin-1"), "x.csv",
     "cannot tell the file's encoding"),
    ("utf-16", csv_bytes(GOOD, "utf-16"), "x.csv", "UTF-16 or binary?"),
    ("utf-16 without BOM", csv_bytes(GOOD, "utf-16-le"), "x.csv", "UTF-16 or binary?"),
    ("NUL in a cell", csv_bytes([HEADER, "370306199001011234,张\x00三,1990-01-01,1"]), "x.csv", "NUL characters"),
    ("empty", b"", "x.csv", "the file is empty"),
    ("blank first line", b"\n\n", "x.csv", "header) is empty"),
    ("header only", csv_bytes([HEADER]), "x.csv", "no rows"),
    ("missing required column", csv_bytes(["公民身份号码,出生日期", "370306199001011234,1990-01-01"]), "x.csv",
     "missing required column(s): 姓名 (name)"),
    ("extra columns", csv_bytes([HEADER + ",婚姻状况,备注", "370306199001011234,张三,1990-01-01,1,已婚,"]), "x.csv",
     "unknown column(s): 婚姻状况, 备注"),
    ("the same item twice", csv_bytes(["公民身份号码,姓名,name", "1,张三,张三"]), "x.csv", "are both item name"),
    ("unquoted quote", b'\xe5\xa7\x93\xe5\x90\x8d,id_number\n"a"b,1\n', "x.csv", "the CSV cannot be read"),
    ("old xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "x.xls", "old .xls"),
    ("xlsx that is not a zip", csv_bytes(GOOD), "x.xlsx", "not a readable XLSX"),
    ("broken zip", b"PK\x03\x04garbage", "x.xlsx", "not a readable XLSX"),
    ("formula cell", xlsx_bytes(XLSX_ROWS, formula_at="C3"), "x.xlsx", "cell C3 holds a formula"),
    ("merged cells", xlsx_bytes(XLSX_ROWS, merge="A2:B2"), "x.xlsx", "merged cells (A2:B2)"),
    ("empty sheet", xlsx_bytes([]), "x.xlsx", "is empty"),
]


@pytest.mark.parametrize(("data", "filename", "message"), [b[1:] for b in BAD_FILES], ids=[b[0] for b in BAD_FILES])
def test_a_bad_file_is_refused_with_its_reason_and_changes_nothing(db, loaded, data, filename, message) -> None:
    entry, snapshot, before = loaded
    load = loading.load_file(db, entry_id=entry.id, data=data, filename=filename, mode="replace", actor=ADMIN)
    assert load.status == "refused" and load.version is None
    assert any(message in p for p in load.report["problems"]), load.report["problems"]
    assert snapshot() == before
    recorded = db.get(DataLoad, load.id)
    assert recorded is not None and recorded.status == "refused" and recorded.report["problems"]


ROW_ERRORS = [
    ("bad date", "370306199001019999,王五,2024-13-01,1", {"not a real date": 1}),
    ("not a date", "370306199001019999,王五,昨天,1", {"not a date": 1}),
    ("not an integer", "370306199001019999,王五,2024-01-05,三口", {"not an integer": 1}),
    ("required empty", "370306199001019999,,2024-01-05,1", {"required value is empty": 1}),
    ("too long", "3703061990010199991234,王五,2024-01-05,1", {"longer than 18 characters": 1}),
    ("too few cells", "370306199001019999,王五", {"wrong number of cells": 1}),
    ("too many cells", "370306199001019999,王五,2024-01-05,1,多余", {"wrong number of cells": 1}),
    ("duplicate key in file", "370306199001018888,王五,,1\n370306199001018888,赵六,,2",
     {"duplicate key in the file": 1}),
    ("key already stored", "370306199001011234,张三,1990-01-01,3", {"key already stored (use upsert to update)": 1}),
]


@pytest.mark.parametrize(("line", "counts"), [r[1:] for r in ROW_ERRORS], ids=[r[0] for r in ROW_ERRORS])
def test_one_bad_row_refuses_the_whole_append_and_is_reported_by_row_and_column(db, loaded, line, counts) -> None:
    entry, snapshot, before = loaded
    data = csv_bytes([HEADER, "370306199001017777,好人,2000-01-01,1", line])
    load = loading.load_file(db, entry_id=entry.id, data=data, filename="bad.csv", mode="append", actor=ADMIN)
    assert load.status == "refused" and load.rows_inserted == 0
    assert load.report["error_counts"] == counts
    first = load.report["errors"][0]
    assert first["row"] >= 3 and first["reason"] in counts
    assert snapshot() == before


def test_a_duplicate_key_names_the_first_row_holding_it(db, loaded) -> None:
    entry, snapshot, before = loaded
    data = csv_bytes([HEADER, "370306199001018888,王五,,1", "370306199001017777,好人,,1", "370306199001018888,赵六,,2"])
    load = loading.load_file(db, entry_id=entry.id, data=data, filename="d.csv", mode="replace", actor=ADMIN)
    assert load.report["errors"] == [{"row": 4, "column": "公民身份号码", "value": "370306199001018888",
                                      "reason": "duplicate key in the file", "first_row": 2}]
    assert snapshot() == before


def test_bad_rows_after_many_batches_roll_back_every_batch_written(db, loaded, monkeypatch) -> None:
    entry, snapshot, before = loaded
    monkeypatch.setattr(loading, "BATCH_ROWS", 10)
    lines = [HEADER] + [f"3703061990{n:08d},人{n},,1" for n in range(55)] + ["370306199001019999,坏,,x"]
    load = loading.load_file(db, entry_id=entry.id, data=csv_bytes(lines), filename="b.csv", mode="replace",
                             actor=ADMIN)
    assert load.status == "refused" and load.rows_read == 56
    assert snapshot() == before


def test_errors_are_listed_up_to_the_cap_and_all_counted(db, loaded) -> None:
    entry, snapshot, before = loaded
    lines = [HEADER] + [f"3703061990{n:08d},人{n},bad,1" for n in range(MAX_ERRORS + 50)]
    load = loading.load_file(db, entry_id=entry.id, data=csv_bytes(lines), filename="b.csv", mode="append",
                             actor=ADMIN)
    assert load.report["errors_total"] == MAX_ERRORS + 50 and len(load.report["errors"]) == MAX_ERRORS
    assert snapshot() == before


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(db, loaded, tmp_path) -> None:
    entry, snapshot, before = loaded
    big = tmp_path / "big.csv"
    big.write_bytes(csv_bytes(GOOD) * 100)
    load = loading.load_file(db, entry_id=entry.id, data=big, filename="big.csv", mode="replace", actor=ADMIN,
                             max_bytes=1000)
    assert load.status == "refused" and "larger than the limit" in load.report["problems"][0]
    assert load.sha256 == ""  # refused on its size alone, never read

    class Endless(io.RawIOBase):
        served = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:  # noqa: ANN001
            buffer[:] = b"a" * len(buffer)
            self.served += len(buffer)
            return len(buffer)

    stream = Endless()
    load = loading.load_file(db, entry_id=entry.id, data=stream, filename="endless.csv", mode="replace",
                             actor=ADMIN, max_bytes=3 << 20)
    assert load.status == "refused" and stream.served <= (3 << 20) + (1 << 20)
    assert snapshot() == before


def test_sql_and_formula_injection_values_are_stored_verbatim_and_warned_about(db, loaded) -> None:
    entry, snapshot, _before = loaded
    sql = "张三'); DROP TABLE ds_1; --"
    formula = '=HYPERLINK("http://evil.example","点我")'
    quoted = formula.replace('"', '""')
    data = csv_bytes([HEADER, f'370306199001015555,"{sql}",,1', f'370306199001016666,"{quoted}",,2',
                      "370306199001017777,-12,,1", "370306199001018888,@SUM(A1),,1"])
    load = loading.load_file(db, entry_id=entry.id, data=data, filename="i.csv", mode="append", actor=ADMIN)
    assert load.status == "loaded", load.report
    table = storage.table_for(entry)
    names = dict(db.execute(select(table.c.id_number, table.c.name)).all())
    assert names["370306199001015555"] == sql and names["370306199001016666"] == formula
    assert load.report["warnings_total"] == 2  # "-12" is a number, not a formula
    assert {w["value"] for w in load.report["warnings"]} == {formula, "@SUM(A1)"}
    assert inspect(db.connection()).has_table(table.name) and entry.row_count == 6
