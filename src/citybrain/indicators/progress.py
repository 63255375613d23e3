"""Progress toward the 2025 target: pure arithmetic, no database.

The rule (documented in docs/indicators.md):

* The expected value on a day runs linearly from the 2020 baseline on 2020-12-31 to the 2025
  target on 2025-12-31, and stays at the target afterwards (so after 2025 a value is compared
  with the target itself).
* The direction is that of the plan: down when the target is below the baseline or the
  operator is ``<=``; up otherwise. ``=`` means "reach the value": going beyond it in the
  plan's direction counts as reaching it.
* ``on_track``: the latest value is at or beyond the expected value (for ``>`` after 2025:
  strictly beyond the target). ``at_risk``: short of it by at most ``TOLERANCE`` of the plan's
  gap |target − baseline|. ``behind``: further short. ``no_data``: no value, or no target.
* Without a 2020 baseline there is no trajectory: the value is compared with the target
  directly, and the tolerance is ``TOLERANCE`` of |target|.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

START = date(2020, 12, 31)
END = date(2025, 12, 31)
TOLERANCE = 0.10
OPS = (">=", ">", "=", "<=")
STATUSES = ("on_track", "at_risk", "behind", "no_data")


@dataclass(frozen=True)
class Assessment:
    status: str  # on_track | at_risk | behind | no_data
    expected_now: float | None
    reason: str = ""  # why no_data, in English (translated by the pages)


def elapsed_fraction(on: date) -> float:
    """0 on or before 2020-12-31, 1 on or after 2025-12-31, linear by day in between."""
    if on <= START:
        return 0.0
    if on >= END:
        return 1.0
    return (on - START).days / (END - START).days


def decreasing(*, baseline: float | None, target: float, op: str) -> bool:
    if op == "<=":
        return True
    if op in (">=", ">"):
        return False
    return baseline is not None and target < baseline


def expected_value(*, baseline: float | None, target: float | None, on: date) -> float | None:
    """The trajectory's value on ``on``; the target itself when there is no baseline."""
    if target is None:
        return None
    if baseline is None:
        return target
    return baseline + (target - baseline) * elapsed_fraction(on)


def assess(*, baseline: float | None, target: float | None, op: str, value: float | None, on: date) -> Assessment:
    if op not in OPS:
        raise ValueError(f"unknown target operator {op!r}; known: {', '.join(OPS)}")
    if target is None:
        expected = None
        return Assessment("no_data", expected, "no target recorded (per plan)" if value is not None else "no value yet")
    expected = expected_value(baseline=baseline, target=target, on=on)
    assert expected is not None
    rounded = round(expected, 4)
    if value is None:
        return Assessment("no_data", rounded, "no value yet")
    down = decreasing(baseline=baseline, target=target, op=op)
    shortfall = (value - expected) if down else (expected - value)  # > 0: short of the expectation
    strict = op == ">" and (baseline is None or on >= END)
    met = shortfall < 0 if strict else shortfall <= 0
    if met:
        return Assessment("on_track", rounded)
    scale = abs(target - baseline) if baseline is not None else abs(target)
    if shortfall <= TOLERANCE * scale:
        return Assessment("at_risk", rounded)
    return Assessment("behind", rounded)
