"""Bulk device registration from a CSV or XLSX file, with a report of every row.

Rows are checked one by one with the same rules as a single registration
(``registry.check_device_in``) plus what only a file can get wrong: duplicate keys, cells that
are not numbers or dates, more cells than columns. Every row that passes is created in the
caller's transaction; a refused row changes nothing. A problem with the file itself (not a
CSV/XLSX, unreadable encoding, unknown or missing columns, too many rows) refuses the whole file
with ``Invalid`` before any row is looked at.

Row numbers are those a spreadsheet shows: the header is row 1.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from citybrain.core import clock
from citybrain.core.actor import Actor
from citybrain.core.errors import DomainError, Invalid

from . import registry
from .models import Device

MAX_ROWS = 10_000
MAX_COLUMNS = 64
DEFAULT_CRS = "gcj02"  # the district's asset ledgers pick points on Amap/Tencent maps (GCJ-02)
EARLIEST_INSTALL = date(2000, 1, 1)

# canonical column → accepted header names (compared case-insensitively, spaces ignored)
COLUMNS: dict[str, tuple[str, ...]] = {
    "key": ("key", "设备编号", "设备key"),
    "name": ("name", "名称", "设备名称"),
    "product": ("product", "产品"),
    "department_code": ("department_code", "部门编码"),
    "lon": ("lon", "经度"),
    "lat": ("lat", "纬度"),
    "crs": ("crs", "坐标系"),
    "address": ("address", "地址"),
    "install_date": ("install_date", "安装日期"),
    "gateway_key": ("gateway_key", "网关"),
}
REQUIRED = ("key", "name", "product", "department_code")
_HEADER_NAMES = {re.sub(r"\s+", "", alias).lower(): column for column, aliases in COLUMNS.items()
                 for alias in aliases}
_DATE_RE = re.compile(r"^(\d{4})[-/](\d{1,2})[-/](\d{1,2})$")


@dataclass
class RowResult:
    row: int
    key: str
    status: str  # created | valid (dry run) | refused
    reason: str = ""


@dataclass
class ImportResult:
    dry_run: bool
    rows: list[RowResult] = field(default_factory=list)
    credentials: list[tuple[str, str]] = field(default_factory=list)  # (key, secret), shown once

    def count(self, status: str) -> int:
        return sum(1 for r in self.rows if r.status == status)

    def credentials_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(["key", "secret"])
        writer.writerows(self.credentials)
        return out.getvalue()


# --- reading the file ----------------------------------------------------------------------------


def _decode(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise Invalid("the file is UTF-16 text; save it as 'CSV UTF-8' or as an Excel workbook (.xlsx)")
    if b"\x00" in data:
        raise Invalid("not a CSV or XLSX file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        # Excel on Chinese Windows saves "CSV" in the system code page (GBK, a subset of GB18030).
        return data.decode("gb18030")
    except UnicodeDecodeError:
        raise Invalid("the CSV file is neither UTF-8 nor GB18030 text; save it as 'CSV UTF-8'") from None


def _csv_rows(data: bytes) -> Iterator[tuple[int, list[str]]]:
    text = _decode(data)
    first = text.split("\n", 1)[0]
    delimiter = "\t" if "\t" in first and "," not in first else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        yield from enumerate(reader, start=1)
    except csv.Error as exc:
        raise Invalid(f"the CSV file cannot be read near row {reader.line_num}: {exc}") from None


def _xlsx_rows(data: bytes) -> Iterator[tuple[int, list[Any]]]:
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        sheet = book.worksheets[0]
    except Exception as exc:  # noqa: BLE001 - zip, XML and openpyxl errors all mean "not a workbook"
        raise Invalid(f"the workbook cannot be read: {exc}") from None
    try:
        # max_col: a sheet formatted out to column XFD must not turn every row into 16,384 cells.
        for number, values in enumerate(sheet.iter_rows(values_only=True, max_col=MAX_COLUMNS), start=1):
            yield number, list(values)
    except (zipfile.BadZipFile, SyntaxError, ValueError, KeyError) as exc:  # ParseError is a SyntaxError
        raise Invalid(f"the workbook cannot be read: {exc}") from None
    finally:
        book.close()


def read_rows(data: bytes, filename: str = "") -> Iterator[tuple[int, list[Any]]]:
    """(row number, cells) of the first sheet or the CSV text; XLSX is told by its zip signature."""
    name = filename.lower()
    if data.startswith(b"PK\x03\x04"):
        return _xlsx_rows(data)
    if name.endswith((".xls", ".xlsx", ".xlsm", ".ods", ".numbers")) or data.startswith(b"\xd0\xcf\x11\xe0"):
        raise Invalid("only CSV and XLSX files are accepted (save an old .xls workbook as .xlsx)")
    if not data.strip():
        raise Invalid("the file is empty")
    return _csv_rows(data)


def _cell(value: Any) -> str:
    """A cell as text: spreadsheets turn keys like 1001 into numbers and dates into datetimes."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value).strip()


def _header(cells: list[Any]) -> list[str | None]:
    columns: list[str | None] = []
    unknown = []
    for raw in cells:
        text = re.sub(r"\s+", "", _cell(raw)).lower()
        if not text:
            columns.append(None)  # an empty header cell: the column is ignored if it stays empty
            continue
        column = _HEADER_NAMES.get(text)
        if column is None:
            unknown.append(_cell(raw))
        elif column in columns:
            raise Invalid(f"column {column!r} appears twice in the header")
        columns.append(column)
    if unknown:
        known = ", ".join(f"{c} ({COLUMNS[c][1]})" for c in COLUMNS)
        raise Invalid(f"unknown column(s): {', '.join(unknown)}; the columns are {known}")
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise Invalid(f"missing column(s): {', '.join(missing)}")
    return columns


def parse(data: bytes, filename: str = "") -> list[tuple[int, dict[str, str] | str]]:
    """Every non-empty data row as (row number, {column: text}) or (row number, why it is unreadable)."""
    rows = read_rows(data, filename)
    columns: list[str | None] | None = None
    parsed: list[tuple[int, dict[str, str] | str]] = []
    for number, cells in rows:
        texts = [_cell(c) for c in cells]
        if not any(texts):
            continue
        if columns is None:
            columns = _header(cells)
            continue
        if len(parsed) >= MAX_ROWS:
            raise Invalid(f"too many rows: at most {MAX_ROWS} devices per file")
        extra = [t for i, t in enumerate(texts) if t and (i >= len(columns) or columns[i] is None)]
        if extra:
            parsed.append((number, f"cells outside the named columns: {', '.join(extra[:3])}"))
            continue
        parsed.append((number, {c: texts[i] if i < len(texts) else "" for i, c in enumerate(columns) if c}))
    if columns is None:
        raise Invalid("the file is empty")
    return parsed


# --- checking and creating -----------------------------------------------------------------------


def _number(text: str, column: str) -> float | None:
    if not text:
        return None
    try:
        value = float(text.replace("，", ","))
    except ValueError:
        raise Invalid(f"{column} {text!r} is not a number") from None
    return value


def _install_date(text: str) -> date | None:
    if not text:
        return None
    match = _DATE_RE.match(text)
    try:
        if match is None:
            raise ValueError
        day = date(*(int(g) for g in match.groups()))
    except ValueError:
        raise Invalid(f"install_date {text!r} is not a date (YYYY-MM-DD)") from None
    if day < EARLIEST_INSTALL:
        raise Invalid(f"install_date {text!r} is before {EARLIEST_INSTALL}")
    return day


def _device_in(values: dict[str, str]) -> registry.DeviceIn:
    for column in REQUIRED:
        if not values.get(column):
            raise Invalid(f"{column} is empty")
    return registry.DeviceIn(
        key=values["key"], name=values["name"], product=values["product"],
        department_code=values["department_code"], lon=_number(values.get("lon", ""), "lon"),
        lat=_number(values.get("lat", ""), "lat"), crs=values.get("crs") or DEFAULT_CRS,
        address=values.get("address", ""), install_date=_install_date(values.get("install_date", "")),
        gateway_key=values.get("gateway_key") or None)


def _registered(db: Session, keys: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(keys), 500):
        found.update(db.scalars(select(Device.key).where(Device.key.in_(keys[start:start + 500]))))
    return found


def import_devices(db: Session, *, data: bytes, filename: str = "", actor: Actor, dry_run: bool = False
                   ) -> ImportResult:
    """Check every row and create the ones that pass (unless ``dry_run``); see the module doc."""
    actor.check("iot:manage")
    parsed = parse(data, filename)
    result = ImportResult(dry_run=dry_run)
    seen: dict[str, list[int]] = {}
    for number, values in parsed:
        if isinstance(values, dict) and values.get("key"):
            seen.setdefault(values["key"], []).append(number)
    registered = _registered(db, [k for k in seen if k])
    known_products = set(registry.products(db))
    passed: list[tuple[RowResult, dict[str, Any]]] = []
    gateways_in_file: set[str] = set()
    today = clock.now().date()
    for number, values in parsed:
        key = values.get("key", "") if isinstance(values, dict) else ""
        row = RowResult(row=number, key=key, status="valid")
        result.rows.append(row)
        try:
            if isinstance(values, str):
                raise Invalid(values)
            if len(seen.get(key, ())) > 1:
                raise Invalid(f"key {key!r} appears in rows {', '.join(map(str, seen[key]))} of the file")
            if key in registered:
                raise Invalid(f"device key {key!r} is already registered")
            device_in = _device_in(values)
            if device_in.install_date and device_in.install_date > today:
                raise Invalid(f"install date {device_in.install_date} is in the future")
            gateway = device_in.gateway_key
            # A gateway registered earlier in the same file is as good as one already stored.
            in_file = gateway in gateways_in_file
            checked = registry.check_device_in(db, replace(device_in, gateway_key=None if in_file else gateway),
                                               known_products=known_products)
            checked["gateway_key"] = gateway
            if not actor.sees_all_departments and checked["department_id"] != actor.department_id:
                raise Invalid(f"department {device_in.department_code!r} is not yours")
        except DomainError as exc:
            row.status, row.reason = "refused", exc.message
            continue
        passed.append((row, checked))
        if checked["product"] == registry.GATEWAY_PRODUCT:
            gateways_in_file.add(key)
    if dry_run:
        return result
    for row, checked in passed:
        _device, secret = registry.create_checked(db, checked, actor=actor)
        row.status = "created"
        result.credentials.append((row.key, secret))
    db.flush()
    return result
