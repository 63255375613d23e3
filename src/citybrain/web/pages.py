"""Shell pages: login and logout, language switch, overview, audit log."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from citybrain.core import audit
from citybrain.core.actor import Actor
from citybrain.core.auth import SESSION_COOKIE, PageActor, check_csrf, page_require, session_id
from citybrain.core.db import DbSession
from citybrain.core.errors import DomainError
from citybrain.core.i18n import LANG_COOKIE
from citybrain.data import service as data_service
from citybrain.geo import service as geo_service
from citybrain.org import auth as org_auth
from citybrain.org import service as org_service

from .render import gettext_for, render

router = APIRouter()


def safe_next(value: str | None) -> str:
    """Only same-site relative paths, so the login form cannot be used as an open redirect."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.get("/login", include_in_schema=False)
def login_page(request: Request, next: str = "/") -> Response:
    return render(request, "login.html", {"next": safe_next(next), "error": None}, actor=None)


@router.post("/login", include_in_schema=False)
async def login_submit(
    request: Request,
    db: DbSession,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    _ = gettext_for(request)
    try:
        await check_csrf(request)
    except DomainError:
        return render(request, "login.html", {"next": safe_next(next), "username": username,
                      "error": _("The form expired; please try again.")}, status_code=403, actor=None)
    settings = request.app.state.settings
    throttle = org_auth.Throttle(settings.login_max_failures, settings.login_window_s, settings.login_lockout_s)
    try:
        user = org_auth.authenticate(db, username=username, password=password, ip=client_ip(request),
                                     throttle=throttle)
    except DomainError as exc:
        db.commit()  # keep the record of the failed attempt
        request.app.state.metrics.logins.labels("throttled" if exc.status_code == 429 else "failed").inc()
        status = exc.status_code if exc.status_code == 429 else 401
        message = (_("Too many failed logins; try again in %(s)s seconds.") % {"s": exc.details.get("retry_after_s")}
                   if status == 429 else _("Wrong username or password, or the account is disabled."))
        response = render(request, "login.html", {"next": safe_next(next), "username": username,
                          "error": message}, status_code=status, actor=None)
        if status == 429:
            response.headers["Retry-After"] = str(exc.details.get("retry_after_s"))
        return response
    sess = org_auth.open_session(db, user=user, ip=client_ip(request), max_age_s=settings.session_max_age_s)
    request.app.state.metrics.logins.labels("ok").inc()
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(SESSION_COOKIE, request.app.state.signer.sign(sess.id), max_age=settings.session_max_age_s,
                        httponly=True, samesite="lax", secure=settings.cookie_secure, path="/")
    return response


@router.post("/logout", include_in_schema=False)
async def logout(request: Request, db: DbSession) -> Response:
    await check_csrf(request)
    if sid := session_id(request):
        org_auth.close_session(db, session_id=sid)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.post("/lang", include_in_schema=False)
async def switch_language(
    request: Request, lang: Annotated[str, Form()], next: Annotated[str, Form()] = "/"
) -> Response:
    await check_csrf(request)
    from citybrain.config import SUPPORTED_LANGUAGES

    response = RedirectResponse(safe_next(next), status_code=303)
    if lang in SUPPORTED_LANGUAGES:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax", path="/")
    return response


@router.get("/", include_in_schema=False)
def home(request: Request, db: DbSession, actor: PageActor) -> Response:
    stats = {
        "townships": geo_service.count_townships(db),
        "grid_cells": geo_service.count_grid_cells(db),
        "departments": len(org_service.list_departments(db)),
        "users": len(org_service.list_users(db, actor=actor)) if actor.can("org:read") else "—",
        "residents": data_service.count_residents(db),
        "enterprises": data_service.count_enterprises(db),
    }
    return render(request, "home.html", {"stats": stats}, actor=actor)


@router.get("/admin/audit", include_in_schema=False)
def audit_page(
    request: Request, db: DbSession,
    actor: Annotated[Actor, Depends(page_require("audit:read"))], before: int | None = None,
) -> Response:
    result = audit.verify(db)
    entries = audit.list_entries(db, limit=100, before_id=before)
    return render(request, "admin/audit.html", {"entries": entries, "result": result}, actor=actor)


def login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
