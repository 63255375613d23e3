"""Citizen pages: report a problem and follow it by tracking number, without an account.

Why no account: issue 3 asks for a report page "that needs no account" — a passer-by who sees
a broken manhole cover should be able to report it in a minute from a phone, and follow it
with the tracking number alone. These pages therefore show nothing personal and nothing
internal: no reporter data, no staff names, no notes, no exact points, no photos.

Photos are served (``/events/photos/{id}``) only to signed-in staff who may read the event.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from citybrain.core.actor import Actor
from citybrain.core.auth import check_csrf, page_require
from citybrain.core.db import DbSession
from citybrain.core.errors import Conflict, DomainError, Forbidden, Invalid, NotFound
from citybrain.geo import service as geo_service
from citybrain.org import service as org_service
from citybrain.web.render import gettext_for, render

from . import catalog, photos, rating, service
from .enums import Channel, Status
from .models import Event, EventCategory
from .schemas import MAX_DESCRIPTION, EventReportIn

router = APIRouter(include_in_schema=False)

MAX_PHOTOS = photos.MAX_PHOTOS
_FIELDS = ("category_code", "description", "lon", "lat", "address", "reporter_name", "reporter_phone",
           "reporter_email")


def N_(message: str) -> str:  # noqa: N802 - the gettext convention for "mark, translate later"
    return message


STATUS_LABELS = {
    Status.REPORTED: N_("Reported, waiting to be accepted"),
    Status.ACCEPTED: N_("Accepted"),
    Status.NOT_ACCEPTED: N_("Not accepted"),
    Status.REGISTERED: N_("Registered as a case"),
    Status.DISPATCHED: N_("Sent to the responsible department"),
    Status.IN_PROGRESS: N_("Being handled"),
    Status.HANDLED: N_("Handled, waiting for verification"),
    Status.VERIFIED: N_("Verified on site"),
    Status.CLOSED: N_("Closed"),
    Status.SUSPENDED: N_("Suspended"),
    Status.MERGED: N_("Merged with another report of the same problem"),
}
# Only these timeline actions are shown to the public; anything else (notes, extension
# requests, ratings, actions added later) stays internal until someone decides otherwise.
PUBLIC_STEPS = {
    "report": N_("Report received"),
    "accept": N_("Accepted"),
    "reject": N_("Not accepted"),
    "locate": N_("Location confirmed"),
    "register": N_("Registered as a case"),
    "dispatch": N_("Sent to the responsible department"),
    "reassign": N_("Sent to another department"),
    "return": N_("Returned for re-dispatch"),
    "start": N_("Handling started"),
    "handle": N_("Handling completed"),
    "verify_pass": N_("Verified on site"),
    "verify_fail": N_("Verification failed; sent back for rework"),
    "approve_extension": N_("Time limit extended"),
    "suspend": N_("Suspended"),
    "resume": N_("Resumed"),
    "close": N_("Closed"),
    "merge": N_("Merged with another report of the same problem"),
}
KIND_NAMES = {"component": N_("Component"), "event": N_("Event")}


# --- report -------------------------------------------------------------------------------


def _category_groups(db: Session) -> list[dict[str, Any]]:
    """Public, active small classes grouped by (kind, large class), in catalog order."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for cat in catalog.list_categories(db, public_only=True):
        group = groups.setdefault((cat.kind, cat.major_code), {"kind": cat.kind, "name": cat.major_name,
                                                               "categories": []})
        group["categories"].append(cat)
    return list(groups.values())


def _report_page(request: Request, db: DbSession, *, values: dict[str, str] | None = None,
                 errors: dict[str, str] | None = None, status_code: int = 200) -> Response:
    return render(request, "events/public/report.html", {
        "groups": _category_groups(db), "kind_names": KIND_NAMES, "values": values or {},
        "errors": errors or {}, "max_description": MAX_DESCRIPTION, "max_photos": MAX_PHOTOS,
        "max_photo_mb": photos.MAX_PHOTO_BYTES // (1024 * 1024),
    }, status_code=status_code, actor=None)


@router.get("/report")
def report_form(request: Request, db: DbSession) -> Response:
    return _report_page(request, db)


# Public on purpose: the report page needs no account, yet its map must draw the district.
# /api/geo/divisions needs geo:read, so this returns only what the page draws — the district
# and township outlines with their names — which is public information anyway.
@router.get("/report/district.geojson")
def district_geojson(db: DbSession) -> JSONResponse:
    data = geo_service.divisions_geojson(db)
    features = [
        {"type": "Feature", "id": f["id"], "geometry": f["geometry"],
         "properties": {"code": f["properties"]["code"], "name": f["properties"]["name"],
                        "level": f["properties"]["level"]}}
        for f in data["features"] if f["properties"]["level"] in ("district", "township")
    ]
    return JSONResponse({"type": "FeatureCollection", "features": features},
                        headers={"Cache-Control": "public, max-age=3600"})


async def _uploads(form: Any) -> list[tuple[str, bytes]]:
    """The chosen photos; a file input left empty arrives as a nameless, empty part."""
    return await photos.read_uploads(form)


def _coordinate(text: str) -> float | None:
    if not text:
        return None
    value = float(text)  # ValueError for anything that is not a number
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def _schema_errors(exc: ValidationError, _: Any) -> dict[str, str]:
    messages = {
        "category_code": _("Please choose a category."),
        "address": _("The address is too long."),
        "reporter_name": _("The name is too long."),
        "reporter_phone": _("The phone number is too long."),
        "reporter_email": _("The e-mail address is too long."),
    }
    errors: dict[str, str] = {}
    for err in exc.errors():
        field = str(err["loc"][0]) if err.get("loc") else "form"
        if field == "description":
            if err["type"] == "string_too_long":
                errors[field] = _("The description may have at most %(n)s characters.", n=MAX_DESCRIPTION)
            elif err["type"] == "string_too_short":
                errors[field] = _("Please describe the problem.")
            else:
                errors[field] = _("Please write plain text; HTML is not accepted.")
        else:
            errors.setdefault(field, messages.get(field, _("Please check this field.")))
    return errors


def _service_error(exc: DomainError, _: Any) -> dict[str, str]:
    field = str(exc.details.get("field") or "")
    if field == "category_code":
        return {"category_code": _("This category does not exist or is not open to public reports.")}
    if field == "location":
        if "outside the district" in exc.message:
            return {"location": _("This place is outside Zhoucun District; we can only handle problems inside it.")}
        if "invalid coordinates" in exc.message:
            return {"location": _("The coordinates are not valid.")}
        return {"location": _("Choose the place on the map, use your location, or type an address.")}
    return {"form": _("The report could not be accepted: %(reason)s", reason=exc.message)}


def _photo_error(exc: photos.PhotoRefused, _: Any) -> str:
    if exc.reason == "too_large":
        return _("Each photo may be at most %(mb)s MB.", mb=photos.MAX_PHOTO_BYTES // (1024 * 1024))
    if exc.reason == "empty":
        return _("A photo file is empty.")
    return _("Only photos (JPEG, PNG or WebP) can be attached.")


@router.post("/report")
async def report_submit(request: Request, db: DbSession) -> Response:
    gettext = _formatted(request)
    try:
        await check_csrf(request)
    except Forbidden:
        return _report_page(request, db, errors={"form": gettext("The form expired; please try again.")},
                            status_code=403)
    address = request.client.host if request.client else "unknown"
    if wait := request.app.state.public_report_limiter.retry_after(address):
        response = _report_page(request, db, status_code=429, errors={
            "form": gettext("Too many reports from this address; please try again in %(m)s minutes.",
                            m=max(wait // 60, 1))})
        response.headers["Retry-After"] = str(wait)
        return response
    form = await request.form()
    values = {name: str(form.get(name) or "").strip() for name in _FIELDS}
    errors: dict[str, str] = {}
    uploads = await _uploads(form)
    if len(uploads) > MAX_PHOTOS:
        errors["photos"] = gettext("At most %(n)s photos can be attached.", n=MAX_PHOTOS)
    else:
        for _name, data in uploads:
            try:
                photos.check_photo(data)
            except photos.PhotoRefused as exc:
                errors["photos"] = _photo_error(exc, gettext)
                break
    try:
        lon, lat = _coordinate(values["lon"]), _coordinate(values["lat"])
    except ValueError:
        lon = lat = None
        errors["location"] = gettext("The coordinates are not valid.")
    data: EventReportIn | None = None
    if "location" not in errors:
        try:
            data = EventReportIn(
                channel=Channel.CITIZEN, category_code=values["category_code"],
                description=values["description"], lon=lon, lat=lat, crs="wgs84", address=values["address"],
                reporter_name=values["reporter_name"], reporter_phone=values["reporter_phone"],
                reporter_email=values["reporter_email"])
        except ValidationError as exc:
            errors.update(_schema_errors(exc, gettext))
    if errors or data is None:
        return _report_page(request, db, values=values, errors=errors, status_code=422)
    data_dir = request.app.state.settings.data_dir
    try:
        # A savepoint: a refused report (or photo) leaves no event, timeline or audit row behind.
        with db.begin_nested():
            event = service.report(db, data=data, actor=None)
            for name, content in uploads:
                photos.save_photo(db, event_id=event.id, stage="report", upload_bytes=content,
                                  filename=name, data_dir=data_dir)
    except photos.PhotoRefused as exc:
        return _report_page(request, db, values=values, errors={"photos": _photo_error(exc, gettext)},
                            status_code=422)
    except (Invalid, Forbidden) as exc:
        return _report_page(request, db, values=values, errors=_service_error(exc, gettext), status_code=422)
    return render(request, "events/public/report_done.html",
                  {"tracking_no": event.tracking_no, "photo_count": len(uploads)}, actor=None)


def _formatted(request: Request) -> Any:
    """gettext with ``%(name)s`` values, like ``_`` in the templates."""
    gettext = gettext_for(request)

    def translate(message: str, **values: Any) -> str:
        text = gettext(message)
        return text % values if values else text

    return translate


# --- track --------------------------------------------------------------------------------


def _china_time(at: datetime | None) -> str:
    if at is None:
        return ""
    if at.tzinfo is None:  # SQLite hands back naive UTC
        at = at.replace(tzinfo=UTC)
    return at.astimezone(service.CHINA).strftime("%Y-%m-%d %H:%M")


def _tracking_view(db: Session, event: Event) -> dict[str, Any]:
    category = db.get(EventCategory, event.category_code)
    township = None
    if event.township_code:
        try:
            township = geo_service.get_division(db, code=event.township_code).name
        except NotFound:
            township = None
    department = None
    if event.department_id:
        department = org_service.get_department(db, department_id=event.department_id).name
    steps = [{"label": PUBLIC_STEPS[log.action], "at": _china_time(log.at), "action": log.action}
             for log in service.timeline(db, event_id=event.id) if log.action in PUBLIC_STEPS]
    closed = event.status == Status.CLOSED
    return {
        "tracking_no": event.tracking_no, "status": event.status,
        "status_label": STATUS_LABELS.get(event.status, event.status),
        "category_name": category.name if category else event.category_code,
        "township": township, "department": department, "steps": steps,
        "created_at": _china_time(event.created_at), "due_at": "" if closed else _china_time(event.due_at),
        "closed_at": _china_time(event.closed_at), "result": event.result if closed else "",
        "can_rate": closed and event.rating is None, "rating": event.rating,
    }


def _track_page(request: Request, db: DbSession, tracking_no: str, *, error: str = "",
                status_code: int = 200) -> Response:
    try:
        event = service.get_by_tracking(db, tracking_no=tracking_no)
    except NotFound:
        gettext = _formatted(request)
        return render(request, "events/public/track_form.html", {
            "tracking_no": tracking_no,
            "error": gettext("No report has the tracking number %(no)s. Please check the number.",
                             no=tracking_no[:40]),
        }, status_code=404, actor=None)
    return render(request, "events/public/track.html", {"event": _tracking_view(db, event), "error": error},
                  status_code=status_code, actor=None)


@router.get("/track")
def track_form(request: Request, no: str = "") -> Response:
    if no.strip():
        return RedirectResponse(f"/track/{no.strip().upper()}", status_code=303)
    return render(request, "events/public/track_form.html", {"tracking_no": "", "error": ""}, actor=None)


# Public on purpose, like /api/events/track/{no}: the tracking number is the citizen's only key.
@router.get("/track/{tracking_no}")
def track_page(request: Request, db: DbSession, tracking_no: str) -> Response:
    return _track_page(request, db, tracking_no)


@router.post("/track/{tracking_no}/rating")
async def track_rating(request: Request, db: DbSession, tracking_no: str,
                       score: Annotated[str, Form()] = "") -> Response:
    gettext = _formatted(request)
    try:
        await check_csrf(request)
    except Forbidden:
        return _track_page(request, db, tracking_no, error=gettext("The form expired; please try again."),
                           status_code=403)
    try:
        event = service.get_by_tracking(db, tracking_no=tracking_no)
    except NotFound:
        return _track_page(request, db, tracking_no)
    try:
        value = int(score)
    except ValueError:
        value = 0
    try:
        with db.begin_nested():
            rating.rate(db, event_id=event.id, rating=value, actor=None)
    except Conflict:
        return _track_page(request, db, tracking_no, error=gettext("This report has already been rated."),
                           status_code=409)
    except Invalid as exc:
        message = (gettext("Please choose a rating from 1 to 5.") if "whole number" in exc.message
                   else gettext("A report can be rated once it is closed."))
        return _track_page(request, db, tracking_no, error=message, status_code=422)
    return RedirectResponse(f"/track/{event.tracking_no}", status_code=303)


# --- photos (staff only) ------------------------------------------------------------------


@router.get("/events/photos/{photo_id}")
def event_photo(request: Request, db: DbSession, photo_id: int,
                actor: Annotated[Actor, Depends(page_require("events:read"))]) -> Response:
    photo = photos.get_photo(db, photo_id=photo_id)
    service.check_can_read(db, event=service.get_event(db, event_id=photo.event_id), actor=actor)
    path = photos.photo_file(photo, data_dir=request.app.state.settings.data_dir)
    return FileResponse(path, media_type=photo.content_type, headers={
        "Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"})
