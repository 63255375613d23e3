"""HTTP ingestion: devices post readings with their key and secret (HTTP Basic)."""

from __future__ import annotations

import time

import httpx
import pytest
from sqlalchemy import func, select

from citybrain.core.actor import system_actor
from citybrain.iot import registry
from citybrain.iot.models import DeadLetter, DeviceState, Telemetry
from citybrain.iot.registry import DeviceIn

ACTOR = system_actor("test")


@pytest.fixture
def devices(db):  # noqa: ANN001, ANN201
    registry.sync_products(db, actor=ACTOR)
    made = {}
    for key, product, gateway in [("h-aq-1", "air_quality_station", None), ("h-gw-1", "gateway", None),
                                  ("h-pk-1", "parking_detector", "h-gw-1"), ("h-off", "rain_gauge", None)]:
        made[key] = registry.register(db, DeviceIn(key=key, name=key, product=product, department_code="cityadmin",
                                                   gateway_key=gateway), actor=ACTOR)
    registry.set_state(db, key="h-off", state="disabled", actor=ACTOR)
    db.commit()
    return made


def auth(made, key: str) -> httpx.BasicAuth:  # noqa: ANN001
    return httpx.BasicAuth(key, made[key][1])


def count(db, model) -> int:  # noqa: ANN001
    return db.scalar(select(func.count()).select_from(model))


def test_device_posts_readings(client, db, devices) -> None:  # noqa: ANN001
    ts = int(time.time() * 1000) - 1000
    r = client.post("/api/iot/telemetry", json={"ts": ts, "values": {"pm25": 88.0}}, auth=auth(devices, "h-aq-1"))
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": 1, "refused": []}
    state = db.get(DeviceState, devices["h-aq-1"][0].id)
    assert state.data == {"pm25": 88.0} and state.ts == ts
    r = client.post("/api/iot/telemetry", json=[{"ts": ts + 1, "pm25": 1.0}, {"ts": ts + 2, "pm25": "x"}],
                    auth=auth(devices, "h-aq-1"))
    assert r.status_code == 200
    assert r.json()["accepted"] == 1 and r.json()["refused"][0]["index"] == 1


def test_gateway_posts_for_its_children(client, db, devices) -> None:  # noqa: ANN001
    body = {"devices": [{"device": "h-pk-1", "values": {"occupied": True}},
                        {"device": "h-aq-1", "values": {"pm25": 1.0}}]}
    r = client.post("/api/iot/telemetry", json=body, auth=auth(devices, "h-gw-1"))
    assert r.status_code == 200
    assert r.json()["accepted"] == 1
    assert [x["code"] for x in r.json()["refused"]] == ["topic_mismatch"]


@pytest.mark.parametrize("credentials", [None, ("h-aq-1", "wrong"), ("nobody", "x"), ("h-off", None)])
def test_bad_credentials_are_refused_and_recorded(client, db, devices, credentials) -> None:  # noqa: ANN001
    before_rows, before_letters = count(db, Telemetry), count(db, DeadLetter)
    kw = {}
    if credentials is not None:
        key, secret = credentials
        kw["auth"] = httpx.BasicAuth(key, secret or devices[key][1])
    r = client.post("/api/iot/telemetry", json={"pm25": 1.0}, **kw)
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Basic")
    assert r.json()["code"] == "bad_credentials"
    assert count(db, Telemetry) == before_rows
    assert count(db, DeadLetter) == before_letters + 1


def test_an_api_bearer_token_is_not_a_device_credential(client, devices) -> None:  # noqa: ANN001
    r = client.post("/api/iot/telemetry", json={"pm25": 1.0}, headers={"Authorization": "Bearer abc"})
    assert r.status_code == 401


@pytest.mark.parametrize(("body", "status", "code"), [
    (b"{nope", 422, "malformed_json"),
    (b'{"pm25": -1}', 422, "out_of_range"),
    (b'{"pm25": 1}' + b" " * 300_000, 413, "too_large"),
    (b'{"rain": 1}', 422, "unknown_property"),
])
def test_bad_bodies_store_nothing(client, db, devices, body, status, code) -> None:  # noqa: ANN001
    before = count(db, Telemetry)
    r = client.post("/api/iot/telemetry", content=body, auth=auth(devices, "h-aq-1"),
                    headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    assert r.json()["code"] == code
    assert count(db, Telemetry) == before


def test_event_and_status(client, db, devices) -> None:  # noqa: ANN001
    r = client.post("/api/iot/event", json={"event": "sensor_fault", "params": {"detail": "fan"}},
                    auth=auth(devices, "h-aq-1"))
    assert r.status_code == 200, r.text
    r = client.post("/api/iot/event", json={"event": "nope"}, auth=auth(devices, "h-aq-1"))
    assert r.status_code == 422 and r.json()["code"] == "unknown_property"
    r = client.post("/api/iot/status", json={"status": "offline"}, auth=auth(devices, "h-aq-1"))
    assert r.status_code == 200
    assert db.get(DeviceState, devices["h-aq-1"][0].id).status == "offline"


def test_ingest_metrics_are_exported(client, devices) -> None:  # noqa: ANN001
    client.post("/api/iot/telemetry", content=b"{", auth=auth(devices, "h-aq-1"))
    text = client.get("/metrics").text
    assert 'citybrain_iot_refused_total{code="malformed_json"}' in text
    assert "citybrain_iot_messages_total" in text
