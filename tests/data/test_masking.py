"""Masking rules: the shipped defaults per personal kind, a district's own file, and bad files refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from citybrain.config import Settings
from citybrain.core.errors import Invalid
from citybrain.data import masking


@pytest.fixture
def rules() -> masking.MaskingRules:
    return masking.load_rules()


def test_id_number_keeps_region_and_last_four(rules):
    assert rules.mask("id_number", "370306199001011234") == "370306********1234"
    assert rules.mask("id_number", "37030690010112") == "370306****0112"  # 15-digit legacy (14 here: short)


def test_mobile_keeps_three_and_four(rules):
    assert rules.mask("mobile", "13912345678") == "139****5678"


def test_name_keeps_the_surname_including_compound_surnames(rules):
    assert rules.mask("name", "张三") == "张*"
    assert rules.mask("name", "李小龙") == "李**"
    assert rules.mask("name", "欧阳娜娜") == "欧阳**"
    assert rules.mask("name", "王") == "王*"


def test_address_keeps_up_to_the_township(rules):
    assert rules.mask("address", "山东省淄博市周村区丝绸路街道新建路12号") == "山东省淄博市周村区丝绸路街道" + "*" * 6
    assert rules.mask("address", "周村区南郊镇大付村3号") == "周村区南郊镇" + "*" * 5
    # No township word: only the first characters survive.
    assert rules.mask("address", "某某路一百号院二楼") == "某某路一百号***"


def test_unknown_kind_is_masked_completely_and_empty_values_stay_empty(rules):
    assert rules.mask("passport", "E12345678") == "*********"
    assert rules.mask("mobile", None) is None
    assert rules.mask("mobile", "") == ""


def test_short_values_are_masked_completely_never_shown(rules):
    assert rules.mask("id_number", "1234567890") == "**********"


def test_email_pattern_is_configuration(rules):
    assert rules.mask("email", "zhang.san@example.cn") == "z****@example.cn"


def test_a_district_file_replaces_the_shipped_rules(tmp_path: Path):
    path = tmp_path / "mask.toml"
    path.write_text('mask_char = "#"\n[kinds.id_number]\nmethod = "keep"\nkeep_first = 0\nkeep_last = 2\n'
                    '[kinds.default]\nmethod = "regex"\npattern = "\\\\d"\nreplace = "0"\n', encoding="utf-8")
    settings = Settings(data_dir=tmp_path, data_masking_file=str(path))
    rules = masking.rules_for(settings)
    assert rules.mask("id_number", "370306199001011234") == "################34"
    assert rules.mask("mobile", "139-1234") == "000-0000"  # default of this file
    assert masking.rules_for(Settings(data_dir=tmp_path)).mask("mobile", "13912345678") == "139****5678"


@pytest.mark.parametrize(("text", "message"), [
    ("[kinds.x]\nmethod = 'rot13'\n", "method 'rot13'"),
    ("[kinds.x]\nmethod = 'cut'\n", "kind 'x'"),
    ("[kinds.x]\nmethod = 'regex'\npattern = '('\n", "kind 'x'"),
    ("[kinds.x]\nmethod = 'keep'\nkeep_first = -1\n", "keep_first"),
    ("mask_char = '**'\n", "mask_char"),
    ("kinds = 3\n", "[kinds.<name>]"),
    ("[kinds\n", "masking rules"),
])
def test_bad_rule_files_are_refused_with_the_reason(text, message):
    with pytest.raises(Invalid, match=message.replace("[", r"\[").replace("(", r"\(")):
        masking.parse_rules(text, source="bad.toml")


def test_a_missing_file_is_an_error_not_unmasked_data(tmp_path: Path):
    with pytest.raises(Invalid, match="cannot read"):
        masking.load_rules(str(tmp_path / "absent.toml"))
