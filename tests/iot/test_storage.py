"""Telemetry storage: rollups (1 min, 1 h), retention per product, PostgreSQL day partitions."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from citybrain.core import migrate
from citybrain.core.actor import system_actor
from citybrain.core.db import make_engine
from citybrain.iot import registry
from citybrain.iot.models import Rollup, Telemetry
from citybrain.iot.registry import DeviceIn
from citybrain.iot.storage import DAY_MS, Row, Storage
from citybrain.iot.thingmodel import load_products
from citybrain.org import service as org_service
from conftest import BACKENDS, PG_ADMIN_URL

ACTOR = system_actor("test")
PRODUCTS = load_products()
T0 = 1_795_996_800_000  # 2026-11-26T16:00:00Z, a whole hour


@pytest.fixture
def world(connection: Connection):  # noqa: ANN201
    db = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    registry.sync_products(db, actor=ACTOR)
    aq, _ = registry.register(db, DeviceIn(key="s-aq", name="s-aq", product="air_quality_station",
                                           department_code="ecology"), actor=ACTOR)
    pk, _ = registry.register(db, DeviceIn(key="s-pk", name="s-pk", product="parking_detector",
                                           department_code="traffic"), actor=ACTOR)
    db.flush()
    return db, aq, pk


def rollups(db: Session, device_id: int, prop: str, period: int) -> dict[int, tuple]:
    rows = db.scalars(select(Rollup).where(Rollup.device_id == device_id, Rollup.prop == prop,
                                           Rollup.period == period)).all()
    return {r.bucket: (r.count, round(r.sum, 6), r.min, r.max) for r in rows}


def test_rollups_per_minute_and_hour(world) -> None:  # noqa: ANN001
    db, aq, pk = world
    storage = Storage(db.get_bind().engine)
    conn = db.connection()
    readings = [Row(aq.id, T0 + 10_000, {"pm25": 10.0, "pm10": 20.0}), Row(aq.id, T0 + 50_000, {"pm25": 30.0}),
                Row(aq.id, T0 + 70_000, {"pm25": 5.0}), Row(aq.id, T0 + 3_600_000 + 1, {"pm25": 7.0}),
                Row(pk.id, T0 + 1_000, {"occupied": True}), Row(pk.id, T0 + 2_000, {"occupied": False}),
                Row(pk.id, T0 + 3_000, {"occupied": True, "battery": 80})]
    assert storage.insert_readings(conn, readings) == 7
    assert storage.insert_readings(conn, readings[:2]) == 0  # stored once
    written = storage.rollup(conn, PRODUCTS, now_ms=T0 + 2 * 3_600_000 + 5_000)
    assert written > 0
    assert rollups(db, aq.id, "pm25", 60) == {T0: (2, 40.0, 10.0, 30.0), T0 + 60_000: (1, 5.0, 5.0, 5.0),
                                              T0 + 3_600_000: (1, 7.0, 7.0, 7.0)}
    assert rollups(db, aq.id, "pm10", 60) == {T0: (1, 20.0, 20.0, 20.0)}
    assert rollups(db, aq.id, "pm25", 3600) == {T0: (3, 45.0, 5.0, 30.0), T0 + 3_600_000: (1, 7.0, 7.0, 7.0)}
    # A boolean rolls up as the share of true: 2 of 3 readings occupied.
    assert rollups(db, pk.id, "occupied", 60) == {T0: (3, 2.0, 0.0, 1.0)}
    # A late reading within the look-back is folded in at the next run, not counted twice.
    storage.insert_readings(conn, [Row(aq.id, T0 + 2 * 3_600_000 - 30_000, {"pm25": 50.0})])
    storage.rollup(conn, PRODUCTS, now_ms=T0 + 2 * 3_600_000 + 65_000)
    storage.rollup(conn, PRODUCTS, now_ms=T0 + 2 * 3_600_000 + 70_000)
    minute = T0 + 2 * 3_600_000 - 60_000
    assert rollups(db, aq.id, "pm25", 60)[minute] == (1, 50.0, 50.0, 50.0)
    assert rollups(db, aq.id, "pm25", 60)[T0] == (2, 40.0, 10.0, 30.0)


def test_retention_removes_old_raw_readings_per_product_and_keeps_rollups(world) -> None:  # noqa: ANN001
    db, aq, pk = world
    storage = Storage(db.get_bind().engine)
    conn = db.connection()
    now = T0 + 1000 * DAY_MS
    old_aq = now - (PRODUCTS["air_quality_station"].retention_days + 1) * DAY_MS
    young_aq = now - (PRODUCTS["air_quality_station"].retention_days - 1) * DAY_MS
    old_pk = now - (PRODUCTS["parking_detector"].retention_days + 1) * DAY_MS
    storage.insert_readings(conn, [Row(aq.id, old_aq, {"pm25": 1.0}), Row(aq.id, young_aq, {"pm25": 2.0}),
                                   Row(pk.id, old_pk, {"occupied": True})])
    storage.rollup(conn, PRODUCTS, now_ms=now)
    kept_rollups = db.scalar(select(func.count()).select_from(Rollup).where(Rollup.device_id.in_([aq.id, pk.id])))
    report = storage.apply_retention(conn, PRODUCTS, now_ms=now)
    assert report["air_quality_station"] >= 1 and report["parking_detector"] >= 1  # the demo's own rows too
    left = db.scalars(select(Telemetry.ts).where(Telemetry.device_id.in_([aq.id, pk.id]))).all()
    assert left == [young_aq]
    assert db.scalar(select(func.count()).select_from(Rollup)
                     .where(Rollup.device_id.in_([aq.id, pk.id]))) == kept_rollups


@pytest.mark.skipif("postgresql" not in BACKENDS, reason="PostgreSQL partitions")
def test_postgresql_day_partitions_are_created_ahead_and_dropped_whole() -> None:
    name = f"citybrain_part_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(admin.url.set(database=name).render_as_string(hide_password=False))
    try:
        migrate.upgrade(engine)
        with Session(engine) as db:
            org_service.load_shipped_departments(db, actor=ACTOR)
            registry.sync_products(db, actor=ACTOR)
            dev, _ = registry.register(db, DeviceIn(key="p-aq", name="p", product="air_quality_station",
                                                    department_code="ecology"), actor=ACTOR)
            db.commit()
            dev_id = dev.id
        storage = Storage(engine)
        today = T0 // DAY_MS
        longest = max(p.retention_days for p in PRODUCTS.values())
        created = storage.ensure_partitions({today, today + 1, today - longest - 5})
        assert len(created) == 3 and storage.ensure_partitions({today}) == []
        with Session(engine) as db:
            conn = db.connection()
            storage.insert_readings(conn, [Row(dev_id, T0, {"pm25": 1.0}),
                                           Row(dev_id, (today - longest - 5) * DAY_MS + 5, {"pm25": 2.0}),
                                           Row(dev_id, (today - 3000) * DAY_MS, {"pm25": 3.0})])  # default partition
            db.commit()
            where = {r[0]: r[1] for r in db.execute(text(
                "SELECT tableoid::regclass::text, count(*) FROM iot_telemetry GROUP BY 1"))}
            assert where == {storage.partition_name(today): 1, storage.partition_name(today - longest - 5): 1,
                             "iot_telemetry_default": 1}
            report = storage.apply_retention(db.connection(), PRODUCTS, now_ms=T0)
            db.commit()
            assert report["partitions_dropped"] == 1
            names = {n for n, _ in storage.partitions(db.connection())}
            assert names == {storage.partition_name(today), storage.partition_name(today + 1)}
            assert db.scalars(select(Telemetry.ts)).all() == [T0]  # the default partition's old row deleted too
    finally:
        engine.dispose()
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
