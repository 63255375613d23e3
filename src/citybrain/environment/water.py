"""Surface water quality class per GB 3838-2002 (地表水环境质量标准), single-factor method.

Each parameter is classed on its own (I best … V, beyond V is 劣V); the site's class is the
worst of them. Dissolved oxygen is a floor (more is better), the others are ceilings. A value
exactly on a limit belongs to the better class. Where two classes share a limit (COD and BOD5
in I and II) the value is class I.

Parameter keys match the water-quality station's thing model: ``do``, ``codmn``, ``cod``,
``bod5``, ``nh3n``, ``tp`` (mg/L). Total phosphorus uses the river limits; lake and reservoir
limits are not implemented. pH (6–9 for every class) is reported as in or out of range, not as
a class; other parameters (turbidity …) are not in GB 3838's basic items and are listed as
unclassified.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum


class WaterClass(IntEnum):
    """Ordered so that ``max()`` is the worst class."""

    I = 1  # noqa: E741 — the standard's own name
    II = 2
    III = 3
    IV = 4
    V = 5
    WORSE_THAN_V = 6

    @property
    def label(self) -> str:
        return "劣V" if self is WaterClass.WORSE_THAN_V else self.name


@dataclass(frozen=True, slots=True)
class Limit:
    name: str
    limits: tuple[float, float, float, float, float]  # classes I–V
    floor: bool = False  # True: the value must be at least the limit


LIMITS: Mapping[str, Limit] = {
    "do": Limit("溶解氧", (7.5, 6, 5, 3, 2), floor=True),
    "codmn": Limit("高锰酸盐指数", (2, 4, 6, 10, 15)),
    "cod": Limit("化学需氧量", (15, 15, 20, 30, 40)),
    "bod5": Limit("五日生化需氧量", (3, 3, 4, 6, 10)),
    "nh3n": Limit("氨氮", (0.15, 0.5, 1.0, 1.5, 2.0)),
    "tp": Limit("总磷（河流）", (0.02, 0.1, 0.2, 0.3, 0.4)),
}
PH_RANGE = (6.0, 9.0)


@dataclass(frozen=True, slots=True)
class WaterAssessment:
    overall: WaterClass | None  # None when no classified parameter was given
    factors: dict[str, WaterClass]
    worst: tuple[str, ...]  # parameters at the overall class (定类因子)
    ph_in_range: bool | None  # None when pH was not given
    unclassified: tuple[str, ...]


def factor_class(parameter: str, value: float) -> WaterClass:
    """The single-factor class of one measured value."""
    try:
        limit = LIMITS[parameter]
    except KeyError:
        raise ValueError(
            f"GB 3838-2002 class not defined here for {parameter!r} (known: {', '.join(LIMITS)})"
        ) from None
    _check(parameter, value)
    for cls, bound in zip(WaterClass, limit.limits, strict=False):
        if (value >= bound) if limit.floor else (value <= bound):
            return cls
    return WaterClass.WORSE_THAN_V


def assess(values: Mapping[str, float]) -> WaterAssessment:
    """Class every known parameter; the overall class is the worst single factor."""
    factors = {name: factor_class(name, value) for name, value in values.items() if name in LIMITS}
    overall = max(factors.values()) if factors else None
    worst = tuple(name for name, cls in factors.items() if cls == overall)
    ph = values.get("ph")
    ph_in_range = None
    if ph is not None:
        _check("ph", ph)
        ph_in_range = PH_RANGE[0] <= ph <= PH_RANGE[1]
    unclassified = tuple(name for name in values if name not in LIMITS and name != "ph")
    return WaterAssessment(
        overall=overall, factors=factors, worst=worst, ph_in_range=ph_in_range, unclassified=unclassified
    )


def _check(parameter: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{parameter}: {value!r} is not a non-negative finite number")
