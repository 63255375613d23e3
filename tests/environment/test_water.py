"""GB 3838-2002 single-factor classes at their limits, and the worst-factor overall class."""

import math

import pytest

from citybrain.environment.water import WaterClass, assess, factor_class

I, II, III, IV, V, WORSE = (  # noqa: E741 — the standard names classes I–V
    WaterClass.I,
    WaterClass.II,
    WaterClass.III,
    WaterClass.IV,
    WaterClass.V,
    WaterClass.WORSE_THAN_V,
)


@pytest.mark.parametrize(
    ("parameter", "value", "expected"),
    [
        ("do", 9.0, I),
        ("do", 7.5, I),
        ("do", 7.49, II),
        ("do", 6, II),
        ("do", 5, III),
        ("do", 3, IV),
        ("do", 2, V),
        ("do", 1.99, WORSE),
        ("codmn", 2, I),
        ("codmn", 2.1, II),
        ("codmn", 15, V),
        ("codmn", 15.1, WORSE),
        ("cod", 15, I),  # I and II share 15 mg/L: the better class
        ("cod", 15.1, III),
        ("cod", 20, III),
        ("cod", 30, IV),
        ("cod", 40, V),
        ("cod", 40.1, WORSE),
        ("bod5", 3, I),
        ("bod5", 3.1, III),
        ("bod5", 10, V),
        ("bod5", 10.5, WORSE),
        ("nh3n", 0.15, I),
        ("nh3n", 0.16, II),
        ("nh3n", 0.5, II),
        ("nh3n", 1.0, III),
        ("nh3n", 1.5, IV),
        ("nh3n", 2.0, V),
        ("nh3n", 2.01, WORSE),
        ("tp", 0.02, I),
        ("tp", 0.021, II),
        ("tp", 0.1, II),
        ("tp", 0.2, III),
        ("tp", 0.3, IV),
        ("tp", 0.4, V),
        ("tp", 0.41, WORSE),
    ],
)
def test_single_factor_class_at_the_limits(parameter, value, expected):
    assert factor_class(parameter, value) is expected


def test_worse_than_v_is_labelled_lie_v():
    assert WORSE.label == "劣V"
    assert III.label == "III"


def test_overall_class_is_the_worst_factor():
    result = assess({"ph": 7.2, "do": 6.5, "cod": 18, "nh3n": 0.4, "tp": 0.25, "turbidity": 12})
    assert result.factors == {"do": II, "cod": III, "nh3n": II, "tp": IV}
    assert result.overall is IV
    assert result.worst == ("tp",)
    assert result.ph_in_range is True
    assert result.unclassified == ("turbidity",)


def test_ph_outside_6_to_9_is_flagged_not_classed():
    assert assess({"ph": 9.5, "do": 8}).ph_in_range is False
    assert assess({"ph": 6.0}).ph_in_range is True
    assert assess({"do": 8}).ph_in_range is None


def test_assess_without_classified_parameters_has_no_class():
    result = assess({"turbidity": 3})
    assert result.overall is None
    assert result.worst == ()


@pytest.mark.parametrize("bad", [-0.1, math.nan, math.inf, True, "1"])
def test_factor_class_refuses_values_that_are_not_measurements(bad):
    with pytest.raises(ValueError):
        factor_class("do", bad)


def test_factor_class_refuses_parameters_it_does_not_know():
    with pytest.raises(ValueError, match="turbidity"):
        factor_class("turbidity", 3)
