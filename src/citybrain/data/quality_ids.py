"""GB 11643, GB 32100, GB 11714 and mobile-number checks as polars expressions (no Python per row).

Part of the quality engine (``quality_checks``): same ``Check`` shape, same null rule.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl

from .quality_checks import Check, _text

# GB/T 2260 province-level codes (the first two digits of every region code), looked up in a
# table rather than spelled out in a regex. Finer codes change every year; a rule narrows them
# with its ``regions`` parameter (e.g. ["370306"]).
PROVINCES = frozenset({
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37",
    "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64",
    "65", "71", "81", "82"})
_PROVINCE_NUMBERS = sorted(int(p) for p in PROVINCES)
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CREDIT_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
# Letters missing from the GB 32100 alphabet, as base-36 digit values: I, O, S, V (Z is last).
_CREDIT_GAPS = (18, 24, 28, 31)
_CREDIT_CHARS = "[0-9A-HJ-NP-RTUW-Y]"


# --- Chinese identifiers -------------------------------------------------------------------------


def _digit(n: pl.Expr, base: int, places: int, i: int) -> pl.Expr:
    """Digit ``i`` (0 = leftmost) of an integer holding ``places`` base-``base`` digits."""
    return (n // base ** (places - 1 - i)) % base


def _weight_table(weights: tuple[int, ...]) -> pl.Series:
    """Σ digit·weight for every number with ``len(weights)`` decimal digits (a lookup table)."""
    width = len(weights)
    numbers = np.arange(10**width, dtype=np.uint64)
    digits = (numbers[:, None] // (10 ** np.arange(width - 1, -1, -1, dtype=np.uint64))) % 10
    return pl.Series((digits * np.array(weights, dtype=np.uint64)).sum(axis=1))


# The 17 ID digits as chunks of 5, 4, 4 and 4 digits, each summed through a lookup table:
# four gathers instead of seventeen divisions per row.
_ID_CHUNKS = [(width, _weight_table(_ID_WEIGHTS[start:start + width]))
              for start, width in ((0, 5), (5, 4), (9, 4), (13, 4))]
_MONTH_DAY_OK = pl.Series([1 <= md // 100 <= 12 and 1 <= md % 100 <= (29 if md // 100 == 2 else
                           30 if md // 100 in (4, 6, 9, 11) else 31) for md in range(10_000)])
_LEAP = pl.Series([y % 4 == 0 and (y % 100 != 0 or y % 400 == 0) for y in range(10_000)])


def _id_checksum(n17: pl.Expr) -> pl.Expr:
    parts, shift = [], 17
    for width, table in _ID_CHUNKS:
        shift -= width
        parts.append(pl.lit(table).gather((n17 // 10**shift) % 10**width))
    return pl.sum_horizontal(parts) % 11


def _id_parts(s: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """First 17 digits as an integer and the check value (X = 10); null when not numeric.

    Right for 18-byte values (the only ones any later condition looks at): all 18 characters
    are read as one integer, and only the values ending in X are sliced.
    """
    number = s.str.to_integer(dtype=pl.UInt64, strict=False)
    x_last = s.str.ends_with("X")
    head = pl.when(x_last).then(s).str.slice(0, 17).str.to_integer(dtype=pl.UInt64, strict=False)
    return (pl.when(x_last).then(head).otherwise(number // 10),
            pl.when(x_last).then(pl.lit(10, pl.UInt64)).otherwise(number % 10))


def id_number(column: str, *, today: date, regions: list[str] | None = None, tmp: str = "_id_") -> Check:
    """GB 11643 citizen identity number; legacy 15-digit numbers are their own failure reason.

    A lower-case ``x`` check character is refused: the standard writes an upper-case X, and
    joins on ID numbers (cross-source checks, references) are case-sensitive.
    """
    s = _text(column)
    first17, check_value = _id_parts(s)
    stages = ((first17.alias(f"{tmp}n"), check_value.alias(f"{tmp}c")),
              (((pl.col(f"{tmp}n") // 1000) % 100_000_000).alias(f"{tmp}d"),))
    n17, actual, ymd = pl.col(f"{tmp}n"), pl.col(f"{tmp}c"), pl.col(f"{tmp}d")
    month_day = ymd % 10_000
    date_ok = pl.lit(_MONTH_DAY_OK).gather(month_day) & (
        (month_day != 229) | pl.lit(_LEAP).gather(ymd // 10_000))
    region_ok = (n17 // 10**15).is_in(_PROVINCE_NUMBERS)
    for_regions = [((n17 // 10 ** (17 - len(r))) == int(r)) for r in regions or []]
    if for_regions:
        region_ok = region_ok & pl.any_horizontal(for_regions)
    today_n = today.year * 10_000 + today.month * 100 + today.day
    check_ok = actual == (12 - _id_checksum(n17)) % 11
    valid = ((s.str.len_bytes() == 18) & n17.is_not_null() & region_ok & date_ok & (ymd <= today_n)
             & (ymd >= 18_000_101) & check_ok).fill_null(False)
    return Check([
        (s.str.contains(r"^[0-9]{15}$"), "legacy 15-digit ID number (convert it to 18 characters)"),
        (s.str.len_chars() != 18, "ID number must be 18 characters"),
        (s.str.contains(r"^[0-9]{17}x$"), "check character must be an upper-case X"),
        (~s.str.contains(r"^[0-9]{17}[0-9X]$"), "ID number must be 17 digits followed by a digit or X"),
        (~region_ok, "unknown region code"),
        (~date_ok, "birth date is not a real date"),
        (ymd > today_n, "birth date is in the future"),
        (ymd < 18_000_101, "birth date is before 1800"),
        (~check_ok, "wrong check character"),
    ], fast=s.is_not_null() & ~valid, stages=stages)


def _credit_value(v36: pl.Expr) -> pl.Expr:
    return v36 - sum((v36 > gap).cast(pl.Int64) for gap in _CREDIT_GAPS)


def _org_check_wrong(body8: pl.Expr, check_char: pl.Expr) -> pl.Expr:
    n = body8.str.to_integer(base=36, strict=False)
    total = pl.sum_horizontal([_digit(n, 36, 8, i) * w for i, w in enumerate(_ORG_WEIGHTS)])
    c9 = 11 - total % 11
    expected = pl.when(c9 == 10).then(33).when(c9 == 11).then(0).otherwise(c9)  # 33 = "X" in base 36
    return check_char.str.to_integer(base=36, strict=False) != expected


def credit_code(column: str) -> Check:
    """GB 32100 unified social credit code; the first character may be any alphabet character."""
    s = _text(column)
    head = s.str.slice(0, 12).str.to_integer(base=36, strict=False)
    tail = s.str.slice(12, 5).str.to_integer(base=36, strict=False)
    values = [_digit(head, 36, 12, i) for i in range(12)] + [_digit(tail, 36, 5, i) for i in range(5)]
    total = pl.sum_horizontal([_credit_value(v) * w for v, w in zip(values, _CREDIT_WEIGHTS, strict=True)])
    actual = _credit_value(s.str.slice(17, 1).str.to_integer(base=36, strict=False))
    return Check([
        (s.str.len_chars() != 18, "credit code must be 18 characters"),
        (~s.str.contains(f"^{_CREDIT_CHARS}{{18}}$"),
         "credit code has characters outside 0-9 and upper-case A-Y without I, O, S, V, Z"),
        (~s.str.contains(r"^..[0-9]{6}"), "region (characters 3-8) must be digits"),
        (actual != (31 - total % 31) % 31, "wrong check character"),
        (_org_check_wrong(s.str.slice(8, 8), s.str.slice(16, 1)), "embedded organization code is invalid"),
    ])


def org_code(column: str) -> Check:
    """GB 11714 organization code, 9 characters; the printed form XXXXXXXX-X is accepted."""
    s = _text(column).str.replace(r"^(.{8})-(.)$", "$1$2")
    return Check([
        (s.str.len_chars() != 9, "organization code must be 9 characters"),
        (~s.str.contains(r"^[0-9A-Z]{8}[0-9X]$"), "organization code must be 8 of 0-9/A-Z and a digit or X"),
        (_org_check_wrong(s.str.slice(0, 8), s.str.slice(8, 1)), "wrong check character"),
    ])


def mobile(column: str) -> Check:
    """11 digits starting 1[3-9], optionally after +86, 0086 or 86; no separators."""
    return Check([(~_text(column).str.contains(r"^(?:\+86|0086|86)?1[3-9][0-9]{9}$"),
                   "not a mainland mobile number (11 digits starting 13-19)")])
