"""The sharing JSON API (/api/data): request → approve → rows, refusals, grants, access log."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, insert, select

from citybrain.data import storage
from citybrain.data.models import AccessLog, Grant, ShareRequest
from data_factories import make_entry
from helpers import token_for


@pytest.fixture
def entry(db):
    made = make_entry(db, code="1010100/share-api-01", department="police", sharing="conditional")
    db.execute(insert(storage.table_for(made)), [
        {"_load": 1, "id_number": "370306199001011234", "name": "张三", "mobile": "13912345678",
         "address": "周村区南郊镇大付村3号", "household_size": 3},
        {"_load": 1, "id_number": "370306198502023456", "name": "李四", "mobile": "13800001111",
         "address": "周村区北郊镇王村", "household_size": 2}])
    db.commit()
    return made


def counts(db):
    db.expire_all()
    return tuple(db.scalar(select(func.count()).select_from(m)) for m in (ShareRequest, Grant, AccessLog))


def test_full_flow_over_http(client, db, entry):
    market, police = token_for(client, "market"), token_for(client, "police")
    r = client.post(f"/api/data/entries/{entry.id}/requests", headers=market,
                    json={"purpose": "市场主体登记核验", "fields": ["name", "mobile", "household_size"], "days": 90})
    assert r.status_code == 201, r.text
    req = r.json()
    inbox = client.get("/api/data/requests?role=provider&status=pending", headers=police).json()
    assert req["id"] in [x["id"] for x in inbox]
    r = client.post(f"/api/data/requests/{req['id']}/approve", headers=police, json={"days": 30})
    assert r.status_code == 200, r.text
    grant = r.json()
    assert grant["fields"] == ["name", "mobile", "household_size"]
    assert [g["id"] for g in client.get("/api/data/grants?role=consumer&active=true", headers=market).json()] == [
        grant["id"]]
    rows = client.get(f"/api/data/entries/{entry.id}/rows", headers=market,
                      params={"filters": json.dumps({"household_size": 3}), "fields": "name,mobile"}).json()
    assert rows["records"] == [{"name": "张*", "mobile": "139****5678"}] and rows["total"] == 1
    assert rows["masked"] == ["name", "mobile"] and rows["grant_id"] == grant["id"]
    log = client.get(f"/api/data/access-log?entry_id={entry.id}", headers=police).json()
    assert log[0]["rows"] == 1 and log[0]["via"] == "api" and "household_size" in log[0]["query"]
    assert client.get(f"/api/data/access-log?entry_id={entry.id}", headers=market).status_code == 403
    r = client.post(f"/api/data/grants/{grant['id']}/revoke", headers=police)
    assert r.status_code == 200 and r.json()["revoked_at"]
    r = client.get(f"/api/data/entries/{entry.id}/rows", headers=market)
    assert r.status_code == 403 and "revoked" in r.json()["detail"]


@pytest.mark.parametrize(("who", "path", "body", "status", "message"), [
    ("market", "requests", {"purpose": ""}, 422, "purpose"),
    ("market", "requests", {"purpose": "x", "fields": ["salary"]}, 422, "salary"),
    ("market", "requests", {"purpose": "x", "days": -1}, 422, "days"),
    ("police", "requests", {"purpose": "x"}, 422, "own department"),
])
def test_bad_requests_are_refused_and_change_nothing(client, db, entry, who, path, body, status, message):
    before = counts(db)
    r = client.post(f"/api/data/entries/{entry.id}/{path}", headers=token_for(client, who), json=body)
    assert r.status_code == status and message in r.json()["detail"], r.text
    assert counts(db) == before


def test_decisions_by_the_wrong_people_and_without_reason_are_refused(client, db, entry):
    market, police, tax = (token_for(client, u) for u in ("market", "police", "tax"))
    req = client.post(f"/api/data/entries/{entry.id}/requests", headers=market, json={"purpose": "核验"}).json()
    before = counts(db)
    assert client.post(f"/api/data/requests/{req['id']}/approve", headers=tax, json={}).status_code == 403
    assert client.post(f"/api/data/requests/{req['id']}/approve", headers=market, json={}).status_code == 403
    r = client.post(f"/api/data/requests/{req['id']}/refuse", headers=police, json={"reason": "  "})
    assert r.status_code == 422 and "reason" in r.json()["detail"]
    assert client.post(f"/api/data/requests/{req['id']}/withdraw", headers=tax).status_code == 403
    r = client.post(f"/api/data/entries/{entry.id}/requests", headers=market, json={"purpose": "again"})
    assert r.status_code == 409
    assert counts(db) == before
    r = client.post(f"/api/data/requests/{req['id']}/refuse", headers=police, json={"reason": "超出共享条件"})
    assert r.json()["status"] == "refused"
    assert client.post("/api/data/requests/999999/approve", headers=police, json={}).status_code == 404
    assert client.post("/api/data/grants/999999/revoke", headers=police).status_code == 404


@pytest.mark.parametrize(("params", "status", "message"), [
    ({}, 403, "no grant"),
])
def test_rows_without_grant(client, entry, params, status, message):
    r = client.get(f"/api/data/entries/{entry.id}/rows", headers=token_for(client, "market"), params=params)
    assert r.status_code == status and message in r.json()["detail"]


@pytest.mark.parametrize(("params", "message"), [
    ({"filters": "{bad"}, "not valid JSON"),
    ({"filters": "[1]"}, "JSON object"),
    ({"filters": '{"salary": 1}'}, "not an information item"),
    ({"fields": "name,nope"}, "not an information item"),
    ({"offset": "-1"}, "offset"),
    ({"limit": "40000"}, "limit"),
    ({"sort": "name up"}, "asc|desc"),
])
def test_bad_row_parameters(client, db, entry, params, message):
    before = counts(db)
    r = client.get(f"/api/data/entries/{entry.id}/rows", headers=token_for(client, "police"), params=params)
    assert r.status_code == 422 and message in r.json()["detail"], r.text
    assert counts(db) == before


def test_anonymous_is_refused(client, entry):
    assert client.get(f"/api/data/entries/{entry.id}/rows").status_code == 401
