"""Departments and users: plain functions over a session, audited, no HTTP."""

from __future__ import annotations

import csv
from importlib import resources
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from citybrain.core import audit, clock
from citybrain.core.actor import Actor
from citybrain.core.errors import Conflict, Invalid, NotFound
from citybrain.core.permissions import ROLES_WITH_DEPARTMENT, Role
from citybrain.core.security import hash_password, password_problem

from .models import Department, User
from .schemas import DepartmentCreate, DepartmentUpdate, UserCreate, UserUpdate


def _dept_snapshot(d: Department) -> dict[str, Any]:
    return {k: getattr(d, k) for k in ("code", "name", "kind", "division_code", "description", "active")}


def _user_snapshot(u: User) -> dict[str, Any]:
    # Never put the password hash into the audit log.
    return {
        "username": u.username,
        "display_name": u.display_name,
        "role": u.role,
        "department_id": u.department_id,
        "active": u.active,
    }


# --- departments -------------------------------------------------------------------------


def list_departments(db: Session, *, include_inactive: bool = True) -> list[Department]:
    q = select(Department).order_by(Department.kind, Department.id)
    if not include_inactive:
        q = q.where(Department.active.is_(True))
    return list(db.scalars(q))


def get_department(db: Session, *, department_id: int) -> Department:
    dept = db.get(Department, department_id)
    if dept is None:
        raise NotFound(f"department {department_id} does not exist")
    return dept


def get_department_by_code(db: Session, *, code: str) -> Department:
    dept = db.scalar(select(Department).where(Department.code == code))
    if dept is None:
        raise NotFound(f"department {code!r} does not exist")
    return dept


def create_department(db: Session, *, data: DepartmentCreate, actor: Actor) -> Department:
    actor.check("org:write")
    _check_department_unique(db, code=data.code, name=data.name)
    now = clock.now()
    dept = Department(**data.model_dump(), active=True, created_at=now, updated_at=now)
    db.add(dept)
    db.flush()
    audit.record(db, actor=actor, action="department.create", object_type="department",
                 object_id=dept.id, after=_dept_snapshot(dept))
    return dept


def update_department(db: Session, *, department_id: int, data: DepartmentUpdate, actor: Actor) -> Department:
    actor.check("org:write")
    dept = get_department(db, department_id=department_id)
    changes = data.model_dump(exclude_unset=True)
    if "name" in changes and changes["name"] != dept.name:
        _check_department_unique(db, name=changes["name"])
    before = _dept_snapshot(dept)
    for key, value in changes.items():
        setattr(dept, key, value)
    dept.updated_at = clock.now()
    db.flush()
    audit.record(db, actor=actor, action="department.update", object_type="department",
                 object_id=dept.id, before=before, after=_dept_snapshot(dept))
    return dept


def _check_department_unique(db: Session, *, code: str | None = None, name: str | None = None) -> None:
    if code and db.scalar(select(Department.id).where(Department.code == code)):
        raise Conflict(f"a department with code {code!r} already exists")
    if name and db.scalar(select(Department.id).where(Department.name == name)):
        raise Conflict(f"a department named {name!r} already exists")


def load_shipped_departments(db: Session, *, actor: Actor) -> int:
    """Create the district's shipped departments that do not exist yet; returns how many."""
    created = 0
    text = resources.files("citybrain.org.data").joinpath("departments.csv").read_text("utf-8")
    for row in csv.DictReader(text.splitlines()):
        if db.scalar(select(Department.id).where(Department.code == row["code"])):
            continue
        data = DepartmentCreate(
            code=row["code"], name=row["name"], kind=row["kind"],
            division_code=row["division_code"] or None, description=row["description"],
        )
        create_department(db, data=data, actor=actor)
        created += 1
    return created


# --- users -------------------------------------------------------------------------------


def list_users(db: Session, *, actor: Actor) -> list[User]:
    actor.check("org:read")
    q = select(User).order_by(User.id)
    if not actor.sees_all_departments:
        q = q.where(User.department_id == actor.department_id)
    return list(db.scalars(q))


def get_user(db: Session, *, user_id: int) -> User:
    user = db.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} does not exist")
    return user


def get_user_by_username(db: Session, *, username: str) -> User | None:
    return db.scalar(select(User).where(func.lower(User.username) == username.lower()))


def _resolve_department(db: Session, code: str | None) -> Department | None:
    if not code:
        return None
    try:
        return get_department_by_code(db, code=code)
    except NotFound as exc:
        raise Invalid(exc.message) from None


def _check_role_department(role: str, dept: Department | None) -> None:
    if role in ROLES_WITH_DEPARTMENT and dept is None:
        raise Invalid(f"role {role!r} needs a department")


def create_user(db: Session, *, data: UserCreate, actor: Actor) -> User:
    actor.check("org:write")
    if problem := password_problem(data.password):
        raise Invalid(problem)
    if get_user_by_username(db, username=data.username):
        raise Conflict(f"username {data.username!r} is already taken")
    dept = _resolve_department(db, data.department)
    _check_role_department(data.role, dept)
    now = clock.now()
    user = User(
        username=data.username, display_name=data.display_name or data.username,
        password_hash=hash_password(data.password), role=str(data.role),
        department_id=dept.id if dept else None, active=True, created_at=now, updated_at=now,
    )
    db.add(user)
    try:
        db.flush()
    except IntegrityError:  # a concurrent create won the race for the username
        raise Conflict(f"username {data.username!r} is already taken") from None
    audit.record(db, actor=actor, action="user.create", object_type="user",
                 object_id=user.id, after=_user_snapshot(user))
    return user


def update_user(db: Session, *, user_id: int, data: UserUpdate, actor: Actor) -> User:
    actor.check("org:write")
    user = get_user(db, user_id=user_id)
    changes = data.model_dump(exclude_unset=True)
    before = _user_snapshot(user)
    # Check everything before touching the row: a refused update must leave nothing dirty in
    # the session for a later flush to write.
    dept = _resolve_department(db, changes["department"]) if "department" in changes else user.department
    role = str(changes["role"]) if changes.get("role") is not None else user.role
    active = changes["active"] if changes.get("active") is not None else user.active
    _check_role_department(role, dept)
    password = changes.get("password")
    if password is not None and (problem := password_problem(password)):
        raise Invalid(problem)
    if changes.get("active") is False and user.id == actor.user_id:
        raise Invalid("you cannot deactivate your own account")
    if before["role"] == Role.ADMIN and (role != Role.ADMIN or not active):
        _check_not_last_admin(db, user)
    user.department_id = dept.id if dept else None
    user.role, user.active = role, active
    if changes.get("display_name") is not None:
        user.display_name = changes["display_name"]
    if password is not None:
        user.password_hash = hash_password(password)
    user.updated_at = clock.now()
    db.flush()
    after = _user_snapshot(user) | ({"password": "changed"} if password is not None else {})
    audit.record(db, actor=actor, action="user.update", object_type="user",
                 object_id=user.id, before=before, after=after)
    return user


def _check_not_last_admin(db: Session, user: User) -> None:
    others = db.scalar(
        select(func.count()).select_from(User)
        .where(User.role == Role.ADMIN, User.active.is_(True), User.id != user.id)
    )
    if not others:
        raise Invalid("the last active admin cannot be demoted or deactivated")
