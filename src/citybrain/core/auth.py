"""Request authentication and the one permission mechanism every router uses.

``require("perm")`` resolves the caller from a bearer token (``Authorization: Bearer …``) or a
browser session cookie and checks the permission. Cookie-authenticated writes must also carry
the CSRF token (form field ``csrf_token`` or header ``X-CSRF-Token``); bearer calls need none.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from .actor import Actor
from .db import DbSession
from .errors import Forbidden, Unauthorized
from .security import CookieSigner

SESSION_COOKIE = "cb_session"
CSRF_COOKIE = "cb_csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class LoginRequired(Exception):
    """Raised by page dependencies; the app turns it into a redirect to the login page."""


def signer(request: Request) -> CookieSigner:
    return request.app.state.signer


def session_id(request: Request) -> str | None:
    return signer(request).unsign(request.cookies.get(SESSION_COOKIE))


def csrf_seed(request: Request) -> str | None:
    """The value the CSRF token is derived from: the session id, else the anonymous cookie."""
    sid = session_id(request)
    if sid:
        return sid
    seed = getattr(request.state, "new_csrf_seed", None)
    return seed or signer(request).unsign(request.cookies.get(CSRF_COOKIE))


def ensure_csrf_seed(request: Request) -> str:
    """For anonymous pages with forms (login): make a seed; ``web.render`` sets its cookie."""
    seed = csrf_seed(request)
    if seed is None:
        seed = secrets.token_urlsafe(24)
        request.state.new_csrf_seed = seed
    return seed


def csrf_token(request: Request) -> str:
    return signer(request).csrf_token(ensure_csrf_seed(request))


async def check_csrf(request: Request) -> None:
    supplied = request.headers.get("x-csrf-token")
    if supplied is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get("csrf_token")
        supplied = value if isinstance(value, str) else None
    if not signer(request).csrf_ok(csrf_seed(request), supplied):
        raise Forbidden("missing or invalid CSRF token; reload the page and try again")


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def resolve_actor(request: Request, db: Session) -> Actor | None:
    """The caller, or None when anonymous. A bad bearer token is an error, never anonymous."""
    from citybrain.org import auth as org_auth  # org owns users; core only asks it

    cached = getattr(request.state, "actor", False)
    if cached is not False:
        return cached
    actor: Actor | None = None
    token = _bearer(request)
    if token is not None:
        result = org_auth.actor_from_token(db, token=token)
        if isinstance(result, org_auth.TokenProblem):
            raise Unauthorized(f"invalid bearer token: {result.reason}")
        actor = result
    elif sid := session_id(request):
        actor = org_auth.actor_from_session(db, session_id=sid)
    request.state.actor = actor
    return actor


def _resolved_actor(request: Request, db: DbSession) -> Actor | None:
    # A plain function on purpose: FastAPI runs it in the thread pool, so the database lookup
    # never blocks the event loop (the async dependencies below only await the CSRF form read).
    return resolve_actor(request, db)


ResolvedActor = Annotated[Actor | None, Depends(_resolved_actor)]


async def current_actor(request: Request, actor: ResolvedActor) -> Actor:
    if actor is None:
        raise Unauthorized("authentication required")
    if actor.via == "session" and request.method not in SAFE_METHODS:
        await check_csrf(request)
    return actor


async def optional_actor(actor: ResolvedActor) -> Actor | None:
    return actor


CurrentActor = Annotated[Actor, Depends(current_actor)]
OptionalActor = Annotated[Actor | None, Depends(optional_actor)]


def require(permission: str) -> Any:
    """Dependency: the caller, who must hold ``permission`` (as a role right and, for tokens, a scope)."""

    async def dependency(actor: CurrentActor) -> Actor:
        actor.check(permission)
        return actor

    dependency.__name__ = f"require_{permission.replace(':', '_')}"
    return Depends(dependency)


async def page_actor(request: Request, actor: ResolvedActor) -> Actor:
    """Pages: an anonymous visitor is sent to the login page instead of getting a 401."""
    if actor is None:
        raise LoginRequired()
    if request.method not in SAFE_METHODS:
        await check_csrf(request)
    return actor


PageActor = Annotated[Actor, Depends(page_actor)]


def page_require(permission: str) -> Callable[..., Awaitable[Actor]]:
    async def dependency(actor: PageActor) -> Actor:
        actor.check(permission)
        return actor

    return dependency
