"""JSON API: OAuth2 password flow, departments, users, tokens."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import JSONResponse

from citybrain.core.actor import Actor
from citybrain.core.auth import CurrentActor, require
from citybrain.core.db import DbSession
from citybrain.core.errors import DomainError, Invalid

from . import auth, service
from .schemas import (
    DepartmentCreate,
    DepartmentRead,
    DepartmentUpdate,
    Me,
    TokenRead,
    UserCreate,
    UserRead,
    UserUpdate,
)

router = APIRouter()


def _user_read(user: object) -> UserRead:
    read = UserRead.model_validate(user)
    dept = getattr(user, "department", None)
    return read.model_copy(update={"department_code": dept.code if dept else None})


@router.post("/auth/token", response_model=TokenRead, tags=["auth"],
             summary="OAuth2 password flow: exchange a username and password for a bearer token")
def token_from_password(
    request: Request,
    db: DbSession,
    username: Annotated[str, Form()],
    password: Annotated[str, Form()],
    grant_type: Annotated[str, Form()] = "password",
    scope: Annotated[str, Form()] = "",
) -> JSONResponse | TokenRead:
    # Not authenticated: this is how a client gets authenticated.
    if grant_type != "password":
        return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
    settings = request.app.state.settings
    throttle = auth.Throttle(settings.login_max_failures, settings.login_window_s, settings.login_lockout_s)
    ip = request.client.host if request.client else "unknown"
    try:
        user = auth.authenticate(db, username=username, password=password, ip=ip, throttle=throttle)
        actor = auth.actor_for(user, via="password")
        token, row = auth.issue_token(db, user=user, scopes=scope or None,
                                      days=settings.token_default_days, actor=actor, name="oauth2 password flow")
    except DomainError as exc:
        db.commit()  # keep the record of the failed attempt
        request.app.state.metrics.logins.labels("throttled" if exc.status_code == 429 else "failed").inc()
        headers = {"Retry-After": str(exc.details["retry_after_s"])} if "retry_after_s" in exc.details else {}
        error = "invalid_scope" if exc.code == "forbidden" or "scope" in exc.message else "invalid_grant"
        status = 429 if exc.status_code == 429 else 400
        return JSONResponse({"error": error, "error_description": exc.message}, status_code=status,
                            headers=headers)
    request.app.state.metrics.logins.labels("ok").inc()
    return TokenRead(access_token=token, expires_at=row.expires_at, scope=row.scopes)


@router.get("/org/me", response_model=Me, tags=["org"])
def me(actor: CurrentActor) -> Me:
    return Me(id=actor.user_id, username=actor.username, role=actor.role, department_id=actor.department_id,
              permissions=sorted(actor.permissions), via=actor.via)


@router.get("/org/departments", response_model=list[DepartmentRead], tags=["org"])
def departments(db: DbSession, _actor: Annotated[Actor, require("org:read")]) -> list[DepartmentRead]:
    return [DepartmentRead.model_validate(d) for d in service.list_departments(db)]


@router.post("/org/departments", response_model=DepartmentRead, status_code=201, tags=["org"])
def create_department(db: DbSession, data: DepartmentCreate,
                      actor: Annotated[Actor, require("org:write")]) -> DepartmentRead:
    return DepartmentRead.model_validate(service.create_department(db, data=data, actor=actor))


@router.patch("/org/departments/{department_id}", response_model=DepartmentRead, tags=["org"])
def update_department(db: DbSession, department_id: int, data: DepartmentUpdate,
                      actor: Annotated[Actor, require("org:write")]) -> DepartmentRead:
    dept = service.update_department(db, department_id=department_id, data=data, actor=actor)
    return DepartmentRead.model_validate(dept)


@router.get("/org/users", response_model=list[UserRead], tags=["org"])
def users(db: DbSession, actor: Annotated[Actor, require("org:read")]) -> list[UserRead]:
    return [_user_read(u) for u in service.list_users(db, actor=actor)]


@router.post("/org/users", response_model=UserRead, status_code=201, tags=["org"])
def create_user(db: DbSession, data: UserCreate, actor: Annotated[Actor, require("org:write")]) -> UserRead:
    return _user_read(service.create_user(db, data=data, actor=actor))


@router.patch("/org/users/{user_id}", response_model=UserRead, tags=["org"])
def update_user(db: DbSession, user_id: int, data: UserUpdate,
                actor: Annotated[Actor, require("org:write")]) -> UserRead:
    return _user_read(service.update_user(db, user_id=user_id, data=data, actor=actor))


@router.post("/org/tokens/{token_id}/revoke", status_code=204, tags=["auth"])
def revoke_token(db: DbSession, token_id: int, actor: Annotated[Actor, require("token:write")]) -> None:
    auth.revoke_token(db, token_id=token_id, actor=actor)


__all__ = ["router", "Invalid", "Depends"]
