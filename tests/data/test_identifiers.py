import random
from datetime import date

import pytest

from citybrain.data.identifiers import (
    CREDIT_ALPHABET,
    IdentifierError,
    credit_check_char,
    id15_to_id18,
    id_check_digit,
    make_credit_code,
    make_id_number,
    make_org_code,
    org_code_check,
    validate_credit_code,
    validate_id_number,
    validate_mobile,
    validate_org_code,
)

TODAY = date(2025, 6, 1)

# Worked examples printed in the GB 11643 and GB 32100 / GB 11714 standard texts.
STANDARD_ID_FEMALE = "11010519491231002X"
STANDARD_ID_MALE = "440524188001010014"
STANDARD_CREDIT_CODE = "91350100M000100Y43"
STANDARD_ORG_BODY = "D2143569"

# The weight sequences are powers of a base modulo the check modulus; deriving them that way
# gives an oracle independent of the constants in the module under test.
ID_WEIGHTS_ORACLE = [pow(2, 17 - i, 11) for i in range(17)]
CREDIT_WEIGHTS_ORACLE = [pow(3, i, 31) for i in range(17)]


def _with_check(first17: str) -> str:
    return first17 + id_check_digit(first17)


def _credit_sum(first17: str) -> int:
    pairs = zip(first17, CREDIT_WEIGHTS_ORACLE, strict=True)
    return sum(CREDIT_ALPHABET.index(c) * w for c, w in pairs)


# ---- GB 11643 citizen ID ------------------------------------------------------------------


def test_standard_examples_validate():
    female = validate_id_number(STANDARD_ID_FEMALE, today=TODAY)
    assert female.region == "110105"
    assert female.birth_date == date(1949, 12, 31)
    assert female.sex == "F"
    assert female.number == STANDARD_ID_FEMALE

    male = validate_id_number(STANDARD_ID_MALE, today=TODAY)
    assert male.birth_date == date(1880, 1, 1)
    assert male.sex == "M"


def test_lowercase_x_is_accepted_and_normalised():
    info = validate_id_number(STANDARD_ID_FEMALE.lower(), today=TODAY)
    assert info.number == STANDARD_ID_FEMALE


def test_check_digit_matches_independent_oracle():
    rng = random.Random(7)
    for _ in range(500):
        first17 = "".join(rng.choice("0123456789") for _ in range(17))
        total = sum(int(c) * w for c, w in zip(first17, ID_WEIGHTS_ORACLE, strict=True))
        expected = (12 - total % 11) % 11
        assert id_check_digit(first17) == ("X" if expected == 10 else str(expected))


@pytest.mark.parametrize("number", [STANDARD_ID_FEMALE, STANDARD_ID_MALE])
def test_every_tampered_check_digit_is_rejected(number):
    for replacement in "0123456789X":
        if replacement == number[-1]:
            continue
        with pytest.raises(IdentifierError, match="check digit"):
            validate_id_number(number[:-1] + replacement, today=TODAY)


def test_tampered_body_digit_is_rejected():
    tampered = "11010519491231003X"  # order digit changed, check left as it was
    with pytest.raises(IdentifierError, match="check digit"):
        validate_id_number(tampered, today=TODAY)


@pytest.mark.parametrize(
    "bad",
    ["", "11010519491231002", "11010519491231002XX", "110105194912310020000"],
)
def test_wrong_length_is_rejected(bad):
    with pytest.raises(IdentifierError, match="18 characters"):
        validate_id_number(bad, today=TODAY)


def test_fifteen_digits_hint_at_conversion():
    with pytest.raises(IdentifierError, match="id15_to_id18"):
        validate_id_number("110105491231002", today=TODAY)


@pytest.mark.parametrize(
    "bad",
    [
        "1101051949123X002X",  # X before the last position
        "11010519491231A02X",
        "１１０１０５１９４９１２３１００２X",  # full-width digits
        "11010519491231002Y",
    ],
)
def test_wrong_characters_are_rejected(bad):
    with pytest.raises(IdentifierError, match="17 digits"):
        validate_id_number(bad, today=TODAY)


def test_feb_29_only_in_leap_years():
    with pytest.raises(IdentifierError, match="not a real calendar date"):
        validate_id_number(_with_check("37030620230229001"), today=TODAY)
    info = validate_id_number(_with_check("37030620240229001"), today=TODAY)
    assert info.birth_date == date(2024, 2, 29)


@pytest.mark.parametrize("yyyymmdd", ["19901301", "19900100", "19900431", "19000229"])
def test_impossible_dates_are_rejected(yyyymmdd):
    with pytest.raises(IdentifierError, match="not a real calendar date"):
        validate_id_number(_with_check(f"370306{yyyymmdd}001"), today=TODAY)


def test_future_birth_date_is_rejected_but_today_is_allowed():
    with pytest.raises(IdentifierError, match="future"):
        validate_id_number(_with_check("37030620250602001"), today=TODAY)
    assert validate_id_number(_with_check("37030620250601001"), today=TODAY).birth_date == TODAY


def test_far_future_is_rejected_with_default_today():
    with pytest.raises(IdentifierError, match="future"):
        validate_id_number(_with_check("37030629990101001"))


def test_implausibly_early_birth_is_rejected():
    with pytest.raises(IdentifierError, match="early"):
        validate_id_number(_with_check("37030617990101001"), today=TODAY)


def test_region_with_leading_zero_is_rejected():
    with pytest.raises(IdentifierError, match="region"):
        validate_id_number(_with_check("01030619900101001"), today=TODAY)


def test_id15_to_id18():
    assert id15_to_id18("110105491231002") == STANDARD_ID_FEMALE
    assert id15_to_id18("370306900517123") == "370306199005171239"


@pytest.mark.parametrize("bad", ["11010549123100", "1101054912310021", "11010549123100X"])
def test_id15_rejects_bad_input(bad):
    with pytest.raises(IdentifierError, match="15 digits"):
        id15_to_id18(bad)


def test_id15_with_impossible_date_is_rejected():
    with pytest.raises(IdentifierError, match="calendar date"):
        id15_to_id18("370306900230123")


def test_make_id_number_round_trips_and_sets_sex_by_parity():
    birth = date(1990, 5, 17)
    male = make_id_number("370306", birth, 123)
    female = make_id_number("370306", birth, 124)
    assert male == "370306199005171239"
    assert validate_id_number(male, today=TODAY).sex == "M"
    info = validate_id_number(female, today=TODAY)
    assert (info.sex, info.birth_date, info.region) == ("F", birth, "370306")
    assert make_id_number("370306", birth, 5) == "37030619900517005X"


@pytest.mark.parametrize("order", [-1, 1000])
def test_make_id_number_rejects_order_out_of_range(order):
    with pytest.raises(IdentifierError, match="order"):
        make_id_number("370306", date(1990, 1, 1), order)


@pytest.mark.parametrize("region", ["37030", "3703060", "37030A", "012345"])
def test_make_id_number_rejects_bad_region(region):
    with pytest.raises(IdentifierError, match="region"):
        make_id_number(region, date(1990, 1, 1), 1)


# ---- GB 11714 organization code -----------------------------------------------------------


def test_org_code_standard_example():
    assert org_code_check(STANDARD_ORG_BODY) == "X"
    assert validate_org_code("D2143569-X") == "D2143569X"
    assert validate_org_code("d2143569x") == "D2143569X"


def test_org_code_check_maps_eleven_to_zero_and_ten_to_x():
    assert org_code_check("00000000") == "0"  # sum 0 -> 11 -> "0"
    assert org_code_check("00000006") == "X"  # sum 12 -> 11 - 1 = 10 -> "X"
    # Letters count 10-35: "A" in the last position contributes 10 * 2 = 20 -> 11 - 9 = 2.
    assert org_code_check("0000000A") == "2"
    assert org_code_check("M000100Y") == "4"


def test_make_and_validate_org_code():
    code = make_org_code("MA3c1234")
    assert code[:8] == "MA3C1234"
    assert validate_org_code(code) == code


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("D2143569-1", "check character"),
        ("D21435691", "check character"),
        ("D2143569", "9 characters"),
        ("D2143-569X", "9 characters"),
        ("D21435*9X", "0-9 or A-Z"),
    ],
)
def test_validate_org_code_rejects(bad, message):
    with pytest.raises(IdentifierError, match=message):
        validate_org_code(bad)


# ---- GB 32100 unified social credit code --------------------------------------------------


def test_standard_credit_code_validates():
    info = validate_credit_code(STANDARD_CREDIT_CODE)
    assert info.authority == "9"
    assert info.entity_type == "1"
    assert info.region == "350100"
    assert info.org_code == "M000100Y4"
    assert info.code == STANDARD_CREDIT_CODE


def test_lowercase_credit_code_is_normalised():
    assert validate_credit_code(STANDARD_CREDIT_CODE.lower()).code == STANDARD_CREDIT_CODE


def test_credit_check_matches_independent_oracle():
    rng = random.Random(11)
    for _ in range(500):
        head = "".join(rng.choice(CREDIT_ALPHABET) for _ in range(17))
        expected = CREDIT_ALPHABET[-_credit_sum(head) % 31]
        assert credit_check_char(head) == expected


def test_outer_mod_when_sum_is_divisible_by_31():
    head = "91370306100000366"
    assert _credit_sum(head) % 31 == 0
    assert credit_check_char(head) == "0"
    info = validate_credit_code(head + "0")
    assert (info.region, info.org_code) == ("370306", "100000366")


@pytest.mark.parametrize("letter", list("IOZSV"))
def test_excluded_letters_are_rejected(letter):
    bad = STANDARD_CREDIT_CODE[:10] + letter + STANDARD_CREDIT_CODE[11:]
    with pytest.raises(IdentifierError, match=f"outside.*{letter}"):
        validate_credit_code(bad)
    with pytest.raises(IdentifierError, match="outside"):
        credit_check_char(bad[:17])


def test_tampered_credit_check_is_rejected():
    for replacement in CREDIT_ALPHABET:
        if replacement == STANDARD_CREDIT_CODE[-1]:
            continue
        with pytest.raises(IdentifierError, match="check character"):
            validate_credit_code(STANDARD_CREDIT_CODE[:-1] + replacement)


@pytest.mark.parametrize("bad", ["", STANDARD_CREDIT_CODE[:-1], STANDARD_CREDIT_CODE + "0"])
def test_credit_code_wrong_length(bad):
    with pytest.raises(IdentifierError, match="18 characters"):
        validate_credit_code(bad)


def test_credit_code_region_must_be_digits():
    head = "9135A100M000100Y4"
    with pytest.raises(IdentifierError, match="region"):
        validate_credit_code(head + credit_check_char(head))


def test_credit_code_with_bad_embedded_org_code_is_rejected():
    head = "91370306D21435690"  # the org code's own check should be X
    with pytest.raises(IdentifierError, match="organization code"):
        validate_credit_code(head + credit_check_char(head))


def test_make_credit_code_round_trips():
    org = make_org_code("MA3C1234")
    code = make_credit_code("9", "1", "370306", org)
    info = validate_credit_code(code)
    assert (info.authority, info.entity_type, info.region, info.org_code) == (
        "9",
        "1",
        "370306",
        org,
    )
    # Letter authorities (e.g. N for agricultural collectives) are allowed.
    assert validate_credit_code(make_credit_code("N", "2", "370306", org)).authority == "N"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("9", "1", "37030A", "D2143569X"), "region"),
        (("9", "1", "3703061", "D2143569X"), "region"),
        (("91", "1", "370306", "D2143569X"), "one character"),
        (("9", "1", "370306", "D21435691"), "check character"),
        (("I", "1", "370306", "D2143569X"), "outside"),
        (("9", "1", "370306", "O2143569X"), "check character|outside"),
    ],
)
def test_make_credit_code_rejects(args, message):
    with pytest.raises(IdentifierError, match=message):
        make_credit_code(*args)


def test_org_code_with_excluded_letter_cannot_enter_a_credit_code():
    org = make_org_code("SA3C1234")  # valid GB 11714, but S is outside the credit alphabet
    with pytest.raises(IdentifierError, match="outside"):
        make_credit_code("9", "1", "370306", org)


# ---- mobile numbers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "13812345678",
        "138 1234 5678",
        "138-1234-5678",
        "+86 138 1234 5678",
        "+8613812345678",
        "8613812345678",
        "86-138-1234-5678",
        "008613812345678",
        " 13812345678 ",
    ],
)
def test_valid_mobiles_normalise(raw):
    assert validate_mobile(raw) == "13812345678"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "12812345678",  # 12x is not a mobile range
        "10012345678",
        "1381234567",
        "138123456789",
        "+1 13812345678",
        "861381234567",
        "1381234567a",
        "１３８１２３４５６７８",  # full-width digits
        "+86",
    ],
)
def test_invalid_mobiles_are_rejected(raw):
    with pytest.raises(IdentifierError, match="mobile"):
        validate_mobile(raw)


def test_every_prefix_13_to_19_is_accepted():
    for second in "3456789":
        assert validate_mobile(f"1{second}012345678") == f"1{second}012345678"


def test_identifier_error_is_a_value_error():
    assert issubclass(IdentifierError, ValueError)
