"""The simulator: readings valid against the thing models (except the deliberate faults),
deterministic from the seed, the storm and the episodes where the demo rules expect them, and
published for real through the embedded broker."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citybrain.config import Settings
from citybrain.demo.iot import demo_devices, registered_sim_devices, sim_devices
from citybrain.iot import registry
from citybrain.iot.broker import EmbeddedBroker
from citybrain.iot.ingest import Ingestor
from citybrain.iot.models import Device, Telemetry
from citybrain.iot.payload import validate_telemetry
from citybrain.iot.registry import DeviceDirectory
from citybrain.iot.simulator import MINUTE_MS, Scenario, SimDevice, Simulator
from citybrain.iot.thingmodel import PayloadError, load_products
from mqtt_probe import free_port

HOUR = 60 * MINUTE_MS
START = int(datetime(2026, 7, 20, 16, 0, tzinfo=UTC).timestamp() * 1000)
PRODUCTS = load_products(registry.shipped_products_text())


def devices_of(product: str, n: int = 20) -> list[SimDevice]:
    return [SimDevice(f"zc-x-{product}-{i}", product) for i in range(n)]


ALL = [d for p in PRODUCTS if p != "gateway" for d in devices_of(p, 12)]


def test_readings_are_valid_except_the_deliberate_faults() -> None:
    scenario = Scenario(7, START)
    checked = faulty = 0
    for minute in range(0, 6 * 60, 7):
        t = START + minute * MINUTE_MS
        for dev in ALL:
            topic, payload = scenario.message(dev, t, t) or (None, None)
            if topic is None:
                continue
            assert topic == f"citybrain/{dev.product}/{dev.key}/telemetry"
            now = datetime.fromtimestamp(t / 1000, UTC)
            if scenario.is_faulty(dev, t):
                faulty += 1
                with pytest.raises(PayloadError) as caught:
                    validate_telemetry(PRODUCTS[dev.product], payload, now=now)
                assert caught.value.code.value == "out_of_range"
            else:
                tele = validate_telemetry(PRODUCTS[dev.product], payload, now=now)
                assert tele.ts_reported and set(tele.values) == {p.identifier for p in PRODUCTS[dev.product].properties}
                checked += 1
    assert checked > 4000
    assert 0 < faulty < checked * 0.01


def test_same_seed_same_readings_other_seed_other_readings() -> None:
    a, b, c = Scenario(7, START), Scenario(7, START), Scenario(8, START)
    times = [START + m * MINUTE_MS for m in range(0, 600, 13)]
    msgs = lambda s: [s.message(d, t, t) for d in ALL for t in times]  # noqa: E731
    assert msgs(a) == msgs(b)
    assert msgs(a) != msgs(c)


def test_the_storm_floods_low_spots_long_enough_for_the_demo_rule() -> None:
    scenario = Scenario(7, START)
    gauges = devices_of("waterlogging_gauge", 15)
    before = [scenario.values(g, START - MINUTE_MS)["level_cm"] for g in gauges]
    assert max(before) == 0
    over = {g.key: sum(scenario.values(g, t)["level_cm"] > 30 for t in range(START, START + 2 * HOUR, MINUTE_MS)
                       if not scenario.is_faulty(g, t)) for g in gauges}
    assert sum(minutes >= 5 for minutes in over.values()) >= 3, over  # held > 2 min at several gauges
    assert sum(minutes == 0 for minutes in over.values()) >= 1, over  # but not everywhere
    rain = devices_of("rain_gauge", 1)[0]
    assert scenario.values(rain, START + 40 * MINUTE_MS)["rain_mm_1h"] > 15
    assert scenario.values(rain, START + 200 * MINUTE_MS)["rain_mm_1h"] == 0


def test_pollution_episode_and_diurnal_cycles() -> None:
    scenario = Scenario(7, START)
    station = devices_of("air_quality_station", 1)[0]
    episode = [scenario.values(station, START + m * MINUTE_MS)["pm25"] for m in range(120, 180)]
    assert min(episode) > 115
    assert scenario.values(station, START - 3 * 60 * MINUTE_MS)["pm25"] < 115
    # O3 peaks in the afternoon (China time), street lights burn at night
    afternoon = START - 10 * HOUR  # 14:00 China time (START is midnight there)
    night = START + 2 * HOUR
    assert scenario.values(station, afternoon)["o3"] > scenario.values(station, night)["o3"] + 50
    light = devices_of("street_light", 1)[0]
    assert scenario.values(light, night)["on"] and not scenario.values(light, afternoon)["on"]


def test_some_devices_go_silent_for_a_while() -> None:
    scenario = Scenario(7, START)
    many = devices_of("waterlogging_gauge", 400)
    silent = [d for d in many if any(scenario.is_silent(d, START + m * MINUTE_MS) for m in range(0, 360, 5))]
    assert 2 <= len(silent) <= 40
    assert not any(scenario.is_silent(d, START - MINUTE_MS) for d in many)


@pytest.fixture
def demo_broker(db: Session) -> EmbeddedBroker:
    def factory() -> Session:
        return Session(bind=db.connection(), join_transaction_mode="create_savepoint", expire_on_commit=False)

    directory = DeviceDirectory(factory, ttl_s=3600)
    directory.refresh(force=True)
    with EmbeddedBroker(Settings(mqtt_port=free_port(), secret_key="x" * 40), directory,
                        Ingestor(factory, directory)) as broker:
        yield broker


def test_simulator_publishes_valid_readings_through_the_embedded_broker(db: Session,
                                                                        demo_broker: EmbeddedBroker) -> None:
    from helpers import DEMO_SEED

    devices = registered_sim_devices(db, DEMO_SEED)
    assert len(devices) > 300
    chosen = devices[:20] + [d for d in devices if d.product == "gateway"][:1]
    gateway = chosen[-1].key
    children = [d for d in devices if d.gateway_key == gateway][:5]
    chosen += children
    sim = Simulator(chosen, url=f"mqtt://127.0.0.1:{demo_broker.port}", seed=DEMO_SEED, rate=60)
    stats = sim.run(duration=3)
    assert not stats.refused
    assert stats.published >= 60 and stats.acknowledged == stats.published
    # Acknowledged means ingested: every message went through the thing models.
    ingested = demo_broker.ingestor.stats.snapshot()
    assert ingested["messages"] == stats.published
    assert set(ingested["refused"]) <= {"out_of_range"}  # the deliberate faults only
    assert ingested["readings"] > stats.published  # gateway batches carry several readings
    child_ids = [db.scalar(select(Device.id).where(Device.key == d.key)) for d in children]
    assert db.scalar(select(func.count()).select_from(Telemetry).where(Telemetry.device_id.in_(child_ids)))


def test_demo_devices_have_demo_secrets(db: Session) -> None:
    from helpers import DEMO_SEED

    planned = demo_devices(db, DEMO_SEED)
    registered = {d.key: d for d in registered_sim_devices(db, DEMO_SEED)}
    assert {d.key for d in planned} == set(registered)
    assert sim_devices(planned, DEMO_SEED)[0].secret == registered[planned[0].key].secret
    assert registered_sim_devices(db, DEMO_SEED + 1) == []  # another seed's secrets do not log in
