"""Departments and users through the service layer: audited writes, refusals that change nothing."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citybrain.core.errors import Conflict, Forbidden, Invalid, NotFound
from citybrain.core.models import AuditLog
from citybrain.core.security import verify_password
from citybrain.org import auth, service
from citybrain.org.models import Department, User
from citybrain.org.schemas import DepartmentCreate, DepartmentUpdate, UserCreate, UserUpdate


def _count(db: Session, model: type, *where: object) -> int:
    return db.scalar(select(func.count()).select_from(model).where(*where))


def _last_audit(db: Session) -> AuditLog:
    return db.scalar(select(AuditLog).order_by(AuditLog.id.desc()).limit(1))


def _user(db: Session, username: str) -> User:
    user = service.get_user_by_username(db, username=username)
    assert user is not None
    return user


def _actor(db: Session, username: str):  # noqa: ANN202
    return auth.actor_for(_user(db, username), via="session")


def _new_user(db: Session, actor, **fields) -> User:  # noqa: ANN001
    data = {"username": "newbie", "password": "Newbie-pass-1", "role": "citizen"} | fields
    return service.create_user(db, data=UserCreate(**data), actor=actor)


def _reread(db: Session, model: type, id_: int):  # noqa: ANN202
    """What the database holds now (flushing whatever the session has pending)."""
    db.flush()
    db.expire_all()
    return db.get(model, id_)


# --- departments -------------------------------------------------------------------------


def test_shipped_departments_cover_bureaus_and_all_ten_townships(db):
    depts = service.list_departments(db)
    names = {d.name for d in depts}
    assert {"区大数据局", "区综合行政执法局", "区应急管理局", "区卫生健康局", "区民政局"} <= names
    townships = [d for d in depts if d.kind == "township"]
    assert len(townships) == 10 and all(d.division_code.startswith("370306") for d in townships)


def test_create_department_is_audited(db, admin_actor):
    dept = service.create_department(db, data=DepartmentCreate(code="audit", name="区审计局",
                                                               description="Audit"),
                                     actor=admin_actor)
    assert _reread(db, Department, dept.id).name == "区审计局"
    entry = _last_audit(db)
    assert (entry.action, entry.object_id) == ("department.create", str(dept.id))
    assert entry.before is None and entry.after["code"] == "audit"


def test_duplicate_department_code_is_a_conflict_and_creates_nothing(db, admin_actor):
    before = _count(db, Department)
    with pytest.raises(Conflict, match="code 'bigdata'"):
        service.create_department(db, data=DepartmentCreate(code="bigdata", name="新部门"), actor=admin_actor)
    assert _count(db, Department) == before


def test_duplicate_department_name_is_a_conflict_and_creates_nothing(db, admin_actor):
    before = _count(db, Department)
    with pytest.raises(Conflict, match="区大数据局"):
        service.create_department(db, data=DepartmentCreate(code="bigdata2", name="区大数据局"),
                                  actor=admin_actor)
    assert _count(db, Department) == before


def test_update_department_records_before_and_after(db, admin_actor):
    dept = service.get_department_by_code(db, code="water")
    service.update_department(db, department_id=dept.id, actor=admin_actor,
                              data=DepartmentUpdate(name="区水利事务中心", active=False))
    fresh = _reread(db, Department, dept.id)
    assert (fresh.name, fresh.active) == ("区水利事务中心", False)
    entry = _last_audit(db)
    assert entry.action == "department.update"
    assert entry.before["name"] == "区水利局" and entry.after["name"] == "区水利事务中心"


def test_renaming_a_department_to_a_taken_name_is_a_conflict_and_changes_nothing(db, admin_actor):
    dept = service.get_department_by_code(db, code="water")
    audit_before = _count(db, AuditLog)
    with pytest.raises(Conflict):
        service.update_department(db, department_id=dept.id, actor=admin_actor,
                                  data=DepartmentUpdate(name="区民政局", description="changed"))
    fresh = _reread(db, Department, dept.id)
    assert (fresh.name, fresh.description) == ("区水利局", "Water resources")
    assert _count(db, AuditLog) == audit_before


def test_updating_a_missing_department_is_not_found(db, admin_actor):
    with pytest.raises(NotFound):
        service.update_department(db, department_id=999_999, data=DepartmentUpdate(name="无名部门"), actor=admin_actor)


@pytest.mark.parametrize("fields", [{"code": "Bad Code", "name": "好名字"}, {"code": "ok", "name": "x"},
                                    {"code": "okay", "name": "好名字", "kind": "ministry"},
                                    {"code": "okay", "name": "好名字", "division_code": "3703"}])
def test_malformed_department_input_is_refused_by_the_schema(fields):
    with pytest.raises(ValidationError):
        DepartmentCreate(**fields)


def test_staff_may_not_create_departments(db):
    with pytest.raises(Forbidden):
        service.create_department(db, data=DepartmentCreate(code="audit", name="区审计局"),
                                  actor=_actor(db, "cityadmin"))


# --- users -------------------------------------------------------------------------------


def test_create_user_hashes_the_password_and_audits_without_it(db, admin_actor):
    user = _new_user(db, admin_actor, role="staff", department="health", display_name="卫健局职员")
    fresh = _reread(db, User, user.id)
    assert fresh.department.code == "health" and fresh.role == "staff" and fresh.active
    assert verify_password(fresh.password_hash, "Newbie-pass-1")
    entry = _last_audit(db)
    assert entry.action == "user.create" and entry.after["username"] == "newbie"
    assert "Newbie-pass-1" not in str(entry.after) and fresh.password_hash not in str(entry.after)


@pytest.mark.parametrize("username", ["admin", "ADMIN", "Admin"])
def test_duplicate_username_in_any_case_is_a_conflict_and_creates_nothing(db, admin_actor, username):
    before = _count(db, User)
    with pytest.raises(Conflict, match="already taken"):
        _new_user(db, admin_actor, username=username)
    assert _count(db, User) == before


@pytest.mark.parametrize("role", ["staff", "grid_worker"])
def test_department_roles_without_a_department_are_invalid(db, admin_actor, role):
    before = _count(db, User)
    with pytest.raises(Invalid, match="needs a department"):
        _new_user(db, admin_actor, role=role)
    assert _count(db, User) == before


def test_unknown_department_is_invalid_and_creates_nothing(db, admin_actor):
    with pytest.raises(Invalid, match="nowhere"):
        _new_user(db, admin_actor, role="staff", department="nowhere")
    assert _count(db, User, User.username == "newbie") == 0


@pytest.mark.parametrize("password", ["short1", "onlyletters", "1234567890"])
def test_weak_password_is_invalid_and_creates_nothing(db, admin_actor, password):
    with pytest.raises(Invalid, match="password"):
        _new_user(db, admin_actor, password=password)
    assert _count(db, User, User.username == "newbie") == 0


@pytest.mark.parametrize("fields", [{"username": "a"}, {"username": "has space"}, {"role": "emperor"},
                                    {"username": "ok-name", "extra": 1}])
def test_malformed_user_input_is_refused_by_the_schema(fields):
    with pytest.raises(ValidationError):
        UserCreate(**({"username": "newbie", "password": "Newbie-pass-1", "role": "citizen"} | fields))


def test_staff_may_not_create_users(db):
    with pytest.raises(Forbidden):
        _new_user(db, _actor(db, "cityadmin"))


def test_update_user_changes_role_department_and_password_with_an_audit_entry(db, admin_actor):
    user = _new_user(db, admin_actor)
    service.update_user(db, user_id=user.id, actor=admin_actor,
                        data=UserUpdate(role="staff", department="civil", password="Changed-pass-2",
                                        display_name="民政局职员"))
    fresh = _reread(db, User, user.id)
    assert (fresh.role, fresh.department.code, fresh.display_name) == ("staff", "civil", "民政局职员")
    assert verify_password(fresh.password_hash, "Changed-pass-2")
    entry = _last_audit(db)
    assert entry.action == "user.update" and entry.before["role"] == "citizen"
    assert entry.after["role"] == "staff" and entry.after["password"] == "changed"
    assert "Changed-pass-2" not in str(entry.after)


def test_refused_user_update_changes_nothing(db, admin_actor):
    user = _new_user(db, admin_actor)
    audit_before = _count(db, AuditLog)
    with pytest.raises(Invalid, match="password"):
        service.update_user(db, user_id=user.id, actor=admin_actor,
                            data=UserUpdate(display_name="Renamed", role="leader", password="weak"))
    fresh = _reread(db, User, user.id)
    assert (fresh.display_name, fresh.role) == ("newbie", "citizen")
    assert _count(db, AuditLog) == audit_before


def test_clearing_the_department_of_staff_is_invalid_and_changes_nothing(db, admin_actor):
    staff = _user(db, "cityadmin")
    dept_id = staff.department_id
    with pytest.raises(Invalid, match="needs a department"):
        service.update_user(db, user_id=staff.id, data=UserUpdate(department=""), actor=admin_actor)
    assert _reread(db, User, staff.id).department_id == dept_id


def test_the_last_admin_cannot_be_demoted_and_stays_admin(db, admin_actor):
    admin = _user(db, "admin")
    with pytest.raises(Invalid, match="last active admin"):
        service.update_user(db, user_id=admin.id, data=UserUpdate(role="leader"), actor=admin_actor)
    assert _reread(db, User, admin.id).role == "admin"


def test_the_last_admin_cannot_be_deactivated_and_stays_active(db, admin_actor):
    admin = _user(db, "admin")
    with pytest.raises(Invalid, match="last active admin"):
        service.update_user(db, user_id=admin.id, data=UserUpdate(active=False), actor=admin_actor)
    assert _reread(db, User, admin.id).active is True


def test_an_admin_can_be_demoted_once_another_admin_exists(db, admin_actor):
    _new_user(db, admin_actor, username="admin2", role="admin")
    admin = _user(db, "admin")
    service.update_user(db, user_id=admin.id, data=UserUpdate(role="leader"), actor=admin_actor)
    assert _reread(db, User, admin.id).role == "leader"


def test_nobody_can_deactivate_their_own_account(db, admin_actor):
    _new_user(db, admin_actor, username="admin2", role="admin")
    admin = _user(db, "admin")
    with pytest.raises(Invalid, match="your own account"):
        service.update_user(db, user_id=admin.id, data=UserUpdate(active=False), actor=_actor(db, "admin"))
    assert _reread(db, User, admin.id).active is True


def test_updating_a_missing_user_is_not_found(db, admin_actor):
    with pytest.raises(NotFound):
        service.update_user(db, user_id=999_999, data=UserUpdate(display_name="x"), actor=admin_actor)


def test_department_staff_see_only_their_departments_users(db, admin_actor):
    _new_user(db, admin_actor, username="cityadmin2", role="staff", department="cityadmin")
    _new_user(db, admin_actor, username="ecology2", role="staff", department="ecology")
    staff = _actor(db, "cityadmin")
    seen = service.list_users(db, actor=staff)
    assert {u.username for u in seen} == {"cityadmin", "cityadmin2"}
    assert all(u.department_id == staff.department_id for u in seen)


def test_leader_and_admin_see_every_users(db):
    everyone = {u.username for u in service.list_users(db, actor=_actor(db, "admin"))}
    assert {"admin", "leader", "cityadmin", "ecology", "gridworker", "citizen"} <= everyone
    assert {u.username for u in service.list_users(db, actor=_actor(db, "leader"))} == everyone


@pytest.mark.parametrize("username", ["gridworker", "citizen"])
def test_roles_without_org_read_may_not_list_users(db, username):
    with pytest.raises(Forbidden):
        service.list_users(db, actor=_actor(db, username))
