"""Reading department files (CSV, XLSX) into a header and numbered rows of raw cell values.

Anything wrong with the file as a whole (encoding, format, formula or merged cells, a broken
header) raises ``FileProblem`` with a message for the department; what is wrong with single
rows is judged later, against the catalog entry's information items (``values.py``).
"""

from __future__ import annotations

import codecs
import csv
import io
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any
from xml.etree.ElementTree import iterparse

ENCODING_PROBLEM = "cannot tell the file's encoding; save it as UTF-8 or GB18030"
_CHUNK = 1 << 20
_SAMPLE_BYTES = 1 << 20


class FileProblem(Exception):
    """The file cannot be read as a table; ``str()`` tells the department why."""


@dataclass
class Table:
    file_format: str  # csv | xlsx
    header: list[str]
    rows: Iterator[tuple[int, Sequence[Any]]]  # (row number in the file, cells)
    encoding: str = ""
    sheet: str = ""
    notes: list[str] = field(default_factory=list)


def is_xlsx(head: bytes) -> bool:
    return head.startswith(b"PK\x03\x04")


# ---------------------------------------------------------------------------------- encodings


def detect_encoding(f: IO[bytes]) -> str:
    """UTF-8 (with or without BOM), else GB18030 (a superset of GBK and GB2312), else refused.

    The whole file must decode; a GB18030 reading must also look like Chinese text, because
    Big5 or Shift-JIS bytes often decode as GB18030 into rare characters nobody writes."""
    f.seek(0)
    head = f.read(1 << 16)
    f.seek(0)
    if b"\x00" in head or head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise FileProblem("the file holds NUL characters (is it UTF-16 or binary?); save it as UTF-8 or GB18030")
    bom = head.startswith(codecs.BOM_UTF8)
    if _decodes(f, "utf-8"):
        return "utf-8-sig" if bom else "utf-8"
    if not bom and _decodes(f, "gb18030") and _plausible_chinese(f):
        return "gb18030"
    raise FileProblem(ENCODING_PROBLEM)


def _decodes(f: IO[bytes], encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)()
    f.seek(0)
    try:
        while chunk := f.read(_CHUNK):
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
        return True
    except UnicodeDecodeError:
        return False
    finally:
        f.seek(0)


def _plausible_chinese(f: IO[bytes]) -> bool:
    f.seek(0)
    text = f.read(_SAMPLE_BYTES).decode("gb18030", errors="ignore")
    f.seek(0)
    wide = [c for c in text if ord(c) > 0x7F]
    if not wide:
        return True
    odd = sum(1 for c in wide if _odd_character(c))
    hanzi = [c for c in wide if "\u4e00" <= c <= "\u9fff"]
    common = sum(1 for c in hanzi if _in_gb2312(c))
    return odd <= len(wide) * 0.02 and (len(hanzi) < 4 or common >= len(hanzi) * 0.75)


def _odd_character(c: str) -> bool:
    n = ord(c)
    return (0x80 <= n <= 0x9F or 0xE000 <= n <= 0xF8FF or n >= 0x10000 or 0x3040 <= n <= 0x30FF
            or 0x3400 <= n <= 0x4DBF)


def _in_gb2312(c: str) -> bool:
    try:
        c.encode("gb2312")
        return True
    except UnicodeEncodeError:
        return False


# ---------------------------------------------------------------------------------------- CSV


def read_csv(f: IO[bytes]) -> Table:
    encoding = detect_encoding(f)
    text = io.TextIOWrapper(f, encoding=encoding, newline="")
    first = text.readline()
    if not first.strip():
        raise FileProblem("the file is empty" if not first else "the first line (the header) is empty")
    if "\x00" in first:
        raise FileProblem("the file holds NUL characters; it is not a text table")
    delimiter = "\t" if "\t" in first and "," not in first else ","
    text.seek(0)
    reader = csv.reader(text, delimiter=delimiter, strict=True)
    header = _next_row(reader)
    return Table("csv", [h.strip() for h in header or []], _csv_rows(reader), encoding=encoding)


def _next_row(reader: Any) -> list[str] | None:
    try:
        return next(reader)
    except StopIteration:
        return None
    except csv.Error as exc:
        raise FileProblem(f"line {reader.line_num}: the CSV cannot be read ({exc})") from None


def _csv_rows(reader: Any) -> Iterator[tuple[int, Sequence[Any]]]:
    while True:
        line = reader.line_num + 1
        cells = _next_row(reader)
        if cells is None:
            return
        if not cells or all(not c.strip() for c in cells):
            continue  # blank lines separate nothing in a table
        for cell in cells:
            if "\x00" in cell:
                raise FileProblem(f"line {line}: the file holds NUL characters; it is not a text table")
        yield line, cells


# --------------------------------------------------------------------------------------- XLSX


def read_xlsx(f: IO[bytes], *, sheet_names: Sequence[str] = ()) -> Table:
    """The first sheet, or the one named like the resource; the header is the first non-empty row."""
    from openpyxl import load_workbook

    try:
        wb = load_workbook(f, read_only=True, data_only=False)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise FileProblem(f"not a readable XLSX file ({type(exc).__name__})") from None
    if not wb.sheetnames:
        raise FileProblem("the workbook has no sheets")
    name = next((s for s in wb.sheetnames if s.strip() in sheet_names), wb.sheetnames[0])
    ws = wb[name]
    merged = _merged_ranges(wb, ws)
    if merged:
        shown = ", ".join(merged[:10]) + (" …" if len(merged) > 10 else "")
        raise FileProblem(f"sheet {name!r} has merged cells ({shown}); unmerge them so each row stands alone")
    rows = _xlsx_rows(ws)
    for _number, cells in rows:
        if any(not _blank(c) for c in cells):
            header = [("" if c is None else str(c)).strip() for c in cells]
            while header and not header[-1]:
                header.pop()
            return Table("xlsx", header, _padded(rows, len(header)), sheet=name)
    raise FileProblem(f"sheet {name!r} is empty")


def _merged_ranges(wb: Any, ws: Any) -> list[str]:
    # openpyxl's read-only sheets do not parse <mergeCells>; read them from the sheet's XML.
    archive, path = getattr(wb, "_archive", None), getattr(ws, "_worksheet_path", None)
    if archive is None or path is None:
        return []
    found = []
    with archive.open(path) as xml:
        for _event, element in iterparse(xml, events=("end",)):
            if element.tag.endswith("}mergeCell"):
                found.append(element.get("ref", "?"))
            element.clear()
    return found


def _xlsx_rows(ws: Any) -> Iterator[tuple[int, list[Any]]]:
    for row in ws.iter_rows():
        cells = []
        number = None
        for cell in row:
            if getattr(cell, "data_type", None) == "f":
                raise FileProblem(f"cell {cell.coordinate} holds a formula ({str(cell.value)[:40]}); "
                                  "paste values instead of formulas")
            number = getattr(cell, "row", number)
            cells.append(cell.value)
        if number is not None:
            yield number, cells


def _padded(rows: Iterator[tuple[int, list[Any]]], width: int) -> Iterator[tuple[int, Sequence[Any]]]:
    for number, cells in rows:
        if all(_blank(c) for c in cells):
            continue
        if len(cells) < width:
            cells = cells + [None] * (width - len(cells))  # Excel leaves empty trailing cells out
        yield number, cells


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())
