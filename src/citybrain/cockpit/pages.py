"""The big screen, its live stream, the printable daily briefing and the display-token admin page."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from sqlalchemy.orm import Session

from citybrain.core import clock
from citybrain.core.actor import Actor
from citybrain.core.auth import LoginRequired, page_require
from citybrain.core.db import DbSession
from citybrain.core.errors import DomainError
from citybrain.web.render import gettext_for, render

from . import aggregates, display
from . import live as cockpit_live
from .api import aggregator

router = APIRouter()
N_ = aggregates.N_
# The same English msgids as the event pages, so they share their translations.
STATUS_LABELS = {
    "reported": N_("Reported"), "accepted": N_("Accepted"), "not_accepted": N_("Not accepted"),
    "registered": N_("Registered"), "dispatched": N_("Dispatched"), "in_progress": N_("In progress"),
    "handled": N_("Handled"), "verified": N_("Verified"), "closed": N_("Closed"),
    "suspended": N_("Suspended"), "merged": N_("Merged"),
}
Admin = Annotated[Actor, Depends(page_require("org:write"))]


def _invalid_display(request: Request, exc: display.DisplayTokenInvalid) -> Response:
    response = render(request, "cockpit/invalid.html", {"reason": exc.message}, status_code=401, actor=None)
    response.delete_cookie(display.DISPLAY_COOKIE, path="/")
    return response


def _watcher(request: Request, db: Session) -> Actor:
    """The cockpit's page guard: login redirect for nobody, 403 without ``cockpit:read``."""
    actor = display.cockpit_actor(request, db)
    if actor is None:
        raise LoginRequired()
    actor.check("cockpit:read")
    return actor


@router.get("/cockpit", include_in_schema=False)
def cockpit(request: Request, db: DbSession) -> Response:
    token = request.query_params.get("display")
    if token is not None:
        return _adopt_display_token(request, db, token)
    try:
        actor = _watcher(request, db)
    except display.DisplayTokenInvalid as exc:
        return _invalid_display(request, exc)
    snap = aggregator(request).current(db)
    return render(request, "cockpit/screen.html", {
        "snapshot_json": json.dumps(snap, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/"),
        "snap": snap, "watcher": actor, "is_display": actor.via == "display",
        "can_read_events": actor.can("events:read"), "status_labels": STATUS_LABELS,
    }, actor=actor)


def _adopt_display_token(request: Request, db: Session, token: str) -> Response:
    """Check the token once, keep it in an HttpOnly cookie, and drop it from the address bar."""
    try:
        display.check_token(db, token.strip())
    except display.DisplayTokenInvalid as exc:
        return _invalid_display(request, exc)
    settings = request.app.state.settings
    response = RedirectResponse("/cockpit", status_code=303)
    response.set_cookie(display.DISPLAY_COOKIE, request.app.state.signer.sign(token.strip()),
                        max_age=display.MAX_DAYS * 86400, httponly=True, samesite="strict",
                        secure=settings.cookie_secure, path="/")
    return response


@router.get("/cockpit/stream", include_in_schema=False)
async def cockpit_stream(request: Request) -> Response:
    agg = aggregator(request)

    def first_snapshot() -> dict[str, Any]:
        # A short session of our own: the stream stays open for hours and must not hold one.
        with request.app.state.sessionmaker() as db:
            _watcher(request, db)
            snap = agg.current(db)
            db.commit()  # the token's last_used_at
            return snap

    try:
        first = await asyncio.to_thread(first_snapshot)
    except display.DisplayTokenInvalid as exc:
        return _invalid_display(request, exc)

    def allowed() -> bool:
        with request.app.state.sessionmaker() as db:
            return display.revalidate(request, db)

    async def still_allowed() -> bool:
        return await asyncio.to_thread(allowed)

    sub = agg.subscribe()

    async def body():  # noqa: ANN202
        try:
            async for chunk in cockpit_live.stream(agg, sub, first, still_allowed=still_allowed):
                yield chunk
        finally:
            agg.unsubscribe(sub)

    return StreamingResponse(body(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.get("/cockpit/briefing", include_in_schema=False)
def briefing(request: Request, db: DbSession) -> Response:
    try:
        actor = _watcher(request, db)
    except display.DisplayTokenInvalid as exc:
        return _invalid_display(request, exc)
    context = {"b": aggregates.briefing(db), "status_labels": STATUS_LABELS}
    return render(request, "cockpit/briefing.html", context, actor=actor)


# --- display tokens (administrators) -------------------------------------------------------------


def _tokens_page(request: Request, db: Session, actor: Actor, status_code: int = 200, **ctx: object) -> Response:
    tokens = display.listing(db, actor=actor, now=clock.now())
    return render(request, "cockpit/display_tokens.html", {"tokens": tokens, **ctx},
                  status_code=status_code, actor=actor)


@router.get("/cockpit/display-tokens", include_in_schema=False)
def display_tokens(request: Request, db: DbSession, actor: Admin) -> Response:
    return _tokens_page(request, db, actor)


@router.post("/cockpit/display-tokens", include_in_schema=False)
def display_token_create(request: Request, db: DbSession, actor: Admin,
                         label: Annotated[str, Form()] = "", days: Annotated[str, Form()] = "30") -> Response:
    _ = gettext_for(request)
    try:
        token, _row = display.issue(db, actor=actor, label=label, days=int(days) if days.strip().isdigit() else 0)
    except DomainError as exc:
        return _tokens_page(request, db, actor, status_code=exc.status_code, error=exc.message, label=label)
    link = f"{str(request.base_url).rstrip('/')}/cockpit?display={token}"
    return _tokens_page(request, db, actor, new_link=link,
                        notice=_("Open this link once on the wall screen; it will not be shown again."))


@router.post("/cockpit/display-tokens/{token_id}/revoke", include_in_schema=False)
def display_token_revoke(db: DbSession, actor: Admin, token_id: int) -> Response:
    display.revoke(db, actor=actor, token_id=token_id)
    return RedirectResponse("/cockpit/display-tokens", status_code=303)
