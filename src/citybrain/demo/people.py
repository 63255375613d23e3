"""Deterministic synthetic residents and enterprises for the demo district.

SYNTHETIC DATA: every name, ID number, mobile number, credit code, company name and address
produced here is generated from word lists and a seeded random number generator. They are
well-formed (check digits and check characters are valid) but do not describe real people,
households or businesses; any resemblance to a real one is coincidental. Road, village and
company words are generic vocabulary, not a gazetteer.

Township codes follow GB/T 10114: a 9-digit code whose last three digits are 001-099 for a
街道 (urban subdistrict) and 100-199 for a 镇 (town); the address style follows that split.

Every generator takes its own ``random.Random`` built from the seed, so output depends only on
the arguments (never on global random state or on ``PYTHONHASHSEED``).
"""

from __future__ import annotations

import random
from bisect import bisect
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import accumulate
from typing import Generic, Literal, TypeVar

from citybrain.data.identifiers import (
    CREDIT_ALPHABET,
    make_credit_code,
    make_id_number,
    make_org_code,
)

from .vocabulary import (  # noqa: F401 - re-exported for the generators below
    _AGE_BANDS,
    _COMPOUND_WORDS,
    _COOPERATIVE_WORDS,
    _GIVEN_FEMALE,
    _GIVEN_MALE,
    _GIVEN_NEUTRAL,
    _HOUSEHOLD_SIZES,
    _INDIVIDUAL_SHOP_WORDS,
    _INDUSTRY_WEIGHTS,
    _INDUSTRY_WORDS,
    _MOBILE_PREFIXES,
    _ROADS,
    _SURNAMES,
    _TRADE_CHARS,
    _VILLAGE_SUFFIXES,
    _VILLAGE_WORDS,
)

__all__ = [
    "ENTERPRISE_STATUSES",
    "INDUSTRY_SECTIONS",
    "ZHOUCUN_DIVISION_CODE",
    "ZHOUCUN_TOWNSHIPS",
    "Enterprise",
    "Resident",
    "generate_enterprises",
    "generate_residents",
]

ZHOUCUN_DIVISION_CODE = "370306"

ZHOUCUN_TOWNSHIPS: dict[str, str] = {
    "370306001": "丝绸路街道",
    "370306002": "大街街道",
    "370306003": "青年路街道",
    "370306004": "永安街道",
    "370306005": "城北路街道",
    "370306100": "北郊镇",
    "370306101": "南郊镇",
    "370306102": "王村镇",
    "370306103": "萌水镇",
    "370306104": "商家镇",
}

# GB/T 4754-2017 sections (门类). S (public administration) and T (international
# organisations) are omitted because they are not registered as market entities.
INDUSTRY_SECTIONS: dict[str, str] = {
    "A": "农、林、牧、渔业",
    "B": "采矿业",
    "C": "制造业",
    "D": "电力、热力、燃气及水生产和供应业",
    "E": "建筑业",
    "F": "批发和零售业",
    "G": "交通运输、仓储和邮政业",
    "H": "住宿和餐饮业",
    "I": "信息传输、软件和信息技术服务业",
    "J": "金融业",
    "K": "房地产业",
    "L": "租赁和商务服务业",
    "M": "科学研究和技术服务业",
    "N": "水利、环境和公共设施管理业",
    "O": "居民服务、修理和其他服务业",
    "P": "教育",
    "Q": "卫生和社会工作",
    "R": "文化、体育和娱乐业",
}

ENTERPRISE_STATUSES = ("存续", "在业", "注销")

Sex = Literal["M", "F"]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Resident:
    id_number: str
    name: str
    sex: Sex
    birth_date: date
    mobile: str
    township_code: str
    address: str
    household_id: str


@dataclass(frozen=True, slots=True)
class Enterprise:
    credit_code: str
    name: str
    legal_representative: str
    industry: str  # GB/T 4754 section letter, e.g. "C"
    industry_name: str  # the section's Chinese name, e.g. "制造业"
    registered_on: date
    registered_capital_wan: float  # 万元
    township_code: str
    address: str
    status: str




class _Weighted(Generic[T]):
    """Weighted choice via precomputed cumulative weights (faster than rng.choices per call)."""

    def __init__(self, items: tuple[tuple[T, float], ...]) -> None:
        self._values = [value for value, _ in items]
        self._cum = list(accumulate(weight for _, weight in items))

    def pick(self, rng: random.Random) -> T:
        return self._values[bisect(self._cum, rng.random() * self._cum[-1])]


_SURNAME_PICKER = _Weighted(_SURNAMES)
_AGE_BAND_PICKER = _Weighted(tuple(((lo, hi), w) for lo, hi, w in _AGE_BANDS))
_HOUSEHOLD_SIZE_PICKER = _Weighted(_HOUSEHOLD_SIZES)
_INDUSTRY_PICKER = _Weighted(tuple(_INDUSTRY_WEIGHTS.items()))

# Credit codes issued since the 2015 reform carry org codes beginning "MA"; older entities kept
# their all-digit code.
_CREDIT_REFORM_DATE = date(2015, 10, 1)
_ORG_BODY_ALPHABET = CREDIT_ALPHABET  # org codes embedded in credit codes avoid I O Z S V
_MAX_ATTEMPTS = 1000


# --------------------------------------------------------------------------------------------
# Residents
# --------------------------------------------------------------------------------------------


def generate_residents(
    seed: int, count: int, *, township_codes: list[str], today: date
) -> list[Resident]:
    """Generate ``count`` synthetic residents grouped into households.

    The ID region is the township code's first six digits (370306 for Zhoucun). IDs and mobile
    numbers are unique within one call.
    """
    _check_arguments(count, township_codes)
    rng = random.Random(f"citybrain.residents:{seed}")
    used_ids: set[str] = set()
    used_mobiles: set[str] = set()
    household_seq: dict[str, int] = {}
    residents: list[Resident] = []
    while len(residents) < count:
        township = rng.choice(township_codes)
        household_seq[township] = household_seq.get(township, 0) + 1
        household_id = f"H{township}{household_seq[township]:05d}"
        address = _home_address(rng, township)
        size = min(_HOUSEHOLD_SIZE_PICKER.pick(rng), count - len(residents))
        family_surname = _SURNAME_PICKER.pick(rng)
        for member in range(size):
            # The registered head of a household must be an adult.
            min_age = 18 if member == 0 else 0
            birth = _birth_date(rng, today, min_age=min_age)
            sex: Sex = "M" if rng.random() < 0.51 else "F"
            # Most members share the family surname; the rest model spouses and in-laws.
            surname = family_surname if rng.random() < 0.7 else _SURNAME_PICKER.pick(rng)
            residents.append(
                Resident(
                    id_number=_unique_id_number(rng, township[:6], birth, sex, used_ids),
                    name=surname + _given_name(rng, sex),
                    sex=sex,
                    birth_date=birth,
                    mobile=_unique_mobile(rng, used_mobiles),
                    township_code=township,
                    address=address,
                    household_id=household_id,
                )
            )
    return residents


def _birth_date(rng: random.Random, today: date, *, min_age: int) -> date:
    lo, hi = _pick_age_band(rng, min_age)
    age = rng.randint(lo, hi)
    # Spread birthdays over the year so the person is exactly `age` years old today.
    latest = _years_before(today, age)
    earliest = _years_before(today, age + 1) + timedelta(days=1)
    return earliest + timedelta(days=rng.randrange((latest - earliest).days + 1))


def _pick_age_band(rng: random.Random, min_age: int) -> tuple[int, int]:
    while True:
        lo, hi = _AGE_BAND_PICKER.pick(rng)
        if hi >= min_age:
            return max(lo, min_age), hi


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February in a non-leap target year
        return day.replace(year=day.year - years, day=28)


def _unique_id_number(
    rng: random.Random, region: str, birth: date, sex: Sex, used: set[str]
) -> str:
    parity = 1 if sex == "M" else 0
    for _ in range(_MAX_ATTEMPTS):
        # Order 000 is avoided: it is not known to be issued.
        order = 2 * rng.randrange(1 if parity == 0 else 0, 500) + parity
        number = make_id_number(region, birth, order)
        if number not in used:
            used.add(number)
            return number
    raise RuntimeError(f"could not find a free ID order for birth date {birth}")


def _unique_mobile(rng: random.Random, used: set[str]) -> str:
    for _ in range(_MAX_ATTEMPTS):
        mobile = rng.choice(_MOBILE_PREFIXES) + f"{rng.randrange(100_000_000):08d}"
        if mobile not in used:
            used.add(mobile)
            return mobile
    raise RuntimeError("could not find a free mobile number")


def _given_name(rng: random.Random, sex: Sex) -> str:
    pool = _GIVEN_MALE if sex == "M" else _GIVEN_FEMALE
    if rng.random() < 0.25:
        return rng.choice(pool)
    first = rng.choice(_GIVEN_NEUTRAL) if rng.random() < 0.3 else rng.choice(pool)
    return first + rng.choice(pool)


def _township_name(code: str) -> str:
    # Unknown codes still get a readable, clearly placeholder name.
    return ZHOUCUN_TOWNSHIPS.get(code) or f"{'街道' if _is_subdistrict(code) else '镇'}{code[-3:]}"


def _is_subdistrict(code: str) -> bool:
    return int(code[6:9]) < 100


def _home_address(rng: random.Random, township: str) -> str:
    name = _township_name(township)
    if _is_subdistrict(township):
        compound = rng.choice(_ROADS)[:2] + rng.choice(_COMPOUND_WORDS)
        building, unit, room = rng.randint(1, 30), rng.randint(1, 4), _room_number(rng)
        return (
            f"{name}{rng.choice(_ROADS)}{rng.randint(1, 200)}号"
            f"{compound}{building}号楼{unit}单元{room}"
        )
    return f"{name}{_village_name(rng)}{rng.randint(1, 300)}号"


def _room_number(rng: random.Random) -> str:
    return f"{rng.randint(1, 18)}{rng.randint(1, 4):02d}"


def _village_name(rng: random.Random) -> str:
    return rng.choice(_VILLAGE_WORDS) + rng.choice(_VILLAGE_SUFFIXES)


# --------------------------------------------------------------------------------------------
# Enterprises
# --------------------------------------------------------------------------------------------

# (authority, entity type, relative weight): 91 company, 92 individual business,
# 93 farmers' cooperative, N2 village collective economic organisation (codes from GB 32100).
_ENTITY_KINDS: tuple[tuple[tuple[str, str], int], ...] = (
    (("9", "1"), 70),
    (("9", "2"), 20),
    (("9", "3"), 7),
    (("N", "2"), 3),
)
_ENTITY_KIND_PICKER = _Weighted(_ENTITY_KINDS)


def generate_enterprises(
    seed: int, count: int, *, township_codes: list[str], today: date
) -> list[Enterprise]:
    """Generate ``count`` synthetic market entities with unique credit codes and names."""
    _check_arguments(count, township_codes)
    rng = random.Random(f"citybrain.enterprises:{seed}")
    used_codes: set[str] = set()
    used_names: set[str] = set()
    enterprises: list[Enterprise] = []
    for _ in range(count):
        authority, entity_type = _ENTITY_KIND_PICKER.pick(rng)
        township = rng.choice(township_codes)
        industry = _industry_for(rng, authority, entity_type)
        registered_on = _registration_date(rng, today)
        org_code = _org_code(rng, registered_on)
        credit_code = make_credit_code(authority, entity_type, township[:6], org_code)
        if credit_code in used_codes:
            # Vanishingly rare; redraw only the org code so the rest of the stream is unchanged.
            credit_code = _unique_credit_code(rng, authority, entity_type, township, used_codes)
        used_codes.add(credit_code)
        enterprises.append(
            Enterprise(
                credit_code=credit_code,
                name=_unique_enterprise_name(
                    rng, authority, entity_type, industry, township, used_names
                ),
                legal_representative=_random_person_name(rng),
                industry=industry,
                industry_name=INDUSTRY_SECTIONS[industry],
                registered_on=registered_on,
                registered_capital_wan=_registered_capital(rng, entity_type, authority),
                township_code=township,
                address=_business_address(rng, township),
                status=_status(rng),
            )
        )
    return enterprises


def _industry_for(rng: random.Random, authority: str, entity_type: str) -> str:
    if authority == "N" or entity_type == "3":
        return "A"
    if entity_type == "2":
        return rng.choice(("F", "F", "F", "H", "O"))
    return _INDUSTRY_PICKER.pick(rng)


def _registration_date(rng: random.Random, today: date) -> date:
    # Skew towards recent years: most live market entities were registered after 2010.
    start = date(1992, 1, 1)
    span = (today - start).days
    return start + timedelta(days=int(span * rng.random() ** 0.5))


def _org_code(rng: random.Random, registered_on: date) -> str:
    if registered_on >= _CREDIT_REFORM_DATE:
        body = "MA" + "".join(rng.choice(_ORG_BODY_ALPHABET) for _ in range(6))
    else:
        body = f"{rng.randrange(10_000_000, 100_000_000):08d}"
    return make_org_code(body)


def _unique_credit_code(
    rng: random.Random, authority: str, entity_type: str, township: str, used: set[str]
) -> str:
    for _ in range(_MAX_ATTEMPTS):
        org_code = make_org_code("MA" + "".join(rng.choice(_ORG_BODY_ALPHABET) for _ in range(6)))
        code = make_credit_code(authority, entity_type, township[:6], org_code)
        if code not in used:
            return code
    raise RuntimeError("could not find a free credit code")


def _unique_enterprise_name(
    rng: random.Random,
    authority: str,
    entity_type: str,
    industry: str,
    township: str,
    used: set[str],
) -> str:
    for _ in range(_MAX_ATTEMPTS):
        name = _enterprise_name(rng, authority, entity_type, industry, township)
        if name not in used:
            used.add(name)
            return name
    raise RuntimeError("could not find a free enterprise name")


def _enterprise_name(
    rng: random.Random, authority: str, entity_type: str, industry: str, township: str
) -> str:
    trade = "".join(rng.sample(_TRADE_CHARS, 2))
    if authority == "N":
        return f"{_township_name(township)}{_village_name(rng)}股份经济合作社"
    if entity_type == "2":
        return f"周村区{trade}{rng.choice(_INDIVIDUAL_SHOP_WORDS)}"
    if entity_type == "3":
        return f"淄博市周村区{trade}{rng.choice(_COOPERATIVE_WORDS)}专业合作社"
    prefix = rng.choice(("淄博", "淄博", "山东"))
    form = rng.choice(("有限公司", "有限公司", "有限公司", "有限责任公司", "股份有限公司"))
    return f"{prefix}{trade}{rng.choice(_INDUSTRY_WORDS[industry])}{form}"


def _random_person_name(rng: random.Random) -> str:
    sex: Sex = "M" if rng.random() < 0.6 else "F"
    return _SURNAME_PICKER.pick(rng) + _given_name(rng, sex)


def _registered_capital(rng: random.Random, entity_type: str, authority: str) -> float:
    # Log-normal: many small registrations, a long tail of large ones (units of 10,000 yuan).
    if entity_type == "2" and authority == "9":
        return round(rng.lognormvariate(1.0, 0.8), 2)
    return round(min(rng.lognormvariate(5.0, 1.5), 500_000.0), 2)


def _business_address(rng: random.Random, township: str) -> str:
    name = _township_name(township)
    if _is_subdistrict(township):
        return f"{name}{rng.choice(_ROADS)}{rng.randint(1, 500)}号"
    return f"{name}{_village_name(rng)}{rng.randint(1, 300)}号"


def _status(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.55:
        return "存续"
    if roll < 0.88:
        return "在业"
    return "注销"


def _check_arguments(count: int, township_codes: list[str]) -> None:
    if count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    if not township_codes:
        raise ValueError("township_codes must not be empty")
    for code in township_codes:
        if len(code) != 9 or not code.isascii() or not code.isdigit():
            raise ValueError(f"township code must be 9 digits, got {code!r}")
