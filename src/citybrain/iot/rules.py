"""Alarm rules of the IoT hub as data, and the engine that evaluates them as messages arrive.

A rule watches one property of a product's devices (or of one device). The engine keeps the
little state each (rule, device) pair needs in memory and turns readings into ``Signal``s: a
``raise`` on the transition into the condition and a ``clear`` on the way out — never a repeated
raise while the condition holds. Time always comes from the caller (message timestamps, ticks).
"""

from __future__ import annotations

import math
import operator
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from citybrain.core.errors import Invalid


class Kind(StrEnum):
    THRESHOLD = "threshold"  # value <op> limit
    RANGE = "range"  # outside (or inside) [min, max]
    RATE_OF_CHANGE = "rate_of_change"  # |change per minute| over a window exceeds a limit
    HELD_FOR = "held_for"  # a threshold/range condition true continuously for N minutes
    NO_DATA = "no_data"  # no reading for N minutes; evaluated on ticks


class Severity(StrEnum):
    # Lower case: events.flows maps "critical"/"major" to an urgency.
    CRITICAL = "critical"
    MAJOR = "major"
    MINOR = "minor"
    WARNING = "warning"


class SignalAction(StrEnum):
    RAISE = "raise"
    CLEAR = "clear"


class InvalidRule(Invalid, ValueError):
    """A rule definition that cannot be evaluated."""


OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
    "==": operator.eq, "!=": operator.ne,
}
_ORDERING = {">", ">=", "<", "<="}
ANY_PROPERTY = "*"  # a no_data rule on "*" is satisfied by any message of the device


@dataclass(frozen=True, kw_only=True)
class Rule:
    id: str
    name: str
    product: str
    device: str | None = None  # None: every device of the product
    property: str
    kind: Kind
    params: Mapping[str, Any] = field(hash=False)
    severity: Severity = Severity.MAJOR
    dispatch: bool = False  # publish alarm.raised/cleared so the event command opens an event
    category_code: str | None = None  # the event small class a dispatched alarm maps to

    def applies_to(self, device: str) -> bool:
        return self.device is None or self.device == device


@dataclass(frozen=True)
class Signal:
    action: SignalAction
    rule: Rule
    device: str
    product: str
    value: Any
    at: datetime
    message: str


# --- parsing -----------------------------------------------------------------------------------

def _number(rule_id: str, params: Mapping[str, Any], key: str, *, minutes: bool = False) -> float:
    if key not in params:
        raise InvalidRule(f"rule {rule_id!r}: missing parameter {key!r}")
    value = params[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise InvalidRule(f"rule {rule_id!r}: parameter {key!r} must be a number, got {value!r}")
    if minutes and value <= 0:
        raise InvalidRule(f"rule {rule_id!r}: parameter {key!r} must be a positive number of minutes, "
                          f"got {value!r}")
    return float(value)


def _condition(rule_id: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a threshold (op, value) or range (min, max, mode) condition."""
    if "op" in params:
        op = params["op"]
        if op not in OPS:
            raise InvalidRule(f"rule {rule_id!r}: unknown operator {op!r} (expected one of {', '.join(OPS)})")
        if "value" not in params:
            raise InvalidRule(f"rule {rule_id!r}: missing parameter 'value'")
        value = params["value"]
        if op in _ORDERING:
            value = _number(rule_id, params, "value")
        return {"op": op, "value": value}
    if "min" in params or "max" in params:
        low, high = _number(rule_id, params, "min"), _number(rule_id, params, "max")
        if low > high:
            raise InvalidRule(f"rule {rule_id!r}: min {low} is greater than max {high}")
        mode = params.get("mode", "outside")
        if mode not in ("outside", "inside"):
            raise InvalidRule(f"rule {rule_id!r}: range mode must be 'outside' or 'inside', got {mode!r}")
        return {"min": low, "max": high, "mode": mode}
    raise InvalidRule(f"rule {rule_id!r}: needs a condition: 'op' and 'value', or 'min' and 'max'")


def _params(rule_id: str, kind: Kind, params: Mapping[str, Any]) -> dict[str, Any]:
    if kind is Kind.THRESHOLD:
        if "op" not in params:
            raise InvalidRule(f"rule {rule_id!r}: missing parameter 'op'")
        return _condition(rule_id, params)
    if kind is Kind.RANGE:
        if "min" not in params and "max" not in params:
            raise InvalidRule(f"rule {rule_id!r}: missing parameters 'min' and 'max'")
        return _condition(rule_id, params)
    if kind is Kind.RATE_OF_CHANGE:
        direction = params.get("direction", "any")
        if direction not in ("any", "up", "down"):
            raise InvalidRule(f"rule {rule_id!r}: direction must be 'any', 'up' or 'down', got {direction!r}")
        limit = _number(rule_id, params, "value")
        if limit < 0:
            raise InvalidRule(f"rule {rule_id!r}: rate limit must not be negative, got {limit}")
        return {"value": limit, "window_minutes": _number(rule_id, params, "window_minutes", minutes=True),
                "direction": direction}
    if kind is Kind.HELD_FOR:
        return _condition(rule_id, params) | {"minutes": _number(rule_id, params, "minutes", minutes=True)}
    return {"minutes": _number(rule_id, params, "minutes", minutes=True)}


def parse_rule(data: Mapping[str, Any]) -> Rule:
    """Build a validated ``Rule`` from a catalog/JSON dict; ``InvalidRule`` (a ValueError) says why not."""
    rule_id = str(data.get("id") or "").strip()
    if not rule_id:
        raise InvalidRule("rule without an 'id'")
    for key in ("product", "property", "kind"):
        if not str(data.get(key) or "").strip():
            raise InvalidRule(f"rule {rule_id!r}: missing {key!r}")
    try:
        kind = Kind(str(data["kind"]))
    except ValueError:
        raise InvalidRule(f"rule {rule_id!r}: unknown kind {data['kind']!r} "
                          f"(expected one of {', '.join(Kind)})") from None
    try:
        severity = Severity(str(data.get("severity") or Severity.MAJOR).lower())
    except ValueError:
        raise InvalidRule(f"rule {rule_id!r}: unknown severity {data.get('severity')!r} "
                          f"(expected one of {', '.join(Severity)})") from None
    params = data.get("params") or {}
    if not isinstance(params, Mapping):
        raise InvalidRule(f"rule {rule_id!r}: 'params' must be an object")
    dispatch = data.get("dispatch", False)
    if not isinstance(dispatch, bool):
        raise InvalidRule(f"rule {rule_id!r}: 'dispatch' must be true or false")
    category_code = data.get("category_code") or None
    if dispatch and not category_code:
        raise InvalidRule(f"rule {rule_id!r}: a dispatched rule needs a 'category_code'")
    return Rule(id=rule_id, name=str(data.get("name") or rule_id), product=str(data["product"]),
                device=data.get("device") or None, property=str(data["property"]), kind=kind,
                params=MappingProxyType(_params(rule_id, kind, params)), severity=severity,
                dispatch=dispatch, category_code=category_code)


# --- evaluation --------------------------------------------------------------------------------

@dataclass(slots=True)
class _State:
    active: bool = False
    since: datetime | None = None  # held_for: when the condition became true
    samples: deque[tuple[datetime, float]] = field(default_factory=deque)  # rate_of_change
    last_seen: datetime | None = None  # no_data


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value)


def _holds(params: Mapping[str, Any], value: Any) -> bool | None:
    """The condition for a reading; None when the reading cannot be judged (NaN, wrong type)."""
    if value is None:
        return None
    if "op" in params:
        op = params["op"]
        if op in _ORDERING and not _is_number(value):
            return None
        if isinstance(value, float) and math.isnan(value):
            return None
        return OPS[op](value, params["value"])
    if not _is_number(value):
        return None
    inside = params["min"] <= value <= params["max"]
    return inside if params["mode"] == "inside" else not inside


def _describe(rule: Rule, value: Any) -> str:
    p = rule.params
    if "op" in p:
        return f"{rule.property} = {value!r} {p['op']} {p['value']!r}"
    where = "inside" if p.get("mode") == "inside" else "outside"
    return f"{rule.property} = {value!r} {where} [{p['min']:g}, {p['max']:g}]"


class RuleEngine:
    """Evaluates rules per (rule, device); the state lives in memory and is lost on restart."""

    def __init__(self, rules: Iterable[Rule] = ()) -> None:
        self._by_product: dict[str, list[Rule]] = {}
        self._states: dict[tuple[str, str], _State] = {}
        self._device_seen: dict[str, datetime] = {}
        self._devices: dict[str, str] = {}  # device → product, for no_data ticks
        self.replace_rules(rules)

    @property
    def products(self) -> frozenset[str]:
        """Products that have at least one rule: readings of others need no evaluation."""
        return frozenset(self._by_product)

    @property
    def rules(self) -> list[Rule]:
        return [rule for rules in self._by_product.values() for rule in rules]

    def replace_rules(self, rules: Iterable[Rule]) -> None:
        """Install a new rule set; state is kept only for rules whose definition did not change."""
        old = {rule.id: rule for rule in self.rules}
        self._by_product = {}
        for rule in rules:
            self._by_product.setdefault(rule.product, []).append(rule)
        kept = {rule.id for rule in self.rules if old.get(rule.id) == rule}
        self._states = {key: state for key, state in self._states.items() if key[0] in kept}

    def track(self, device: str, product: str, since: datetime) -> None:
        """Watch a device for no_data from ``since`` even if it never sends anything."""
        self._devices[device] = product
        for rule in self._matching(product, device, Kind.NO_DATA):
            state = self._state(rule, device)
            if state.last_seen is None or state.last_seen < since:
                state.last_seen = since

    def on_message(self, device: str, product: str, values: Mapping[str, Any], ts: datetime) -> list[Signal]:
        self._devices[device] = product
        last = self._device_seen.get(device)
        stale = last is not None and ts < last
        if not stale:
            self._device_seen[device] = ts
        signals: list[Signal] = []
        for rule in self._by_product.get(product, ()):
            if not rule.applies_to(device):
                continue
            if rule.kind is Kind.NO_DATA:
                signal = self._seen(rule, device, product, values, ts)
            elif stale or rule.property not in values:
                # A late reading says nothing about now: it neither raises nor clears.
                continue
            else:
                signal = self._evaluate(rule, device, product, values[rule.property], ts)
            if signal is not None:
                signals.append(signal)
        return signals

    def on_tick(self, now: datetime) -> list[Signal]:
        signals = []
        for device, product in self._devices.items():
            for rule in self._matching(product, device, Kind.NO_DATA):
                state = self._states.get((rule.id, device))
                if state is None or state.last_seen is None or state.active:
                    continue
                silent = now - state.last_seen
                if silent >= timedelta(minutes=rule.params["minutes"]):
                    state.active = True
                    minutes = silent.total_seconds() / 60
                    signals.append(Signal(SignalAction.RAISE, rule, device, product, None, now,
                                          f"{rule.name}: no {self._what(rule)} for {minutes:.0f} min "
                                          f"(since {state.last_seen.isoformat()})"))
        return signals

    # internals

    def _matching(self, product: str, device: str, kind: Kind) -> Iterable[Rule]:
        return (r for r in self._by_product.get(product, ()) if r.kind is kind and r.applies_to(device))

    def _state(self, rule: Rule, device: str) -> _State:
        key = (rule.id, device)
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = _State()
        return state

    @staticmethod
    def _what(rule: Rule) -> str:
        return "message" if rule.property == ANY_PROPERTY else f"{rule.property} reading"

    def _seen(self, rule: Rule, device: str, product: str, values: Mapping[str, Any],
              ts: datetime) -> Signal | None:
        if rule.property != ANY_PROPERTY and rule.property not in values:
            return None
        state = self._state(rule, device)
        if state.last_seen is None or ts > state.last_seen:
            state.last_seen = ts
        if not state.active:
            return None
        state.active = False
        return Signal(SignalAction.CLEAR, rule, device, product, values.get(rule.property), ts,
                      f"{rule.name}: {self._what(rule)} received again")

    def _evaluate(self, rule: Rule, device: str, product: str, value: Any, ts: datetime) -> Signal | None:
        state = self._state(rule, device)
        if rule.kind is Kind.RATE_OF_CHANGE:
            return self._rate(rule, state, device, product, value, ts)
        holds = _holds(rule.params, value)
        if holds is None:
            return None
        if rule.kind is Kind.HELD_FOR:
            return self._held(rule, state, device, product, value, ts, holds)
        text = f"{rule.name}: {_describe(rule, value)}"
        return self._transition(rule, state, device, product, value, ts, holds, text)

    def _transition(self, rule: Rule, state: _State, device: str, product: str, value: Any,
                    ts: datetime, holds: bool, text: str) -> Signal | None:
        if holds == state.active:
            return None
        state.active = holds
        if holds:
            return Signal(SignalAction.RAISE, rule, device, product, value, ts, text)
        return Signal(SignalAction.CLEAR, rule, device, product, value, ts,
                      f"{rule.name}: back to normal ({rule.property} = {value!r})")

    def _held(self, rule: Rule, state: _State, device: str, product: str, value: Any,
              ts: datetime, holds: bool) -> Signal | None:
        if not holds:
            state.since = None
            return self._transition(rule, state, device, product, value, ts, False, "")
        if state.since is None:
            state.since = ts
        held = ts - state.since
        if held < timedelta(minutes=rule.params["minutes"]):
            return None
        text = (f"{rule.name}: {_describe(rule, value)} for {held.total_seconds() / 60:.0f} min "
                f"(since {state.since.isoformat()})")
        return self._transition(rule, state, device, product, value, ts, True, text)

    def _rate(self, rule: Rule, state: _State, device: str, product: str, value: Any,
              ts: datetime) -> Signal | None:
        if not _is_number(value):
            return None
        samples = state.samples
        window_start = ts - timedelta(minutes=rule.params["window_minutes"])
        while samples and samples[0][0] < window_start:
            samples.popleft()
        baseline = samples[0] if samples and samples[0][0] < ts else None
        samples.append((ts, float(value)))
        if baseline is None:
            return None  # the first reading in the window has nothing to compare with
        minutes = (ts - baseline[0]).total_seconds() / 60
        rate = (float(value) - baseline[1]) / minutes
        direction = rule.params["direction"]
        measured = rate if direction == "up" else -rate if direction == "down" else abs(rate)
        holds = measured > rule.params["value"]
        text = (f"{rule.name}: {rule.property} changed {rate:+.3g}/min over {minutes:.3g} min "
                f"(limit {rule.params['value']:g}/min)")
        return self._transition(rule, state, device, product, value, ts, holds, text)
