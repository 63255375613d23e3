"""Pure validation and construction of Chinese identifiers.

Covers four schemes, written from the published rules:

* GB 11643 citizen identity number (公民身份号码), 18 characters, plus the legacy 15-digit form.
* GB 32100 unified social credit code (统一社会信用代码), 18 characters.
* GB 11714 organization code (组织机构代码), 9 characters (8 body + 1 check).
* Mainland mobile numbers (11 digits starting 1[3-9]).

Every validator raises :class:`IdentifierError` (a ``ValueError``) with an English message that
can be shown to an operator. Nothing here touches a database or the network.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Literal

__all__ = [
    "CREDIT_ALPHABET",
    "CreditCodeInfo",
    "IdNumberInfo",
    "IdentifierError",
    "credit_check_char",
    "id15_to_id18",
    "id_check_digit",
    "make_credit_code",
    "make_id_number",
    "make_org_code",
    "org_code_check",
    "validate_credit_code",
    "validate_id_number",
    "validate_mobile",
    "validate_org_code",
]


class IdentifierError(ValueError):
    """An identifier failed validation; the message says why in plain English."""


# Explicit ASCII classes: str.isdigit() would also accept full-width and other Unicode digits.
_DIGITS = frozenset("0123456789")
_UPPER = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")


# --------------------------------------------------------------------------------------------
# GB 11643 citizen identity number
# --------------------------------------------------------------------------------------------

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK_CHARS = "10X98765432"
# The standard's own worked example is born in 1880, so anything earlier is treated as a typo.
_EARLIEST_BIRTH = date(1800, 1, 1)


@dataclass(frozen=True, slots=True)
class IdNumberInfo:
    """Parts of a valid 18-character citizen identity number."""

    region: str
    birth_date: date
    sex: Literal["M", "F"]
    number: str


def id_check_digit(first17: str) -> str:
    """Return the GB 11643 check character ('0'-'9' or 'X') for 17 leading digits."""
    if len(first17) != 17 or not _all_in(first17, _DIGITS):
        raise IdentifierError("the first 17 characters of an ID number must be 17 digits")
    total = sum(int(ch) * w for ch, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK_CHARS[total % 11]


def validate_id_number(s: str, *, today: date | None = None) -> IdNumberInfo:
    """Validate an 18-character citizen ID number and return its parts.

    ``today`` bounds the birth date from above (defaults to the system date); passing it keeps
    callers and tests deterministic.
    """
    number = s.strip().upper()
    if len(number) != 18:
        hint = " (convert legacy 15-digit numbers with id15_to_id18)" if len(number) == 15 else ""
        raise IdentifierError(f"ID number must be 18 characters, got {len(number)}{hint}")
    if not _all_in(number[:17], _DIGITS) or number[17] not in _DIGITS | {"X"}:
        raise IdentifierError("ID number must be 17 digits followed by a digit or X")
    region = _check_id_region(number[:6])
    birth = _parse_birth_date(number[6:14], today=today)
    expected = id_check_digit(number[:17])
    if number[17] != expected:
        raise IdentifierError(f"ID number check digit is {number[17]} but should be {expected}")
    sex: Literal["M", "F"] = "M" if int(number[14:17]) % 2 == 1 else "F"
    return IdNumberInfo(region=region, birth_date=birth, sex=sex, number=number)


def id15_to_id18(s: str, *, today: date | None = None) -> str:
    """Convert a legacy 15-digit ID (YYMMDD, all born in the 1900s) to the 18-character form."""
    legacy = s.strip()
    if len(legacy) != 15 or not _all_in(legacy, _DIGITS):
        raise IdentifierError(f"legacy ID number must be 15 digits, got {legacy!r}")
    first17 = legacy[:6] + "19" + legacy[6:]
    converted = first17 + id_check_digit(first17)
    # Re-validate so an impossible birth date in the legacy number is reported, not propagated.
    validate_id_number(converted, today=today)
    return converted


def make_id_number(region: str, birth: date, order: int) -> str:
    """Build a valid ID number; ``order`` is the 3-digit sequence (odd = male, even = female)."""
    _check_id_region(region)
    if not 0 <= order <= 999:
        raise IdentifierError(f"ID order must be between 0 and 999, got {order}")
    if birth < _EARLIEST_BIRTH:
        raise IdentifierError(f"birth date {birth.isoformat()} is implausibly early")
    first17 = f"{region}{birth:%Y%m%d}{order:03d}"
    return first17 + id_check_digit(first17)


def _check_id_region(region: str) -> str:
    # GB/T 2260 codes start with a province digit 1-8; a leading 0 is never a real region.
    if len(region) != 6 or not _all_in(region, _DIGITS) or region[0] == "0":
        raise IdentifierError(f"region code must be 6 digits not starting with 0, got {region!r}")
    return region


def _parse_birth_date(yyyymmdd: str, *, today: date | None) -> date:
    try:
        birth = date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8]))
    except ValueError:
        raise IdentifierError(f"birth date {yyyymmdd} is not a real calendar date") from None
    limit = today if today is not None else date.today()
    if birth > limit:
        raise IdentifierError(f"birth date {birth.isoformat()} is in the future")
    if birth < _EARLIEST_BIRTH:
        raise IdentifierError(f"birth date {birth.isoformat()} is implausibly early")
    return birth


# --------------------------------------------------------------------------------------------
# GB 11714 organization code
# --------------------------------------------------------------------------------------------

_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
_ORG_BODY_CHARS = _DIGITS | _UPPER


def _org_char_value(ch: str) -> int:
    # Digits keep their value; letters A-Z count 10-35.
    return int(ch) if ch in _DIGITS else ord(ch) - ord("A") + 10


def org_code_check(first8: str) -> str:
    """Return the GB 11714 check character ('0'-'9' or 'X') for an 8-character body."""
    body = first8.upper()
    if len(body) != 8 or not _all_in(body, _ORG_BODY_CHARS):
        raise IdentifierError("organization code body must be 8 characters of 0-9 or A-Z")
    total = sum(_org_char_value(ch) * w for ch, w in zip(body, _ORG_WEIGHTS, strict=True))
    c9 = 11 - total % 11
    if c9 == 10:
        return "X"
    if c9 == 11:
        return "0"
    return str(c9)


def make_org_code(body8: str) -> str:
    """Append the GB 11714 check character to an 8-character body."""
    body = body8.upper()
    return body + org_code_check(body)


def validate_org_code(s: str) -> str:
    """Validate a 9-character organization code; return it normalised (upper case, no hyphen).

    The printed form ``XXXXXXXX-X`` is accepted.
    """
    code = s.strip().upper()
    if len(code) == 10 and code[8] == "-":
        code = code[:8] + code[9]
    if len(code) != 9:
        raise IdentifierError(f"organization code must be 9 characters, got {len(code)}")
    if not _all_in(code[:8], _ORG_BODY_CHARS):
        raise IdentifierError("organization code body must be 8 characters of 0-9 or A-Z")
    expected = org_code_check(code[:8])
    if code[8] != expected:
        raise IdentifierError(
            f"organization code check character is {code[8]} but should be {expected}"
        )
    return code


# --------------------------------------------------------------------------------------------
# GB 32100 unified social credit code
# --------------------------------------------------------------------------------------------

# I, O, Z, S and V are excluded because they are easily confused with 1, 0, 2, 5 and U.
CREDIT_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CREDIT_VALUE = {ch: i for i, ch in enumerate(CREDIT_ALPHABET)}
_CREDIT_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


@dataclass(frozen=True, slots=True)
class CreditCodeInfo:
    """Parts of a valid unified social credit code."""

    authority: str
    entity_type: str
    region: str
    org_code: str
    code: str


def credit_check_char(first17: str) -> str:
    """Return the GB 32100 check character for the first 17 characters."""
    head = first17.upper()
    if len(head) != 17:
        raise IdentifierError("the first part of a credit code must be 17 characters")
    _check_credit_alphabet(head)
    total = sum(_CREDIT_VALUE[ch] * w for ch, w in zip(head, _CREDIT_WEIGHTS, strict=True))
    # Without the outer mod a sum divisible by 31 would index past the end of the alphabet.
    return CREDIT_ALPHABET[(31 - total % 31) % 31]


def validate_credit_code(s: str) -> CreditCodeInfo:
    """Validate an 18-character unified social credit code and return its parts.

    The embedded organization code (characters 9-17) must carry a valid GB 11714 check.
    """
    code = s.strip().upper()
    if len(code) != 18:
        raise IdentifierError(f"credit code must be 18 characters, got {len(code)}")
    _check_credit_alphabet(code)
    region = code[2:8]
    if not _all_in(region, _DIGITS):
        raise IdentifierError(f"credit code region (characters 3-8) must be digits, got {region}")
    expected = credit_check_char(code[:17])
    if code[17] != expected:
        raise IdentifierError(f"credit code check character is {code[17]} but should be {expected}")
    org_code = code[8:17]
    try:
        validate_org_code(org_code)
    except IdentifierError as exc:
        raise IdentifierError(f"credit code contains an invalid organization code: {exc}") from None
    return CreditCodeInfo(
        authority=code[0], entity_type=code[1], region=region, org_code=org_code, code=code
    )


def make_credit_code(authority: str, entity_type: str, region: str, org_code9: str) -> str:
    """Build a credit code from its parts; ``org_code9`` is a full, valid 9-character org code."""
    if len(authority) != 1 or len(entity_type) != 1:
        raise IdentifierError("authority and entity type must be one character each")
    if len(region) != 6 or not _all_in(region, _DIGITS):
        raise IdentifierError(f"credit code region must be 6 digits, got {region!r}")
    org_code = validate_org_code(org_code9)
    first17 = (authority + entity_type).upper() + region + org_code
    return first17 + credit_check_char(first17)


def _check_credit_alphabet(text: str) -> None:
    bad = sorted({ch for ch in text if ch not in _CREDIT_VALUE})
    if bad:
        raise IdentifierError(
            f"credit code contains characters outside {CREDIT_ALPHABET}: {''.join(bad)!r}"
        )


# --------------------------------------------------------------------------------------------
# Mainland mobile numbers
# --------------------------------------------------------------------------------------------

_MOBILE_RE = re.compile(r"1[3-9][0-9]{9}", re.ASCII)
_MOBILE_SEPARATORS = str.maketrans("", "", " -\u00a0\t")


def validate_mobile(s: str) -> str:
    """Validate a mainland mobile number and return it as 11 bare digits.

    Spaces and dashes are ignored and a +86 / 0086 / 86 country prefix is removed. The prefix
    is not mapped to a carrier because numbers can be ported.
    """
    raw = s.strip().translate(_MOBILE_SEPARATORS)
    for prefix in ("+86", "0086"):
        if raw.startswith(prefix):
            raw = raw[len(prefix) :]
            break
    else:
        # A bare "86" is only a country prefix when the rest is a full 11-digit number.
        if len(raw) == 13 and raw.startswith("86"):
            raw = raw[2:]
    if not _MOBILE_RE.fullmatch(raw):
        raise IdentifierError(f"{s!r} is not a mainland mobile number (11 digits starting 13-19)")
    return raw


def _all_in(text: str, allowed: frozenset[str]) -> bool:
    return all(ch in allowed for ch in text)
