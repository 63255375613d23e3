"""Typing one cell against an information item (信息项): the forms departments actually write.

Each converter takes a raw cell (text from a CSV, or what openpyxl read from XLSX) and returns
the typed value or raises ``BadValue`` whose message is the reason counted in the load report.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

from .enums import ItemType
from .models import InfoItem

CHINA_TIME = timezone(timedelta(hours=8), "CST")  # no daylight saving since 1991

_DATE = re.compile(r"(\d{4})(?:[-/.](\d{1,2})[-/.](\d{1,2})|(\d{2})(\d{2})|年(\d{1,2})月(\d{1,2})日?)")
_TIME = re.compile(r"(?:[ T]+(\d{1,2})[:时](\d{1,2})分?(?::?(\d{1,2})(?:\.(\d{1,6}))?秒?)?)?")
_ZONE = re.compile(r"\s*(Z|[+-]\d{2}:?\d{2})?")
_INTEGER = re.compile(r"[+-]?\d+")
_GROUPED = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_TRUE = frozenset({"是", "true", "t", "yes", "y", "1", "真", "对"})
_FALSE = frozenset({"否", "false", "f", "no", "n", "0", "假", "错"})
_INJECTION_START = ("=", "+", "-", "@", "\t", "\r")
FORMULA_STARTS = frozenset(_INJECTION_START)
_EXACT_LIMIT = 2**53


class BadValue(ValueError):
    pass


Converter = Callable[[Any], Any]


def converter(item: InfoItem) -> Converter:
    kind = ItemType(item.data_type)
    if kind is ItemType.STRING:
        return _string_converter(item.length)
    return {ItemType.INTEGER: to_integer, ItemType.DECIMAL: to_decimal, ItemType.DATE: to_date,
            ItemType.DATETIME: to_datetime, ItemType.BOOLEAN: to_boolean}[kind]


def is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def looks_like_formula(value: Any) -> bool:
    """Text a spreadsheet would run as a formula when the data is exported again (CSV injection)."""
    if not isinstance(value, str) or not value.startswith(_INJECTION_START):
        return False
    try:
        float(value)
        return False
    except ValueError:
        return True


def _string_converter(length: int | None) -> Converter:
    def to_string(value: Any) -> str:
        if isinstance(value, float):
            if value.is_integer() and abs(value) >= _EXACT_LIMIT:
                raise BadValue("number too long to be exact (format the column as text)")
            value = str(int(value)) if value.is_integer() else repr(value)
        elif isinstance(value, datetime):
            value = value.isoformat(sep=" ") if value.time() != time() else value.date().isoformat()
        text = str(value).strip()
        if length and len(text) > length:
            raise BadValue(f"longer than {length} characters")
        return text

    return to_string


def to_integer(value: Any) -> int:
    if isinstance(value, bool):
        raise BadValue("not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        raise BadValue("not an integer")
    text = str(value).strip().replace("，", ",")
    if _GROUPED.fullmatch(text) and "." not in text:
        text = text.replace(",", "")
    if not _INTEGER.fullmatch(text):
        raise BadValue("not an integer")
    return int(text)


def to_decimal(value: Any) -> float:
    if isinstance(value, bool):
        raise BadValue("not a number")
    if isinstance(value, int | float):
        number = float(value)
    else:
        text = str(value).strip()
        if _GROUPED.fullmatch(text):
            text = text.replace(",", "")
        try:
            number = float(text)
        except ValueError:
            raise BadValue("not a number") from None
        if not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?", text, re.I):
            raise BadValue("not a number")  # float() also takes 'nan', 'inf', '1_000'
    if not math.isfinite(number):
        raise BadValue("not a number")
    return number


def _date_parts(text: str) -> tuple[date, int]:
    match = _DATE.match(text)
    if not match:
        raise BadValue("not a date")
    g = match.groups()
    month, day = next((int(m), int(d)) for m, d in ((g[1], g[2]), (g[3], g[4]), (g[5], g[6])) if m)
    try:
        return date(int(g[0]), month, day), match.end()
    except ValueError:
        raise BadValue("not a real date") from None


def to_date(value: Any) -> date:
    if isinstance(value, datetime):
        if value.time() != time():
            raise BadValue("not a date (has a time of day)")
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    day, end = _date_parts(text)
    if end != len(text):
        raise BadValue("not a date")
    return day


def to_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=CHINA_TIME) if value.tzinfo is None else value
    if isinstance(value, date):
        return datetime.combine(value, time(), CHINA_TIME)
    text = str(value).strip()
    day, end = _date_parts(text)
    clock = _TIME.match(text, end)
    zone = _ZONE.match(text, clock.end())
    if zone.end() != len(text):
        raise BadValue("not a date and time")
    h, m, s, frac = clock.groups()
    tz = CHINA_TIME if not zone.group(1) else _zone(zone.group(1))
    try:
        return datetime.combine(day, time(int(h or 0), int(m or 0), int(s or 0), int((frac or "0").ljust(6, "0"))),
                                tz)
    except ValueError:
        raise BadValue("not a real time of day") from None


def _zone(text: str) -> timezone:
    if text == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    return timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))


def to_boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(int(value) if isinstance(value, float) and value.is_integer() else value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise BadValue("not 是/否 (true/false)")
