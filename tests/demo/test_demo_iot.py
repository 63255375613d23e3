"""The demo IoT load: devices inside the district with their departments, rules, a day of history;
loading twice changes nothing."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citybrain.demo.iot import KEY_PREFIX, RULES, demo_secret, load_demo_iot
from citybrain.iot import registry
from citybrain.iot.models import AlarmRule, Device, DeviceState, Telemetry
from citybrain.iot.rules_store import load_rules
from citybrain.org.models import Department
from helpers import DEMO_SEED


def _demo_devices(db: Session) -> list[Device]:
    return list(db.scalars(select(Device).where(Device.key.startswith(KEY_PREFIX))))


def test_demo_devices_are_placed_and_owned_sensibly(db: Session) -> None:
    devices = _demo_devices(db)
    counts = Counter(d.product for d in devices)
    assert counts == {"parking_detector": 200, "street_light": 60, "manhole_cover": 40, "smoke_detector": 30,
                      "waterlogging_gauge": 15, "air_quality_station": 8, "rain_gauge": 6,
                      "water_quality_station": 4, "gateway": 2}
    assert all(d.township_code and d.grid_code and d.lon and d.lat for d in devices)
    assert len({d.township_code for d in devices}) >= 4
    depts = dict(db.execute(select(Department.id, Department.code)).all())
    owner = {p: {depts[d.department_id] for d in devices if d.product == p} for p in counts}
    assert owner["air_quality_station"] == {"ecology"} and owner["smoke_detector"] == {"emergency"}
    assert owner["parking_detector"] == {"traffic"} and owner["waterlogging_gauge"] == {"cityadmin"}
    behind = Counter(d.gateway_key for d in devices if d.product == "parking_detector")
    assert behind[None] == 150 and set(behind) == {None, "zc-gw-001", "zc-gw-002"}


def test_demo_secrets_authenticate_and_are_deterministic(db: Session) -> None:
    device = db.scalar(select(Device).where(Device.key == "zc-wl-001"))
    assert demo_secret(DEMO_SEED, "zc-wl-001") == demo_secret(DEMO_SEED, "zc-wl-001")
    assert registry.secret_matches(device.secret_salt, device.secret_hash, demo_secret(DEMO_SEED, "zc-wl-001"))
    assert not registry.secret_matches(device.secret_salt, device.secret_hash, demo_secret(DEMO_SEED + 1, "zc-wl-001"))
    assert not registry.secret_matches(device.secret_salt, device.secret_hash, demo_secret(DEMO_SEED, "zc-wl-002"))


def test_demo_rules_are_stored_and_parse(db: Session) -> None:
    stored = {r.id: r for r in load_rules(db)}
    assert {r["id"] for r in RULES} <= set(stored)
    flood = stored["demo-waterlogging-30cm"]
    assert flood.dispatch and flood.category_code == "E0109" and flood.params["minutes"] == 2
    assert stored["demo-smoke"].severity == "critical" and stored["demo-smoke"].dispatch
    assert not stored["demo-pm25-115"].dispatch


def test_a_day_of_history_and_latest_state(db: Session) -> None:
    ids = [d.id for d in _demo_devices(db) if d.product == "air_quality_station"]
    rows = db.scalars(select(Telemetry).where(Telemetry.device_id == ids[0]).order_by(Telemetry.ts)).all()
    assert 280 <= len(rows) <= 290
    assert rows[-1].ts - rows[0].ts >= 23 * 3_600_000
    assert set(rows[0].data) >= {"pm25", "pm10", "o3"}
    states = db.scalar(select(func.count()).select_from(DeviceState).where(
        DeviceState.device_id.in_([d.id for d in _demo_devices(db) if d.product != "gateway"])))
    assert states == 363


def test_loading_again_changes_nothing(db: Session, admin_actor) -> None:  # noqa: ANN001
    before = (db.scalar(select(func.count()).select_from(Device)), db.scalar(select(func.count()).select_from(
        AlarmRule)), db.scalar(select(func.count()).select_from(Telemetry)))
    summary = load_demo_iot(db, seed=DEMO_SEED, actor=admin_actor)
    assert summary["iot_devices"] == summary["iot_rules"] == summary["iot_history_readings"] == 0
    after = (db.scalar(select(func.count()).select_from(Device)), db.scalar(select(func.count()).select_from(
        AlarmRule)), db.scalar(select(func.count()).select_from(Telemetry)))
    assert after == before
