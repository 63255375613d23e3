"""Conditional sharing through the services: requests, decisions, grants, and reads through read_rows."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select

from citybrain.core.actor import Actor
from citybrain.core.audit import AuditLog
from citybrain.core.errors import Conflict, Forbidden, Invalid
from citybrain.core.permissions import ROLE_PERMISSIONS, Role
from citybrain.data import access, sharing, storage
from citybrain.data.models import AccessLog, Grant, ShareRequest
from citybrain.org import service as org_service
from data_factories import make_entry

ROWS = [
    {"id_number": "370306199001011234", "name": "张三", "mobile": "13912345678",
     "address": "山东省淄博市周村区丝绸路街道新建路12号", "household_size": 3},
    {"id_number": "370306198502023456", "name": "欧阳娜娜", "mobile": "13800001111",
     "address": "周村区南郊镇大付村3号", "household_size": 5},
    {"id_number": "370306197003035678", "name": "李四", "mobile": None, "address": "周村区北郊镇王村",
     "household_size": 1},
]


def staff(db, department: str, name: str = "") -> Actor:
    dept = org_service.get_department_by_code(db, code=department)
    return Actor(user_id=None, username=name or f"{department}-staff", role="staff", department_id=dept.id,
                 permissions=ROLE_PERMISSIONS[Role.STAFF], via="token")


def put_rows(db, entry, rows=ROWS):
    db.execute(insert(storage.table_for(entry)), [{"_load": 1, **r} for r in rows])
    db.flush()


@pytest.fixture
def conditional(db):
    entry = make_entry(db, code="1010100/share-00001", department="police", sharing="conditional")
    put_rows(db, entry)
    return entry


def counts(db):
    return tuple(db.scalar(select(func.count()).select_from(m)) for m in (ShareRequest, Grant, AccessLog))


def test_request_approve_read_masked_then_revoke(db, conditional, frozen_clock):
    market, police = staff(db, "market"), staff(db, "police")
    req = sharing.file_request(db, entry_id=conditional.id, actor=market, purpose="企业法人核验",
                               fields=["id_number", "name", "address"], days=30)
    assert req.status == "pending"
    grant = sharing.approve(db, request_id=req.id, actor=police)
    assert grant.fields == ["id_number", "name", "address"] and not grant.unmasked
    assert grant.expires_at == frozen_clock[0] + timedelta(days=30)
    result = access.read_rows(db, entry=conditional, actor=market, via="api", sort="_id")
    assert [f["id"] for f in result.fields] == ["_id", "id_number", "name", "address"]
    assert result.records[0] | {"_id": 0} == {"_id": 0, "id_number": "370306********1234", "name": "张*",
                                              "address": "山东省淄博市周村区丝绸路街道******"}
    assert result.records[1]["name"] == "欧阳**" and result.total == 3 and result.grant_id == grant.id
    log = db.scalars(select(AccessLog).order_by(AccessLog.id.desc())).first()
    assert (log.entry_id, log.grant_id, log.via, log.rows, log.unmasked, log.department_id) == (
        conditional.id, grant.id, "api", 3, False, market.department_id)
    sharing.revoke(db, grant_id=grant.id, actor=police)
    with pytest.raises(Forbidden, match="was revoked on 2026-11-26 08:00 UTC"):
        access.read_rows(db, entry=conditional, actor=market, via="api")


def test_filters_q_sort_and_lists_of_values(db, conditional):
    market = staff(db, "market")
    sharing.approve(db, request_id=sharing.file_request(db, entry_id=conditional.id, actor=market,
                                                        purpose="核验").id, actor=staff(db, "police"))
    read = lambda **kw: access.read_rows(db, entry=conditional, actor=market, via="api", **kw)  # noqa: E731
    assert read(filters={"id_number": "370306199001011234"}).total == 1
    assert read(filters={"household_size": ["3", 5]}).total == 2  # typed, IN
    assert read(filters={"mobile": None}).total == 1
    assert [r["household_size"] for r in read(sort="household_size desc").records] == [5, 3, 1]
    # q looks only at columns the reader sees in clear: not in masked personal ones.
    assert read(q="张").total == 0
    page = read(limit=1, offset=1, sort="household_size asc", include_total=False)
    assert page.total is None and [r["household_size"] for r in page.records] == [3]
    assert read(fields=["household_size"], limit=0).records == []


def test_unmasked_grant_reads_in_clear_and_is_audited(db, conditional):
    market, police = staff(db, "market"), staff(db, "police")
    req = sharing.file_request(db, entry_id=conditional.id, actor=market, purpose="低保资格审核", unmasked=True)
    sharing.approve(db, request_id=req.id, actor=police)
    before = db.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action == "data.read.unmasked"))
    result = access.read_rows(db, entry=conditional, actor=market, via="ckan", filters={"name": "张三"})
    assert result.records[0]["id_number"] == "370306199001011234" and result.unmasked and result.masked == []
    after = db.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action == "data.read.unmasked"))
    assert after == before + 1


def test_approver_may_narrow_but_not_widen(db, conditional):
    market, police = staff(db, "market"), staff(db, "police")
    req = sharing.file_request(db, entry_id=conditional.id, actor=market, purpose="核验", fields=["name", "mobile"])
    with pytest.raises(Invalid, match="were not requested"):
        sharing.approve(db, request_id=req.id, actor=police, fields=["name", "address"])
    with pytest.raises(Invalid, match="did not ask for unmasked"):
        sharing.approve(db, request_id=req.id, actor=police, unmasked=True)
    grant = sharing.approve(db, request_id=req.id, actor=police, fields=["mobile"], days=7)
    assert grant.fields == ["mobile"]
    with pytest.raises(Forbidden, match="outside your department's grant"):
        access.read_rows(db, entry=conditional, actor=market, via="api", fields=["name"])
    with pytest.raises(Forbidden, match="outside your department's grant"):
        access.read_rows(db, entry=conditional, actor=market, via="api", filters={"name": "张三"})
    assert access.read_rows(db, entry=conditional, actor=market, via="api").records[0]["mobile"] == "139****5678"


def test_expired_grant_is_refused_with_its_date(db, conditional, frozen_clock):
    market = staff(db, "market")
    sharing.approve(db, request_id=sharing.file_request(db, entry_id=conditional.id, actor=market, purpose="核验",
                                                        days=1).id, actor=staff(db, "police"))
    frozen_clock[0] += timedelta(days=1, seconds=1)
    logged = counts(db)
    expired = r"your grant for 户籍人口信息 \(1010100/share-00001\) expired on 2026-11-27 08:00"
    with pytest.raises(Forbidden, match=expired):
        access.read_rows(db, entry=conditional, actor=market, via="api")
    assert counts(db) == logged


def test_a_new_approval_supersedes_the_grant_in_force(db, conditional):
    market, police = staff(db, "market"), staff(db, "police")
    first = sharing.approve(db, request_id=sharing.file_request(db, entry_id=conditional.id, actor=market,
                                                                purpose="a", fields=["name"]).id, actor=police)
    second = sharing.approve(db, request_id=sharing.file_request(db, entry_id=conditional.id, actor=market,
                                                                 purpose="b").id, actor=police)
    assert first.revoked_at is not None and second.revoked_at is None
    assert access.read_rows(db, entry=conditional, actor=market, via="api").grant_id == second.id


def test_unconditional_is_read_masked_without_request_and_none_is_never_served(db):
    open_entry = make_entry(db, code="1010100/share-00002", department="police", sharing="unconditional")
    closed = make_entry(db, code="1010100/share-00003", department="police", sharing="none",
                        sharing_conditions="《中华人民共和国居民身份证法》")
    put_rows(db, open_entry)
    put_rows(db, closed)
    market, police = staff(db, "market"), staff(db, "police")
    assert access.read_rows(db, entry=open_entry, actor=market, via="api").records[0]["mobile"] == "139****5678"
    with pytest.raises(Invalid, match="无条件共享"):
        sharing.file_request(db, entry_id=open_entry.id, actor=market, purpose="x")
    with pytest.raises(Forbidden, match="不予共享"):
        access.read_rows(db, entry=closed, actor=market, via="api")
    with pytest.raises(Forbidden, match="不予共享"):
        sharing.file_request(db, entry_id=closed.id, actor=market, purpose="x")
    # The provider's own department reads its own rows in clear (logged, not a grant).
    own = access.read_rows(db, entry=closed, actor=police, via="page")
    assert own.records[0]["id_number"] == "370306199001011234" and own.unmasked and own.grant_id is None


def test_bad_requests_change_nothing(db, conditional):
    market, police, tax = staff(db, "market"), staff(db, "police"), staff(db, "tax")
    before = counts(db)
    for kwargs, error, message in [
        ({"purpose": "  "}, Invalid, "purpose"),
        ({"purpose": "x", "fields": ["salary"]}, Invalid, "salary"),
        ({"purpose": "x", "days": 0}, Invalid, "days"),
        ({"purpose": "x", "days": 4000}, Invalid, "days"),
    ]:
        with pytest.raises(error, match=message):
            sharing.file_request(db, entry_id=conditional.id, actor=market, **kwargs)
    with pytest.raises(Invalid, match="your own department"):
        sharing.file_request(db, entry_id=conditional.id, actor=police, purpose="x")
    assert counts(db) == before
    req = sharing.file_request(db, entry_id=conditional.id, actor=market, purpose="核验")
    with pytest.raises(Conflict, match="pending request"):
        sharing.file_request(db, entry_id=conditional.id, actor=market, purpose="again")
    with pytest.raises(Invalid, match="reason"):
        sharing.refuse(db, request_id=req.id, actor=police, reason=" ")
    with pytest.raises(Forbidden, match="another department"):
        sharing.approve(db, request_id=req.id, actor=tax)
    with pytest.raises(Forbidden, match="requesting department"):
        sharing.withdraw(db, request_id=req.id, actor=tax)
    db.refresh(req)
    assert req.status == "pending"
    refused = sharing.refuse(db, request_id=req.id, actor=police, reason="用途与共享条件不符")
    assert refused.status == "refused" and refused.decision_reason == "用途与共享条件不符"
    with pytest.raises(Conflict, match="already refused"):
        sharing.approve(db, request_id=req.id, actor=police)
    again = sharing.file_request(db, entry_id=conditional.id, actor=market, purpose="再次申请")
    assert sharing.withdraw(db, request_id=again.id, actor=market).status == "withdrawn"


def test_reads_without_grant_and_bad_read_parameters_change_nothing(db, conditional):
    market, police = staff(db, "market"), staff(db, "police")
    before = counts(db)
    with pytest.raises(Forbidden, match="has no grant; request access first"):
        access.read_rows(db, entry=conditional, actor=market, via="api")
    for kwargs, message in [
        ({"filters": {"salary": 1}}, "not an information item"),
        ({"fields": ["nope"]}, "not an information item"),
        ({"sort": "name sideways"}, "asc|desc"),
        ({"sort": "salary"}, "not an information item"),
        ({"offset": -1}, "offset"),
        ({"limit": 32001}, "limit"),
        ({"limit": -5}, "limit"),
        ({"filters": {"household_size": "three"}}, "not a valid integer"),
        ({"filters": ["name"]}, "filters must be an object"),
        ({"q": "x" * 201}, "longer than"),
    ]:
        with pytest.raises(Invalid, match=message):
            access.read_rows(db, entry=conditional, actor=police, via="api", **kwargs)
    assert counts(db) == before


def test_sql_in_values_is_only_data(db, conditional):
    police = staff(db, "police")
    evil = "'; DROP TABLE data_access_log; --"
    assert access.read_rows(db, entry=conditional, actor=police, via="api", filters={"name": evil}).total == 0
    assert access.read_rows(db, entry=conditional, actor=police, via="api", q="%_").total == 0
    assert db.scalar(select(func.count()).select_from(AccessLog)) >= 2


def test_lists_by_role(db, conditional):
    market, police = staff(db, "market"), staff(db, "police")
    req = sharing.file_request(db, entry_id=conditional.id, actor=market, purpose="核验")
    assert req.id in [r.id for r in sharing.list_requests(db, actor=police, role="provider", status="pending")]
    assert req.id in [r.id for r in sharing.list_requests(db, actor=market, role="consumer")]
    assert req.id not in [r.id for r in sharing.list_requests(db, actor=market, role="provider")]
    grant = sharing.approve(db, request_id=req.id, actor=police)
    assert [g.id for g in sharing.list_grants(db, actor=market, role="consumer", active_only=True)] == [grant.id]
    with pytest.raises(Invalid, match="role"):
        sharing.list_requests(db, actor=market, role="boss")
    with pytest.raises(Invalid, match="status"):
        sharing.list_requests(db, actor=market, role="consumer", status="maybe")
    with pytest.raises(Forbidden):
        access.access_log(db, actor=market, entry=conditional)
    assert access.access_log(db, actor=police, entry=conditional) == []
