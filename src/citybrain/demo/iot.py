"""Demo IoT: the district's sensors, their alarm rules, and a day of history.

Devices are placed deterministically from the seed inside the real district boundary, denser
in the five urban subdistricts; each is owned by the department that would run it. Their
secrets are derived from the seed (``demo_secret``) so ``citybrain simulate`` can log in as
them: DEMO ONLY, like the demo passwords; never derive real device secrets this way.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from dataclasses import dataclass
from datetime import date

import shapely
from shapely.geometry import shape
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citybrain.core import audit, clock
from citybrain.core.actor import Actor
from citybrain.geo import service as geo_service
from citybrain.iot import registry
from citybrain.iot.models import AlarmRule, Device, DeviceState
from citybrain.iot.rules import parse_rule
from citybrain.iot.simulator import MINUTE_MS, Scenario, SimDevice
from citybrain.iot.storage import Row, StateRow, Storage

KEY_PREFIX = "zc-"
# The district government (WGS-84), the centre of the old town where most street devices are.
TOWN_CENTRE = (117.845192, 36.803456)

# product, key part, count, owning department, name, spread around the town centre in degrees
# (None: anywhere in the district)
PLAN: list[tuple[str, str, int, str, str, float | None]] = [
    ("air_quality_station", "aq", 8, "ecology", "空气质量监测站", None),
    ("waterlogging_gauge", "wl", 15, "cityadmin", "易涝点水位计", 0.035),
    ("rain_gauge", "rain", 6, "water", "雨量站", None),
    ("manhole_cover", "mh", 40, "cityadmin", "雨水井盖", 0.03),
    ("smoke_detector", "smoke", 30, "emergency", "烟感（九小场所）", 0.03),
    ("street_light", "light", 60, "cityadmin", "智慧路灯", 0.03),
    ("water_quality_station", "wq", 4, "ecology", "地表水水质自动站", None),
]
PARKING_LOTS = 8
PARKING_DETECTORS = 200
GATEWAYS = 2  # the first two lots report through a gateway
HISTORY_HOURS = 24
HISTORY_STEP_MS = 5 * MINUTE_MS
SLOW_PRODUCTS = {"manhole_cover": 6, "smoke_detector": 6}  # every 6th step (30 min) in the history

RULES: list[dict] = [
    {"id": "demo-waterlogging-30cm", "name": "道路积水超过30厘米", "product": "waterlogging_gauge",
     "property": "level_cm", "kind": "held_for", "params": {"op": ">", "value": 30, "minutes": 2},
     "severity": "major", "dispatch": True, "category_code": "E0109"},
    {"id": "demo-manhole-open", "name": "井盖异常开启", "product": "manhole_cover", "property": "open",
     "kind": "threshold", "params": {"op": "==", "value": True}, "severity": "major", "dispatch": True,
     "category_code": "C0103"},
    {"id": "demo-smoke", "name": "烟感报警", "product": "smoke_detector", "property": "smoke",
     "kind": "threshold", "params": {"op": "==", "value": True}, "severity": "critical", "dispatch": True,
     "category_code": "E0405"},
    {"id": "demo-pm25-115", "name": "PM2.5超过115（重度污染）持续10分钟", "product": "air_quality_station",
     "property": "pm25", "kind": "held_for", "params": {"op": ">", "value": 115, "minutes": 10},
     "severity": "warning", "dispatch": False},
    {"id": "demo-waterlogging-silent", "name": "水位计30分钟无数据", "product": "waterlogging_gauge",
     "property": "*", "kind": "no_data", "params": {"minutes": 30}, "severity": "warning", "dispatch": False},
    {"id": "demo-rain-silent", "name": "雨量计30分钟无数据", "product": "rain_gauge",
     "property": "*", "kind": "no_data", "params": {"minutes": 30}, "severity": "warning", "dispatch": False},
]


def demo_secret(seed: int, key: str) -> str:
    """The demo device's secret, derived from the seed. Demo only: anyone with the seed has it."""
    return "demo-" + hashlib.sha256(f"citybrain-demo-device:{seed}:{key}".encode()).hexdigest()[:32]


def _demo_salt(seed: int, key: str) -> str:
    return hashlib.sha256(f"citybrain-demo-salt:{seed}:{key}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class DemoDevice:
    key: str
    name: str
    product: str
    department: str
    lon: float
    lat: float
    gateway_key: str | None = None


def _point(rng: random.Random, area: shapely.Geometry, centre: tuple[float, float] | None,
           spread: float | None) -> tuple[float, float]:
    minx, miny, maxx, maxy = area.bounds
    for _ in range(10_000):
        if centre is not None and spread is not None:
            lon, lat = rng.gauss(centre[0], spread), rng.gauss(centre[1], spread * 0.8)
        else:
            lon, lat = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
        if area.contains(shapely.Point(lon, lat)):
            return round(lon, 6), round(lat, 6)
    raise RuntimeError("could not place a demo device inside the district")


def demo_devices(db: Session, seed: int) -> list[DemoDevice]:
    """The demo devices, deterministic from the seed and the loaded district boundary."""
    district = next(d for d in geo_service.list_divisions(db) if d.level == "district")
    area = shape(json.loads(district.geometry))
    shapely.prepare(area)
    rng = random.Random(f"citybrain-demo-iot:{seed}")
    out: list[DemoDevice] = []
    for product, part, count, dept, label, spread in PLAN:
        for i in range(1, count + 1):
            lon, lat = _point(rng, area, TOWN_CENTRE if spread else None, spread)
            out.append(DemoDevice(f"{KEY_PREFIX}{part}-{i:03d}", f"{label} {i:02d}", product, dept, lon, lat))
    lots = [_point(rng, area, TOWN_CENTRE, 0.025) for _ in range(PARKING_LOTS)]
    for g in range(GATEWAYS):
        out.append(DemoDevice(f"{KEY_PREFIX}gw-{g + 1:03d}", f"停车场物联网网关 {g + 1:02d}", "gateway", "traffic",
                              lots[g][0], lots[g][1]))
    for i in range(PARKING_DETECTORS):
        lot = i % PARKING_LOTS
        lon, lat = _point(rng, area, lots[lot], 0.0004)
        gateway = f"{KEY_PREFIX}gw-{lot + 1:03d}" if lot < GATEWAYS else None
        out.append(DemoDevice(f"{KEY_PREFIX}pk-{i + 1:03d}", f"车位检测器 {lot + 1}-{i // PARKING_LOTS + 1:02d}",
                              "parking_detector", "traffic", lon, lat, gateway))
    return out


def sim_devices(devices: list[DemoDevice], seed: int) -> list[SimDevice]:
    return [SimDevice(d.key, d.product, demo_secret(seed, d.key), d.gateway_key) for d in devices]


def load_demo_iot(db: Session, *, seed: int, actor: Actor, history: bool = True) -> dict[str, int]:
    """Products, demo devices, demo rules and (once) 24 h of history. Idempotent."""
    started = time.perf_counter()
    summary = {"iot_products": len(registry.sync_products(db, actor=actor))}
    devices = demo_devices(db, seed)
    known = set(db.scalars(select(Device.key).where(Device.key.startswith(KEY_PREFIX))))
    products = registry.products(db)
    now = clock.now()
    added = []
    # gateways first: a detector's registration checks that its gateway exists
    for dev in sorted(devices, key=lambda d: d.product != "gateway"):
        if dev.key in known:
            continue
        values = registry.check_device_in(db, registry.DeviceIn(
            key=dev.key, name=dev.name, product=dev.product, department_code=dev.department, lon=dev.lon,
            lat=dev.lat, install_date=date(2025, 6, 1), gateway_key=dev.gateway_key), known_products=products)
        salt = _demo_salt(seed, dev.key)
        db.add(Device(**values, state="active", secret_salt=salt,
                      secret_hash=registry.hash_secret(salt, demo_secret(seed, dev.key)),
                      secret_rotated_at=now, created_at=now, updated_at=now))
        added.append(dev.key)
        if dev.product == "gateway":
            db.flush()
    if added:
        db.flush()
        audit.record(db, actor=actor, action="iot.demo_devices_loaded", object_type="iot_device", object_id=None,
                     after={"count": len(added), "secrets": "derived from the demo seed (demo only)"})
    summary["iot_devices"] = len(added)
    summary["iot_rules"] = _load_rules(db, actor=actor)
    if history:
        summary["iot_history_readings"] = _backfill(db, devices, seed)
    summary["iot_seconds"] = round(time.perf_counter() - started, 1)  # type: ignore[assignment]
    return summary


def _load_rules(db: Session, *, actor: Actor) -> int:
    added = []
    for data in RULES:
        parse_rule(data)  # a broken demo rule fails the load, not the ingestion later
        if db.get(AlarmRule, data["id"]) is not None:
            continue
        db.add(AlarmRule(id=data["id"], name=data["name"], product=data["product"], device_key=None,
                         property=data["property"], kind=data["kind"], params=data["params"],
                         severity=data["severity"], dispatch=data["dispatch"],
                         category_code=data.get("category_code"), enabled=True, updated_at=clock.now()))
        added.append(data["id"])
    if added:
        db.flush()
        audit.record(db, actor=actor, action="iot.demo_rules_loaded", object_type="iot_rule", object_id=None,
                     after={"rules": added})
    return len(added)


def _backfill(db: Session, devices: list[DemoDevice], seed: int) -> int:
    """24 h of readings every 5 min (30 min for manholes and smoke detectors; parking: latest state
    only), written straight to storage, when the demo devices have no telemetry yet."""
    ids = dict(db.execute(select(Device.key, Device.id).where(Device.key.startswith(KEY_PREFIX))).all())
    # Asked of the latest state: cheaper than counting telemetry.
    if not ids or db.scalar(select(func.count()).select_from(DeviceState)
                            .where(DeviceState.device_id.in_(list(ids.values())))):
        return 0
    end = int(clock.now().timestamp() * 1000) // HISTORY_STEP_MS * HISTORY_STEP_MS
    start = end - HISTORY_HOURS * 3_600_000
    storage = Storage(db.get_bind().engine)  # on PostgreSQL the history lands in the default partition
    scenario = Scenario(seed, start_ms=end + 1)  # the history is before the scenario starts: no storms
    rows: list[Row] = []
    states: list[StateRow] = []
    for dev in devices:
        if dev.product == "gateway":
            continue
        sim = SimDevice(dev.key, dev.product)
        if dev.product == "parking_detector":
            last = end - int(_jitter(seed, dev.key) * 10 * MINUTE_MS)
            states.append(StateRow(ids[dev.key], last, scenario.values(sim, last), last))
            continue
        step = HISTORY_STEP_MS * SLOW_PRODUCTS.get(dev.product, 1)
        ts = start + int(_jitter(seed, dev.key) * step) // 1000 * 1000
        values: dict = {}
        while ts <= end:
            values = scenario.values(sim, ts)
            rows.append(Row(ids[dev.key], ts, values))
            ts += step
        states.append(StateRow(ids[dev.key], ts - step, values, ts - step))
    conn = db.connection()
    for i in range(0, len(rows), 5000):
        storage.insert_readings(conn, rows[i:i + 5000])
    storage.upsert_states(conn, states)
    return len(rows)


def _jitter(seed: int, key: str) -> float:
    return int(hashlib.sha256(f"{seed}:{key}:phase".encode()).hexdigest()[:8], 16) / 2**32


def registered_sim_devices(db: Session, seed: int, *, limit: int | None = None) -> list[SimDevice]:
    """The active demo devices whose secret is still the one derived from ``seed``, mixed across
    products so that a ``limit`` keeps every kind of sensor."""
    rows = db.execute(select(Device.key, Device.product, Device.gateway_key, Device.secret_salt, Device.secret_hash)
                      .where(Device.key.startswith(KEY_PREFIX), Device.state == "active")
                      .order_by(Device.key)).all()
    by_product: dict[str, list[SimDevice]] = {}
    for key, product, gateway_key, salt, digest in rows:
        secret = demo_secret(seed, key)
        if registry.secret_matches(salt, digest, secret):
            by_product.setdefault(product, []).append(SimDevice(key, product, secret, gateway_key))
    mixed: list[SimDevice] = []
    queues = [list(reversed(devs)) for _p, devs in sorted(by_product.items())]
    while any(queues):
        for queue in queues:
            if queue:
                mixed.append(queue.pop())
    return mixed[:limit] if limit else mixed
