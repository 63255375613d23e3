"""Admin pages for departments and users, and the API-token page of one's own account."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from citybrain.core.actor import Actor
from citybrain.core.auth import page_require
from citybrain.core.db import DbSession
from citybrain.core.errors import DomainError
from citybrain.core.permissions import ROLE_PERMISSIONS, Role
from citybrain.web.render import gettext_for, render

from . import auth, service
from .schemas import DepartmentCreate, DepartmentUpdate, UserCreate, UserUpdate

router = APIRouter(include_in_schema=False)
OrgReader = Annotated[Actor, Depends(page_require("org:read"))]
OrgWriter = Annotated[Actor, Depends(page_require("org:write"))]
TokenWriter = Annotated[Actor, Depends(page_require("token:write"))]


def explain(request: Request, exc: Exception) -> str:
    """One readable line for a refused form (validation or domain error)."""
    _ = gettext_for(request)
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        return _("Invalid value for %(field)s: %(msg)s") % {"field": field, "msg": err["msg"]}
    return str(exc)


async def form_dict(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}


# --- departments -------------------------------------------------------------------------


def _departments_page(
    request: Request, db: DbSession, actor: Actor, status_code: int = 200, **ctx: object
) -> Response:
    ctx.setdefault("form", {})
    return render(request, "admin/departments.html", {
        "departments": service.list_departments(db), "can_write": actor.can("org:write"), **ctx,
    }, actor=actor, status_code=status_code)


@router.get("/admin/departments")
def departments_page(request: Request, db: DbSession, actor: OrgReader, notice: str = "") -> Response:
    return _departments_page(request, db, actor, notice=notice)


@router.post("/admin/departments")
async def department_create(request: Request, db: DbSession, actor: OrgWriter) -> Response:
    form = await form_dict(request)
    try:
        data = DepartmentCreate(
            code=form.get("code", ""), name=form.get("name", ""), kind=form.get("kind", "bureau"),
            division_code=form.get("division_code") or None, description=form.get("description", ""),
        )
        with db.begin_nested():
            service.create_department(db, data=data, actor=actor)
    except (ValidationError, DomainError) as exc:
        return _departments_page(request, db, actor, error=explain(request, exc), form=form, status_code=422)
    return RedirectResponse("/admin/departments", status_code=303)


@router.get("/admin/departments/{department_id}")
def department_edit_page(request: Request, db: DbSession, actor: OrgWriter, department_id: int) -> Response:
    dept = service.get_department(db, department_id=department_id)
    return render(request, "admin/department_edit.html", {"dept": dept, "form": {}}, actor=actor)


@router.post("/admin/departments/{department_id}")
async def department_update(request: Request, db: DbSession, actor: OrgWriter, department_id: int) -> Response:
    dept = service.get_department(db, department_id=department_id)
    form = await form_dict(request)
    try:
        data = DepartmentUpdate(
            name=form.get("name") or None, kind=form.get("kind") or None,
            division_code=form.get("division_code") or None, description=form.get("description", ""),
            active=form.get("active") == "1",
        )
        with db.begin_nested():
            service.update_department(db, department_id=department_id, data=data, actor=actor)
    except (ValidationError, DomainError) as exc:
        db.refresh(dept)
        return render(request, "admin/department_edit.html", {"dept": dept, "form": form,
                      "error": explain(request, exc)}, actor=actor, status_code=422)
    return RedirectResponse("/admin/departments", status_code=303)


# --- users -------------------------------------------------------------------------------


def _users_page(request: Request, db: DbSession, actor: Actor, status_code: int = 200, **ctx: object) -> Response:
    ctx.setdefault("form", {})
    return render(request, "admin/users.html", {
        "users": service.list_users(db, actor=actor), "departments": service.list_departments(db),
        "can_write": actor.can("org:write"), **ctx,
    }, actor=actor, status_code=status_code)


@router.get("/admin/users")
def users_page(request: Request, db: DbSession, actor: OrgReader) -> Response:
    return _users_page(request, db, actor)


@router.post("/admin/users")
async def user_create(request: Request, db: DbSession, actor: OrgWriter) -> Response:
    form = await form_dict(request)
    try:
        data = UserCreate(
            username=form.get("username", ""), password=form.get("password", ""),
            role=form.get("role", ""), department=form.get("department") or None,  # type: ignore[arg-type]
            display_name=form.get("display_name", ""),
        )
        with db.begin_nested():
            service.create_user(db, data=data, actor=actor)
    except (ValidationError, DomainError) as exc:
        form.pop("password", None)
        return _users_page(request, db, actor, status_code=422, error=explain(request, exc), form=form)
    return RedirectResponse("/admin/users", status_code=303)


@router.get("/admin/users/{user_id}")
def user_edit_page(request: Request, db: DbSession, actor: OrgWriter, user_id: int) -> Response:
    user = service.get_user(db, user_id=user_id)
    return render(request, "admin/user_edit.html", {"user": user, "form": {},
                  "departments": service.list_departments(db)}, actor=actor)


@router.post("/admin/users/{user_id}")
async def user_update(request: Request, db: DbSession, actor: OrgWriter, user_id: int) -> Response:
    user = service.get_user(db, user_id=user_id)
    form = await form_dict(request)
    try:
        data = UserUpdate(
            display_name=form.get("display_name"), role=form.get("role") or None,  # type: ignore[arg-type]
            department=form.get("department", ""), active=form.get("active") == "1",
            password=form.get("password") or None,
        )
        with db.begin_nested():
            service.update_user(db, user_id=user_id, data=data, actor=actor)
    except (ValidationError, DomainError) as exc:
        db.refresh(user)
        form.pop("password", None)
        return render(request, "admin/user_edit.html", {"user": user, "form": form,
                      "departments": service.list_departments(db), "error": explain(request, exc)},
                      actor=actor, status_code=422)
    return RedirectResponse("/admin/users", status_code=303)


# --- own API tokens ----------------------------------------------------------------------


def _tokens_page(request: Request, db: DbSession, actor: Actor, status_code: int = 200, **ctx: object) -> Response:
    default_scopes = " ".join(sorted(ROLE_PERMISSIONS[Role(actor.role)]))
    return render(request, "account/tokens.html", {
        "tokens": auth.list_tokens(db, actor=actor), "default_scopes": default_scopes, **ctx,
    }, actor=actor, status_code=status_code)


@router.get("/account/tokens")
def tokens_page(request: Request, db: DbSession, actor: TokenWriter) -> Response:
    return _tokens_page(request, db, actor)


@router.post("/account/tokens")
async def token_create(request: Request, db: DbSession, actor: TokenWriter) -> Response:
    form = await form_dict(request)
    user = service.get_user(db, user_id=actor.user_id or 0)
    try:
        days = int(form.get("days") or 30)
        with db.begin_nested():
            token, _row = auth.issue_token(db, user=user, scopes=form.get("scopes") or None, days=days,
                                           actor=actor, name=form.get("name", ""))
    except ValueError:
        message = gettext_for(request)("Days must be a whole number.")
        return _tokens_page(request, db, actor, status_code=422, error=message)
    except DomainError as exc:
        return _tokens_page(request, db, actor, status_code=exc.status_code, error=str(exc))
    return _tokens_page(request, db, actor, new_token=token)


@router.post("/account/tokens/{token_id}/revoke")
def token_revoke(request: Request, db: DbSession, actor: TokenWriter, token_id: int) -> Response:
    auth.revoke_token(db, token_id=token_id, actor=actor)
    return RedirectResponse("/account/tokens", status_code=303)
