"""Rules as data and the engine that turns readings into raise/clear signals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from citybrain.iot.rules import (
    Kind,
    RuleEngine,
    Severity,
    SignalAction,
    parse_rule,
)

T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
NAN = float("nan")


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def rule(kind: str, params: dict, **extra):
    return parse_rule({"id": f"r-{kind}", "name": f"{kind} rule", "product": "aq", "property": "pm25",
                       "kind": kind, "params": params} | extra)


def feed(engine: RuleEngine, readings, device: str = "st-1", prop: str = "pm25"):
    """Feed (minute, value) readings; returns the signal actions in order with their minute."""
    out = []
    for minute, value in readings:
        for signal in engine.on_message(device, "aq", {prop: value}, at(minute)):
            out.append((minute, signal.action.value))
    return out


# --- parsing -----------------------------------------------------------------------------------

def test_parse_rule_builds_a_frozen_rule_with_defaults():
    r = parse_rule({"id": "pm25-high", "product": "aq", "property": "pm25", "kind": "threshold",
                    "params": {"op": ">", "value": 75}, "severity": "CRITICAL", "dispatch": True,
                    "category_code": "TE0301"})
    assert r.kind is Kind.THRESHOLD and r.severity is Severity.CRITICAL and r.device is None
    assert r.name == "pm25-high" and r.params["value"] == 75.0 and r.dispatch
    with pytest.raises(AttributeError):
        r.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        r.params["value"] = 1  # type: ignore[index]


@pytest.mark.parametrize(("data", "reason"), [
    ({"kind": "sometimes"}, "unknown kind 'sometimes'"),
    ({"kind": "threshold", "params": {"op": "=>", "value": 1}}, "unknown operator '=>'"),
    ({"kind": "threshold", "params": {"value": 1}}, "missing parameter 'op'"),
    ({"kind": "threshold", "params": {"op": ">"}}, "missing parameter 'value'"),
    ({"kind": "threshold", "params": {"op": ">", "value": "high"}}, "'value' must be a number"),
    ({"kind": "range", "params": {"min": 1}}, "missing parameter 'max'"),
    ({"kind": "range", "params": {"min": 5, "max": 1}}, "min 5.0 is greater than max 1.0"),
    ({"kind": "range", "params": {"min": 1, "max": 5, "mode": "around"}}, "range mode"),
    ({"kind": "rate_of_change", "params": {"value": 2}}, "missing parameter 'window_minutes'"),
    ({"kind": "rate_of_change", "params": {"value": -2, "window_minutes": 5}}, "must not be negative"),
    ({"kind": "held_for", "params": {"op": ">", "value": 1, "minutes": -5}}, "positive number of minutes"),
    ({"kind": "held_for", "params": {"minutes": 5}}, "needs a condition"),
    ({"kind": "no_data", "params": {}}, "missing parameter 'minutes'"),
    ({"kind": "no_data", "params": {"minutes": 0}}, "positive number of minutes"),
    ({"kind": "threshold", "params": {"op": ">", "value": 1}, "severity": "fatal"}, "unknown severity"),
    ({"kind": "threshold", "params": {"op": ">", "value": 1}, "dispatch": True}, "needs a 'category_code'"),
    ({"kind": "threshold", "params": {"op": ">", "value": 1}, "property": ""}, "missing 'property'"),
])
def test_parse_rule_refuses_bad_definitions_with_the_reason(data, reason):
    base = {"id": "r1", "product": "aq", "property": "pm25", "params": {}}
    with pytest.raises(ValueError, match="rule 'r1'") as err:
        parse_rule(base | data)
    assert reason in str(err.value)


def test_parse_rule_without_id_is_refused():
    with pytest.raises(ValueError, match="without an 'id'"):
        parse_rule({"product": "aq", "property": "pm25", "kind": "no_data", "params": {"minutes": 5}})


# --- threshold and range -----------------------------------------------------------------------

def test_threshold_raises_on_entering_and_clears_on_leaving_only_once_each():
    engine = RuleEngine([rule("threshold", {"op": ">", "value": 75})])
    signals = feed(engine, [(0, 50), (1, 80), (2, 90), (3, 100), (4, 60), (5, 40), (6, 76)])
    assert signals == [(1, "raise"), (4, "clear"), (6, "raise")]


@pytest.mark.parametrize(("op", "raises_at_75"), [(">", False), (">=", True), ("<", False), ("<=", True),
                                                 ("==", True), ("!=", False)])
def test_threshold_value_equal_to_the_limit(op, raises_at_75):
    engine = RuleEngine([rule("threshold", {"op": op, "value": 75})])
    signals = engine.on_message("st-1", "aq", {"pm25": 75}, T0)
    assert bool(signals) is raises_at_75


def test_threshold_ignores_nan_missing_and_non_numeric_readings():
    engine = RuleEngine([rule("threshold", {"op": ">", "value": 75})])
    assert feed(engine, [(0, 80), (1, NAN), (2, None), (3, "n/a"), (4, True)]) == [(0, "raise")]
    assert feed(engine, [(5, 10)]) == [(5, "clear")]
    assert engine.on_message("st-1", "aq", {"pm10": 10}, at(6)) == []


def test_threshold_equality_works_on_booleans():
    r = parse_rule({"id": "open", "product": "manhole", "property": "open", "kind": "threshold",
                    "params": {"op": "==", "value": True}})
    engine = RuleEngine([r])
    assert [s.action for s in engine.on_message("mh-1", "manhole", {"open": True}, T0)] == [SignalAction.RAISE]
    assert [s.action for s in engine.on_message("mh-1", "manhole", {"open": False}, at(1))] == [SignalAction.CLEAR]


def test_signal_carries_rule_device_value_time_and_message():
    engine = RuleEngine([rule("threshold", {"op": ">", "value": 75})])
    [signal] = engine.on_message("st-1", "aq", {"pm25": 80}, T0)
    assert (signal.rule.id, signal.device, signal.product, signal.value, signal.at) == \
        ("r-threshold", "st-1", "aq", 80, T0)
    assert "pm25 = 80 > 75" in signal.message


def test_range_outside_and_inside_with_inclusive_edges():
    outside = RuleEngine([rule("range", {"min": 6.0, "max": 9.0})])  # pH
    assert feed(outside, [(0, 6.0), (1, 9.0), (2, 9.1), (3, 8.0), (4, 5.9), (5, NAN), (6, 6.0)]) == \
        [(2, "raise"), (3, "clear"), (4, "raise"), (6, "clear")]
    inside = RuleEngine([rule("range", {"min": 0, "max": 10, "mode": "inside"})])
    assert feed(inside, [(0, 11), (1, 10), (2, 10.5)]) == [(1, "raise"), (2, "clear")]


def test_rules_apply_per_product_and_device_with_separate_state():
    only_one = rule("threshold", {"op": ">", "value": 75}, device="st-2")
    engine = RuleEngine([only_one])
    assert engine.on_message("st-1", "aq", {"pm25": 99}, T0) == []
    assert engine.on_message("st-2", "water", {"pm25": 99}, T0) == []
    assert len(engine.on_message("st-2", "aq", {"pm25": 99}, T0)) == 1
    every = RuleEngine([rule("threshold", {"op": ">", "value": 75})])
    assert feed(every, [(0, 99)], device="a") == [(0, "raise")]
    assert feed(every, [(0, 99)], device="b") == [(0, "raise")]
    assert feed(every, [(1, 10)], device="a") == [(1, "clear")]


# --- rate of change ----------------------------------------------------------------------------

def test_rate_of_change_first_reading_has_no_rate():
    engine = RuleEngine([rule("rate_of_change", {"value": 2, "window_minutes": 10})])
    assert engine.on_message("st-1", "aq", {"pm25": 1000}, T0) == []


def test_rate_of_change_raises_when_change_per_minute_exceeds_the_limit():
    engine = RuleEngine([rule("rate_of_change", {"value": 2, "window_minutes": 10})])
    # 10 → 30 in 10 min is exactly 2/min: not above the limit.
    assert feed(engine, [(0, 10), (10, 30)]) == []
    engine = RuleEngine([rule("rate_of_change", {"value": 2, "window_minutes": 10})])
    signals = feed(engine, [(0, 10), (5, 30), (7, 40), (12, 40), (20, 40)])
    # 5: +4/min raise; 7: (40-10)/7 still above; 12: window [2,12] → (40-30)/7 ≈ 1.4 → clear.
    assert signals == [(5, "raise"), (12, "clear")]


def test_rate_of_change_direction_down_only():
    engine = RuleEngine([rule("rate_of_change", {"value": 1, "window_minutes": 5, "direction": "down"})])
    assert feed(engine, [(0, 10), (1, 20), (2, 5)]) == [(2, "raise")]


def test_rate_of_change_ignores_nan_and_a_gap_longer_than_the_window():
    engine = RuleEngine([rule("rate_of_change", {"value": 2, "window_minutes": 5})])
    assert feed(engine, [(0, 10), (1, NAN), (30, 100)]) == []  # nothing in the window to compare


# --- held for ----------------------------------------------------------------------------------

def test_held_for_raises_exactly_at_n_minutes_and_once():
    engine = RuleEngine([rule("held_for", {"op": ">=", "value": 0.3, "minutes": 10})])  # water level, m
    signals = feed(engine, [(0, 0.35), (5, 0.4), (9.99, 0.5), (10, 0.5), (11, 0.6), (15, 0.1)])
    assert signals == [(10, "raise"), (15, "clear")]


def test_held_for_restarts_when_the_condition_breaks():
    engine = RuleEngine([rule("held_for", {"op": ">", "value": 50, "minutes": 10})])
    assert feed(engine, [(0, 60), (6, 40), (8, 60), (16, 60), (18, 61)]) == [(18, "raise")]


def test_held_for_with_a_range_condition_and_nan_does_not_break_the_streak():
    engine = RuleEngine([rule("held_for", {"min": 6, "max": 9, "minutes": 5})])
    assert feed(engine, [(0, 5), (3, NAN), (5, 5.5)]) == [(5, "raise")]


def test_held_for_message_names_the_duration():
    engine = RuleEngine([rule("held_for", {"op": ">", "value": 50, "minutes": 10})])
    engine.on_message("st-1", "aq", {"pm25": 60}, T0)
    [signal] = engine.on_message("st-1", "aq", {"pm25": 70}, at(12))
    assert "for 12 min" in signal.message and signal.value == 70


# --- out of order ------------------------------------------------------------------------------

def test_out_of_order_readings_are_ignored_for_rate_and_held_for():
    engine = RuleEngine([rule("held_for", {"op": ">", "value": 50, "minutes": 10}),
                         rule("rate_of_change", {"value": 2, "window_minutes": 10})])
    assert feed(engine, [(0, 60), (5, 61)]) == []
    # A late reading from minute 1 below the limit must not break the streak nor produce a rate.
    assert feed(engine, [(1, 10)]) == []
    assert feed(engine, [(10, 62)]) == [(10, "raise")]


def test_out_of_order_readings_neither_raise_nor_clear_a_threshold():
    engine = RuleEngine([rule("threshold", {"op": ">", "value": 75})])
    assert feed(engine, [(5, 80), (3, 10), (4, 99)]) == [(5, "raise")]
    assert feed(engine, [(5, 10)]) == [(5, "clear")]  # the same timestamp is not late


# --- no data -----------------------------------------------------------------------------------

def test_no_data_raises_on_a_tick_and_clears_on_the_next_message():
    engine = RuleEngine([rule("no_data", {"minutes": 15})])
    assert engine.on_tick(at(0)) == []  # nothing seen yet: nothing to miss
    engine.on_message("st-1", "aq", {"pm25": 10}, at(0))
    assert engine.on_message("st-1", "aq", {"pm25": 10}, at(5)) == []
    assert engine.on_tick(at(19.9)) == []
    [raised] = engine.on_tick(at(20))
    assert raised.action is SignalAction.RAISE and raised.at == at(20) and "15 min" in raised.message
    assert engine.on_tick(at(30)) == []  # raised once
    [cleared] = engine.on_message("st-1", "aq", {"pm25": 12}, at(31))
    assert cleared.action is SignalAction.CLEAR and cleared.value == 12
    assert engine.on_tick(at(40)) == []


def test_no_data_counts_only_the_rules_property_unless_star():
    per_prop = rule("no_data", {"minutes": 10})
    any_msg = parse_rule({"id": "silent", "product": "aq", "property": "*", "kind": "no_data",
                          "params": {"minutes": 10}})
    engine = RuleEngine([per_prop, any_msg])
    engine.on_message("st-1", "aq", {"pm25": 10}, at(0))
    engine.on_message("st-1", "aq", {"pm10": 10}, at(8))
    assert [s.rule.id for s in engine.on_tick(at(12))] == ["r-no_data"]


def test_no_data_for_a_tracked_device_that_never_speaks():
    engine = RuleEngine([rule("no_data", {"minutes": 10})])
    engine.track("st-9", "aq", since=at(0))
    [signal] = engine.on_tick(at(10))
    assert signal.device == "st-9" and signal.action is SignalAction.RAISE


def test_replacing_rules_keeps_state_of_unchanged_rules_only():
    high = rule("threshold", {"op": ">", "value": 75})
    engine = RuleEngine([high])
    feed(engine, [(0, 80)])
    engine.replace_rules([high])
    assert feed(engine, [(1, 90)]) == []  # still active: no second raise
    engine.replace_rules([rule("threshold", {"op": ">", "value": 85})])
    assert feed(engine, [(2, 90)]) == [(2, "raise")]
