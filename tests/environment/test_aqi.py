"""HJ 633-2012 AQI: hand-computed IAQIs at and just past breakpoints, and the special rules."""

import math

import pytest

from citybrain.environment import aqi


@pytest.mark.parametrize(
    ("pollutant", "period", "concentration", "expected"),
    [
        ("pm25", "24h", 0, 0),
        ("pm25", "24h", 35, 50),
        ("pm25", "24h", 36, 52),  # 50 + 50/40·1 = 51.25 → 52
        ("pm25", "24h", 75, 100),
        ("pm25", "24h", 76, 102),  # 50 + 50/40·41 = 101.25 → 102
        ("pm25", "24h", 250, 300),
        ("pm25", "24h", 500, 500),
        ("pm10", "24h", 150, 100),
        ("pm10", "24h", 151, 101),  # 100 + 50/100·1 = 100.5 → 101
        ("so2", "24h", 100, 75),
        ("so2", "1h", 150, 50),
        ("so2", "1h", 151, 51),  # 50 + 50/350·1 = 50.14 → 51
        ("so2", "1h", 800, 200),
        ("no2", "24h", 30, 38),  # 37.5 → 38
        ("no2", "1h", 200, 100),
        ("co", "24h", 4, 100),
        ("co", "24h", 4.1, 101),  # 100 + 50/10·0.1 = 100.5 → 101
        ("co", "1h", 5, 50),
        ("o3", "1h", 160, 50),
        ("o3", "1h", 1000, 400),
        ("o3", "8h", 160, 100),
        ("o3", "8h", 161, 101),  # 100 + 50/55·1 = 100.9 → 101
        ("o3", "8h", 800, 300),
    ],
)
def test_iaqi_is_the_linear_interpolation_rounded_up(pollutant, period, concentration, expected):
    assert aqi.iaqi(pollutant, period, concentration) == expected


def test_iaqi_on_a_decimal_value_does_not_round_up_on_float_noise():
    # In binary floats (2.2 − 2)·25 + 50 = 55.000000000000004, whose ceiling would be 56.
    assert aqi.iaqi("co", "24h", 2.2) == 55


def test_hourly_particulates_use_the_24_hour_breakpoints():
    assert aqi.iaqi("pm25", "1h", 76) == 102
    assert aqi.iaqi("pm10", "1h", 151) == 101


def test_above_the_top_breakpoint_scores_500():
    assert aqi.iaqi("pm25", "24h", 800) == 500


def test_so2_hourly_above_800_and_o3_8_hour_above_800_are_not_scored():
    assert aqi.iaqi("so2", "1h", 801) is None
    assert aqi.iaqi("o3", "8h", 801) is None


@pytest.mark.parametrize("bad", [-1, math.nan, math.inf, "12", True])
def test_iaqi_refuses_values_that_are_not_concentrations(bad):
    with pytest.raises(ValueError):
        aqi.iaqi("pm25", "24h", bad)


def test_iaqi_refuses_a_pollutant_period_without_breakpoints():
    with pytest.raises(ValueError, match="pm25 8h"):
        aqi.iaqi("pm25", "8h", 10)


def test_daily_aqi_is_the_largest_iaqi_with_primary_and_exceeding_pollutants():
    result = aqi.daily_aqi(so2=10, no2=30, co=0.5, pm10=151, pm25=76, o3_8h=100, o3_1h=120)
    assert result.iaqi == {"so2": 10, "no2": 38, "co": 13, "pm10": 101, "pm25": 102, "o3_1h": 38, "o3_8h": 50}
    assert result.aqi == 102
    assert (result.level.number, result.level.name) == (3, "轻度污染")
    assert result.primary == ("pm25",)
    assert result.exceeding == ("pm10", "pm25")


def test_pollutants_tied_at_the_aqi_are_all_primary():
    result = aqi.daily_aqi(pm10=150, pm25=75)
    assert result.aqi == 100
    assert result.primary == ("pm10", "pm25")
    assert result.exceeding == ()


def test_no_primary_pollutant_when_aqi_is_50_or_less():
    result = aqi.daily_aqi(pm25=35, pm10=20)
    assert result.aqi == 50
    assert result.level.name == "优"
    assert result.primary == ()


def test_o3_8_hour_above_800_reports_the_1_hour_iaqi():
    result = aqi.daily_aqi(o3_8h=900, o3_1h=1000)
    assert result.iaqi["o3_8h"] == 400
    assert result.aqi == 400
    with pytest.raises(aqi.SpecialRule, match="o3_1h"):
        aqi.daily_aqi(o3_8h=900)


def test_so2_hourly_above_800_reports_the_24_hour_iaqi():
    result = aqi.hourly_aqi(so2=900, so2_24h=100, pm25=20)
    assert result.iaqi["so2"] == 75
    assert result.primary == ("so2",)
    with pytest.raises(aqi.SpecialRule, match="so2_24h"):
        aqi.hourly_aqi(so2=900)


def test_hourly_aqi_scores_one_hour_means():
    result = aqi.hourly_aqi(so2=151, no2=200, co=5, o3=160, pm10=151, pm25=76)
    assert result.iaqi == {"so2": 51, "no2": 100, "co": 50, "o3": 50, "pm10": 101, "pm25": 102}
    assert result.aqi == 102


def test_aqi_needs_at_least_one_pollutant():
    with pytest.raises(ValueError):
        aqi.hourly_aqi()


@pytest.mark.parametrize(
    ("value", "number", "name"),
    [
        (0, 1, "优"),
        (50, 1, "优"),
        (51, 2, "良"),
        (100, 2, "良"),
        (101, 3, "轻度污染"),
        (150, 3, "轻度污染"),
        (151, 4, "中度污染"),
        (200, 4, "中度污染"),
        (201, 5, "重度污染"),
        (300, 5, "重度污染"),
        (301, 6, "严重污染"),
        (500, 6, "严重污染"),
    ],
)
def test_levels_follow_the_aqi_bands(value, number, name):
    level = aqi.level_for(value)
    assert (level.number, level.name) == (number, name)
