"""Thing models: the shipped catalog loads, bad catalogs are refused by name, and every
telemetry message is either turned into typed values or refused with a countable code."""

import json
import math
from datetime import UTC, datetime, timedelta

import pytest

from citybrain.iot.payload import validate_telemetry
from citybrain.iot.thingmodel import (
    EventLevel,
    PayloadError,
    PropertyType,
    load_products,
)

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
PRODUCTS = load_products()
AIR = PRODUCTS["air_quality_station"]
LIGHT = PRODUCTS["street_light"]


def refused(product, payload, code, **kwargs):
    with pytest.raises(PayloadError) as info:
        validate_telemetry(product, payload, now=NOW, **kwargs)
    assert info.value.code == code, info.value
    return info.value


# --- the shipped catalog ------------------------------------------------------------------------


def test_shipped_catalog_has_every_district_sensor_type():
    expected = {
        "air_quality_station": {"pm25", "pm10", "so2", "no2", "co", "o3", "temperature", "humidity"},
        "waterlogging_gauge": {"level_cm", "battery"},
        "rain_gauge": {"rain_mm_1h"},
        "manhole_cover": {"tilt_deg", "open", "battery"},
        "parking_detector": {"occupied"},
        "smoke_detector": {"smoke", "battery"},
        "street_light": {"on", "brightness", "power_w"},
        "water_quality_station": {"ph", "do", "cod", "nh3n", "tp", "turbidity"},
    }
    for identifier, props in expected.items():
        product = PRODUCTS[identifier]
        assert props <= {p.identifier for p in product.properties}, identifier
        assert product.name and product.online_timeout_s > 0 and product.retention_days > 0


def test_shipped_units_and_ranges_are_those_of_the_sensors():
    assert AIR.get_property("co").unit.code == "mg/m3"
    assert AIR.get_property("pm25").unit.code == "ug/m3"
    ph = PRODUCTS["water_quality_station"].get_property("ph")
    assert (ph.min, ph.max) == (0, 14)
    brightness = LIGHT.get_property("brightness")
    assert (brightness.type, brightness.min, brightness.max) == (PropertyType.INT, 0, 100)
    assert PRODUCTS["manhole_cover"].get_property("open").type is PropertyType.BOOL
    assert {e.identifier: e.level for e in PRODUCTS["smoke_detector"].events}["smoke_alarm"] is EventLevel.CRITICAL
    assert {c.identifier for c in LIGHT.commands} >= {"switch", "set_brightness"}


def test_products_are_immutable():
    with pytest.raises(AttributeError):
        AIR.name = "x"


# --- refusing a bad catalog -----------------------------------------------------------------------

PRODUCT_HEAD = """
[[product]]
identifier = "gauge"
name = "测试"
category = "test"
online_timeout_s = 60
retention_days = 30
"""


def prop(identifier="level", type_="float", extra=""):
    return f'\n[[product.properties]]\nidentifier = "{identifier}"\nname = "x"\ntype = "{type_}"\n{extra}\n'


def test_a_minimal_catalog_loads():
    products = load_products(PRODUCT_HEAD + prop())
    assert list(products) == ["gauge"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (PRODUCT_HEAD + prop(type_="double"), r"'gauge'.*'level'.*unknown type 'double'"),
        (PRODUCT_HEAD + prop(extra="min = 10\nmax = 1"), r"'gauge'.*'level'.*min 10 is greater than max 1"),
        (PRODUCT_HEAD + prop() + prop(), r"'gauge'.*duplicate property identifier 'level'"),
        (PRODUCT_HEAD + prop() + PRODUCT_HEAD + prop(), r"'gauge'.*duplicate product identifier"),
        (PRODUCT_HEAD + prop(identifier="ts"), r"'gauge'.*reserved"),
        (PRODUCT_HEAD + prop(type_="enum"), r"'gauge'.*'level'.*enum needs"),
        (PRODUCT_HEAD + prop(type_="bool", extra="min = 0"), r"'level'.*min/max only apply"),
        (PRODUCT_HEAD + prop(extra="mx = 3"), r"'level'.*unknown keys \['mx'\]"),
        (PRODUCT_HEAD + prop(identifier="Level"), r"identifier 'Level'"),
        (PRODUCT_HEAD, r"'gauge'.*at least one property"),
        (PRODUCT_HEAD.replace("60", "0") + prop(), r"'gauge'.*online_timeout_s"),
    ],
)
def test_bad_catalogs_are_refused_naming_the_product_and_property(text, message):
    with pytest.raises(ValueError, match=message):
        load_products(text)


def test_enum_values_and_units_are_read():
    text = (
        PRODUCT_HEAD
        + prop(type_="enum", extra='values = { a = "甲", b = "乙" }')
        + prop(identifier="depth", extra='unit = { code = "cm", display = "厘米" }')
    )
    gauge = load_products(text)["gauge"]
    assert gauge.get_property("level").values == (("a", "甲"), ("b", "乙"))
    assert gauge.get_property("depth").unit.display == "厘米"


# --- accepting telemetry ------------------------------------------------------------------------


def test_nested_message_with_iso_timestamp():
    t = validate_telemetry(AIR, b'{"ts": "2026-11-26T15:59:00+08:00", "values": {"pm25": 41, "co": 0.8}}', now=NOW)
    assert t.values == {"pm25": 41.0, "co": 0.8}
    assert isinstance(t.values["pm25"], float)
    assert t.ts == datetime(2026, 11, 26, 7, 59, tzinfo=UTC)
    assert t.ts_reported


def test_flat_message_with_epoch_milliseconds():
    ms = int((NOW - timedelta(minutes=1)).timestamp() * 1000)
    t = validate_telemetry(LIGHT, json.dumps({"ts": ms, "on": True, "brightness": 80, "mode": "auto"}), now=NOW)
    assert t.values == {"on": True, "brightness": 80, "mode": "auto"}
    assert t.ts == NOW - timedelta(minutes=1)


def test_message_without_timestamp_takes_the_receive_time():
    t = validate_telemetry(AIR, {"pm10": 12}, now=NOW)
    assert t.ts == NOW
    assert not t.ts_reported


def test_an_int_property_accepts_a_whole_float():
    assert validate_telemetry(LIGHT, {"brightness": 40.0}, now=NOW).values == {"brightness": 40}


def test_a_timestamp_slightly_ahead_is_tolerated():
    ts = (NOW + timedelta(minutes=4)).isoformat()
    assert validate_telemetry(AIR, {"ts": ts, "pm25": 1}, now=NOW).ts_reported


def test_range_bounds_are_inclusive():
    assert validate_telemetry(LIGHT, {"brightness": 100}, now=NOW).values["brightness"] == 100
    assert validate_telemetry(LIGHT, {"brightness": 0}, now=NOW).values["brightness"] == 0


# --- refusing telemetry -------------------------------------------------------------------------


def test_oversized_payload_is_refused_before_parsing():
    refused(AIR, b'{"pm25": 1}' + b" " * 100, "too_large", max_bytes=64)


@pytest.mark.parametrize(
    "payload", [b'{"pm25": ', b"\xff\xfe", b'{"pm25": NaN}', b'{"pm25": Infinity}', b'{"pm25": 1, "pm25": 2}']
)
def test_malformed_json_is_refused(payload):
    refused(AIR, payload, "malformed_json")


@pytest.mark.parametrize("payload", [b"[1, 2]", b"42", b'"pm25"', b'{"values": [1]}', b'{"values": 3}'])
def test_non_objects_are_refused(payload):
    refused(AIR, payload, "not_an_object")


@pytest.mark.parametrize("payload", [b"", b"  ", b"{}", b'{"ts": 1795996800000}', b'{"values": {}}'])
def test_messages_without_values_are_refused_as_empty(payload):
    refused(AIR, payload, "empty")


def test_unknown_property_is_refused_by_name():
    error = refused(AIR, {"pm25": 1, "pm1": 3}, "unknown_property")
    assert error.prop == "pm1"


def test_nested_message_may_not_carry_other_top_level_keys():
    refused(AIR, {"values": {"pm25": 1}, "device": "x"}, "unknown_property")


@pytest.mark.parametrize(
    ("product", "values"),
    [
        (LIGHT, {"brightness": True}),  # bool is not an int
        (AIR, {"pm25": False}),  # nor a float
        (LIGHT, {"on": 1}),  # and 1 is not a bool
        (LIGHT, {"brightness": 40.5}),
        (AIR, {"pm25": "41"}),
        (AIR, {"pm25": None}),
        (LIGHT, {"mode": 1}),
    ],
)
def test_wrong_types_are_refused(product, values):
    error = refused(product, values, "wrong_type")
    assert error.prop == next(iter(values))


@pytest.mark.parametrize(
    ("product", "values"),
    [
        (LIGHT, {"brightness": 101}),
        (AIR, {"pm25": -0.1}),
        (PRODUCTS["water_quality_station"], {"ph": 14.1}),
        (AIR, {"pm25": math.nan}),
        (AIR, {"pm25": math.inf}),
        (LIGHT, {"mode": "disco"}),
    ],
)
def test_out_of_range_values_are_refused(product, values):
    refused(product, values, "out_of_range")


def test_a_number_too_large_for_a_float_is_out_of_range():
    refused(AIR, b'{"pm25": 1e999}', "out_of_range")


def test_overlong_string_is_refused():
    text = PRODUCT_HEAD + prop(type_="string", extra="max_length = 3")
    gauge = load_products(text)["gauge"]
    assert validate_telemetry(gauge, {"level": "abc"}, now=NOW).values == {"level": "abc"}
    refused(gauge, {"level": "abcd"}, "out_of_range")


@pytest.mark.parametrize(
    "ts",
    [
        "yesterday",
        "2026-11-26T08:00:00",  # no time zone
        1795996800,  # seconds sent as milliseconds: January 1970
        True,
        [2026],
        10**20,
    ],
)
def test_bad_timestamps_are_refused(ts):
    refused(AIR, {"ts": ts, "pm25": 1}, "bad_timestamp")


def test_timestamp_too_far_ahead_is_refused():
    refused(AIR, {"ts": (NOW + timedelta(minutes=6)).isoformat(), "pm25": 1}, "future_timestamp")
    refused(
        AIR,
        {"ts": (NOW + timedelta(seconds=30)).isoformat(), "pm25": 1},
        "future_timestamp",
        max_future=timedelta(seconds=10),
    )


def test_now_must_be_timezone_aware():
    with pytest.raises(ValueError, match="aware"):
        validate_telemetry(AIR, {"pm25": 1}, now=datetime(2026, 11, 26))


def test_payload_error_is_a_value_error_carrying_code_and_message():
    error = refused(AIR, {"pm25": -1}, "out_of_range")
    assert isinstance(error, ValueError)
    assert "pm25" in error.message
    assert str(error).startswith("out_of_range: ")
