"""The progress rule: linear trajectory from the 2020 baseline to the 2025 target."""

from __future__ import annotations

from datetime import date

import pytest

from citybrain.indicators.progress import assess, elapsed_fraction, expected_value

MID = date(2023, 7, 2)  # 913 of 1826 days: just about half way


def test_trajectory_runs_from_baseline_at_end_of_2020_to_target_at_end_of_2025():
    assert elapsed_fraction(date(2020, 6, 1)) == 0
    assert elapsed_fraction(date(2020, 12, 31)) == 0
    assert elapsed_fraction(MID) == pytest.approx(0.5, abs=0.001)
    assert elapsed_fraction(date(2025, 12, 31)) == 1
    assert elapsed_fraction(date(2027, 1, 1)) == 1
    assert expected_value(baseline=84, target=90, on=MID) == pytest.approx(87, abs=0.01)
    assert expected_value(baseline=84, target=None, on=MID) is None


@pytest.mark.parametrize(("value", "status"), [
    (87.5, "on_track"),  # beyond the expected ~87
    (87, "on_track"),
    (86.5, "at_risk"),  # short by 0.5, within a tenth of the 6-point gap
    (85, "behind"),  # short by 2
])
def test_increasing_indicator_against_the_expected_value_now(value, status):
    result = assess(baseline=84, target=90, op=">=", value=value, on=MID)
    assert result.status == status
    assert result.expected_now == pytest.approx(87, abs=0.01)


@pytest.mark.parametrize(("value", "status"), [(30, "on_track"), (32, "at_risk"), (40, "behind")])
def test_decreasing_target_counts_lower_values_as_progress(value, status):
    # 50 → ≤10: expected ~30 half way; tolerance a tenth of the 40-point gap (4)
    assert assess(baseline=50, target=10, op="<=", value=value, on=MID).status == status


def test_equals_target_below_baseline_is_decreasing_too():
    assert assess(baseline=50, target=10, op="=", value=29, on=MID).status == "on_track"
    assert assess(baseline=50, target=10, op="=", value=45, on=MID).status == "behind"


def test_after_2025_the_value_is_compared_with_the_target():
    after = date(2026, 11, 26)
    assert assess(baseline=84, target=90, op=">=", value=90, on=after).status == "on_track"
    assert assess(baseline=84, target=90, op=">=", value=89.5, on=after).status == "at_risk"
    assert assess(baseline=84, target=90, op=">=", value=88, on=after).status == "behind"
    assert assess(baseline=84, target=90, op=">=", value=88, on=after).expected_now == 90


def test_strictly_greater_target_is_not_met_by_the_target_itself_after_2025():
    after = date(2026, 1, 1)
    assert assess(baseline=3, target=10, op=">", value=10, on=after).status == "at_risk"
    assert assess(baseline=3, target=10, op=">", value=10.5, on=after).status == "on_track"


def test_no_value_or_no_target_is_no_data():
    assert assess(baseline=84, target=90, op=">=", value=None, on=MID).status == "no_data"
    result = assess(baseline=None, target=None, op=">=", value=95, on=MID)
    assert result.status == "no_data" and result.expected_now is None
    assert result.reason == "no target recorded (per plan)"


def test_without_a_baseline_the_target_is_the_yardstick():
    result = assess(baseline=None, target=6, op="=", value=6, on=MID)
    assert result.status == "on_track" and result.expected_now == 6
    assert assess(baseline=None, target=6, op="=", value=5.5, on=MID).status == "at_risk"
    assert assess(baseline=None, target=6, op="=", value=4, on=MID).status == "behind"


def test_unknown_operator_is_an_error():
    with pytest.raises(ValueError, match="unknown target operator"):
        assess(baseline=1, target=2, op="~", value=1, on=MID)
