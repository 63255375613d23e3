"""The cockpit's IoT panels show what the IoT tables hold: sensors online, AQI (HJ 633),
waterlogging, parking occupancy, active alarms and the map's sensor layer."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, event, select
from sqlalchemy.orm import Session

from citybrain.cockpit import aggregates, iot_panels
from citybrain.core.db import Base
from citybrain.core.i18n import LANG_COOKIE
from citybrain.data import cockpit as data_cockpit
from citybrain.iot import registry
from citybrain.iot.models import AlarmRecord, AlarmRule, Device, DeviceState, Rollup
from citybrain.org.models import Department
from event_helpers import SILULU, WANGCUN, point_in
from helpers import sign_in

HOUR = 3_600_000
IOT_KEYS = ("aqi", "waterlogging", "parking", "device_online", "iot_alarms")


class Scene:
    def __init__(self, db: Session, now: datetime) -> None:
        self.db, self.now = db, now
        self.now_ms = int(now.timestamp() * 1000)
        self.dept = db.scalar(select(Department.id).where(Department.code == "ecology"))
        self.where = {code: point_in(db, code) for code in (SILULU, WANGCUN)}

    def device(self, key: str, product: str, *, seen_s_ago: float | None = None, data: dict | None = None,
               township: str | None = SILULU, state: str = "active") -> Device:
        lon, lat = self.where[township] if township else (None, None)
        row = Device(key=key, name=f"名称{key}", product=product, department_id=self.dept, lon=lon, lat=lat,
                     township_code=township, address="", state=state, created_at=self.now, updated_at=self.now)
        self.db.add(row)
        self.db.flush()
        if seen_s_ago is not None:
            seen = self.now_ms - int(seen_s_ago * 1000)
            self.db.add(DeviceState(device_id=row.id, ts=seen, data=data or {}, last_seen=seen, status=None))
            self.db.flush()
        return row

    def alarm(self, key: str, product: str, severity: str, status: str = "active_unack", minutes_ago: int = 5,
              rule: str = "r1") -> None:
        at = self.now - timedelta(minutes=minutes_ago)
        self.db.add(AlarmRecord(id=f"a-{key}-{severity}-{status}-{rule}", rule_id=rule, device_key=key,
                                product=product, severity=severity, category_code=None, dispatch=False,
                                message=f"{key} {severity}", value=1, status=status, raised_at=at, last_seen=at,
                                count=1))
        self.db.flush()

    def rule(self, rid: str, params: dict, *, device: str | None = None, kind: str = "threshold",
             enabled: bool = True, prop: str = "level_cm") -> None:
        self.db.add(AlarmRule(id=rid, name=rid, product="waterlogging_gauge", device_key=device, property=prop,
                              kind=kind, params=params, severity="major", dispatch=False, enabled=enabled,
                              updated_at=self.now))
        self.db.flush()

    def rollup(self, device: Device, hours_ago: int, **means: float) -> None:
        bucket = self.now_ms - self.now_ms % HOUR - hours_ago * HOUR
        for prop, mean in means.items():
            self.db.add(Rollup(device_id=device.id, prop=prop, period=3600, bucket=bucket, count=4, sum=4 * mean,
                               min=mean, max=mean))
        self.db.flush()


@pytest.fixture
def iot(db: Session, admin_actor, frozen_clock) -> Scene:  # noqa: ANN001
    """Empty IoT tables (whatever the demo loaded is rolled back with the test) and the shipped products."""
    for table in reversed(Base.metadata.sorted_tables):
        if table.name.startswith("iot_") and table.name != "iot_product":
            db.execute(delete(table))
    registry.sync_products(db, actor=admin_actor)
    db.flush()
    return Scene(db, frozen_clock[0])


def panel(db: Session, now: datetime, key: str) -> dict[str, Any]:
    return aggregates.snapshot(db, now=now)["panels"][key]


# --- empty tables -------------------------------------------------------------------------------


def test_empty_iot_tables_give_empty_panels_not_errors(db, iot):
    panels = aggregates.snapshot(db, now=iot.now)["panels"]
    assert all(panels[k]["connected"] for k in IOT_KEYS)
    assert panels["device_online"]["data"] | {} == {
        "value": None, "unit": "%", "total": 0, "online": 0, "offline": 0, "in_alarm": 0, "items": [],
        "products": [], "points": [], "truncated": False}
    assert panels["aqi"]["data"]["value"] is None and panels["aqi"]["data"]["items"] == []
    assert panels["aqi"]["data"]["series"] == [] and panels["aqi"]["data"]["basis"] is None
    assert panels["waterlogging"]["data"]["value"] is None and panels["waterlogging"]["data"]["above"] == 0
    assert panels["parking"]["data"]["value"] is None and panels["parking"]["data"]["spaces"] == 0
    assert panels["iot_alarms"]["data"]["value"] == 0
    assert [it["value"] for it in panels["iot_alarms"]["data"]["items"]] == [0, 0, 0, 0]
    assert panels["data_quality"]["data"]["value"] is None  # the data pool's panel: no quality run yet


# --- sensors online -----------------------------------------------------------------------------


def test_online_means_last_seen_within_the_products_timeout(db, iot):
    iot.device("aq-edge", "air_quality_station", seen_s_ago=900)  # timeout 900 s: still online
    iot.device("aq-late", "air_quality_station", seen_s_ago=900.001)  # one millisecond too late
    iot.device("aq-never", "air_quality_station")  # never reported
    iot.device("pk-1", "parking_detector", seen_s_ago=7000)  # timeout 7200 s
    iot.device("pk-2", "parking_detector", seen_s_ago=7300)
    iot.device("pk-off", "parking_detector", seen_s_ago=1, state="disabled")  # not counted
    iot.device("sl-nowhere", "street_light", seen_s_ago=10, township=None)  # online, not on the map
    data = panel(db, iot.now, "device_online")["data"]
    assert (data["total"], data["online"], data["offline"]) == (6, 3, 3)
    assert data["value"] == 50.0
    by_product = {it["product"]: (it["online"], it["total"]) for it in data["items"]}
    assert by_product == {"air_quality_station": (1, 3), "parking_detector": (1, 2), "street_light": (1, 1)}
    names = dict(data["products"])
    assert names["air_quality_station"] == "空气质量监测站"
    points = {p[0]: p for p in data["points"]}
    assert set(points) == {"aq-edge", "aq-late", "aq-never", "pk-1", "pk-2"}
    assert points["aq-edge"][3] == "normal" and points["aq-late"][3] == "offline"
    assert data["products"][points["pk-1"][4]][0] == "parking_detector"
    assert points["aq-edge"][1:3] == [round(c, 5) for c in iot.where[SILULU]]


def test_a_device_with_an_active_alarm_is_red_on_the_map_even_offline(db, iot):
    iot.device("wl-1", "waterlogging_gauge", seen_s_ago=10, data={"level_cm": 3})
    iot.device("wl-2", "waterlogging_gauge", seen_s_ago=99999, data={"level_cm": 3})
    iot.device("wl-3", "waterlogging_gauge", seen_s_ago=10, data={"level_cm": 3})
    iot.alarm("wl-1", "waterlogging_gauge", "major")
    iot.alarm("wl-2", "waterlogging_gauge", "warning", rule="nodata")
    iot.alarm("wl-3", "waterlogging_gauge", "critical", status="cleared_unack")  # over: not on the map
    data = panel(db, iot.now, "device_online")["data"]
    assert {p[0]: p[3] for p in data["points"]} == {"wl-1": "alarm", "wl-2": "alarm", "wl-3": "normal"}
    assert data["in_alarm"] == 2


# --- air quality (HJ 633) -----------------------------------------------------------------------


def test_aqi_from_the_latest_readings_matches_hand_computed_values(db, iot):
    # Station 1: PM2.5 50 → (100−50)/(75−35)·(50−35)+50 = 68.75 → 69; PM10 100 → 0.5·50+50 = 75;
    #            NO2 40 (1-h table 0–100 → 0–50) → 20. AQI 75, primary PM10.
    iot.device("aq-1", "air_quality_station", seen_s_ago=60, data={"pm25": 50, "pm10": 100, "no2": 40,
                                                                   "temperature": 12.5})
    # Station 2: PM2.5 80 → (150−100)/(115−75)·(80−75)+100 = 106.25 → 107; PM10 60 → 55. AQI 107.
    iot.device("aq-2", "air_quality_station", seen_s_ago=60, data={"pm25": 80, "pm10": 60})
    # Offline: its stale 500 µg/m³ must not count.
    iot.device("aq-3", "air_quality_station", seen_s_ago=3600, data={"pm25": 500})
    data = panel(db, iot.now, "aqi")["data"]
    stations = {it["key"]: it for it in data["items"]}
    assert stations["aq-1"]["value"] == 75 and stations["aq-1"]["primary"] == ["pm10"]
    assert stations["aq-2"]["value"] == 107 and stations["aq-2"]["level"] == 3
    assert stations["aq-3"]["value"] is None and stations["aq-3"]["basis"] == "offline"
    # District: means PM2.5 65 → 1.25·30+50 = 87.5 → 88; PM10 80 → 65; NO2 40 → 20. AQI 88 (良).
    assert (data["value"], data["level"], data["primary"]) == (88, 2, ["pm25"])
    assert data["basis"] == "latest" and data["hour"] is None
    assert (data["stations"], data["stations_total"]) == (2, 3)
    assert [it["key"] for it in data["items"]] == ["aq-2", "aq-1", "aq-3"]


def test_aqi_uses_the_last_complete_hours_means_and_draws_24_hours(db, iot):
    s1 = iot.device("aq-1", "air_quality_station", seen_s_ago=60, data={"pm25": 300})
    iot.device("aq-2", "air_quality_station", seen_s_ago=60, data={"pm25": 80})  # no rollups: latest
    iot.rollup(s1, 1, pm25=60, so2=900)  # the hour 07:00–08:00
    iot.rollup(s1, 2, pm25=40, so2=100)  # 06:00–07:00
    iot.rollup(s1, 30, pm25=400)  # older than 24 h: not drawn
    data = panel(db, iot.now, "aqi")["data"]
    stations = {it["key"]: it for it in data["items"]}
    # SO2 900 µg/m³ in one hour has no 1-h IAQI (HJ 633): its 24-h mean (900+100)/2 = 500 stands in,
    # (200−150)/(800−475)·(500−475)+150 = 153.8 → 154, above PM2.5 60 → 1.25·25+50 = 81.25 → 82.
    assert stations["aq-1"] == {"key": "aq-1", "name": "名称aq-1", "value": 154, "level": 4,
                                "primary": ["so2"], "basis": "hour"}
    assert stations["aq-2"]["value"] == 107 and stations["aq-2"]["basis"] == "latest"
    assert data["basis"] == "mixed"
    assert data["hour"] == datetime(2026, 11, 26, 7, 0, tzinfo=UTC).isoformat()
    # District series, hour by hour: 06:00 PM2.5 40 → 57 vs SO2 100 → 34: 57; 07:00 SO2 900 is left
    # out of the hourly series (no 24-h mean per hour there), PM2.5 60 → 82.
    assert data["series"] == [[datetime(2026, 11, 26, 6, tzinfo=UTC).isoformat(), 57],
                              [datetime(2026, 11, 26, 7, tzinfo=UTC).isoformat(), 82]]


def test_an_hourly_mean_older_than_two_hours_is_not_now(db, iot):
    s1 = iot.device("aq-1", "air_quality_station", seen_s_ago=60, data={"pm25": 35})
    iot.rollup(s1, 3, pm25=75)
    data = panel(db, iot.now, "aqi")["data"]
    assert (data["value"], data["basis"]) == (50, "latest")
    assert data["series"] == [[datetime(2026, 11, 26, 5, tzinfo=UTC).isoformat(), 100]]


def test_score_refuses_nothing_and_scores_nothing_without_pollutants():
    assert iot_panels.score({}) is None
    assert iot_panels.score({"so2": 900}) is None  # no 24-h mean: SO2 cannot be scored alone
    assert iot_panels.score({"so2": 900, "pm25": 35}).aqi == 50


# --- waterlogging, parking, alarms --------------------------------------------------------------


def test_waterlogging_lists_gauges_above_their_threshold_first(db, iot):
    iot.rule("wl-all", {"op": ">=", "value": 30})
    iot.rule("wl-4-low", {"op": ">", "value": 15, "minutes": 5}, device="wl-4", kind="held_for")
    iot.rule("wl-off", {"op": ">", "value": 5}, enabled=False)
    iot.rule("wl-below", {"op": "<", "value": 100})  # not a high-water threshold
    iot.rule("battery", {"op": ">", "value": 1}, prop="battery")
    iot.device("wl-1", "waterlogging_gauge", seen_s_ago=30, data={"level_cm": 30})  # on the threshold: >=
    iot.device("wl-2", "waterlogging_gauge", seen_s_ago=30, data={"level_cm": 12.25})
    iot.device("wl-3", "waterlogging_gauge", seen_s_ago=5000, data={"level_cm": 80})  # offline
    iot.device("wl-4", "waterlogging_gauge", seen_s_ago=30, data={"level_cm": 20})
    iot.device("wl-5", "waterlogging_gauge", seen_s_ago=30, data={"battery": 80})  # no level yet
    data = panel(db, iot.now, "waterlogging")["data"]
    assert [(it["key"], it["value"], it["threshold"], it["above"]) for it in data["items"]] == [
        ("wl-1", 30.0, 30.0, True), ("wl-4", 20.0, 15.0, True), ("wl-2", 12.2, 30.0, False)]
    assert (data["value"], data["above"], data["reporting"], data["total"], data["offline"]) == (30.0, 2, 3, 5, 1)


def test_parking_occupancy_is_the_share_of_online_detectors_occupied(db, iot):
    for i, occupied in enumerate([True, True, True, False]):
        iot.device(f"pk-s{i}", "parking_detector", seen_s_ago=60, data={"occupied": occupied})
    iot.device("pk-w0", "parking_detector", seen_s_ago=60, data={"occupied": False}, township=WANGCUN)
    iot.device("pk-off", "parking_detector", seen_s_ago=8000, data={"occupied": True})  # offline
    iot.device("pk-new", "parking_detector", seen_s_ago=60, data={"battery": 90})  # nothing said yet
    data = panel(db, iot.now, "parking")["data"]
    assert (data["occupied"], data["spaces"], data["total"], data["value"]) == (3, 5, 7, 60.0)
    townships = {it["code"]: (it["occupied"], it["spaces"], it["rate"]) for it in data["items"]}
    assert townships == {SILULU: (3, 4, 75.0), WANGCUN: (0, 1, 0.0)}
    assert data["items"][0]["name"] == aggregates.township_names(db)[SILULU]


def test_active_alarms_by_severity(db, iot):
    iot.device("wl-1", "waterlogging_gauge", seen_s_ago=10)
    iot.alarm("wl-1", "waterlogging_gauge", "critical", minutes_ago=1)
    iot.alarm("wl-1", "waterlogging_gauge", "critical", status="active_ack", rule="r2", minutes_ago=9)
    iot.alarm("sm-1", "smoke_detector", "warning", minutes_ago=3)
    iot.alarm("wl-1", "waterlogging_gauge", "major", status="cleared_ack", rule="r3")
    data = panel(db, iot.now, "iot_alarms")["data"]
    assert (data["value"], data["unacknowledged"]) == (3, 2)
    assert {it["severity"]: it["value"] for it in data["items"]} == {
        "critical": 2, "major": 0, "minor": 0, "warning": 1}
    assert [(a["device"], a["severity"]) for a in data["latest"]] == [
        ("wl-1", "critical"), ("sm-1", "warning"), ("wl-1", "critical")]
    assert data["latest"][0]["product"] == "易涝点水位计"


# --- cost: no query per device ------------------------------------------------------------------


def _statements(db: Session, now: datetime) -> tuple[int, dict]:
    seen: list[str] = []

    def count(conn, cursor, statement, *args):  # noqa: ANN001, ANN002, ANN202
        seen.append(statement)

    conn = db.connection()
    event.listen(conn, "before_cursor_execute", count)
    try:
        panels = aggregates._panels(db, now)
    finally:
        event.remove(conn, "before_cursor_execute", count)
    return len(seen), panels


def test_the_iot_panels_cost_the_same_queries_for_3_or_60_devices(db, iot):
    def add(n: int, start: int) -> None:
        for i in range(start, start + n):
            product = ("air_quality_station", "waterlogging_gauge", "parking_detector")[i % 3]
            iot.device(f"d-{i}", product, seen_s_ago=30, data={"pm25": 40, "level_cm": 10, "occupied": True})

    add(3, 0)
    few, panels = _statements(db, iot.now)
    assert panels["device_online"]["data"]["total"] == 3
    add(57, 3)
    many, panels = _statements(db, iot.now)
    assert panels["device_online"]["data"]["total"] == 60
    assert many == few
    # The five IoT panels share one pass: one panel computed alone costs the same queries.
    alone: list[str] = []

    def count(conn, cursor, statement, *args):  # noqa: ANN001, ANN002, ANN202
        alone.append(statement)

    conn = db.connection()
    event.listen(conn, "before_cursor_execute", count)
    try:
        iot_panels.sensors(db, iot.now)
        iot_count = len(alone)
        data_cockpit.data_quality(db, iot.now)  # the data pool's panel, not an IoT one
    finally:
        event.remove(conn, "before_cursor_execute", count)
    without_iot = few - len(alone)  # what the other panels (parking's township names …) cost
    assert iot_count <= 5 and without_iot <= 2


# --- the page and the JSON ----------------------------------------------------------------------


def test_the_cockpit_page_and_snapshot_carry_the_iot_panels(client, db, iot):
    iot.device("aq-1", "air_quality_station", seen_s_ago=60, data={"pm25": 50})
    iot.device("pk-1", "parking_detector", seen_s_ago=60, data={"occupied": True})
    iot.alarm("pk-1", "parking_detector", "minor")
    db.commit()
    sign_in(client, "leader")
    client.cookies.set(LANG_COOKIE, "en")
    page = client.get("/cockpit")
    assert page.status_code == 200
    for key in IOT_KEYS:
        assert f'data-panel="{key}" data-connected="true"' in page.text
    assert "Active IoT alarms" in page.text and 'data-label-sensor-offline="Offline"' in page.text
    snap = client.get("/api/cockpit/snapshot").json()
    assert snap["panels"]["aqi"]["data"]["value"] == 69
    assert snap["panels"]["parking"]["data"]["value"] == 100.0
    assert snap["panels"]["iot_alarms"]["data"]["items"][2] == {"severity": "minor", "name": "minor", "value": 1}
    assert {p[0]: p[3] for p in snap["panels"]["device_online"]["data"]["points"]} == {
        "aq-1": "normal", "pk-1": "alarm"}
    embedded = page.text.split('id="cp-initial">')[1].split("</script>")[0]
    assert json.loads(embedded)["panels"]["device_online"]["data"]["total"] == 2
