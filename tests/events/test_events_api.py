"""JSON API of the event command: intake, lists, actions with optimistic locking, public tracking."""

from __future__ import annotations

import pytest

from event_helpers import SILULU, counts, point_in  # noqa: F401
from helpers import bearer, demo_password


@pytest.fixture
def as_(client):
    cache = {}

    def headers(username: str) -> dict[str, str]:
        if username not in cache:
            cache[username] = bearer(client, username, demo_password(username))
        return cache[username]

    return headers


@pytest.fixture
def body(db, categories):
    db.commit()
    lon, lat = point_in(db, SILULU)
    return {"channel": "citizen", "category_code": "TE0101", "description": "小区门口垃圾堆积",
            "lon": lon, "lat": lat, "reporter_name": "李四", "reporter_phone": "13900001111"}


def test_report_and_follow_an_event_through_its_actions(client, db, as_, body, frozen_clock):
    created = client.post("/api/events", json=body, headers=as_("citizen"))
    assert created.status_code == 201, created.text
    event = created.json()
    assert event["tracking_no"].startswith("ZC20261126-") and event["status"] == "reported"
    assert "reporter_phone" not in event and "reporter_name" not in event
    eid = event["id"]

    accepted = client.post(f"/api/events/{eid}/actions/accept", json={"expected_version": event["version"]},
                           headers=as_("admin"))
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "dispatched"
    assert "区综合行政执法局" in accepted.json()["dispatch_reason"]

    version = accepted.json()["version"]
    stale = client.post(f"/api/events/{eid}/actions/start", json={"expected_version": version - 1},
                        headers=as_("cityadmin"))
    assert stale.status_code == 409 and stale.json()["code"] == "conflict"
    started = client.post(f"/api/events/{eid}/actions/start", json={"expected_version": version},
                          headers=as_("cityadmin"))
    assert started.status_code == 200 and started.json()["status"] == "in_progress"

    handled = client.post(f"/api/events/{eid}/actions/handle", json={"result": "已清理完毕"},
                          headers=as_("cityadmin"))
    assert handled.json()["status"] == "handled"
    assert client.post(f"/api/events/{eid}/actions/verify_pass", json={},
                       headers=as_("gridworker")).json()["status"] == "verified"
    assert client.post(f"/api/events/{eid}/actions/close", json={"note": "结案"},
                       headers=as_("admin")).json()["status"] == "closed"

    timeline = client.get(f"/api/events/{eid}/timeline", headers=as_("leader")).json()
    assert [t["action"] for t in timeline][-3:] == ["handle", "verify_pass", "close"]

    public = client.get(f"/api/events/track/{event['tracking_no']}")  # no credentials at all
    assert public.status_code == 200
    track = public.json()
    assert track["status"] == "closed" and track["result"] == "已清理完毕"
    assert track["township_name"] == "丝绸路街道" and track["department_name"] == "区综合行政执法局"
    text = public.text
    assert "李四" not in text and "13900001111" not in text and "cityadmin" not in text
    assert "description" not in track and "lon" not in track


def test_an_illegal_action_gets_a_clear_error_and_changes_nothing(client, db, as_, body, frozen_clock):
    eid = client.post("/api/events", json=body, headers=as_("citizen")).json()["id"]
    admin = as_("admin")  # issuing the token is audited too: before counting
    before = counts(db, eid)
    response = client.post(f"/api/events/{eid}/actions/close", json={}, headers=admin)
    assert response.status_code == 422
    assert "cannot close an event that is reported" in response.json()["detail"]
    assert counts(db, eid) == before
    assert client.get(f"/api/events/{eid}", headers=admin).json()["version"] == 1


def test_other_departments_cannot_act_or_read(client, db, as_, body, frozen_clock):
    eid = client.post("/api/events", json=body, headers=as_("citizen")).json()["id"]
    client.post(f"/api/events/{eid}/actions/accept", json={}, headers=as_("admin"))
    assert client.post(f"/api/events/{eid}/actions/start", json={},
                       headers=as_("ecology")).status_code == 403
    assert client.get(f"/api/events/{eid}", headers=as_("ecology")).status_code == 403
    assert client.get(f"/api/events/{eid}", headers=as_("cityadmin")).status_code == 200
    listed = client.get("/api/events", params={"status": "dispatched"}, headers=as_("ecology")).json()
    assert eid not in [e["id"] for e in listed]
    assert client.post(f"/api/events/{eid}/actions/close", json={},
                       headers=as_("citizen")).status_code == 403


def test_intake_refuses_bad_input_and_stores_nothing(client, db, as_, body, frozen_clock):
    as_("citizen")
    before = counts(db)
    assert client.post("/api/events", json=body).status_code == 401
    outside = client.post("/api/events", json=body | {"lon": 116.397, "lat": 39.909}, headers=as_("citizen"))
    assert outside.status_code == 422 and "outside the district" in outside.json()["detail"]
    unknown = client.post("/api/events", json=body | {"category_code": "NOPE"}, headers=as_("citizen"))
    assert unknown.status_code == 422 and "unknown event category" in unknown.json()["detail"]
    html = client.post("/api/events", json=body | {"description": "<b>hi</b>"}, headers=as_("citizen"))
    assert html.status_code == 422
    too_long = client.post("/api/events", json=body | {"description": "长" * 4001}, headers=as_("citizen"))
    assert too_long.status_code == 422
    assert counts(db) == before


def test_list_filters_and_unknown_things(client, db, as_, body, frozen_clock):
    eid = client.post("/api/events", json=body, headers=as_("citizen")).json()["id"]
    leader = as_("leader")
    assert eid in [e["id"] for e in client.get("/api/events", params={"township_code": SILULU},
                                               headers=leader).json()]
    assert eid not in [e["id"] for e in client.get("/api/events", params={"status": "closed"},
                                                   headers=leader).json()]
    assert client.get("/api/events", headers=as_("citizen")).status_code == 403
    assert client.get("/api/events/999999", headers=leader).status_code == 404
    assert client.get("/api/events/track/ZC19990101-000001").status_code == 404
    assert client.post(f"/api/events/{eid}/actions/fly", json={}, headers=as_("admin")).status_code == 422
