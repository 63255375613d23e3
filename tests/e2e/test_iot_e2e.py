"""In real headless Chromium against `citybrain demo`: department staff open the IoT device list
(with its map), a device's detail page with a history chart drawn from its readings and a new
reading arriving live, and
acknowledge the device's alarm in the alarm console — without a request to any other host.

The test writes its own air station, readings and alarm into the demo's database (the demo's
own devices, if any, are left alone), so it does not depend on what the demo simulates.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from citybrain.core.actor import system_actor
from citybrain.core.db import make_engine
from citybrain.iot import registry
from citybrain.iot.models import AlarmRecord, Device, DeviceState, Telemetry
from e2e_helpers import demo_database, sign_in_page

pytestmark = pytest.mark.e2e

SHOTS = Path(__file__).resolve().parents[2] / "test-results"

KEY = "e2e-air-1"
ALARM = "ALM-e2e-air-1"
POINT = (117.850, 36.800)  # 丝绸路街道, WGS-84



def _seed(url: str) -> None:
    """An ecology air station heard from a minute ago, an hour of readings, and an open alarm."""
    engine = make_engine(url)
    now = datetime.now(UTC)
    now_ms = int(now.timestamp() * 1000)
    try:
        with Session(engine) as db:
            actor = system_actor("e2e")
            registry.sync_products(db, actor=actor)
            device = db.scalar(select(Device).where(Device.key == KEY))
            if device is None:
                device, _secret = registry.register(db, registry.DeviceIn(
                    key=KEY, name="E2E 空气站 <b>1</b>", product="air_quality_station", department_code="ecology",
                    lon=POINT[0], lat=POINT[1]), actor=actor)
            db.merge(DeviceState(device_id=device.id, ts=now_ms - 60_000, data={"pm25": 81.5, "pm10": 120.0},
                                 last_seen=now_ms - 60_000))
            for minutes in range(60, 0, -5):
                db.merge(Telemetry(device_id=device.id, ts=now_ms - minutes * 60_000,
                                   data={"pm25": 40.0 + minutes, "pm10": 90.0}))
            if db.get(AlarmRecord, ALARM) is None:
                db.add(AlarmRecord(id=ALARM, rule_id="e2e-pm25-high", device_key=KEY, product=device.product,
                                   severity="major", category_code=None, dispatch=False,
                                   message="PM2.5 超过 75 μg/m³", value=81.5, status="active_unack",
                                   raised_at=now - timedelta(minutes=3), last_seen=now - timedelta(minutes=1),
                                   count=2, lon=device.lon, lat=device.lat))
            db.commit()
    finally:
        engine.dispose()


def _report(url: str, pm25: float) -> None:
    """A new reading lands in the latest state, as ingestion would write it."""
    engine = make_engine(url)
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    try:
        with Session(engine) as db:
            device = db.scalar(select(Device).where(Device.key == KEY))
            state = db.get(DeviceState, device.id)
            state.data, state.ts, state.last_seen = {"pm25": pm25, "pm10": 90.0}, now_ms, now_ms
            db.commit()
    finally:
        engine.dispose()



def _alarm_status(page) -> str:  # noqa: ANN001
    return page.get_attribute(f"tr[data-alarm-id={ALARM}]", "data-status")


def test_staff_browse_devices_open_a_chart_and_acknowledge_an_alarm(page, demo_server, tmp_path_factory):  # noqa: ANN001
    url = demo_database(tmp_path_factory)
    _seed(url)
    page.set_default_timeout(15000)
    base = demo_server.base_url
    sign_in_page(page, demo_server, "ecology")

    # The device list: our station is there, online and alarming, and the map is drawn.
    page.goto(f"{base}/iot/devices?q={KEY}")
    row = page.locator(f"tr[data-device-key={KEY}]")
    assert row.count() == 1
    assert row.locator("[data-online='1']").count() == 1 and row.locator("[data-alarm='1']").count() == 1
    assert "E2E 空气站 <b>1</b>" in row.inner_text() and row.locator("b").count() == 0  # text, not markup
    page.wait_for_selector("#iot-map[data-state=ready]")
    assert page.get_attribute("#iot-map", "data-points") == "1"

    # The detail page: latest values and a PM2.5 chart for the last hour from the raw readings.
    row.locator("a").first.click()
    page.wait_for_url(f"**/iot/devices/{KEY}")
    assert "81.5" in page.locator("tr[data-prop=pm25]").inner_text()
    page.click("[data-range='1h']")
    chart = page.locator("[data-testid=chart-pm25]")
    deadline = time.monotonic() + 10
    while chart.get_attribute("data-source") != "raw" or chart.get_attribute("data-state") != "ready":
        assert time.monotonic() < deadline, "the 1 h chart did not load"
        page.wait_for_timeout(100)
    assert int(chart.get_attribute("data-points")) >= 11
    assert chart.locator("canvas").count() >= 1  # ECharts drew it
    page.click("[data-range='7d']")
    deadline = time.monotonic() + 10
    while chart.get_attribute("data-source") != "rollup:3600" or chart.get_attribute("data-state") != "ready":
        assert time.monotonic() < deadline, "the 7 d chart did not load"
        page.wait_for_timeout(100)

    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "iot-device.png"), full_page=True)

    # A new reading reaches the open page through the live stream, without a reload.
    page.wait_for_selector("#iot-live[data-state=open]", state="attached")
    page.wait_for_timeout(500)  # the watcher takes stock when the first page subscribes
    _report(url, 123.4)
    page.wait_for_function("document.querySelector('tr[data-prop=pm25] [data-value]').textContent === '123.4'",
                           timeout=10000)

    # The alarm console: acknowledge the station's alarm through its form.
    page.goto(f"{base}/iot/alarms?device={KEY}")
    assert _alarm_status(page) == "active_unack"
    with page.expect_navigation():
        page.locator(f"[data-testid=ack-{ALARM}] button").click()
    deadline = time.monotonic() + 5
    while _alarm_status(page) != "active_ack":  # the commit can trail the redirect by a moment
        assert time.monotonic() < deadline, "the alarm was not acknowledged"
        page.wait_for_timeout(200)
        page.reload()
    assert page.locator(f"[data-testid=ack-{ALARM}]").count() == 0
    assert page.locator(f"[data-testid=clear-{ALARM}]").count() == 1
    page.screenshot(path=str(SHOTS / "iot-alarms.png"), full_page=True)
    assert page.outside_requests == []  # type: ignore[attr-defined]
