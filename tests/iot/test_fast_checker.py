"""FastChecker must accept exactly what validate_telemetry accepts, with the same result."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from citybrain.iot.payload import FastChecker, validate_telemetry
from citybrain.iot.thingmodel import PayloadError, load_products

PRODUCTS = load_products()
NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)

SAMPLES = [
    {"pm25": 35.5, "pm10": 60},
    {"ts": NOW_MS - 1000, "values": {"pm25": 35.5, "o3": 80}},
    {"ts": NOW_MS + 4 * 60_000, "pm25": 1.0},
    {"ts": NOW_MS + 6 * 60_000, "pm25": 1.0},
    {"ts": 999, "pm25": 1.0},
    {"ts": "2026-11-26T08:00:00+08:00", "pm25": 1.0},
    {"ts": True, "pm25": 1.0},
    {"ts": 1.5e12, "pm25": 1.0},
    {"pm25": True},
    {"pm25": "1"},
    {"pm25": -0.1},
    {"pm25": 1000},
    {"pm25": 1000.0001},
    {"pm25": None},
    {"values": {"pm25": 1.0}, "extra": 1},
    {"values": {}},
    {"values": [1]},
    {},
    {"humidity": 50},
    {"nope": 1},
    [],
    "x",
    {"values": {"pm25": 1.0}, "ts": None},
]
LIGHT = [
    {"on": True, "brightness": 80, "mode": "auto"},
    {"on": 1},
    {"brightness": 80.0},
    {"brightness": 80.5},
    {"brightness": 101},
    {"mode": "disco"},
    {"power_w": 120},
]


def _full(product, item):  # noqa: ANN001, ANN202
    try:
        tele = validate_telemetry(product, item, now=NOW, max_future=timedelta(minutes=5))
        return ("ok", int(tele.ts.timestamp() * 1000), tele.values, {k: type(v) for k, v in tele.values.items()})
    except PayloadError as exc:
        return ("error", exc.code)


def _fast(product, item):  # noqa: ANN001, ANN202
    try:
        ts, values = FastChecker(product, max_future=timedelta(minutes=5)).check(item, NOW_MS)
        return ("ok", ts, values, {k: type(v) for k, v in values.items()})
    except PayloadError as exc:
        return ("error", exc.code)


@pytest.mark.parametrize("item", SAMPLES)
def test_air_quality_samples_agree(item) -> None:  # noqa: ANN001
    product = PRODUCTS["air_quality_station"]
    assert _fast(product, item) == _full(product, item)


@pytest.mark.parametrize("item", LIGHT)
def test_street_light_samples_agree(item) -> None:  # noqa: ANN001
    product = PRODUCTS["street_light"]
    assert _fast(product, item) == _full(product, item)


def test_random_readings_agree() -> None:
    rng = random.Random(4)
    choices = [0, 1, -1, 0.5, 1e9, -1e9, True, False, "a", None, 35, 120.25, 2**70]
    for _ in range(3000):
        product = PRODUCTS[rng.choice(list(PRODUCTS))]
        names = [p.identifier for p in product.properties] + ["bogus"]
        values = {rng.choice(names): rng.choice(choices) for _ in range(rng.randint(0, 3))}
        item: dict = {"values": values} if rng.random() < 0.5 else dict(values)
        if rng.random() < 0.7:
            item["ts"] = rng.choice([NOW_MS, NOW_MS - 5, NOW_MS + 10**9, 5, "bad", 1.0 * NOW_MS])
        assert _fast(product, item) == _full(product, item), (product.identifier, item)
