"""Air quality index per HJ 633-2012 (环境空气质量指数（AQI）技术规定（试行）).

IAQI = (IAQI_hi − IAQI_lo) / (BP_hi − BP_lo) · (C − BP_lo) + IAQI_lo, rounded up to an integer;
AQI is the largest IAQI. Concentrations are µg/m³ except CO in mg/m³. Arithmetic is exact
(``Fraction``), so a value sitting on a breakpoint never rounds up by float noise.

Choices where the standard is silent: a concentration above the top breakpoint scores 500; the
caller rounds concentrations to the reporting precision before calling, if it wants to.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

IAQI_STEPS = (0, 50, 100, 150, 200, 300, 400, 500)

# (pollutant, averaging period) → concentration breakpoints matching IAQI_STEPS.
BREAKPOINTS: Mapping[tuple[str, str], tuple[float, ...]] = {
    ("so2", "24h"): (0, 50, 150, 475, 800, 1600, 2100, 2620),
    ("so2", "1h"): (0, 150, 500, 650, 800),
    ("no2", "24h"): (0, 40, 80, 180, 280, 565, 750, 940),
    ("no2", "1h"): (0, 100, 200, 700, 1200, 2340, 3090, 3840),
    ("co", "24h"): (0, 2, 4, 14, 24, 36, 48, 60),
    ("co", "1h"): (0, 5, 10, 35, 60, 90, 120, 150),
    ("o3", "1h"): (0, 160, 200, 300, 400, 800, 1000, 1200),
    ("o3", "8h"): (0, 100, 160, 215, 265, 800),
    ("pm10", "24h"): (0, 50, 150, 250, 350, 420, 500, 600),
    ("pm25", "24h"): (0, 35, 75, 115, 150, 250, 350, 500),
}
# HJ 633 gives PM10 and PM2.5 only 24-hour breakpoints; hourly values are scored against them.
_PERIOD_ALIASES = {("pm10", "1h"): "24h", ("pm25", "1h"): "24h"}


@dataclass(frozen=True, slots=True)
class Level:
    number: int  # 1–6
    name: str
    low: int
    high: int | None  # None: open-ended
    color: str


LEVELS = (
    Level(1, "优", 0, 50, "绿色"),
    Level(2, "良", 51, 100, "黄色"),
    Level(3, "轻度污染", 101, 150, "橙色"),
    Level(4, "中度污染", 151, 200, "红色"),
    Level(5, "重度污染", 201, 300, "紫色"),
    Level(6, "严重污染", 301, None, "褐红色"),
)


@dataclass(frozen=True, slots=True)
class AqiResult:
    aqi: int
    level: Level
    iaqi: dict[str, int]  # keyed so2, no2, co, pm10, pm25, o3 (hourly) / o3_1h, o3_8h (daily)
    primary: tuple[str, ...]  # pollutants whose IAQI equals the AQI; empty when AQI ≤ 50
    exceeding: tuple[str, ...]  # pollutants with IAQI > 100 (超标污染物)


class SpecialRule(ValueError):
    """A concentration HJ 633 does not score directly, and the value it defers to is missing."""


def iaqi(pollutant: str, period: str, concentration: float) -> int | None:
    """The individual index, or None where HJ 633 defers to another value.

    None is returned for SO2 1-hour above 800 µg/m³ (report the 24-hour IAQI instead) and
    O3 8-hour above 800 µg/m³ (report the 1-hour IAQI instead).
    """
    period = _PERIOD_ALIASES.get((pollutant, period), period)
    try:
        points = BREAKPOINTS[(pollutant, period)]
    except KeyError:
        raise ValueError(f"no HJ 633 breakpoints for {pollutant} {period}") from None
    c = _exact(concentration, pollutant)
    if len(points) < len(IAQI_STEPS) and c > points[-1]:  # only SO2 1h and O3 8h stop short
        return None
    if c >= points[-1]:
        return IAQI_STEPS[len(points) - 1] if c == points[-1] else 500
    for i in range(1, len(points)):
        bp_lo, bp_hi = Fraction(points[i - 1]), Fraction(points[i])
        if c <= bp_hi:
            lo, hi = IAQI_STEPS[i - 1], IAQI_STEPS[i]
            return math.ceil(Fraction(hi - lo) / (bp_hi - bp_lo) * (c - bp_lo) + lo)
    raise AssertionError("unreachable")


def level_for(aqi: int) -> Level:
    for level in LEVELS:
        if level.high is None or aqi <= level.high:
            return level
    raise AssertionError("unreachable")


def daily_aqi(
    *,
    so2: float | None = None,
    no2: float | None = None,
    co: float | None = None,
    pm10: float | None = None,
    pm25: float | None = None,
    o3_8h: float | None = None,
    o3_1h: float | None = None,
) -> AqiResult:
    """Daily AQI from 24-hour means, the daily maximum 8-hour O3 and the daily maximum 1-hour O3.

    O3 8-hour above 800 µg/m³ is not scored; the 1-hour O3 IAQI stands for it, so ``o3_1h`` is
    then required (:class:`SpecialRule` otherwise).
    """
    scores: dict[str, int] = {}
    for name, value in (("so2", so2), ("no2", no2), ("co", co), ("pm10", pm10), ("pm25", pm25)):
        if value is not None:
            scores[name] = _required(iaqi(name, "24h", value))
    if o3_1h is not None:
        scores["o3_1h"] = _required(iaqi("o3", "1h", o3_1h))
    if o3_8h is not None:
        score = iaqi("o3", "8h", o3_8h)
        if score is None:
            if o3_1h is None:
                raise SpecialRule("O3 8-hour above 800 µg/m³ is reported by its 1-hour IAQI: pass o3_1h")
            score = scores["o3_1h"]
        scores["o3_8h"] = score
    return _result(scores)


def hourly_aqi(
    *,
    so2: float | None = None,
    no2: float | None = None,
    co: float | None = None,
    o3: float | None = None,
    pm10: float | None = None,
    pm25: float | None = None,
    so2_24h: float | None = None,
) -> AqiResult:
    """Hourly (real-time) AQI from 1-hour means.

    SO2 1-hour above 800 µg/m³ is not scored; the 24-hour SO2 IAQI stands for it, so
    ``so2_24h`` is then required (:class:`SpecialRule` otherwise).
    """
    scores: dict[str, int] = {}
    if so2 is not None:
        score = iaqi("so2", "1h", so2)
        if score is None:
            if so2_24h is None:
                raise SpecialRule("SO2 1-hour above 800 µg/m³ is reported by its 24-hour IAQI: pass so2_24h")
            score = _required(iaqi("so2", "24h", so2_24h))
        scores["so2"] = score
    for name, value in (("no2", no2), ("co", co), ("o3", o3), ("pm10", pm10), ("pm25", pm25)):
        if value is not None:
            scores[name] = _required(iaqi(name, "1h", value))
    return _result(scores)


def _result(scores: dict[str, int]) -> AqiResult:
    if not scores:
        raise ValueError("no pollutant concentrations given")
    aqi = max(scores.values())
    primary = tuple(name for name, score in scores.items() if score == aqi) if aqi > 50 else ()
    exceeding = tuple(name for name, score in scores.items() if score > 100)
    return AqiResult(aqi=aqi, level=level_for(aqi), iaqi=scores, primary=primary, exceeding=exceeding)


def _required(score: int | None) -> int:
    if score is None:
        raise AssertionError("only SO2 1h and O3 8h defer")
    return score


def _exact(value: float, pollutant: str) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | Fraction):
        raise ValueError(f"{pollutant}: concentration must be a number, got {type(value).__name__}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{pollutant}: concentration {value} is not finite")
        value = Decimal(repr(value))  # the decimal the caller wrote, not the binary float
    c = Fraction(value)
    if c < 0:
        raise ValueError(f"{pollutant}: concentration {value} is negative")
    return c
