"""Staff pages of the event command: command-centre list and map, event detail with its action
forms, department inbox, grid-worker verification tasks, hotline / field report entry, and the
server-sent-event stream that puts new work in front of its recipient at once."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.routing import NoMatchFound

from citybrain.core import clock
from citybrain.core.actor import Actor
from citybrain.core.auth import LoginRequired, page_require, resolve_actor
from citybrain.core.db import DbSession
from citybrain.core.errors import Conflict, DomainError, Forbidden, Invalid
from citybrain.geo import service as geo_service
from citybrain.org import service as org_service
from citybrain.web.render import gettext_for, render

from . import catalog, duplicates, live, photos, service, workflow
from .enums import OPEN_STATUSES, Channel, LocationState, Status, TimeUnit, Urgency
from .models import Event, EventPhoto
from .schemas import EventReportIn

router = APIRouter(include_in_schema=False)
Reader = Annotated[Actor, Depends(page_require("events:read"))]
Handler = Annotated[Actor, Depends(page_require("events:handle"))]
Verifier = Annotated[Actor, Depends(page_require("events:verify"))]
Reporter = Annotated[Actor, Depends(page_require("events:report"))]

CHINA = timezone(timedelta(hours=8))
PAGE_SIZE = 50
MAP_LIMIT = 1000


def N_(msgid: str) -> str:  # noqa: N802 - marks an English msgid for extraction; translated in templates
    return msgid


STATUS_LABELS = {
    "reported": N_("Reported"), "accepted": N_("Accepted"), "not_accepted": N_("Not accepted"),
    "registered": N_("Registered"), "dispatched": N_("Dispatched"), "in_progress": N_("In progress"),
    "handled": N_("Handled"), "verified": N_("Verified"), "closed": N_("Closed"),
    "suspended": N_("Suspended"), "merged": N_("Merged"),
}
ACTION_LABELS = {
    "report": N_("Reported"), "accept": N_("Accept"), "reject": N_("Do not accept"),
    "locate": N_("Locate manually"), "register": N_("Register"), "dispatch": N_("Dispatch"),
    "reassign": N_("Reassign"), "return": N_("Return to the command centre"),
    "assist": N_("Add assisting departments"), "start": N_("Start handling"),
    "handle": N_("Mark as handled"), "verify_pass": N_("Verification passed"),
    "verify_fail": N_("Verification failed (rework)"), "close": N_("Close"),
    "request_extension": N_("Request an extension"), "approve_extension": N_("Approve the extension"),
    "refuse_extension": N_("Refuse the extension"), "suspend": N_("Suspend"), "resume": N_("Resume"),
    "note": N_("Note"),
}
URGENCY_LABELS = {"normal": N_("Normal"), "urgent": N_("Urgent"), "critical": N_("Critical")}
CHANNEL_LABELS = {
    "citizen": N_("Citizen"), "grid": N_("Grid worker"), "hotline": N_("12345 hotline"),
    "api": N_("Other system"), "open311": N_("Open311"), "sensor": N_("Sensor alarm"),
    "video": N_("Video AI"),
}
UNIT_LABELS = {"working_hours": N_("working hours"), "working_days": N_("working days"),
               "natural_hours": N_("natural hours")}
ROLE_IN_EVENT = {"lead": N_("Lead"), "assist": N_("Assisting")}
# Actions whose form takes photos, and the stage the photos are stored under.
PHOTO_STAGE = {"handle": "handled", "verify_pass": "verified", "verify_fail": "verified"}
PHOTO_STAGE_LABELS = {"report": N_("Photos from the report"), "handled": N_("Photos of the handling"),
                      "verified": N_("Photos of the verification")}
COMMAND_STATUSES = (Status.REPORTED, Status.ACCEPTED, Status.REGISTERED, Status.VERIFIED)
WORK_STATUSES = (Status.DISPATCHED, Status.IN_PROGRESS)
RUNNING = frozenset(OPEN_STATUSES - {Status.SUSPENDED})


# --- shared view helpers ---------------------------------------------------------------------


def local(at: datetime | None) -> str:
    return at.astimezone(CHINA).strftime("%Y-%m-%d %H:%M") if at else ""


def remaining(request: Request, event: Event, now: datetime) -> tuple[str, bool]:
    """("3 h 20 min left" | "overdue by 1 d 2 h" | "", overdue?) for a running deadline."""
    _ = gettext_for(request)
    if event.status == Status.SUSPENDED:
        return _("Clock stopped"), False
    if event.due_at is None or event.status not in RUNNING:
        return "", False
    seconds = int((event.due_at - now).total_seconds())
    overdue = seconds < 0 or event.overdue
    minutes = abs(seconds) // 60
    days, hours, mins = minutes // 1440, minutes % 1440 // 60, minutes % 60
    span = (_("%(d)d d %(h)d h") % {"d": days, "h": hours} if days
            else _("%(h)d h %(m)d min") % {"h": hours, "m": mins})
    return (_("overdue by %(t)s") % {"t": span}, True) if overdue else (_("%(t)s left") % {"t": span}, False)


def lookups(db: Session) -> dict[str, Any]:
    townships = [d for d in geo_service.list_divisions(db) if d.level == "township"]
    return {
        "categories": catalog.list_categories(db, active_only=False),
        "category_names": {c.code: c.name for c in catalog.list_categories(db, active_only=False)},
        "departments": org_service.list_departments(db, include_inactive=False),
        "department_names": {d.id: d.name for d in org_service.list_departments(db)},
        "townships": townships,
        "township_names": {d.code: d.name for d in townships},
        "status_labels": STATUS_LABELS, "action_labels": ACTION_LABELS,
        "urgency_labels": URGENCY_LABELS, "channel_labels": CHANNEL_LABELS,
        "unit_labels": UNIT_LABELS, "role_in_event": ROLE_IN_EVENT, "local": local,
    }


def rows(request: Request, events: list[Event]) -> list[dict[str, Any]]:
    now = clock.now()
    out = []
    for e in events:
        left, late = remaining(request, e, now)
        out.append({"e": e, "remaining": left, "late": late})
    return out


def _actor_township(db: Session, actor: Actor) -> str | None:
    if actor.department_id is None:
        return None
    return org_service.get_department(db, department_id=actor.department_id).division_code


def available_actions(db: Session, event: Event, actor: Actor) -> list[workflow.Action]:
    """The workflow actions ``actor`` may take on ``event`` now (the table's own checks, read ahead)."""
    township = None if actor.sees_all_departments else _actor_township(db, actor)
    found = []
    for name in workflow.allowed_actions(event.status):
        step = workflow.ACTIONS[name]
        if not actor.can(step.permission):
            continue
        if step.scope == workflow.OWN_DEPARTMENT and not actor.sees_all_departments \
                and event.department_id != actor.department_id:
            continue
        if step.scope == workflow.VERIFIER and not actor.sees_all_departments \
                and (not township or township != event.township_code):
            continue
        if "pending_extension" in step.needs and not event.extension_request:
            continue
        if "extension" in step.needs and event.extension_request:
            continue
        if name == "locate" and event.location_state != LocationState.MANUAL:
            continue
        found.append(step)
    return found


def explain(request: Request, exc: Exception) -> str:
    """One readable line for a refused form (validation or domain error)."""
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        return gettext_for(request)("Invalid value for %(field)s: %(msg)s") % {"field": field, "msg": err["msg"]}
    return str(exc)


def safe_next(value: str | None, default: str) -> str:
    return value if value and value.startswith("/") and not value.startswith("//") else default


# --- command centre: list and map ----------------------------------------------------------------


def _filters(request: Request, db: Session) -> dict[str, Any]:
    q = request.query_params
    department_id = None
    if code := q.get("department"):
        try:
            department_id = org_service.get_department_by_code(db, code=code).id
        except DomainError:
            department_id = -1  # an unknown department has no events
    overdue = {"1": True, "0": False}.get(q.get("overdue", ""))
    return {"status": q.get("status") or None, "category_code": q.get("category") or None,
            "township_code": q.get("township") or None, "department_id": department_id,
            "overdue": overdue}


@router.get("/events")
def events_page(request: Request, db: DbSession, actor: Reader, page: int = 1, fragment: bool = False) -> Response:
    page = max(page, 1)
    filters = _filters(request, db)
    found = service.list_events(db, actor=actor, **filters, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
    query = {k: v for k, v in request.query_params.items() if k not in ("page", "fragment") and v}
    ctx = {**lookups(db), "rows": rows(request, found[:PAGE_SIZE]), "page": page,
           "has_next": len(found) > PAGE_SIZE, "query": query, "urlencode": urlencode,
           "table_url": "/events?" + urlencode({**query, "page": page, "fragment": 1})}
    if fragment:
        return render(request, "events/staff/_table.html", ctx, actor=actor)
    # The map follows the filters but shows only events still being worked on.
    running = [str(s) for s in RUNNING if not filters["status"] or s == filters["status"]]
    on_map = (service.list_events(db, actor=actor, **(filters | {"status": running}), limit=MAP_LIMIT)
              if running else [])
    ctx["points"] = [{"id": e.id, "no": e.tracking_no, "lon": e.lon, "lat": e.lat, "urgency": e.urgency,
                      "status": e.status, "overdue": remaining(request, e, clock.now())[1]}
                     for e in on_map if e.lon is not None and e.lat is not None]
    ctx["can_geo"] = actor.can("geo:read")
    return render(request, "events/staff/list.html", ctx, actor=actor)


# --- detail and actions -----------------------------------------------------------------------


def _detail(request: Request, db: Session, actor: Actor, event: Event, status_code: int = 200,
            **extra: Any) -> Response:
    left, late = remaining(request, event, clock.now())
    found = list(db.scalars(select(EventPhoto).where(EventPhoto.event_id == event.id).order_by(EventPhoto.id)))
    by_stage: dict[str, list[EventPhoto]] = {}
    for photo in found:
        by_stage.setdefault(photo.stage, []).append(photo)
    photo_groups = [(stage, by_stage.pop(stage)) for stage in PHOTO_STAGE_LABELS if stage in by_stage]
    photo_groups += sorted(by_stage.items())
    try:  # the photo route lives in pages_public; nested routers are not listed in app.routes
        request.app.url_path_for("event_photo", photo_id=0)
        photo_route = True
    except NoMatchFound:
        photo_route = False
    extra.setdefault("form", {})
    return render(request, "events/staff/detail.html", {
        **lookups(db), "event": event, "remaining": left, "late": late,
        "timeline": service.timeline(db, event_id=event.id),
        "assignments": service.assignments(db, event_id=event.id),
        "actions": available_actions(db, event, actor), "photos": found, "photo_groups": photo_groups,
        "photo_stage_labels": PHOTO_STAGE_LABELS, "photo_actions": PHOTO_STAGE, "photo_route": photo_route,
        "max_photos": photos.MAX_PHOTOS, "max_photo_mb": photos.MAX_PHOTO_BYTES // (1024 * 1024),
        "units": list(TimeUnit), "duplicates": _duplicate_candidates(db, event, actor), **extra,
    }, actor=actor, status_code=status_code)


def _duplicate_candidates(db: Session, event: Event, actor: Actor) -> list[Event]:
    """Nearby open reports of the same small class, offered to the command centre for merging."""
    if not actor.can("events:command") or event.status not in OPEN_STATUSES or event.lon is None:
        return []
    return duplicates.suggest_duplicates(db, event=event)


@router.post("/events/{event_id:int}/merge")
async def event_merge(request: Request, db: DbSession, actor: Reader, event_id: int) -> Response:
    """Merge this report into another (the main) event; the reporter follows the main event."""
    raw = await request.form()
    event = service.get_event(db, event_id=event_id)
    service.check_can_read(db, event=event, actor=actor)
    try:
        into_id = int(str(raw.get("into_id") or ""))
        expected = int(str(raw.get("expected_version") or ""))
    except ValueError:
        return _detail(request, db, actor, event, status_code=422,
                       error=gettext_for(request)("Choose the main event to merge into."))
    try:
        with db.begin_nested():
            duplicates.merge(db, event_id=event_id, into_id=into_id, actor=actor, expected_version=expected,
                             note=str(raw.get("note") or ""))
    except Conflict as exc:
        db.refresh(event)
        return render(request, "events/staff/conflict.html", {"event": event, "message": exc.message,
                      "back": f"/events/{event_id}"}, actor=actor, status_code=409)
    except Invalid as exc:
        db.refresh(event)
        return _detail(request, db, actor, event, status_code=422, error=explain(request, exc))
    return RedirectResponse(f"/events/{into_id}", status_code=303)


@router.get("/events/{event_id:int}")
def event_page(request: Request, db: DbSession, actor: Reader, event_id: int) -> Response:
    event = service.get_event(db, event_id=event_id)
    service.check_can_read(db, event=event, actor=actor)
    return _detail(request, db, actor, event)


def _float(form: dict[str, Any], key: str) -> float | None:
    text = str(form.get(key) or "").strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise Invalid(f"{key} must be a number") from None


def action_data(form: dict[str, Any], codes: list[str]) -> dict[str, Any]:
    """Form fields → keyword data of ``service.transition`` (only what was filled in)."""
    data: dict[str, Any] = {}
    for key in ("reason", "result", "department_code", "unit", "crs"):
        if value := str(form.get(key) or "").strip():
            data[key] = value
    for key in ("value", "lon", "lat"):
        if (number := _float(form, key)) is not None:
            data[key] = number
    if codes:
        data["department_codes"] = codes
    return data


def photo_refusal(request: Request, uploads: list[tuple[str, bytes]]) -> str | None:
    """Why these uploads cannot be attached (count, size, content), or None when all are photos."""
    _ = gettext_for(request)
    if len(uploads) > photos.MAX_PHOTOS:
        return _("At most %(n)s photos can be attached.") % {"n": photos.MAX_PHOTOS}
    for name, data in uploads:
        try:
            photos.check_photo(data)
        except photos.PhotoRefused as exc:
            if exc.reason == "too_large":
                why = _("Each photo may be at most %(mb)s MB.") % {"mb": photos.MAX_PHOTO_BYTES // (1024 * 1024)}
            elif exc.reason == "empty":
                why = _("A photo file is empty.")
            else:
                why = _("Only photos (JPEG, PNG or WebP) can be attached.")
            return _("%(file)s: %(reason)s") % {"file": photos.clean_filename(name), "reason": why}
    return None


@router.post("/events/{event_id:int}/actions/{action}")
async def event_action(request: Request, db: DbSession, actor: Reader, event_id: int, action: str) -> Response:
    raw = await request.form()
    form = {k: v for k, v in raw.items() if isinstance(v, str) and k != "csrf_token"}
    codes = [v for v in raw.getlist("department_codes") if isinstance(v, str) and v]
    event = service.get_event(db, event_id=event_id)
    service.check_can_read(db, event=event, actor=actor)
    back = safe_next(form.get("next"), f"/events/{event_id}")
    try:
        expected = int(form.get("expected_version") or "")
    except ValueError:
        expected = None
    # Photos are checked before anything is written; files are written only once the action
    # has been applied, inside its savepoint (a refused action leaves no photo row or file).
    stage = PHOTO_STAGE.get(action)
    uploads = await photos.read_uploads(raw) if stage else []
    if (refusal := photo_refusal(request, uploads)) is not None:
        return _detail(request, db, actor, event, status_code=422, error=refusal, failed_action=action, form=form)
    try:
        with db.begin_nested():
            service.transition(db, event_id=event_id, action=action, actor=actor, expected_version=expected,
                               note=str(form.get("note") or ""), **action_data(form, codes))
            for name, content in uploads:
                photos.save_photo(db, event_id=event_id, stage=stage or "", upload_bytes=content, filename=name,
                                  data_dir=request.app.state.settings.data_dir)
    except Conflict as exc:
        db.refresh(event)
        return render(request, "events/staff/conflict.html", {"event": event, "message": exc.message,
                      "back": back}, actor=actor, status_code=409)
    except Forbidden:
        raise
    except Invalid as exc:
        db.refresh(event)
        return _detail(request, db, actor, event, status_code=422, error=explain(request, exc),
                       failed_action=action, form=form)
    return RedirectResponse(back, status_code=303)


# --- inbox and verification tasks ----------------------------------------------------------------


def _work_page(request: Request, db: Session, actor: Actor, template: str, events: list[Event],
               fragment: bool, url: str, **extra: Any) -> Response:
    ctx = {**lookups(db), "rows": rows(request, events), "page": 1, "has_next": False, "query": {},
           "urlencode": urlencode, "table_url": url + "?fragment=1", **extra}
    name = "events/staff/_table.html" if fragment and template == "events/staff/inbox.html" else template
    if fragment and template == "events/staff/tasks.html":
        name = "events/staff/_tasks_table.html"
    return render(request, name, ctx, actor=actor)


@router.get("/inbox")
def inbox_page(request: Request, db: DbSession, actor: Handler, fragment: bool = False) -> Response:
    statuses = [str(s) for s in (COMMAND_STATUSES if actor.can("events:command") else WORK_STATUSES)]
    if actor.can("events:command") and actor.department_id is not None and not actor.sees_all_departments:
        statuses += [str(s) for s in WORK_STATUSES]
    found = service.list_events(db, actor=actor, status=statuses, limit=200)
    found.sort(key=lambda e: e.updated_at, reverse=True)
    return _work_page(request, db, actor, "events/staff/inbox.html", found, fragment, "/inbox")


@router.get("/tasks")
def tasks_page(request: Request, db: DbSession, actor: Verifier, fragment: bool = False) -> Response:
    township = None if actor.sees_all_departments else _actor_township(db, actor)
    if not actor.sees_all_departments and not township:
        found: list[Event] = []
    else:
        found = service.list_events(db, actor=actor, status=Status.HANDLED, township_code=township, limit=200)
    return _work_page(request, db, actor, "events/staff/tasks.html", found, fragment, "/tasks",
                      township=township)


# --- hotline call and field report ---------------------------------------------------------------


def _channel(actor: Actor, requested: str | None) -> str:
    if actor.role == "grid_worker" or requested == Channel.GRID:
        return Channel.GRID
    return Channel.HOTLINE


def _report_form(request: Request, db: Session, actor: Actor, channel: str, status_code: int = 200,
                 **extra: Any) -> Response:
    extra.setdefault("form", {})
    categories = [c for c in catalog.list_categories(db) if c.active]
    return render(request, "events/staff/new.html", {
        **lookups(db), "channel": channel, "report_categories": categories,
        "urgencies": list(Urgency), "crs_options": ("wgs84", "gcj02", "bd09"), **extra,
    }, actor=actor, status_code=status_code)


@router.get("/events/new")
def new_event_page(request: Request, db: DbSession, actor: Reporter, channel: str | None = None,
                   created: str = "") -> Response:
    if actor.role == "citizen":
        raise Forbidden("citizens report on the public report page")
    return _report_form(request, db, actor, _channel(actor, channel), created=created)


@router.post("/events/new")
async def new_event(request: Request, db: DbSession, actor: Reporter) -> Response:
    if actor.role == "citizen":
        raise Forbidden("citizens report on the public report page")
    raw = await request.form()
    form = {k: v for k, v in raw.items() if isinstance(v, str) and k != "csrf_token"}
    channel = _channel(actor, form.get("channel"))
    try:
        data = EventReportIn(
            channel=channel, category_code=form.get("category_code", ""),  # type: ignore[arg-type]
            description=form.get("description", ""), address=form.get("address", ""),
            lon=_float(form, "lon"), lat=_float(form, "lat"), crs=form.get("crs") or "wgs84",
            reporter_name=form.get("reporter_name", "") if channel == Channel.HOTLINE else "",
            reporter_phone=form.get("reporter_phone", "") if channel == Channel.HOTLINE else "",
            urgency=form.get("urgency") or None,
        )
        with db.begin_nested():
            event = service.report(db, data=data, actor=actor)
    except (ValidationError, DomainError) as exc:
        if isinstance(exc, Forbidden):
            raise
        return _report_form(request, db, actor, channel, status_code=422, error=explain(request, exc), form=form)
    try:
        service.check_can_read(db, event=event, actor=actor)
    except Forbidden:  # e.g. a hotline call for another department: confirm with the number
        query = urlencode({"channel": channel, "created": event.tracking_no})
        return RedirectResponse(f"/events/new?{query}", status_code=303)
    return RedirectResponse(f"/events/{event.id}", status_code=303)


# --- live stream -----------------------------------------------------------------------------------


@router.get("/events/stream")
async def event_stream(request: Request) -> Response:
    # A short session of our own: the stream stays open for hours and must not hold a connection.
    with request.app.state.sessionmaker() as db:
        actor = resolve_actor(request, db)
        if actor is None:
            raise LoginRequired()
        actor.check("events:read")
        township = _actor_township(db, actor) if actor.role == "grid_worker" else None
    live.BROADCASTER.start()
    sub = live.BROADCASTER.subscribe()

    async def body():  # noqa: ANN202
        try:
            async for chunk in live.stream(sub, lambda m: live.concerns(actor, m, township_code=township)):
                yield chunk
        finally:
            live.BROADCASTER.unsubscribe(sub)

    return StreamingResponse(body(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
