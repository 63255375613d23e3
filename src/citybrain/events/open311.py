"""Open311 GeoReport v2 at ``/open311/v2``: any Open311 client can list services, post a request
and read requests back, in JSON or XML (the suffix decides).

Reads are public, as the spec intends (a published request never carries the reporter's
name, phone or email); ``POST requests`` needs an ``api_key``, which is a bearer token from
``citybrain token create`` whose holder may ``events:report``. Every failure answers with the
spec's error array: 403 for a missing or bad api_key, 404 for a missing resource, 400 otherwise.
See docs/open311.md for the choices the spec leaves open.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from citybrain.core import clock
from citybrain.core.actor import Actor
from citybrain.core.db import DbSession
from citybrain.core.errors import DomainError, Forbidden, NotFound, Unauthorized
from citybrain.geo import partition as geo_partition
from citybrain.org import auth as org_auth
from citybrain.org import service as org_service

from . import catalog, service
from . import open311_format as fmt
from .enums import OPEN_STATUSES, Channel, Status
from .models import Event, EventCategory, EventLog
from .schemas import EventReportIn

router = APIRouter()

JURISDICTION_ID = geo_partition.DISTRICT_CODE  # GB/T 2260 code of 周村区
CONTACT = "周村区大数据局 Zhoucun District Big Data Bureau (city brain command centre)"
KEY_SERVICE = ("api_key: a bearer token issued by the district administrator with "
               "`citybrain token create`; its user's role must allow events:report")
# Services change only when the catalog is edited; the catalog keeps no edit time, so discovery
# announces the release the catalog shipped with.
CHANGESET = datetime(2026, 11, 26, tzinfo=UTC)
MAX_WINDOW = timedelta(days=90)
MAX_REQUESTS = 1000
REPORT_PERMISSION = "events:report"
# Our intake field -> the Open311 parameter the client sent, so errors speak the client's words.
_PARAM_NAMES = {"category_code": "service_code", "lon": "long", "lat": "lat", "address": "address_string",
                "reporter_name": "first_name/last_name", "reporter_phone": "phone",
                "reporter_email": "email", "description": "description"}


class Open311Error(Exception):
    def __init__(self, status: int, *descriptions: str) -> None:
        super().__init__(descriptions[0])
        self.status = status
        self.descriptions = descriptions


# --- plumbing ------------------------------------------------------------------------------


def _format(value: str) -> fmt.Format:
    if value not in fmt.FORMATS:
        raise Open311Error(400, f"unsupported format {value!r}: use .json or .xml")
    return value  # type: ignore[return-value]


def _error_response(fmt_value: str, status: int, descriptions: Iterable[str]) -> Response:
    # An unknown suffix still gets an answer an Open311 client reads: XML is the spec's required format.
    chosen: fmt.Format = fmt_value if fmt_value in fmt.FORMATS else "xml"  # type: ignore[assignment]
    body = fmt.render(chosen, "errors", fmt.errors((status, d) for d in descriptions))
    return Response(body.content, status_code=status, media_type=body.media_type)


def _answer(fmt_value: str, build: Callable[[], tuple[str, Any]], *, missing_is: int = 404) -> Response:
    """Run ``build`` and render its (kind, data); map every refusal to the spec's error array.

    ``missing_is`` is the status for a ``NotFound`` from the services: 404 when the resource in the
    path is missing, 400 when a submitted value refers to something that does not exist.
    """
    try:
        chosen = _format(fmt_value)
        kind, data = build()
    except Open311Error as exc:
        return _error_response(fmt_value, exc.status, exc.descriptions)
    except (Forbidden, Unauthorized) as exc:
        return _error_response(fmt_value, 403, [exc.message])
    except NotFound as exc:
        return _error_response(fmt_value, missing_is, [exc.message])
    except DomainError as exc:
        return _error_response(fmt_value, 400, [exc.message])
    body = fmt.render(chosen, kind, data)
    return Response(body.content, media_type=body.media_type)


def _clean(items: Iterable[tuple[str, Any]]) -> dict[str, str]:
    """The spec: an optional parameter sent empty behaves exactly as if it were absent."""
    return {k: v.strip() for k, v in items if isinstance(v, str) and v.strip()}


def _check_jurisdiction(params: dict[str, str]) -> None:
    given = params.get("jurisdiction_id")
    if given is not None and given != JURISDICTION_ID:
        raise Open311Error(404, f"jurisdiction_id {given!r} is not served here; this endpoint serves "
                                f"{JURISDICTION_ID} (周村区), and jurisdiction_id may be left out")


@dataclass(frozen=True)
class Submitted:
    params: dict[str, str]
    problem: str | None = None


async def _submitted(request: Request) -> Submitted:
    """POST parameters: the form body, with the query string filling gaps (some clients put
    api_key or jurisdiction_id there)."""
    try:
        form = await request.form()
    except Exception as exc:  # noqa: BLE001 - a malformed body is the client's error, answered in 400
        return Submitted({}, problem=f"the body could not be read as a form: {exc}")
    # attribute[code] values are kept in params but unused: no service defines attributes.
    return Submitted(_clean(request.query_params.multi_items()) | _clean(form.multi_items()))


# --- discovery and services ----------------------------------------------------------------


@router.get("/discovery.{fmt_value}", summary="Open311 service discovery (public)")
def discovery(fmt_value: str, request: Request) -> Response:
    # Public: discovery tells a client where the API is and how to get a key.
    def build() -> tuple[str, Any]:
        base = str(request.url.replace(query="")).rsplit("/discovery.", 1)[0]
        return "discovery", fmt.discovery(changeset=CHANGESET, contact=CONTACT, key_service=KEY_SERVICE, url=base)

    return _answer(fmt_value, build)


def _public_categories(db: Session) -> dict[str, EventCategory]:
    return {c.code: c for c in catalog.list_categories(db, public_only=True) if c.active}


def _service_row(cat: EventCategory) -> dict[str, Any]:
    return fmt.service(code=cat.code, name=cat.name, description=cat.description or "",
                       group=cat.major_name, keyword_text=cat.keywords or "")


@router.get("/services.{fmt_value}", summary="Open311 list of services: the public event categories")
def list_services(fmt_value: str, request: Request, db: DbSession) -> Response:
    # Public: the categories citizens may report.
    def build() -> tuple[str, Any]:
        _check_jurisdiction(_clean(request.query_params.multi_items()))
        rows = sorted(_public_categories(db).values(), key=lambda c: c.code)
        return "services", [_service_row(c) for c in rows]

    return _answer(fmt_value, build)


def _public_category(db: Session, code: str) -> EventCategory:
    cat = catalog.get_category(db, code=code)
    if not (cat.public and cat.active):
        raise NotFound(f"service_code {code!r} is not offered to the public")
    return cat


@router.get("/services/{service_code}.{fmt_value}", summary="Open311 service definition")
def service_definition(service_code: str, fmt_value: str, request: Request, db: DbSession) -> Response:
    # Public. Our services carry no extra attributes (metadata=false), so the list is empty.
    def build() -> tuple[str, Any]:
        _check_jurisdiction(_clean(request.query_params.multi_items()))
        try:
            cat = _public_category(db, service_code)
        except NotFound:
            raise Open311Error(404, f"service_code {service_code!r} not found") from None
        return "service_definition", fmt.service_definition(code=cat.code)

    return _answer(fmt_value, build)


# --- POST requests -------------------------------------------------------------------------


def _reporting_actor(db: Session, api_key: str | None) -> Actor:
    if not api_key:
        raise Open311Error(403, "api_key is required to post a service request "
                                "(a token issued with `citybrain token create`)")
    result = org_auth.actor_from_token(db, token=api_key)
    if isinstance(result, org_auth.TokenProblem):
        raise Open311Error(403, f"invalid api_key: {result.reason}")
    if not result.can(REPORT_PERMISSION):
        raise Open311Error(403, f"this api_key may not post service requests "
                                f"(permission {REPORT_PERMISSION!r} is missing)")
    return result


def _coordinate(params: dict[str, str], name: str, limit: float) -> float:
    try:
        value = float(params[name])
    except ValueError:
        raise Open311Error(400, f"{name} must be a decimal number of degrees (WGS-84), got {params[name]!r}") \
            from None
    if not math.isfinite(value) or abs(value) > limit:
        raise Open311Error(400, f"{name} {params[name]!r} is not a valid WGS-84 coordinate")
    return value


def _location(params: dict[str, str]) -> tuple[float | None, float | None, str]:
    """(long, lat, address) from lat+long, address_string, or refuse with what is needed."""
    address = params.get("address_string", "")
    has_lat, has_long = "lat" in params, "long" in params
    if has_lat != has_long:
        raise Open311Error(400, "lat and long must be sent together")
    if has_lat:
        return _coordinate(params, "long", 180), _coordinate(params, "lat", 90), address
    if address:
        return None, None, address
    if "address_id" in params:
        raise Open311Error(400, "address_id is not supported by this endpoint: send lat and long, "
                                "or address_string")
    raise Open311Error(400, "a location is required: lat and long (WGS-84), or address_string")


def _reporter_name(first: str, last: str) -> str:
    # A Chinese name is written family name first with no space: 张 + 三 → 张三.
    if first and last and all("\u4e00" <= ch <= "\u9fff" for ch in first + last):
        return last + first
    return " ".join(p for p in (first, last) if p)


def _validation_errors(exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()))
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        out.append(f"{_PARAM_NAMES.get(where, where)}: {msg}" if where else msg)
    return out or ["invalid service request"]


def _report_in(params: dict[str, str], cat: EventCategory) -> EventReportIn:
    lon, lat, address = _location(params)
    try:
        return EventReportIn(
            channel=Channel.OPEN311, category_code=cat.code,
            # description is optional in Open311; our events need one, so the service name stands in.
            description=params.get("description") or cat.name,
            lon=lon, lat=lat, crs="wgs84", address=address,
            reporter_name=_reporter_name(params.get("first_name", ""), params.get("last_name", "")),
            reporter_phone=params.get("phone", ""), reporter_email=params.get("email", ""),
        )
    except ValidationError as exc:
        raise Open311Error(400, *_validation_errors(exc)) from None


def _notice(event: Event) -> str:
    notice = f"已收到，查询编号 {event.tracking_no}。Received; track it with service_request_id {event.tracking_no}."
    if event.location_state != "located":
        notice += " 地址待人工定位。The address will be located by staff."
    return notice


@router.post("/requests.{fmt_value}", summary="Open311 POST service request (api_key required)")
def post_request(
    fmt_value: str, db: DbSession, submitted: Annotated[Submitted, Depends(_submitted)]
) -> Response:
    def build() -> tuple[str, Any]:
        if submitted.problem:
            raise Open311Error(400, submitted.problem)
        params = submitted.params
        _check_jurisdiction(params)
        actor = _reporting_actor(db, params.get("api_key"))
        code = params.get("service_code")
        if not code:
            raise Open311Error(400, "service_code is required (see services.json for the list)")
        try:
            cat = _public_category(db, code)
        except NotFound:
            raise Open311Error(400, f"unknown service_code {code!r} (see services.json for the list)") from None
        data = _report_in(params, cat)
        # A savepoint, so a refused report leaves nothing behind even though the request commits
        # (the api_key's last-use time is kept).
        with db.begin_nested():
            event = service.report(db, data=data, actor=actor)
        return "requests", [fmt.created(service_request_id=event.tracking_no, service_notice=_notice(event))]

    # A NotFound from the intake (an unknown township, department, ...) is about submitted values.
    return _answer(fmt_value, build, missing_is=400)


# --- GET requests --------------------------------------------------------------------------


def _notes(db: Session, event_ids: list[int]) -> dict[int, str]:
    """The latest timeline note of each event, in one query."""
    if not event_ids:
        return {}
    rows = db.execute(
        select(EventLog.event_id, EventLog.note)
        .where(EventLog.event_id.in_(event_ids), EventLog.note != "")
        .order_by(EventLog.at, EventLog.id)
    )
    return {event_id: note for event_id, note in rows}


def _request_rows(db: Session, events: list[Event], categories: dict[str, EventCategory]) -> list[dict[str, Any]]:
    notes = _notes(db, [e.id for e in events])
    departments: dict[int, str] = {}
    rows = []
    for ev in events:
        if ev.department_id is not None and ev.department_id not in departments:
            departments[ev.department_id] = org_service.get_department(db, department_id=ev.department_id).name
        cat = categories[ev.category_code]
        rows.append(fmt.request(
            service_request_id=ev.tracking_no,
            status="open" if ev.status in OPEN_STATUSES else "closed",
            status_notes=notes.get(ev.id),
            service_name=cat.name, service_code=cat.code, description=ev.description,
            agency_responsible=departments.get(ev.department_id) if ev.department_id is not None else None,
            service_notice=None,
            requested_datetime=ev.created_at, updated_datetime=ev.updated_at, expected_datetime=ev.due_at,
            address=ev.address, lat=ev.lat, long=ev.lon,
        ))
    return rows


def _window(params: dict[str, str]) -> tuple[datetime, datetime]:
    """start/end from the parameters; the default and the widest span are 90 days."""
    try:
        start = fmt.parse_timestamp(params["start_date"]) if "start_date" in params else None
        end = fmt.parse_timestamp(params["end_date"]) if "end_date" in params else None
    except ValueError as exc:
        raise Open311Error(400, f"start_date/end_date: {exc}") from None
    if start is None and end is None:
        end = clock.now()
    if start is None:
        start = end - MAX_WINDOW  # type: ignore[operator]
    if end is None:
        end = start + MAX_WINDOW
    if end < start:
        raise Open311Error(400, "end_date is before start_date")
    if end - start > MAX_WINDOW:
        raise Open311Error(400, "the span from start_date to end_date may be at most 90 days")
    return start, end


CLOSED_STATUSES = frozenset(set(Status) - OPEN_STATUSES)  # closed, not accepted, merged


def _statuses(params: dict[str, str]) -> list[str] | None:
    """Our statuses behind the Open311 ``status`` filter (comma list of open/closed); None: all."""
    wanted = {s.strip().lower() for s in params.get("status", "").split(",") if s.strip()}
    if wanted - {"open", "closed"}:
        raise Open311Error(400, f"status must be open or closed (comma separated), got {params['status']!r}")
    if not wanted or wanted == {"open", "closed"}:
        return None
    return sorted(OPEN_STATUSES if "open" in wanted else CLOSED_STATUSES)


def _by_ids(db: Session, text: str, categories: dict[str, EventCategory]) -> list[Event]:
    ids = list(dict.fromkeys(i.strip() for i in text.split(",") if i.strip()))
    if len(ids) > MAX_REQUESTS:
        raise Open311Error(400, f"at most {MAX_REQUESTS} service_request_id values at once")
    found = []
    for tracking_no in ids:
        try:
            event = service.get_by_tracking(db, tracking_no=tracking_no)
        except NotFound:
            continue  # a list answers with the requests it knows
        if event.category_code in categories:
            found.append(event)
    return found


def _search(db: Session, params: dict[str, str], categories: dict[str, EventCategory]) -> list[Event]:
    # One query of our own rather than service.list_events: that filters one category at a time
    # and would spend the 1000-row limit on events of non-public categories before we drop them.
    start, end = _window(params)
    statuses = _statuses(params)
    wanted = [c.strip() for c in params.get("service_code", "").split(",") if c.strip()]
    codes = [c for c in dict.fromkeys(wanted) if c in categories] if wanted else list(categories)
    if not codes:
        return []
    q = select(Event).where(Event.category_code.in_(codes), Event.created_at >= start, Event.created_at <= end)
    if statuses is not None:
        q = q.where(Event.status.in_(statuses))
    return list(db.scalars(q.order_by(Event.created_at.desc(), Event.id.desc()).limit(MAX_REQUESTS)))


@router.get("/requests.{fmt_value}", summary="Open311 GET service requests (public, no personal data)")
def list_requests(fmt_value: str, request: Request, db: DbSession) -> Response:
    # Public: published requests carry no reporter data (see fmt.request).
    def build() -> tuple[str, Any]:
        params = _clean(request.query_params.multi_items())
        _check_jurisdiction(params)
        categories = _public_categories(db)
        if "service_request_id" in params:  # overrides every other filter
            events = _by_ids(db, params["service_request_id"], categories)
        else:
            events = _search(db, params, categories)
        return "requests", _request_rows(db, events, categories)

    return _answer(fmt_value, build)


@router.get("/requests/{service_request_id}.{fmt_value}", summary="Open311 GET one service request (public)")
def get_request(service_request_id: str, fmt_value: str, request: Request, db: DbSession) -> Response:
    # Public, like the list.
    def build() -> tuple[str, Any]:
        _check_jurisdiction(_clean(request.query_params.multi_items()))
        categories = _public_categories(db)
        try:
            event = service.get_by_tracking(db, tracking_no=service_request_id)
        except NotFound:
            event = None
        if event is None or event.category_code not in categories:
            raise Open311Error(404, f"service_request_id {service_request_id!r} not found")
        return "requests", _request_rows(db, [event], categories)

    return _answer(fmt_value, build)


@router.get("/tokens/{token}.{fmt_value}", summary="Open311 token lookup: we never issue tokens")
def get_token(token: str, fmt_value: str, request: Request) -> Response:
    # Public. POST requests answers with the service_request_id at once, so no token ever exists.
    def build() -> tuple[str, Any]:
        _check_jurisdiction(_clean(request.query_params.multi_items()))
        raise Open311Error(404, f"token {token!r} not found: this endpoint never issues tokens, "
                                "POST requests answers with the service_request_id immediately")

    return _answer(fmt_value, build)
