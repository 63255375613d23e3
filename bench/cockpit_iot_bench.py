"""Cost of the cockpit's IoT panels with N devices (default 10,000). Prints figures, asserts nothing.

Setup   a fresh database (a temporary SQLite file, and a new PostgreSQL database when
        ``--pg-url`` is given), migrated, the demo district's departments and geography, the shipped products, then N
        located devices of every product (mostly parking detectors, street lights and smoke
        detectors; 60 air stations, 400 water-level gauges) inserted in bulk with their latest
        state — 90% seen within their product's timeout —, 300 active alarms, two waterlogging
        rules and 24 hours of hourly rollups of the air stations.
Measure the IoT part of the snapshot (``aggregates._panels``: one pass shared by the five IoT
        panels), then the whole ``aggregates.snapshot``; median and max of ``--repeat`` runs,
        the CPU time of this process (the SQLite work, not PostgreSQL's server side), the number of SQL
        statements of one pass, and the size of the snapshot JSON.

Usage: python bench/cockpit_iot_bench.py [--devices 10000] [--repeat 15]
       [--pg-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import create_engine, event, insert, select, text
from sqlalchemy.orm import Session

from citybrain.cockpit import aggregates, iot_panels
from citybrain.core import migrate
from citybrain.core.actor import system_actor
from citybrain.core.db import make_engine
from citybrain.demo.district import load_geography
from citybrain.geo import service as geo_service
from citybrain.iot import registry
from citybrain.iot.models import AlarmRecord, AlarmRule, Device, DeviceState, Rollup
from citybrain.org import service as org_service
from citybrain.org.models import Department

MIX = [("parking_detector", 0.40), ("street_light", 0.20), ("smoke_detector", 0.18), ("manhole_cover", 0.12),
       ("rain_gauge", 0.04), ("water_quality_station", 0.014)]


def load(engine, n: int) -> None:  # noqa: ANN001
    actor = system_actor("bench")
    with Session(engine) as db:
        # Departments and the district's geography only: the figures are about these N devices.
        org_service.load_shipped_departments(db, actor=actor)
        load_geography(db, actor=actor)
        registry.sync_products(db, actor=actor)
        db.commit()
    rng = random.Random(5)
    now = datetime.now(UTC)
    now_ms = int(now.timestamp() * 1000)
    with Session(engine) as db:
        dept = db.scalar(select(Department.id).where(Department.code == "ecology"))
        towns = [d for d in geo_service.list_divisions(db) if d.level == "township"]
        boxes = {d.code: json.loads(d.geometry) for d in towns}
        products = registry.products(db)
        kinds = ["air_quality_station"] * 60 + ["waterlogging_gauge"] * 400
        for product, share in MIX:
            kinds += [product] * int(n * share)
        kinds += ["parking_detector"] * (n - len(kinds))
        devices, states = [], []
        for i, product in enumerate(kinds[:n]):
            code = rng.choice(sorted(boxes))
            ring = _ring(boxes[code])
            lon, lat = rng.choice(ring)
            devices.append({"key": f"b-{i}", "name": f"设备{i}", "product": product, "department_id": dept,
                            "lon": lon + rng.uniform(-0.002, 0.002), "lat": lat + rng.uniform(-0.002, 0.002),
                            "township_code": code, "address": "", "state": "active", "created_at": now,
                            "updated_at": now})
            timeout = products[product].online_timeout_s
            seen = now_ms - int(rng.uniform(0, timeout * (1.1 if rng.random() < 0.9 else 3)) * 1000)
            states.append({"device_id": f"b-{i}", "ts": seen, "last_seen": seen, "status": None,
                           "data": _values(product, rng)})
        db.execute(insert(Device), devices)
        ids = dict(db.execute(select(Device.key, Device.id).where(Device.key.like("b-%"))).all())
        for s in states:
            s["device_id"] = ids[s["device_id"]]
        db.execute(insert(DeviceState), states)
        air = [ids[d["key"]] for d in devices if d["product"] == "air_quality_station"]
        this_hour = now_ms - now_ms % 3_600_000
        db.execute(insert(Rollup), [
            {"device_id": d, "prop": prop, "period": 3600, "bucket": this_hour - h * 3_600_000, "count": 60,
             "sum": 60 * v, "min": v, "max": v}
            for d in air for h in range(1, 25) for prop, v in _values("air_quality_station", rng).items()
            if prop in iot_panels.POLLUTANTS])
        db.execute(insert(AlarmRule), [
            {"id": "wl-high", "name": "积水", "product": "waterlogging_gauge", "device_key": None,
             "property": "level_cm", "kind": "threshold", "params": {"op": ">=", "value": 25}, "severity": "major",
             "dispatch": False, "enabled": True, "updated_at": now},
            {"id": "wl-held", "name": "积水持续", "product": "waterlogging_gauge", "device_key": None,
             "property": "level_cm", "kind": "held_for", "params": {"op": ">", "value": 15, "minutes": 10},
             "severity": "minor", "dispatch": False, "enabled": True, "updated_at": now}])
        db.execute(insert(AlarmRecord), [
            {"id": uuid.uuid4().hex, "rule_id": "r", "device_key": f"b-{i * (n // 300)}", "product": "smoke_detector",
             "severity": rng.choice(iot_panels.SEVERITIES), "category_code": None, "dispatch": False,
             "message": "bench", "value": 1, "status": rng.choice(iot_panels.ACTIVE_ALARMS),
             "raised_at": now - timedelta(minutes=i), "last_seen": now, "count": 1} for i in range(300)])
        db.commit()


def _ring(geometry: dict) -> list[list[float]]:
    coords = geometry["coordinates"]
    return coords[0][0] if geometry["type"] == "MultiPolygon" else coords[0]


def _values(product: str, rng: random.Random) -> dict:
    if product == "air_quality_station":
        return {"pm25": rng.uniform(10, 120), "pm10": rng.uniform(20, 200), "so2": rng.uniform(2, 40),
                "no2": rng.uniform(5, 80), "co": rng.uniform(0.2, 2), "o3": rng.uniform(20, 180),
                "temperature": 10.0, "humidity": 50.0}
    if product == "waterlogging_gauge":
        return {"level_cm": rng.uniform(0, 40), "battery": 80}
    if product == "parking_detector":
        return {"occupied": rng.random() < 0.6, "battery": 70}
    return {"battery": 90}


def measure(engine, repeat: int) -> dict:  # noqa: ANN001
    panels_s, panels_cpu, snapshot_s, statements = [], [], [], []
    for _ in range(repeat):
        with Session(engine) as db:
            now = datetime.now(UTC)
            seen: list[str] = []
            conn = db.connection()
            def listener(*args, seen=seen):  # noqa: ANN002, ANN202
                seen.append(args[2])

            event.listen(conn, "before_cursor_execute", listener)
            t0, c0 = time.perf_counter(), time.process_time()
            panels = aggregates._panels(db, now)
            panels_s.append(time.perf_counter() - t0)
            panels_cpu.append(time.process_time() - c0)
            event.remove(conn, "before_cursor_execute", listener)
            statements.append(len(seen))
            t0 = time.perf_counter()
            snap = aggregates.snapshot(db, now=now)
            snapshot_s.append(time.perf_counter() - t0)
    size = len(json.dumps(snap, ensure_ascii=False, separators=(",", ":")).encode())
    return {"panels_ms": (statistics.median(panels_s) * 1000, max(panels_s) * 1000),
            "panels_cpu_ms": statistics.median(panels_cpu) * 1000,
            "snapshot_ms": (statistics.median(snapshot_s) * 1000, max(snapshot_s) * 1000),
            "statements": statements[-1], "json_bytes": size,
            "devices": panels["device_online"]["data"]["total"],
            "online": panels["device_online"]["data"]["online"], "aqi": panels["aqi"]["data"]["value"]}


def report(name: str, got: dict) -> None:
    print(f"{name}: {got['devices']:,} devices ({got['online']:,} online), AQI {got['aqi']}; "
          f"IoT panels median {got['panels_ms'][0]:.0f} ms (max {got['panels_ms'][1]:.0f}; "
          f"this process's CPU {got['panels_cpu_ms']:.0f} ms), "
          f"{got['statements']} SQL statements; whole snapshot median {got['snapshot_ms'][0]:.0f} ms "
          f"(max {got['snapshot_ms'][1]:.0f}); snapshot JSON {got['json_bytes'] / 1024:.0f} KiB", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--pg-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/bench.db")
        migrate.upgrade(engine)
        load(engine, args.devices)
        report("SQLite", measure(engine, args.repeat))
        engine.dispose()
    if args.pg_url:
        admin = create_engine(args.pg_url, isolation_level="AUTOCOMMIT")
        name = f"citybrain_bench_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            engine = make_engine(admin.url.set(database=name).render_as_string(hide_password=False))
            migrate.upgrade(engine)
            load(engine, args.devices)
            report("PostgreSQL", measure(engine, args.repeat))
            engine.dispose()
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


if __name__ == "__main__":
    main()
