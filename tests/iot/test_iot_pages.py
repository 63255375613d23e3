"""The IoT staff pages over HTTP: who may see them, what they show (escaped), the history JSON
and its refusals, and the alarm actions through their forms (CSRF, conflicts, scope)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from citybrain.core.models import OutboxMessage
from citybrain.events import flows
from citybrain.iot import alarm_store, registry
from citybrain.iot.alarms import raised_payload
from citybrain.iot.models import AlarmRecord, DeadLetter, Device, DeviceState, Telemetry
from event_helpers import SILULU, categories, point_in  # noqa: F401  (categories: a fixture)
from helpers import csrf_from, sign_in

T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
NOW_MS = int(T0.timestamp() * 1000)
DAY_MS = 86_400_000
EVIL = '<img src=x onerror="alert(1)">'


@pytest.fixture
def world(db, admin_actor, frozen_clock):  # noqa: ANN001, ANN201
    """An ecology air station with state, readings and two alarms; a city-admin manhole cover."""
    registry.sync_products(db, actor=admin_actor)
    lon, lat = point_in(db, SILULU)
    air, _s = registry.register(db, registry.DeviceIn(key="pg-air", name=f"空气站 {EVIL}",
                                                      product="air_quality_station", department_code="ecology",
                                                      lon=lon, lat=lat, address="丝绸路 1 号"), actor=admin_actor)
    water, _s = registry.register(db, registry.DeviceIn(key="pg-water", name="井盖", product="manhole_cover",
                                                        department_code="cityadmin", lon=lon, lat=lat),
                                  actor=admin_actor)
    db.add(DeviceState(device_id=air.id, ts=NOW_MS - 60_000, data={"pm25": 35.5, "temperature": EVIL},
                       last_seen=NOW_MS - 60_000))
    db.add_all([Telemetry(device_id=air.id, ts=NOW_MS - m * 60_000, data={"pm25": float(m)}) for m in (5, 10, 20)])
    for alarm_id, device, dispatch in (("ALM-pg-1", air, True), ("ALM-pg-2", air, False), ("ALM-pg-w", water, False)):
        db.add(AlarmRecord(id=alarm_id, rule_id=f"rule-{alarm_id}", device_key=device.key, product=device.product,
                           severity="major", category_code="TE0101", dispatch=dispatch, message=f"超标 {EVIL}",
                           value=88.0, status="active_unack", raised_at=T0 - timedelta(minutes=9),
                           last_seen=T0 - timedelta(minutes=1), count=1, lon=device.lon, lat=device.lat))
    db.add(DeadLetter(received_at=T0, source="mqtt", topic="citybrain/air_quality_station/pg-air/telemetry",
                      device_key="pg-air", code="malformed_json", reason="not JSON", size=40,
                      payload='{"pm25": </script><script>alert(1)</script>'))
    db.commit()
    return {"air": air, "water": water}


def status_of(db, alarm_id: str) -> str:  # noqa: ANN001
    db.expire_all()
    return db.get(AlarmRecord, alarm_id).status


# --- who may see what ---------------------------------------------------------------------------


def test_pages_need_login_and_refuse_citizens(client, world) -> None:
    for url in ("/iot/devices", "/iot/devices/pg-air", "/iot/alarms", "/iot/dead-letters", "/iot/stream"):
        response = client.get(url, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"].startswith("/login"), url
    sign_in(client, "citizen")
    for url in ("/iot/devices", "/iot/devices/pg-air", "/iot/devices/pg-air/series?prop=pm25", "/iot/alarms",
                "/iot/dead-letters", "/iot/stream"):
        assert client.get(url, follow_redirects=False).status_code == 403, url
    assert "/iot/devices" not in client.get("/").text  # no navigation entry either


def test_device_list_for_admin_shows_every_department_with_counts_and_map(client, world) -> None:
    sign_in(client, "admin")
    page = client.get("/iot/devices")
    assert page.status_code == 200
    assert 'data-device-key="pg-air"' in page.text and 'data-device-key="pg-water"' in page.text
    assert 'href="/iot/devices"' in page.text  # the navigation entry
    assert 'id="iot-map"' in page.text and '"key": "pg-air"' in page.text
    assert EVIL not in page.text  # device names are untrusted
    assert "\\u003cimg" in page.text or "&lt;img" in page.text
    online = client.get("/iot/devices", params={"online": "1", "q": "pg-"}).text
    assert 'data-device-key="pg-air"' in online and 'data-device-key="pg-water"' not in online
    assert 'data-count="online">1<' in online and 'data-count="offline">1<' in online


def test_department_staff_see_only_their_devices(client, world) -> None:
    sign_in(client, "cityadmin")
    page = client.get("/iot/devices", params={"q": "pg-"}).text
    assert 'data-device-key="pg-water"' in page and 'data-device-key="pg-air"' not in page
    assert client.get("/iot/devices/pg-air").status_code == 403
    assert client.get("/iot/devices/pg-air/series", params={"prop": "pm25"}).status_code == 403
    assert client.get("/iot/devices/pg-water").status_code == 200


def test_device_detail_shows_values_units_alarms_and_never_the_secret(client, db, world) -> None:
    sign_in(client, "ecology")
    page = client.get("/iot/devices/pg-air")
    assert page.status_code == 200
    assert 'data-prop="pm25"' in page.text and "35.5" in page.text and "μg/m³" in page.text
    assert 'data-testid="chart-pm25"' in page.text and 'data-testid="chart-temperature"' in page.text
    assert 'data-online="1"' in page.text and "ALM-pg-1" in page.text
    assert EVIL not in page.text and "&lt;img src=x" in page.text
    device = db.scalar(select(Device).where(Device.key == "pg-air"))
    assert device.secret_hash not in page.text and device.secret_salt not in page.text
    assert client.get("/iot/devices/nope-404").status_code == 404


# --- history JSON -------------------------------------------------------------------------------


def test_series_returns_points_from_the_right_source(client, world) -> None:
    sign_in(client, "ecology")
    short = client.get("/iot/devices/pg-air/series", params={"prop": "pm25", "range": "1h"})
    assert short.status_code == 200
    body = short.json()
    assert body["source"] == "raw" and [p[1] for p in body["points"]] == [20.0, 10.0, 5.0]
    day = client.get("/iot/devices/pg-air/series", params={"prop": "pm25", "range": "24h"}).json()
    assert day["source"] == "rollup" and day["period_s"] == 60 and len(day["points"]) == 3
    month = client.get("/iot/devices/pg-air/series", params={"prop": "pm25", "range": "30d"}).json()
    assert month["period_s"] == 3600 and month["points"][0][4] == 3  # one hour bucket, three readings


@pytest.mark.parametrize(("params", "message"), [
    ({"prop": "pm25", "range": "2y"}, "range must be one of 1h, 24h, 7d, 30d"),
    ({"prop": "nope"}, "unknown property 'nope'"),
    ({"range": "1h"}, "give the property to draw"),
])
def test_series_refuses_bad_range_and_property_clearly(client, world, params, message) -> None:  # noqa: ANN001
    sign_in(client, "ecology")
    response = client.get("/iot/devices/pg-air/series", params=params)
    assert response.status_code == 400
    assert message in response.json()["detail"]


def test_series_refuses_a_non_numeric_property(client, world) -> None:
    sign_in(client, "cityadmin")
    response = client.get("/iot/devices/pg-water/series", params={"prop": "open", "range": "1h"})
    assert response.status_code == 400 and "'open' is bool, not a number" in response.json()["detail"]
    assert client.get("/iot/devices/pg-water/series", params={"prop": "tilt_deg"}).status_code == 200


# --- alarm console ------------------------------------------------------------------------------


def test_alarm_console_lists_escaped_and_links_the_event_opened(client, db, world, categories) -> None:  # noqa: ANN001, F811
    row = db.get(AlarmRecord, "ALM-pg-1")
    event = flows.handle_alarm_raised(db, payload=raised_payload(alarm_store.to_alarm(row)))
    db.commit()
    sign_in(client, "ecology")
    page = client.get("/iot/alarms")
    assert page.status_code == 200
    assert 'data-alarm-id="ALM-pg-1"' in page.text and 'data-alarm-id="ALM-pg-2"' in page.text
    assert 'data-alarm-id="ALM-pg-w"' not in page.text  # another department's
    assert f'href="/events/{event.id}"' in page.text
    assert EVIL not in page.text
    assert client.get("/iot/alarms", params={"status": "cleared"}).text.count('data-alarm-id="ALM-pg') == 0
    bad = client.get("/iot/alarms", params={"status": "open"})
    assert bad.status_code == 400 and "unknown alarm status" in bad.text


def test_acknowledge_and_clear_through_the_forms(client, db, world) -> None:
    sign_in(client, "ecology")
    token = csrf_from(client.get("/iot/alarms").text)
    response = client.post("/iot/alarms/ALM-pg-1/acknowledge", data={"csrf_token": token, "next": "/iot/alarms"},
                           follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/iot/alarms"
    assert status_of(db, "ALM-pg-1") == "active_ack"
    response = client.post("/iot/alarms/ALM-pg-1/clear", data={"csrf_token": token, "next": "https://evil.example/"},
                           follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/iot/alarms"
    assert status_of(db, "ALM-pg-1") == "cleared_ack"
    outbox = db.scalars(select(OutboxMessage).where(OutboxMessage.topic == "alarm.cleared")).all()
    assert any(m.payload["alarm_id"] == "ALM-pg-1" for m in outbox)


def test_alarm_actions_refused_without_csrf_or_permission_or_scope(client, db, world) -> None:
    sign_in(client, "ecology")
    assert client.post("/iot/alarms/ALM-pg-2/acknowledge", data={}).status_code == 403
    assert client.post("/iot/alarms/ALM-pg-2/acknowledge", data={"csrf_token": "forged"}).status_code == 403
    token = csrf_from(client.get("/iot/alarms").text)
    assert client.post("/iot/alarms/ALM-pg-w/clear", data={"csrf_token": token}).status_code == 403
    assert client.post("/iot/alarms/ALM-nope/clear", data={"csrf_token": token}).status_code == 404
    assert status_of(db, "ALM-pg-2") == "active_unack" and status_of(db, "ALM-pg-w") == "active_unack"
    sign_in(client, "leader")  # reads alarms, may not act on them
    token = csrf_from(client.get("/iot/alarms").text)
    assert "ack-ALM-pg-2" not in client.get("/iot/alarms").text
    assert client.post("/iot/alarms/ALM-pg-2/acknowledge", data={"csrf_token": token}).status_code == 403
    assert status_of(db, "ALM-pg-2") == "active_unack"


def test_an_illegal_transition_is_a_409_with_its_reason(client, db, world) -> None:
    sign_in(client, "ecology")
    token = csrf_from(client.get("/iot/alarms").text)
    client.post("/iot/alarms/ALM-pg-2/clear", data={"csrf_token": token})
    client.post("/iot/alarms/ALM-pg-2/acknowledge", data={"csrf_token": token})
    assert status_of(db, "ALM-pg-2") == "cleared_ack"
    response = client.post("/iot/alarms/ALM-pg-2/clear", data={"csrf_token": token})
    assert response.status_code == 409
    assert "cannot clear an alarm that is cleared_ack" in response.text
    assert status_of(db, "ALM-pg-2") == "cleared_ack"


# --- dead letters ----------------------------------------------------------------------------------


def test_dead_letters_are_listed_escaped_with_counts(client, world) -> None:
    sign_in(client, "ecology")
    page = client.get("/iot/dead-letters")
    assert page.status_code == 200
    assert 'data-code="malformed_json"' in page.text and "citybrain/air_quality_station/pg-air/telemetry" in page.text
    assert "<script>alert(1)</script>" not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "pg-air" in client.get("/iot/dead-letters", params={"code": "malformed_json"}).text
    assert 'data-dead-letter-id' not in client.get("/iot/dead-letters", params={"code": "wrong_type"}).text
    sign_in(client, "leader")
    assert client.get("/iot/dead-letters").status_code == 403
