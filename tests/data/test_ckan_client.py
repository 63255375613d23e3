"""The real ``ckanapi`` client against a real server: request access, approval, masked rows, refusals."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import ckanapi
import pytest
import uvicorn
from sqlalchemy import insert

from citybrain.core.actor import Actor
from citybrain.core.permissions import ROLE_PERMISSIONS, Role
from citybrain.data import sharing, storage
from citybrain.org import auth, service
from data_factories import make_entry

ROWS = [
    {"id_number": "370306199001011234", "name": "张三", "mobile": "13912345678", "address": "周村区南郊镇大付村3号",
     "household_size": 3},
    {"id_number": "370306198502023456", "name": "欧阳娜娜", "mobile": "13800001111", "address": "周村区北郊镇王村",
     "household_size": 5},
    {"id_number": "370306197003035678", "name": "李四", "mobile": None, "address": "", "household_size": 1},
]


def staff(db, department: str) -> Actor:  # noqa: ANN001
    dept = service.get_department_by_code(db, code=department)
    return Actor(user_id=None, username=f"{department}-staff", role="staff", department_id=dept.id,
                 permissions=ROLE_PERMISSIONS[Role.STAFF], via="token")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(app) -> Iterator[str]:  # noqa: ANN001
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


def api_token(app, username: str) -> str:  # noqa: ANN001
    with app.state.sessionmaker() as db:
        user = service.get_user_by_username(db, username=username)
        token, _row = auth.issue_token(db, user=user, scopes=None, days=30, actor=auth.actor_for(user, via="session"),
                                       name="ckanapi test")
        db.commit()
    return token


@pytest.fixture
def resources(db):
    conditional = make_entry(db, code="1010100/ckanapi-01", department="police", sharing="conditional")
    closed = make_entry(db, code="1010100/ckanapi-02", department="police", sharing="none",
                        sharing_conditions="涉及个人隐私")
    for entry in (conditional, closed):
        db.execute(insert(storage.table_for(entry)), [{"_load": 1, **r} for r in ROWS])
    db.commit()
    return conditional, closed


def test_ckanapi_request_approve_read_masked(app, db, server, resources, frozen_clock):
    conditional, closed = resources
    market = ckanapi.RemoteCKAN(server, apikey=api_token(app, "market"))
    # No grant yet: the client raises NotAuthorized.
    with pytest.raises(ckanapi.NotAuthorized):
        market.action.datastore_search(resource_id=conditional.resource_id)
    # Catalog metadata is readable; the resource is found by search.
    found = market.action.package_search(fq="organization:police", rows=100)
    assert conditional.slug in [p["name"] for p in found["results"]]
    pkg = market.action.package_show(id=conditional.slug)
    assert pkg["resources"][0]["id"] == conditional.resource_id
    # Department A (market) requests, B (police) approves.
    req = sharing.file_request(db, entry_id=conditional.id, actor=staff(db, "market"), purpose="企业法人身份核验",
                               days=10)
    sharing.approve(db, request_id=req.id, actor=staff(db, "police"))
    db.commit()
    result = market.action.datastore_search(resource_id=conditional.resource_id,
                                            filters={"id_number": "370306199001011234"})
    assert result["total"] == 1
    assert result["records"][0]["id_number"] == "370306********1234"
    assert result["records"][0]["name"] == "张*" and result["records"][0]["mobile"] == "139****5678"
    lists = market.action.datastore_search(resource_id=conditional.resource_id, records_format="lists",
                                           fields="household_size", sort="household_size desc")
    assert lists["records"] == [[5], [3], [1]]
    # Bad input through the client.
    with pytest.raises(ckanapi.ValidationError):
        market.action.datastore_search(resource_id=conditional.resource_id, limit=100000)
    with pytest.raises(ckanapi.NotFound):
        market.action.datastore_search(resource_id="00000000-0000-0000-0000-000000000000")
    with pytest.raises(ckanapi.NotAuthorized):
        market.action.datastore_search(resource_id=closed.resource_id)
    # The grant expires.
    frozen_clock[0] += timedelta(days=11)
    with pytest.raises(ckanapi.NotAuthorized, match="expired"):
        market.action.datastore_search(resource_id=conditional.resource_id)


def test_ckanapi_get_only_and_anonymous(app, server, resources):
    conditional, _ = resources
    police = ckanapi.RemoteCKAN(server, apikey=api_token(app, "police"), get_only=True)
    own = police.action.datastore_search(resource_id=conditional.resource_id, filters='{"name": "张三"}')
    assert own["records"][0]["id_number"] == "370306199001011234"  # the provider reads in clear
    assert "police" in police.action.organization_list()
    with pytest.raises(ckanapi.NotAuthorized):
        ckanapi.RemoteCKAN(server).action.package_list()
