"""Staff pages of the IoT hub: devices and map, device detail with history charts, alarm
console, dead letters, and the live stream the pages listen to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from sqlalchemy.orm import Session

from citybrain.core import clock
from citybrain.core.actor import Actor
from citybrain.core.auth import LoginRequired, page_require, resolve_actor
from citybrain.core.db import DbSession
from citybrain.core.errors import Conflict, Invalid
from citybrain.events import service as events_service
from citybrain.geo import service as geo_service
from citybrain.org import service as org_service
from citybrain.web.render import gettext_for, render

from . import console, live, registry
from .alarms import AlarmStatus
from .models import DeviceState
from .rules import Severity
from .thingmodel import Product, PropertyType

router = APIRouter(include_in_schema=False)
Reader = Annotated[Actor, Depends(page_require("iot:read"))]
AlarmHandler = Annotated[Actor, Depends(page_require("iot:alarm"))]

CHINA = timezone(timedelta(hours=8))
PAGE_SIZE = 50
MAP_LIMIT = 5000
RANGE_LABELS = {"1h": "1 h", "24h": "24 h", "7d": "7 d", "30d": "30 d"}


def N_(msgid: str) -> str:  # noqa: N802 - marks an English msgid; translated in templates
    return msgid


STATE_LABELS = {"active": N_("In service"), "disabled": N_("Disabled"), "retired": N_("Retired")}
ALARM_STATUS_LABELS = {
    "active_unack": N_("Active, unacknowledged"), "active_ack": N_("Active, acknowledged"),
    "cleared_unack": N_("Cleared, unacknowledged"), "cleared_ack": N_("Cleared, acknowledged"),
}
ALARM_GROUP_LABELS = {"active": N_("Active"), "unacknowledged": N_("Unacknowledged"), "cleared": N_("Cleared")}
SEVERITY_LABELS = {"critical": N_("Critical"), "major": N_("Major"), "minor": N_("Minor"), "warning": N_("Warning")}


def local(at: datetime | None) -> str:
    return at.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S") if at else ""


def local_ms(ms: int | None) -> str:
    return local(datetime.fromtimestamp(ms / 1000, UTC)) if ms else ""


def now_ms() -> int:
    return int(clock.now().timestamp() * 1000)


def _lookups(db: Session) -> dict[str, Any]:
    townships = [d for d in geo_service.list_divisions(db) if d.level == "township"]
    return {
        "townships": townships, "township_names": {d.code: d.name for d in townships},
        "department_names": {d.id: d.name for d in org_service.list_departments(db)},
        "state_labels": STATE_LABELS, "alarm_status_labels": ALARM_STATUS_LABELS,
        "alarm_group_labels": ALARM_GROUP_LABELS, "severity_labels": SEVERITY_LABELS,
        "local": local, "local_ms": local_ms, "urlencode": urlencode,
    }


def _page(value: str | None) -> int:
    try:
        return max(int(value or 1), 1)
    except ValueError:
        return 1


def _query(request: Request, *names: str) -> dict[str, str]:
    return {k: v for k in names if (v := request.query_params.get(k, "").strip())}


def _safe_next(value: str | None, default: str) -> str:
    return value if value and value.startswith("/iot/") and not value.startswith("//") else default


# --- devices and map ---------------------------------------------------------------------------


@router.get("/iot/devices")
def devices_page(request: Request, db: DbSession, actor: Reader) -> Response:
    query = _query(request, "product", "township", "state", "online", "q")
    page = _page(request.query_params.get("page"))
    products = registry.products(db)
    filters = console.DeviceFilters(product=query.get("product"), township=query.get("township"),
                                    state=query.get("state"), q=query.get("q"),
                                    online={"1": True, "0": False}.get(query.get("online", "")))
    now = now_ms()
    rows, total, counts = console.list_devices(db, actor=actor, products=products, filters=filters, now_ms=now,
                                               limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    alarming = console.active_alarm_keys(db, [d.key for d, _s in rows])
    ctx: dict[str, Any] = {
        **_lookups(db), "products": products, "query": query, "page": page, "total": total, "counts": counts,
        "has_next": page * PAGE_SIZE < total,
        "rows": [{"d": d, "s": s, "online": console.is_online(s.last_seen if s else None, products.get(d.product),
                                                               now_ms=now), "alarm": d.key in alarming}
                 for d, s in rows],
        "can_geo": actor.can("geo:read"),
    }
    if ctx["can_geo"]:
        on_map, _total, _counts = console.list_devices(db, actor=actor, products=products, filters=filters,
                                                       now_ms=now, limit=MAP_LIMIT)
        map_alarms = console.active_alarm_keys(db, [d.key for d, _s in on_map])
        ctx["points"] = [{"key": d.key, "name": d.name, "lon": d.lon, "lat": d.lat,
                          "online": console.is_online(s.last_seen if s else None, products.get(d.product), now_ms=now),
                          "alarm": d.key in map_alarms}
                         for d, s in on_map if d.lon is not None and d.lat is not None]
    return render(request, "iot/devices.html", ctx, actor=actor)


# --- device detail and history ------------------------------------------------------------------


def _device_for(db: Session, actor: Actor, key: str):  # noqa: ANN202 - a Device row
    device = registry.get_device(db, key)  # NotFound → 404
    actor.check_department(device.department_id)
    return device


def _display(prop: Any, value: Any, _: Any) -> str:
    if value is None:
        return "—"
    if prop is not None and prop.type is PropertyType.ENUM:
        return dict(prop.values).get(value, str(value))
    if isinstance(value, bool):
        return _("Yes") if value else _("No")
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


@router.get("/iot/devices/{key}")
def device_page(request: Request, db: DbSession, actor: Reader, key: str) -> Response:
    device = _device_for(db, actor, key)
    products = registry.products(db)
    product: Product | None = products.get(device.product)
    state = db.get(DeviceState, device.id)
    now = now_ms()
    alarms_found, _n = console.list_alarms(db, actor=actor, status="active", device_key=device.key, limit=100)
    _ = gettext_for(request)
    data = state.data if state else {}
    values = [{"id": p.identifier, "name": p.name, "unit": p.unit.display if p.unit else "",
               "value": _display(p, data.get(p.identifier), _), "numeric": p.type in console.NUMERIC}
              for p in (product.properties if product else ())]
    extra = [{"id": k, "name": k, "unit": "", "value": _display(None, v, _), "numeric": False}
             for k, v in data.items() if product is None or product.get_property(k) is None]
    return render(request, "iot/device.html", {
        **_lookups(db), "device": device, "product": product, "state": state, "values": values + extra,
        "online": console.is_online(state.last_seen if state else None, product, now_ms=now),
        "alarms": [a for a, _d in alarms_found], "ranges": RANGE_LABELS,
        "charts": [v for v in values if v["numeric"]],
    }, actor=actor)


@router.get("/iot/devices/{key}/series")
def device_series(request: Request, db: DbSession, actor: Reader, key: str, prop: str = "",
                  range: str = "24h") -> Response:  # noqa: A002 - the query parameter's name
    device = _device_for(db, actor, key)
    try:
        if not prop:
            raise Invalid("give the property to draw: ?prop=<identifier>")
        console.numeric_property(registry.products(db).get(device.product), prop)
        start, end = console.range_bounds(range, now_ms=now_ms())
        series = console.history(db, device, prop, start, end)
    except Invalid as exc:
        return JSONResponse({"detail": exc.message, "code": exc.code}, status_code=400)
    return JSONResponse({**series.as_json(), "device": device.key, "range": range, "start_ms": start,
                         "end_ms": end})


# --- alarm console --------------------------------------------------------------------------------


def _event_links(db: Session, found: list[Any]) -> dict[str, int]:
    """Alarm id → id of the event opened for it (dispatching alarms only)."""
    links = {}
    for alarm in found:
        if alarm.dispatch:
            event = events_service.get_by_external_id(db, channel="sensor", external_id=alarm.id)
            if event is not None:
                links[alarm.id] = event.id
    return links


def _alarms_page(request: Request, db: Session, actor: Actor, *, status_code: int = 200,
                 error: str | None = None) -> Response:
    query = _query(request, "status", "severity", "product", "device")
    if "status" not in request.query_params:  # the console opens on what needs attention
        query["status"] = "active"
    page = _page(request.query_params.get("page"))
    try:
        found, total = console.list_alarms(db, actor=actor, status=query.get("status") or None,
                                           severity=query.get("severity"), product=query.get("product"),
                                           device_key=query.get("device"),
                                           limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    except Invalid as exc:
        found, total, error, status_code = [], 0, exc.message, 400
    alarms_only = [a for a, _d in found]
    return render(request, "iot/alarms.html", {
        **_lookups(db), "rows": found, "total": total, "page": page, "has_next": page * PAGE_SIZE < total,
        "query": query, "products": registry.products(db), "counts": console.alarm_counts(db, actor=actor),
        "events": _event_links(db, alarms_only), "error": error, "can_act": actor.can("iot:alarm"),
        "statuses": list(AlarmStatus), "severities": list(Severity),
        "back": request.url.path + ("?" + request.url.query if request.url.query else ""),
    }, actor=actor, status_code=status_code)


@router.get("/iot/alarms")
def alarms_page(request: Request, db: DbSession, actor: Reader) -> Response:
    return _alarms_page(request, db, actor)


async def _alarm_action(request: Request, db: Session, actor: Actor, alarm_id: str, action: str) -> Response:
    form = await request.form()
    back = _safe_next(str(form.get("next") or ""), "/iot/alarms")
    do = console.acknowledge_alarm if action == "acknowledge" else console.clear_alarm
    try:
        with db.begin_nested():
            do(db, alarm_id, actor)
    except Conflict as exc:
        return render(request, "iot/conflict.html", {"message": exc.message, "back": back}, actor=actor,
                      status_code=409)
    return RedirectResponse(back, status_code=303)


@router.post("/iot/alarms/{alarm_id}/acknowledge")
async def alarm_acknowledge(request: Request, db: DbSession, actor: AlarmHandler, alarm_id: str) -> Response:
    return await _alarm_action(request, db, actor, alarm_id, "acknowledge")


@router.post("/iot/alarms/{alarm_id}/clear")
async def alarm_clear(request: Request, db: DbSession, actor: AlarmHandler, alarm_id: str) -> Response:
    return await _alarm_action(request, db, actor, alarm_id, "clear")


# --- dead letters ----------------------------------------------------------------------------------


@router.get("/iot/dead-letters")
def dead_letters_page(request: Request, db: DbSession, actor: AlarmHandler) -> Response:
    query = _query(request, "code", "device")
    page = _page(request.query_params.get("page"))
    found, total = console.list_dead_letters(db, actor=actor, code=query.get("code"), device_key=query.get("device"),
                                             limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    return render(request, "iot/dead_letters.html", {
        **_lookups(db), "rows": found, "total": total, "page": page, "has_next": page * PAGE_SIZE < total,
        "query": query, "counts": console.dead_letter_counts(db, actor=actor, device_key=query.get("device")),
        "preview": lambda text: text[:300],
    }, actor=actor)


# --- live stream ------------------------------------------------------------------------------------


@router.get("/iot/stream")
async def iot_stream(request: Request, device: str | None = None) -> Response:
    # A short session of our own: the stream stays open for hours and must not hold a connection.
    with request.app.state.sessionmaker() as db:
        actor = resolve_actor(request, db)
        if actor is None:
            raise LoginRequired()
        actor.check("iot:read")
        if device is not None:
            _device_for(db, actor, device)
    watcher = live.watcher_for(request.app)
    sub = watcher.subscribe()

    async def body():  # noqa: ANN202
        try:
            async for chunk in live.stream(sub, lambda m: live.concerns(actor, m, device_key=device)):
                yield chunk
        finally:
            watcher.unsubscribe(sub)

    return StreamingResponse(body(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
