"""Catalog entries to and from XLSX in the layout departments already fill in (信息资源目录 sheet).

One row per information item (信息项). Resource-level columns are filled on the resource's first
row; later rows of the same 信息资源代码 leave them blank (or merged) or repeat the same value.
Columns are found by their header, in any order; docs/data-catalog.md lists them.

Import works resource by resource, each inside a SAVEPOINT: a resource with any refused row
changes nothing, the good resources of the same file are kept, and the report names every
refused row, column and reason. Problems with the file itself (not an XLSX workbook, missing or
unknown columns, too many rows) refuse the whole file before anything is looked at.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable
from datetime import date
from typing import Any

from openpyxl import Workbook, load_workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.utils.exceptions import InvalidFileException
from pydantic import BaseModel, ValidationError, computed_field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from citybrain.core.actor import Actor
from citybrain.core.errors import DomainError, Forbidden, Invalid
from citybrain.org.models import Department

from . import catalog
from . import catalog_xlsx_columns as cols
from .models import CatalogEntry
from .schemas import EntryIn

SHEET = "信息资源目录"
GUIDE_SHEET = "填写说明"
MAX_BYTES = 20 * 1024 * 1024
MAX_ROWS = 20_000


class RowError(BaseModel):
    row: int  # sheet row number as Excel shows it (the header is row 1)
    column: str  # the column's header, "" when the reason concerns the whole resource
    reason: str
    code: str = ""  # 信息资源代码 of the refused resource


class ImportReport(BaseModel):
    dry_run: bool = False
    rows: int = 0
    created: list[str] = []
    updated: list[str] = []
    unchanged: list[str] = []
    refused: list[str] = []
    errors: list[RowError] = []

    @computed_field  # type: ignore[prop-decorator]
    @property
    def counts(self) -> dict[str, int]:
        return {"created": len(self.created), "updated": len(self.updated), "unchanged": len(self.unchanged),
                "refused": len(self.refused), "errors": len(self.errors)}


# ---------------------------------------------------------------------------------------- export


def _cell(ws: Any, value: Any, *, bold: bool = False) -> WriteOnlyCell:
    cell = WriteOnlyCell(ws, value=value)
    if isinstance(value, str) and value.startswith("="):
        cell.data_type = "s"  # a value, never a formula (CSV/formula injection)
    if isinstance(value, date):
        cell.number_format = "yyyy-mm-dd"
    if bold:
        cell.font = Font(bold=True)
    return cell


def export_entries(db: Session, *, entries: Iterable[CatalogEntry]) -> bytes:
    wb = Workbook(write_only=True)
    ws = wb.create_sheet(SHEET)
    ws.freeze_panes = "A2"
    for n, col in enumerate(cols.COLUMNS):
        ws.column_dimensions[_letter(n)].width = col.width
    ws.append([_cell(ws, c.header, bold=True) for c in cols.COLUMNS])
    dept_names = {d.id: d.name for d in db.scalars(select(Department))}
    for entry in entries:
        data = catalog.entry_input(db, entry=entry)
        for n, item in enumerate(data.items):
            row = cols.sheet_row(data, item, dept_names[entry.provider_department_id], first=n == 0)
            ws.append([_cell(ws, v) for v in row])
    guide = wb.create_sheet(GUIDE_SHEET)
    guide.append([_cell(guide, h, bold=True) for h in ("列 Column", "必填 Required", "取值 Values")])
    for c in cols.COLUMNS:
        guide.append([c.header, "是" if c.required else "", c.note])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _letter(n: int) -> str:
    return get_column_letter(n + 1)


# ---------------------------------------------------------------------------------------- reading


def _open_sheet(data: bytes) -> Any:
    if len(data) > MAX_BYTES:
        raise Invalid(f"the file is larger than {MAX_BYTES // (1024 * 1024)} MB")
    if not data.startswith(b"PK"):
        raise Invalid("the file is not an XLSX workbook (Office Open XML); save it as .xlsx")
    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=False)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError, TypeError) as exc:
        raise Invalid(f"the file is not a readable XLSX workbook ({type(exc).__name__})") from exc
    if SHEET in wb.sheetnames:
        return wb[SHEET]
    data_sheets = [n for n in wb.sheetnames if n != GUIDE_SHEET]
    if len(data_sheets) == 1:
        return wb[data_sheets[0]]
    raise Invalid(f"the workbook has no sheet named {SHEET!r}")


def _header(cells: tuple[Any, ...]) -> dict[int, cols.Column]:
    found: dict[int, cols.Column] = {}
    unknown: list[str] = []
    seen: set[str] = set()
    for i, cell in enumerate(cells):
        title = str(cell.value).strip() if cell.value is not None else ""
        if not title:
            continue
        if title in seen:
            raise Invalid(f"the column {title!r} appears twice in the header row")
        seen.add(title)
        col = cols.BY_HEADER.get(title)
        if col is None:
            unknown.append(title)
        else:
            found[i] = col
    if unknown:
        raise Invalid(f"unknown column(s) {', '.join(unknown)}; the layout is in docs/data-catalog.md")
    missing = [c.header for c in cols.COLUMNS if c.required and c.header not in seen]
    if missing:
        raise Invalid(f"required column(s) missing: {', '.join(missing)}")
    return found


class SheetRow:
    __slots__ = ("number", "values", "errors")

    def __init__(self, number: int) -> None:
        self.number = number
        self.values: dict[str, Any] = {}
        self.errors: list[RowError] = []


def read_rows(data: bytes) -> list[SheetRow]:
    """The sheet's non-empty rows with raw cell values by header; formula cells become row errors."""
    rows_iter = _open_sheet(data).iter_rows()
    header_cells = next(rows_iter, None)
    if header_cells is None:
        raise Invalid("the sheet is empty: the first row must hold the column headers")
    columns = _header(header_cells)
    rows: list[SheetRow] = []
    for number, cells in enumerate(rows_iter, start=2):
        row = SheetRow(number)
        for i, cell in enumerate(cells):
            col = columns.get(i)
            value = cell.value
            if col is None or value is None or (isinstance(value, str) and not value.strip()):
                continue
            if getattr(cell, "data_type", None) == "f":
                row.errors.append(RowError(row=number, column=col.header,
                                           reason="formula cells are not accepted; paste the value instead"))
                continue
            row.values[col.header] = value
        if row.values or row.errors:
            if len(rows) >= MAX_ROWS:
                raise Invalid(f"the sheet has more than {MAX_ROWS} rows; split it into several files")
            rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------- building


def _departments(db: Session) -> dict[str, str]:
    """Department name or code -> code (the sheet names the provider by either)."""
    found: dict[str, str] = {}
    for d in db.scalars(select(Department)):
        found[d.name] = d.code
        found[d.code] = d.code
    return found


def _build(group: list[SheetRow], depts: dict[str, str]) -> tuple[EntryIn | None, list[RowError]]:
    first = group[0]
    errors: list[RowError] = [e for r in group for e in r.errors]
    resource: dict[str, Any] = {}
    for col in cols.RESOURCE_COLUMNS:
        raw = first.values.get(col.header)
        for later in group[1:]:
            other = later.values.get(col.header)
            if other is not None and raw is not None and cols.same(raw, other) is False:
                errors.append(RowError(row=later.number, column=col.header,
                                       reason=f"differs from the resource's first row ({first.number})"))
        if raw is None:
            continue
        try:
            resource[col.field] = col.parse(raw)
        except ValueError as exc:
            errors.append(RowError(row=first.number, column=col.header, reason=str(exc)))
    dept = resource.pop("provider_department", None)
    if dept is not None:
        if dept not in depts:
            errors.append(RowError(row=first.number, column=cols.PROVIDER.header,
                                   reason=f"unknown department {dept!r}"))
        else:
            resource["provider_department_code"] = depts[dept]
    class_code = resource.get("class_code")
    if isinstance(class_code, str) and class_code[:1] in cols.KIND_BY_DIGIT:
        resource["class_kind"] = cols.KIND_BY_DIGIT[class_code[0]]
    elif class_code is not None:
        errors.append(RowError(row=first.number, column=cols.CLASS.header,
                               reason=f"{class_code!r} must start with 1 (基础), 2 (主题) or 3 (部门)"))
    items, keys = _items(group, errors)
    if errors:
        return None, errors
    payload = {**resource, "items": items, "key_fields": keys}
    try:
        return EntryIn.model_validate(payload), []
    except ValidationError as exc:
        return None, _validation_errors(exc, group)


def _items(group: list[SheetRow], errors: list[RowError]) -> tuple[list[dict[str, Any]], list[str]]:
    items: list[dict[str, Any]] = []
    keys: list[str] = []
    seen: dict[tuple[str, Any], int] = {}
    for row in group:
        item: dict[str, Any] = {}
        for col in cols.ITEM_COLUMNS:
            raw = row.values.get(col.header)
            if raw is None:
                continue
            try:
                item[col.field] = col.parse(raw)
            except ValueError as exc:
                errors.append(RowError(row=row.number, column=col.header, reason=str(exc)))
        for col in (cols.ITEM_NAME, cols.ITEM_CODE):
            value = item.get(col.field)
            if value is None:
                continue
            earlier = seen.setdefault((col.field, value), row.number)
            if earlier != row.number:
                errors.append(RowError(row=row.number, column=col.header,
                                       reason=f"{value!r} repeats row {earlier} of the same resource"))
        if item.pop("key", False) and item.get("code"):
            keys.append(item["code"])
        items.append(item)
    return items, keys


def _validation_errors(exc: ValidationError, group: list[SheetRow]) -> list[RowError]:
    out: list[RowError] = []
    for err in exc.errors():
        loc = err.get("loc", ())
        reason = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        reason = "this cell must be filled in" if reason == "Field required" else reason
        row, column = group[0].number, ""
        if loc and loc[0] == "items" and len(loc) >= 2 and isinstance(loc[1], int) and loc[1] < len(group):
            row = group[loc[1]].number
            column = cols.ITEM_FIELD_HEADER.get(str(loc[2]), "") if len(loc) > 2 else ""
        elif loc:
            column = cols.RESOURCE_FIELD_HEADER.get(str(loc[0]), "")
        out.append(RowError(row=row, column=column, reason=reason))
    return out


# ---------------------------------------------------------------------------------------- import


def _apply(db: Session, data: EntryIn, actor: Actor) -> str:
    existing = db.scalar(select(CatalogEntry).where(CatalogEntry.code == data.code))
    if existing is None:
        catalog.create_entry(db, data=data, actor=actor)
        return "created"
    catalog.check_can_publish(actor, existing)
    # The catalog stores a missing 提供方代码 as the department's code: compare like with like.
    stored = data if data.provider_code else data.model_copy(update={"provider_code": data.provider_department_code})
    if catalog.entry_input(db, entry=existing) == stored:
        return "unchanged"
    catalog.update_entry(db, entry_id=existing.id, data=data, actor=actor)
    return "updated"


def _group(rows: list[SheetRow], report: ImportReport) -> dict[str, list[SheetRow]]:
    groups: dict[str, list[SheetRow]] = {}
    for row in rows:
        code = row.values.get(cols.CODE.header)
        if code is None:
            report.errors.append(RowError(row=row.number, column=cols.CODE.header,
                                          reason="every row needs its resource's code"))
            continue
        groups.setdefault(cols.text(code), []).append(row)
    return groups


def import_entries(db: Session, *, data: bytes, actor: Actor, dry_run: bool = False) -> ImportReport:
    """Create or update the workbook's resources; ``dry_run`` checks everything and keeps nothing."""
    if not (actor.can("data:publish") or actor.can("data:admin")):
        raise Forbidden("importing catalog entries needs the data:publish permission")
    rows = read_rows(data)
    if not rows:
        raise Invalid("the sheet has a header row but no information item rows")
    report = ImportReport(dry_run=dry_run, rows=len(rows))
    depts = _departments(db)
    for code, group in _group(rows, report).items():
        entry, errors = _build(group, depts)
        if entry is None:
            report.refused.append(code)
            report.errors.extend(e.model_copy(update={"code": code}) for e in errors)
            continue
        savepoint = db.begin_nested()
        try:
            outcome = _apply(db, entry, actor)
        except (DomainError, IntegrityError) as exc:
            savepoint.rollback()
            report.refused.append(code)
            reason = exc.message if isinstance(exc, DomainError) else "the database refused the resource"
            report.errors.append(RowError(row=group[0].number, column="", reason=reason, code=code))
            continue
        if dry_run:
            savepoint.rollback()
        else:
            savepoint.commit()
        getattr(report, outcome).append(code)
    report.errors.sort(key=lambda e: (e.row, e.column))
    return report

