"""The cockpit's IoT panels: sensors online, air quality now, waterlogging, parking, active alarms,
and the sensor layer of the map — all read from the IoT hub's tables.

One pass over the devices serves every panel: a single query reads each active device with its
latest state (``iot_device_state``), then four small queries whose size does not grow with the
number of devices read the products, the waterlogging rules, the active alarms and the air
stations' hourly rollups of the last 24 hours. Nothing is queried per device. Within one
snapshot the pass is computed once and shared by the panels (``aggregates.PASS_CACHE``).

A device is online when ``now_ms - last_seen <= product.online_timeout_s * 1000``; a device
that never reported is offline. Disabled and retired devices are not counted.

Air quality follows HJ 633 through ``citybrain.environment.aqi.hourly_aqi``. A true hourly AQI
needs 1-hour mean concentrations: a station's AQI uses the mean of the newest complete hour from
the 1-hour rollups when that hour is at most two hours old, and otherwise the latest reading of
an online station — the panel says which (``basis``: ``hour`` / ``latest`` / ``mixed``). The
district AQI scores the mean of each pollutant over the scored stations (the city-wide method of
averaging station concentrations first).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Text, case, cast, select
from sqlalchemy.orm import Session

from citybrain.environment import aqi
from citybrain.iot import registry
from citybrain.iot.models import AlarmRecord, AlarmRule, Device, DeviceState, Rollup
from citybrain.iot.rules import OPS

from . import aggregates

AIR = "air_quality_station"
GAUGE = "waterlogging_gauge"
PARKING = "parking_detector"
WITH_DATA = (AIR, GAUGE, PARKING)  # the only products whose latest values a panel reads
POLLUTANTS = ("so2", "no2", "co", "o3", "pm10", "pm25")
ACTIVE_ALARMS = ("active_unack", "active_ack")
SEVERITIES = ("critical", "major", "minor", "warning")
HOUR_MS = 3_600_000
HOUR_MAX_AGE = 2  # hours: an older hourly mean is not "now"; the latest readings are used instead
MAX_POINTS = 20_000
TOP_GAUGES = 8
LATEST_ALARMS = 5
PASS_KEY = "iot"


class Dev(NamedTuple):
    """An active device and its latest state (a plain tuple: attribute access is cheap on 10,000)."""

    id: int
    key: str
    name: str
    product: str
    lon: float | None
    lat: float | None
    township_code: str | None
    last_seen: int | None
    data: dict[str, Any] | None


@dataclass
class Pass:
    """What one read of the IoT tables yields; every panel is cut from it."""

    now_ms: int
    products: dict[str, Any] = field(default_factory=dict)  # identifier → thingmodel.Product
    rows: list[Dev] = field(default_factory=list)
    online: dict[int, bool] = field(default_factory=dict)
    alarms: list[Any] = field(default_factory=list)  # active alarms
    gauge_rules: list[tuple[str | None, str, float]] = field(default_factory=list)  # (device, op, value)
    hourly: dict[int, dict[int, dict[str, float]]] = field(default_factory=dict)  # bucket → device → means


def read(db: Session, now: datetime) -> Pass:
    """The IoT figures at ``now``: computed once per snapshot, shared by every IoT panel."""
    scratch = db.info.get(aggregates.PASS_CACHE)
    if scratch is not None and PASS_KEY in scratch:
        return scratch[PASS_KEY]
    result = _read(db, now)
    if scratch is not None:
        scratch[PASS_KEY] = result
    return result


def _read(db: Session, now: datetime) -> Pass:
    p = Pass(now_ms=int(now.timestamp() * 1000))
    p.products = registry.products(db)
    # The state's JSON as text, parsed with orjson, and only for the products a panel reads:
    # decoding 10,000 documents was the largest cost of the pass.
    data = case((Device.product.in_(WITH_DATA), cast(DeviceState.data, Text)), else_=None)
    db.flush()  # the rows are read below the ORM (Core rows, no per-row ORM loading)
    result = db.connection().execute(
        select(Device.id, Device.key, Device.name, Device.product, Device.lon, Device.lat, Device.township_code,
               DeviceState.last_seen, data.label("data"))
        .outerjoin(DeviceState, DeviceState.device_id == Device.id)
        .where(Device.state == "active").order_by(Device.id))
    loads = orjson.loads
    p.rows = [Dev(i, k, n, pr, lon, lat, t, seen, loads(d) if d else None)
              for i, k, n, pr, lon, lat, t, seen, d in result.all()]
    timeouts = {ident: product.online_timeout_s * 1000 for ident, product in p.products.items()}
    for r in p.rows:
        p.online[r.id] = r.last_seen is not None and p.now_ms - r.last_seen <= timeouts.get(r.product, 0)
    p.alarms = db.execute(
        select(AlarmRecord.device_key, AlarmRecord.severity, AlarmRecord.status, AlarmRecord.raised_at,
               AlarmRecord.message, AlarmRecord.product)
        .where(AlarmRecord.status.in_(ACTIVE_ALARMS))).all()
    for device, params in db.execute(
            select(AlarmRule.device_key, AlarmRule.params)
            .where(AlarmRule.product == GAUGE, AlarmRule.property == "level_cm", AlarmRule.enabled.is_(True),
                   AlarmRule.kind.in_(("threshold", "held_for")))):
        op, value = (params or {}).get("op"), (params or {}).get("value")
        if op in (">", ">=") and isinstance(value, int | float) and not isinstance(value, bool):
            p.gauge_rules.append((device, op, float(value)))
    if any(r.product == AIR for r in p.rows):
        p.hourly = _hourly_means(db, p.now_ms)
    return p


def _hourly_means(db: Session, now_ms: int) -> dict[int, dict[int, dict[str, float]]]:
    """Mean concentrations of each air station for each complete hour of the last 24."""
    this_hour = now_ms - now_ms % HOUR_MS
    stations = select(Device.id).where(Device.product == AIR, Device.state == "active")
    out: dict[int, dict[int, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for device_id, prop, bucket, count, total in db.connection().execute(
            select(Rollup.device_id, Rollup.prop, Rollup.bucket, Rollup.count, Rollup.sum)
            .where(Rollup.period == 3600, Rollup.bucket >= this_hour - 24 * HOUR_MS, Rollup.bucket < this_hour,
                   Rollup.prop.in_(POLLUTANTS), Rollup.device_id.in_(stations))).all():
        if count:
            out[bucket][device_id][prop] = total / count
    return out


# --- sensors and the map layer ----------------------------------------------------------------


def sensors(db: Session, now: datetime) -> dict[str, Any]:
    """Devices per product and the online rate; ``points`` is the map's sensor layer."""
    p = read(db, now)
    in_alarm = {a.device_key for a in p.alarms}
    per: dict[str, list[int]] = {}
    index: dict[str, int] = {}  # product → its position in ``products``, which the points refer to
    points = []
    for r in p.rows:
        if r.product not in per:
            per[r.product] = [0, 0]
            index[r.product] = len(index)
        per[r.product][0] += 1
        per[r.product][1] += p.online[r.id]
        if r.lon is not None and r.lat is not None and len(points) < MAX_POINTS:
            status = "alarm" if r.key in in_alarm else ("normal" if p.online[r.id] else "offline")
            points.append([r.key, round(r.lon, 5), round(r.lat, 5), status, index[r.product], r.name])
    total = len(p.rows)
    online = sum(p.online.values())
    names = {ident: product.name for ident, product in p.products.items()}
    items = sorted(({"product": ident, "name": names.get(ident, ident), "total": n, "online": up,
                     "value": f"{up}/{n}"} for ident, (n, up) in per.items()),
                   key=lambda it: (-it["total"], it["product"]))
    return {"value": _pct(online, total), "unit": "%", "total": total, "online": online,
            "offline": total - online, "in_alarm": sum(1 for r in p.rows if r.key in in_alarm),
            "items": items, "products": [[ident, names.get(ident, ident)] for ident in index],
            "points": points, "truncated": len(points) >= MAX_POINTS}


def _pct(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(100 * part / whole, 1)


# --- air quality --------------------------------------------------------------------------------


def _numbers(values: dict[str, Any] | None) -> dict[str, float]:
    return {k: float(v) for k, v in (values or {}).items()
            if k in POLLUTANTS and isinstance(v, int | float) and not isinstance(v, bool) and v >= 0}


def score(values: dict[str, float], so2_24h: float | None = None) -> aqi.AqiResult | None:
    """HJ 633 hourly AQI of these concentrations; None without any pollutant. SO2 above 800 µg/m³
    is scored by its 24-hour mean when known, otherwise left out (the standard allows no 1-h score)."""
    if values.get("so2", 0) <= 800:
        so2_24h = None  # only consulted above 800 µg/m³: keep it out of the cache key
    return _score(tuple(sorted((k, v) for k, v in values.items() if k in POLLUTANTS)), so2_24h)


@lru_cache(maxsize=4096)  # the 24-hour series repeats the same hourly means snapshot after snapshot
def _score(values: tuple[tuple[str, float], ...], so2_24h: float | None) -> aqi.AqiResult | None:
    given = dict(values)
    if not given:
        return None
    try:
        return aqi.hourly_aqi(**given, so2_24h=so2_24h)
    except aqi.SpecialRule:
        given.pop("so2")
        return aqi.hourly_aqi(**given) if given else None


def _mean_by_pollutant(stations: Iterable[dict[str, float]]) -> dict[str, float]:
    sums: dict[str, list[float]] = defaultdict(list)
    for values in stations:
        for k, v in values.items():
            sums[k].append(v)
    return {k: sum(v) / len(v) for k, v in sums.items()}


def air_quality(db: Session, now: datetime) -> dict[str, Any]:
    """District AQI now, each station's, and the district's hourly AQI over the last 24 hours."""
    p = read(db, now)
    stations = [r for r in p.rows if r.product == AIR]
    this_hour = p.now_ms - p.now_ms % HOUR_MS
    recent = [b for b in sorted(p.hourly) if b >= this_hour - HOUR_MAX_AGE * HOUR_MS]
    hour = recent[-1] if recent else None
    so2_24h = _so2_daily(p.hourly)
    used: dict[int, dict[str, float]] = {}
    items = []
    bases = set()
    for r in stations:
        means = p.hourly.get(hour, {}).get(r.id) if hour is not None else None
        values, basis = (means, "hour") if means else (_numbers(r.data), "latest")
        if basis == "latest" and not p.online[r.id]:
            values, basis = {}, "offline"
        result = score(values, so2_24h.get(r.id))
        if result is None:
            items.append({"key": r.key, "name": r.name, "value": None, "basis": basis})
            continue
        used[r.id] = values
        bases.add(basis)
        items.append({"key": r.key, "name": r.name, "value": result.aqi, "level": result.level.number,
                      "primary": list(result.primary), "basis": basis})
    items.sort(key=lambda it: (it["value"] is None, -(it["value"] or 0), it["name"]))
    district_so2 = _mean_of(so2_24h.values())
    district = score(_mean_by_pollutant(used.values()), district_so2)
    series = []
    for bucket in sorted(p.hourly):
        result = score(_mean_by_pollutant(p.hourly[bucket].values()))
        if result is not None:
            series.append([_iso(bucket), result.aqi])
    return {
        "value": district.aqi if district else None, "unit": "AQI",
        "level": district.level.number if district else None,
        "primary": list(district.primary) if district else [],
        "basis": None if not bases else bases.pop() if len(bases) == 1 else "mixed",
        "hour": _iso(hour) if hour is not None and "hour" in {it["basis"] for it in items} else None,
        "stations": len(used), "stations_total": len(stations),
        "items": items, "series": series,
    }


def _so2_daily(hourly: dict[int, dict[int, dict[str, float]]]) -> dict[int, float]:
    per: dict[int, list[float]] = defaultdict(list)
    for by_device in hourly.values():
        for device_id, means in by_device.items():
            if "so2" in means:
                per[device_id].append(means["so2"])
    return {device_id: sum(v) / len(v) for device_id, v in per.items()}


def _mean_of(values: Iterable[float]) -> float | None:
    values = list(values)
    return sum(values) / len(values) if values else None


def _iso(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).isoformat()


# --- waterlogging, parking, alarms ------------------------------------------------------------


def _threshold(rules: list[tuple[str | None, str, float]], key: str) -> tuple[str, float] | None:
    """The lowest alarm threshold on a gauge's level (its own rules and its product's)."""
    applicable = [(value, op) for device, op, value in rules if device in (None, key)]
    if not applicable:
        return None
    value, op = min(applicable)
    return op, value


def waterlogging(db: Session, now: datetime) -> dict[str, Any]:
    """Online gauges by water level now, those at or above their alarm threshold first."""
    p = read(db, now)
    gauges = [r for r in p.rows if r.product == GAUGE]
    items = []
    for r in gauges:
        level = (r.data or {}).get("level_cm")
        if not p.online[r.id] or not isinstance(level, int | float) or isinstance(level, bool):
            continue
        rule = _threshold(p.gauge_rules, r.key)
        above = rule is not None and OPS[rule[0]](level, rule[1])
        items.append({"key": r.key, "name": r.name, "value": round(float(level), 1),
                      "threshold": rule[1] if rule else None, "above": above})
    items.sort(key=lambda it: (not it["above"], -it["value"], it["name"]))
    return {"value": max((it["value"] for it in items), default=None), "unit": "cm",
            "above": sum(it["above"] for it in items), "reporting": len(items), "total": len(gauges),
            "offline": sum(1 for r in gauges if not p.online[r.id]), "items": items[:TOP_GAUGES]}


def parking(db: Session, now: datetime) -> dict[str, Any]:
    """Share of online parking detectors reporting ``occupied == true``, district and by township."""
    p = read(db, now)
    detectors = [r for r in p.rows if r.product == PARKING]
    by_township: dict[str | None, list[int]] = defaultdict(lambda: [0, 0])
    for r in detectors:
        occupied = (r.data or {}).get("occupied")
        if p.online[r.id] and isinstance(occupied, bool):
            by_township[r.township_code][0] += occupied
            by_township[r.township_code][1] += 1
    taken = sum(n for n, _ in by_township.values())
    spaces = sum(m for _, m in by_township.values())
    names = aggregates.township_names(db) if by_township else {}
    items = sorted(({"code": code, "name": names.get(code or "", code or "—"), "occupied": n, "spaces": m,
                     "rate": _pct(n, m), "value": f"{_pct(n, m)}%"} for code, (n, m) in by_township.items()),
                   key=lambda it: (-(it["rate"] or 0), it["name"]))
    return {"value": _pct(taken, spaces), "unit": "%", "occupied": taken, "spaces": spaces,
            "total": len(detectors), "items": items}


def alarms(db: Session, now: datetime) -> dict[str, Any]:
    """Active IoT alarms by severity (acknowledged or not) and the latest ones."""
    p = read(db, now)
    counts = dict.fromkeys(SEVERITIES, 0)
    for a in p.alarms:
        counts[a.severity] = counts.get(a.severity, 0) + 1
    names = {ident: product.name for ident, product in p.products.items()}
    latest = sorted(p.alarms, key=lambda a: (a.raised_at, a.device_key), reverse=True)[:LATEST_ALARMS]
    return {"value": len(p.alarms), "unacknowledged": sum(a.status == "active_unack" for a in p.alarms),
            "items": [{"severity": s, "name": s, "value": n} for s, n in counts.items()],
            "latest": [{"raised_at": _aware(a.raised_at).isoformat(), "severity": a.severity, "device": a.device_key,
                        "product": names.get(a.product, a.product), "message": a.message} for a in latest]}


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


PROVIDERS = (
    aggregates.PanelProvider(key="device_online", title=aggregates.N_("Online device rate"), compute=sensors),
    aggregates.PanelProvider(key="aqi", title=aggregates.N_("Air quality (AQI)"), compute=air_quality),
    aggregates.PanelProvider(key="waterlogging", title=aggregates.N_("Waterlogging levels"), compute=waterlogging),
    aggregates.PanelProvider(key="parking", title=aggregates.N_("Parking occupancy"), compute=parking),
    aggregates.PanelProvider(key="iot_alarms", title=aggregates.N_("Active IoT alarms"), compute=alarms),
)

for _provider in PROVIDERS:
    aggregates.register(_provider)

__all__ = ["PROVIDERS", "Pass", "air_quality", "alarms", "parking", "read", "score", "sensors", "waterlogging"]
