"""The /api/iot JSON API: devices and their credentials, products, rules, alarms and dead letters.

Every refused request is checked to have changed nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from citybrain.core.models import AuditLog
from citybrain.iot import registry
from citybrain.iot.models import AlarmRecord, AlarmRule, DeadLetter, Device, DeviceState
from citybrain.iot.models import Product as ProductRow
from event_helpers import SILULU, point_in
from helpers import sign_in, token_for

WANGCUN = "370306102000"
USERS = ("admin", "leader", "ecology", "cityadmin", "citizen")


@pytest.fixture
def iot(db, admin_actor):
    registry.sync_products(db, actor=admin_actor)
    db.commit()


@pytest.fixture
def as_(client, iot):
    # Issued up front: issuing a token is audited, and refusals are checked to add no audit entry.
    cache = {username: token_for(client, username) for username in USERS}

    def headers(username: str) -> dict[str, str]:
        return cache[username]

    return headers


def device_body(db, device_key: str = "aq-001", **overrides):
    lon, lat = point_in(db, SILULU)
    body = {"key": device_key, "name": "丝绸路空气站", "product": "air_quality_station", "department_code": "ecology",
            "lon": lon, "lat": lat, "address": "丝绸路 1 号", "install_date": "2026-03-01"}
    body.update(overrides)
    return body


def counts(db) -> tuple[int, int, int]:
    db.expire_all()
    return (db.scalar(select(func.count()).select_from(Device)),
            db.scalar(select(func.count()).select_from(AlarmRule)),
            db.scalar(select(func.count()).select_from(AuditLog)))


def register(client, as_, db, key="aq-001", who="admin", **overrides):
    response = client.post("/api/iot/devices", json=device_body(db, key, **overrides), headers=as_(who))
    assert response.status_code == 201, response.text
    return response.json()


# --- devices --------------------------------------------------------------------------------------


def test_register_returns_the_secret_once_and_stores_only_its_hash(client, db, as_):
    created = register(client, as_, db)
    secret = created["secret"]
    assert len(secret) >= 40 and created["state"] == "active" and created["township_code"] == SILULU
    assert created["department_code"] == "ecology" and created["has_secret"] and created["online"] is False
    row = db.scalar(select(Device).where(Device.key == "aq-001"))
    assert row.secret_hash != secret and secret not in (row.secret_hash or "") + (row.secret_salt or "")
    assert registry.secret_matches(row.secret_salt, row.secret_hash, secret)
    again = client.get("/api/iot/devices/aq-001", headers=as_("admin"))
    assert again.status_code == 200 and "secret" not in again.json()
    assert secret not in again.text and secret not in client.get("/api/iot/devices", headers=as_("admin")).text


@pytest.mark.parametrize(("overrides", "status", "words"), [
    ({"key": "a"}, 422, "key"),
    ({"key": "bad key!"}, 422, "device key"),
    ({"product": "toaster"}, 422, "unknown product"),
    ({"department_code": "nope"}, 422, "unknown department"),
    ({"lon": 120.0, "lat": 30.0}, 422, "outside"),
    ({"lon": 200.0}, 422, ""),
    ({"lat": None}, 422, "both lon and lat"),
    ({"crs": "mars"}, 422, ""),
    ({"install_date": "2099-01-01"}, 422, "future"),
    ({"install_date": "2026-02-30"}, 422, "install_date"),
    ({"gateway_key": "no-such-gw"}, 422, "gateway"),
    ({"colour": "red"}, 422, "colour"),
    ({"name": ""}, 422, "name"),
])
def test_register_refusals_change_nothing(client, db, as_, overrides, status, words):
    before = counts(db)
    response = client.post("/api/iot/devices", json=device_body(db, "aq-bad", **overrides), headers=as_("admin"))
    assert response.status_code == status, response.text
    assert words.lower() in response.json()["detail"].lower()
    assert counts(db) == before


def test_duplicate_key_is_a_conflict(client, db, as_):
    register(client, as_, db)
    before = counts(db)
    again = client.post("/api/iot/devices", json=device_body(db), headers=as_("admin"))
    assert again.status_code == 409 and again.json()["code"] == "conflict"
    assert counts(db) == before


def test_department_staff_manage_only_their_department(client, db, as_):
    everyone = client.get("/api/iot/devices", headers=as_("leader")).json()["total"]  # the demo's devices too
    mine = register(client, as_, db, "eco-1", who="ecology")
    assert mine["department_code"] == "ecology"
    before = counts(db)
    theirs = client.post("/api/iot/devices", json=device_body(db, "city-1", department_code="cityadmin"),
                         headers=as_("ecology"))
    assert theirs.status_code == 403 and counts(db) == before
    register(client, as_, db, "city-2", department_code="cityadmin")
    # Staff of another department neither see nor touch it.
    assert client.get("/api/iot/devices/city-2", headers=as_("ecology")).status_code == 403
    listed = client.get("/api/iot/devices?limit=1000", headers=as_("ecology")).json()
    keys = {d["key"] for d in listed["items"]}
    assert "eco-1" in keys and "city-2" not in keys
    assert {d["department_code"] for d in listed["items"]} == {"ecology"}
    for method, path in [("post", "/secret"), ("delete", "/secret")]:
        assert getattr(client, method)(f"/api/iot/devices/city-2{path}", headers=as_("ecology")).status_code == 403
    assert client.patch("/api/iot/devices/city-2", json={"state": "disabled"},
                        headers=as_("ecology")).status_code == 403
    assert client.patch("/api/iot/devices/city-2", json={"name": "x"}, headers=as_("ecology")).status_code == 403
    # A leader reads everything but manages nothing.
    assert client.get("/api/iot/devices", headers=as_("leader")).json()["total"] == everyone + 2
    assert client.post("/api/iot/devices/eco-1/secret", headers=as_("leader")).status_code == 403
    assert client.post("/api/iot/devices", json=device_body(db, "lead-1"),
                       headers=as_("leader")).status_code == 403
    # Citizens do not even read.
    assert client.get("/api/iot/devices", headers=as_("citizen")).status_code == 403
    assert client.get("/api/iot/devices").status_code == 401


def test_rotate_and_revoke_secrets(client, db, as_):
    first = register(client, as_, db)["secret"]
    rotated = client.post("/api/iot/devices/aq-001/secret", headers=as_("ecology"))
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()["secret"]
    row = db.scalar(select(Device).where(Device.key == "aq-001"))
    db.refresh(row)
    assert second != first and registry.secret_matches(row.secret_salt, row.secret_hash, second)
    assert not registry.secret_matches(row.secret_salt, row.secret_hash, first)
    assert client.delete("/api/iot/devices/aq-001/secret", headers=as_("ecology")).status_code == 204
    db.refresh(row)
    assert row.secret_hash is None and not registry.secret_matches(row.secret_salt, row.secret_hash, second)
    assert client.get("/api/iot/devices/aq-001", headers=as_("admin")).json()["has_secret"] is False
    assert client.post("/api/iot/devices/nope/secret", headers=as_("admin")).status_code == 404


def test_patch_name_address_location_and_state(client, db, as_):
    register(client, as_, db)
    lon, lat = point_in(db, WANGCUN)
    changed = client.patch("/api/iot/devices/aq-001", json={"name": "王村空气站", "address": "王村",
                                                             "lon": lon, "lat": lat, "crs": "wgs84"},
                           headers=as_("ecology"))
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["name"] == "王村空气站" and body["township_code"] == WANGCUN and body["address"] == "王村"
    disabled = client.patch("/api/iot/devices/aq-001", json={"state": "disabled"}, headers=as_("ecology"))
    assert disabled.json()["state"] == "disabled"
    cleared = client.patch("/api/iot/devices/aq-001", json={"lon": None, "lat": None}, headers=as_("ecology"))
    assert cleared.json()["lon"] is None and cleared.json()["township_code"] is None
    retired = client.patch("/api/iot/devices/aq-001", json={"state": "retired"}, headers=as_("ecology"))
    assert retired.json()["state"] == "retired"
    before = counts(db)
    for change in ({"state": "active"}, {"name": "again"}):
        refused = client.patch("/api/iot/devices/aq-001", json=change, headers=as_("ecology"))
        assert refused.status_code == 409, refused.text
    assert client.post("/api/iot/devices/aq-001/secret", headers=as_("ecology")).status_code == 409
    assert counts(db) == before


@pytest.mark.parametrize(("change", "words"), [
    ({"lon": 117.8}, "both lon and lat"),
    ({"lon": 120.0, "lat": 30.0}, "outside"),
    ({"state": "broken"}, "state"),
    ({"state": None}, "state"),
    ({"name": None}, "name"),
    ({"name": ""}, "name"),
    ({"crs": "gcj02"}, "crs"),
    ({"product": "rain_gauge"}, "product"),
    ({"key": "other"}, "key"),
])
def test_patch_refusals_change_nothing(client, db, as_, change, words):
    register(client, as_, db)
    before = counts(db)
    row = db.scalar(select(Device).where(Device.key == "aq-001"))
    snapshot = (row.name, row.lon, row.lat, row.state, row.updated_at)
    refused = client.patch("/api/iot/devices/aq-001", json=change, headers=as_("admin"))
    assert refused.status_code == 422, refused.text
    assert words in refused.json()["detail"]
    db.refresh(row)
    assert (row.name, row.lon, row.lat, row.state, row.updated_at) == snapshot and counts(db) == before


def test_list_filters_paging_and_online_flag(client, db, as_, frozen_clock):
    for i in range(5):
        register(client, as_, db, f"tst-aq-{i}")
    register(client, as_, db, "tst-rain-1", product="rain_gauge")
    client.patch("/api/iot/devices/tst-aq-4", json={"state": "disabled"}, headers=as_("admin"))
    row = db.scalar(select(Device).where(Device.key == "tst-aq-1"))
    now_ms = int(frozen_clock[0].timestamp() * 1000)
    db.add(DeviceState(device_id=row.id, ts=now_ms - 1000, data={"pm25": 35.0}, last_seen=now_ms - 1000,
                       status="online"))
    db.commit()

    def keys(query: str) -> list[str]:
        page = client.get(f"/api/iot/devices?q=tst-&{query}", headers=as_("admin")).json()
        return [d["key"] for d in page["items"]]

    page = client.get("/api/iot/devices?q=tst-&product=air_quality_station&limit=2&offset=2",
                      headers=as_("admin")).json()
    assert page["total"] == 5 and [d["key"] for d in page["items"]] == ["tst-aq-2", "tst-aq-3"]
    assert keys("state=disabled") == ["tst-aq-4"]
    assert keys("product=rain_gauge") == ["tst-rain-1"]
    assert len(keys(f"township={SILULU}")) == 6 and keys(f"township={WANGCUN}") == []
    assert keys("online=true") == ["tst-aq-1"] and "tst-aq-1" not in keys("online=false")
    one = client.get("/api/iot/devices/tst-aq-1", headers=as_("admin")).json()
    assert one["online"] is True and one["latest"]["data"] == {"pm25": 35.0}
    frozen_clock[0] = datetime(2026, 11, 27, tzinfo=UTC)  # far past the 900 s timeout
    assert client.get("/api/iot/devices/tst-aq-1", headers=as_("admin")).json()["online"] is False
    assert client.get("/api/iot/devices?state=gone", headers=as_("admin")).status_code == 422
    assert client.get("/api/iot/devices?limit=0", headers=as_("admin")).status_code == 422
    assert client.get("/api/iot/devices/nope", headers=as_("admin")).status_code == 404


def test_session_writes_need_the_csrf_token(client, db, as_):
    register(client, as_, db)
    sign_in(client, "ecology")
    before = counts(db)
    refused = client.post("/api/iot/devices/aq-001/secret")
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"] and counts(db) == before
    page = client.get("/")
    from helpers import csrf_from

    ok = client.post("/api/iot/devices/aq-001/secret", headers={"X-CSRF-Token": csrf_from(page.text)})
    assert ok.status_code == 200, ok.text


# --- products -------------------------------------------------------------------------------------


def test_products_list_and_thing_model(client, as_):
    products = client.get("/api/iot/products", headers=as_("leader")).json()
    idents = {p["identifier"] for p in products}
    assert {"air_quality_station", "waterlogging_gauge", "manhole_cover", "street_light"} <= idents
    aq = client.get("/api/iot/products/air_quality_station", headers=as_("leader")).json()
    pm25 = next(p for p in aq["properties"] if p["identifier"] == "pm25")
    assert pm25["type"] == "float" and pm25["unit"]["display"] == "μg/m³" and pm25["max"] == 1000
    assert aq["definition"].startswith("[[product]]") and aq["online_timeout_s"] == 900
    assert client.get("/api/iot/products/toaster", headers=as_("leader")).status_code == 404



def test_admin_replaces_a_thing_model_as_toml_or_json(client, db, as_):
    text = client.get("/api/iot/products/rain_gauge", headers=as_("admin")).json()["definition"]
    old = client.get("/api/iot/products/rain_gauge", headers=as_("admin")).json()["online_timeout_s"]
    new_text = text.replace(f"online_timeout_s = {old}", "online_timeout_s = 4321")
    put = client.put("/api/iot/products/rain_gauge", content=new_text.encode(),
                     headers=as_("admin") | {"Content-Type": "application/toml"})
    assert put.status_code == 200, put.text
    assert put.json()["online_timeout_s"] == 4321
    as_json = client.put("/api/iot/products/rain_gauge", json={"definition": text}, headers=as_("admin"))
    assert as_json.status_code == 200 and as_json.json()["online_timeout_s"] == old


@pytest.mark.parametrize(("body", "content_type", "status", "words"), [
    (b"this is not toml = = =", "text/plain", 422, "refused"),
    (b'[[product]]\nidentifier = "rain_gauge"\n', "text/plain", 422, "refused"),
    (b"", "text/plain", 422, ""),
    (b"\xff\xfe bad", "text/plain", 422, "UTF-8"),
    (b'{"definition": 5}', "application/json", 422, "definition"),
    (b'{"text": "x"}', "application/json", 422, "definition"),
    (b"not json", "application/json", 422, "JSON"),
    ("OTHER", "text/plain", 422, "exactly one product"),
])
def test_bad_thing_models_are_refused_and_nothing_is_saved(client, db, as_, body, content_type, status, words):
    if body == "OTHER":
        body = client.get("/api/iot/products/smoke_detector", headers=as_("admin")).json()["definition"].encode()
    before = db.get(ProductRow, "rain_gauge").definition
    audits = counts(db)
    response = client.put("/api/iot/products/rain_gauge", content=body,
                          headers=as_("admin") | {"Content-Type": content_type})
    assert response.status_code == status, response.text
    assert words in response.json()["detail"]
    db.expire_all()
    assert db.get(ProductRow, "rain_gauge").definition == before and counts(db) == audits


def test_only_admins_edit_products(client, db, as_):
    text = client.get("/api/iot/products/rain_gauge", headers=as_("admin")).json()["definition"]
    for who in ("ecology", "leader"):
        refused = client.put("/api/iot/products/rain_gauge", content=text.encode(),
                             headers=as_(who) | {"Content-Type": "text/plain"})
        assert refused.status_code == 403
    assert client.put("/api/iot/products/toaster", content=text.encode(),
                      headers=as_("admin") | {"Content-Type": "text/plain"}).status_code == 404


# --- rules ----------------------------------------------------------------------------------------

RULE = {"id": "aq-pm25-high", "name": "PM2.5 超标", "product": "air_quality_station", "property": "pm25",
        "kind": "threshold", "params": {"op": ">", "value": 75}, "severity": "major"}


@pytest.fixture
def category(db):
    from event_helpers import make_categories

    make_categories(db)
    db.commit()
    return "TE0101"


def test_rule_lifecycle(client, db, as_, category):
    created = client.post("/api/iot/rules", json=RULE, headers=as_("admin"))
    assert created.status_code == 201, created.text
    assert created.json()["params"] == {"op": ">", "value": 75.0} and created.json()["enabled"] is True
    assert "aq-pm25-high" in [r["id"] for r in client.get("/api/iot/rules", headers=as_("leader")).json()]
    assert "aq-pm25-high" not in [r["id"] for r in client.get("/api/iot/rules?product=rain_gauge",
                                                               headers=as_("leader")).json()]
    updated = client.put("/api/iot/rules/aq-pm25-high",
                         json=RULE | {"id": None, "params": {"op": ">=", "value": 115}, "dispatch": True,
                                      "category_code": category}, headers=as_("admin"))
    assert updated.status_code == 200, updated.text
    assert updated.json()["dispatch"] is True and updated.json()["params"]["value"] == 115
    assert client.post("/api/iot/rules/aq-pm25-high/disable", headers=as_("admin")).json()["enabled"] is False
    assert client.put("/api/iot/rules/aq-pm25-high", json=RULE, headers=as_("admin")).json()["enabled"] is False
    assert client.post("/api/iot/rules/aq-pm25-high/enable", headers=as_("admin")).json()["enabled"] is True
    assert client.delete("/api/iot/rules/aq-pm25-high", headers=as_("admin")).status_code == 204
    assert client.get("/api/iot/rules/aq-pm25-high", headers=as_("admin")).status_code == 404
    actions = set(db.scalars(select(AuditLog.action).where(AuditLog.object_type == "iot_rule")))
    assert {"iot.rule_created", "iot.rule_updated", "iot.rule_disabled", "iot.rule_enabled",
            "iot.rule_deleted"} <= actions


@pytest.mark.parametrize(("change", "words"), [
    ({"id": ""}, "without an 'id'"),
    ({"id": "has space"}, "rule id"),
    ({"product": "toaster"}, "unknown product"),
    ({"property": "pm1"}, "has no property 'pm1'"),
    ({"property": "*"}, "only for no_data"),
    ({"kind": "sometimes"}, "unknown kind"),
    ({"severity": "apocalyptic"}, "unknown severity"),
    ({"params": {"op": "~", "value": 1}}, "unknown operator"),
    ({"params": {"op": ">"}}, "missing parameter 'value'"),
    ({"params": {"op": ">", "value": "high"}}, "must be a number"),
    ({"kind": "range", "params": {"min": 10, "max": 1}}, "greater than max"),
    ({"kind": "held_for", "params": {"op": ">", "value": 1, "minutes": 0}}, "positive number"),
    ({"kind": "no_data", "params": {}}, "missing parameter 'minutes'"),
    ({"dispatch": True}, "needs a 'category_code'"),
    ({"dispatch": True, "category_code": "ZZ9999"}, "does not exist"),
    ({"dispatch": True, "category_code": "TE0301"}, "inactive"),
    ({"device": "nope"}, "no device 'nope'"),
    ({"device": "rain-1"}, "is a rain_gauge"),
    ({"product": "manhole_cover", "property": "open", "params": {"op": ">", "value": 1}}, "needs a number"),
    ({"product": "manhole_cover", "property": "open", "params": {"op": "==", "value": 1}}, "not a value"),
    ({"enabled": "maybe"}, "enabled"),
    ({"extra": 1}, "extra"),
])
def test_bad_rules_are_refused_and_nothing_changes(client, db, as_, category, change, words):
    register(client, as_, db, "rain-1", product="rain_gauge")
    before = counts(db)
    refused = client.post("/api/iot/rules", json=RULE | change, headers=as_("admin"))
    assert refused.status_code == 422, refused.text
    assert words in refused.json()["detail"]
    assert counts(db) == before


def test_rule_edits_that_fail_keep_the_old_rule(client, db, as_, category):
    client.post("/api/iot/rules", json=RULE, headers=as_("admin"))
    before = counts(db)
    snapshot = client.get("/api/iot/rules/aq-pm25-high", headers=as_("admin")).json()
    bad = client.put("/api/iot/rules/aq-pm25-high", json=RULE | {"property": "pm1"}, headers=as_("admin"))
    renamed = client.put("/api/iot/rules/aq-pm25-high", json=RULE | {"id": "other"}, headers=as_("admin"))
    assert bad.status_code == 422 and renamed.status_code == 422 and "cannot change" in renamed.json()["detail"]
    duplicate = client.post("/api/iot/rules", json=RULE, headers=as_("admin"))
    assert duplicate.status_code == 409
    assert client.put("/api/iot/rules/nope", json=RULE, headers=as_("admin")).status_code == 404
    for who in ("ecology", "leader"):
        assert client.post("/api/iot/rules", json=RULE | {"id": "x2"}, headers=as_(who)).status_code == 403
        assert client.post("/api/iot/rules/aq-pm25-high/disable", headers=as_(who)).status_code == 403
        assert client.delete("/api/iot/rules/aq-pm25-high", headers=as_(who)).status_code == 403
    assert client.get("/api/iot/rules/aq-pm25-high", headers=as_("admin")).json() == snapshot
    assert counts(db) == before


def test_a_rule_with_an_active_alarm_cannot_be_deleted(client, db, as_, category, frozen_clock):
    client.post("/api/iot/rules", json=RULE, headers=as_("admin"))
    register(client, as_, db)
    db.add(_alarm("al-1", status="active_unack"))
    db.commit()
    refused = client.delete("/api/iot/rules/aq-pm25-high", headers=as_("admin"))
    assert refused.status_code == 409 and "active alarm" in refused.json()["detail"]
    assert client.get("/api/iot/rules/aq-pm25-high", headers=as_("admin")).status_code == 200


def test_no_data_rule_on_any_message(client, as_):
    rule = {"id": "aq-silent", "product": "air_quality_station", "property": "*", "kind": "no_data",
            "params": {"minutes": 30}, "severity": "minor"}
    created = client.post("/api/iot/rules", json=rule, headers=as_("admin"))
    assert created.status_code == 201, created.text


# --- alarms, dead letters, history ------------------------------------------------------------------


def _alarm(alarm_id: str, *, status: str, device: str = "aq-001", dispatch: bool = False) -> AlarmRecord:
    at = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)
    return AlarmRecord(id=alarm_id, rule_id="aq-pm25-high", device_key=device, product="air_quality_station",
                       severity="major", category_code=None, dispatch=dispatch, message="PM2.5 = 120 > 75",
                       value=120.0, status=status, raised_at=at, last_seen=at, count=1)


def test_alarm_console_acknowledge_and_clear(client, db, as_, frozen_clock):
    register(client, as_, db)
    register(client, as_, db, "city-1", department_code="cityadmin")
    db.add_all([_alarm("al-1", status="active_unack"), _alarm("al-2", status="active_unack", device="city-1")])
    db.commit()
    listed = client.get("/api/iot/alarms?status=active", headers=as_("ecology")).json()
    assert [a["id"] for a in listed["items"]] == ["al-1"] and listed["items"][0]["device_name"] == "丝绸路空气站"
    assert client.get("/api/iot/alarms", headers=as_("admin")).json()["total"] == 2
    acked = client.post("/api/iot/alarms/al-1/acknowledge", headers=as_("ecology"))
    assert acked.status_code == 200 and acked.json()["status"] == "active_ack"
    again = client.post("/api/iot/alarms/al-1/acknowledge", headers=as_("ecology"))
    assert again.status_code == 409
    assert client.post("/api/iot/alarms/al-2/clear", headers=as_("ecology")).status_code == 403
    assert client.post("/api/iot/alarms/al-1/clear", headers=as_("leader")).status_code == 403
    cleared = client.post("/api/iot/alarms/al-1/clear", headers=as_("ecology"))
    assert cleared.json()["status"] == "cleared_ack" and cleared.json()["cleared_by"].startswith("ecology")
    assert client.post("/api/iot/alarms/none/clear", headers=as_("admin")).status_code == 404
    assert client.get("/api/iot/alarms?status=bogus", headers=as_("admin")).status_code == 422


def test_dead_letters_with_counts(client, db, as_, frozen_clock):
    register(client, as_, db)
    at = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)
    db.add_all([DeadLetter(received_at=at, source="mqtt", topic="citybrain/x/aq-001/telemetry", device_key="aq-001",
                           code="out_of_range", reason="pm25 = 5000 is outside [0, 1000]", size=20, payload="{}"),
                DeadLetter(received_at=at, source="http", topic="", device_key="ghost", code="unknown_device",
                           reason="no device 'ghost'", size=2, payload="{}")])
    db.commit()
    admin = client.get("/api/iot/dead-letters", headers=as_("admin")).json()
    assert admin["total"] == 2 and admin["counts"] == {"out_of_range": 1, "unknown_device": 1}
    staff = client.get("/api/iot/dead-letters", headers=as_("ecology")).json()
    assert [d["device_key"] for d in staff["items"]] == ["aq-001"]
    assert client.get("/api/iot/dead-letters", headers=as_("leader")).status_code == 403


def test_history_of_a_property(client, db, engine, as_, frozen_clock):
    from citybrain.iot.models import Telemetry

    device = register(client, as_, db)
    row = db.scalar(select(Device).where(Device.key == device["key"]))
    now_ms = int(frozen_clock[0].timestamp() * 1000)
    db.add_all([Telemetry(device_id=row.id, ts=now_ms - i * 60_000, data={"pm25": 30.0 + i}) for i in range(5)])
    db.commit()
    series = client.get("/api/iot/devices/aq-001/history?prop=pm25&range=1h", headers=as_("admin"))
    assert series.status_code == 200, series.text
    assert series.json()["source"] == "raw" and len(series.json()["points"]) == 5
    start = "2026-11-26T07:57:30Z"
    window = client.get(f"/api/iot/devices/aq-001/history?prop=pm25&start={start}", headers=as_("admin")).json()
    assert [p[1] for p in window["points"]] == [32.0, 31.0, 30.0]
    for query, words in [("prop=pm1", "unknown property"), ("prop=pm25&range=9y", "range"),
                         ("prop=pm25&start=2026-11-26T09:00:00Z&end=2026-11-26T08:00:00Z", "after its start"),
                         ("prop=pm25&range=1h&start=2026-11-26T07:00:00Z", "either range")]:
        bad = client.get(f"/api/iot/devices/aq-001/history?{query}", headers=as_("admin"))
        assert bad.status_code == 422 and words in bad.json()["detail"], (query, bad.text)
    assert client.get("/api/iot/devices/aq-001/history?prop=pm25", headers=as_("citizen")).status_code == 403
