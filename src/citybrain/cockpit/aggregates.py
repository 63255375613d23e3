"""What the big screen shows, computed server-side in one pass: the cockpit *snapshot*.

The snapshot is a plain JSON-able dict built from read-only queries. It never carries personal
data: no reporter name, phone, e-mail, description or address — only tracking numbers,
categories, townships, states, deadlines and (event) coordinates.

Panels come from a small registry of *providers*, one per vital sign. The events domain's
panels are registered here; the IoT hub, the data pool and the domain modules (AQI,
waterlogging, parking) register theirs when they land (``register(PanelProvider(...))`` from a
module listed in ``OPTIONAL_SOURCES``). Until then their panels say ``connected: false`` and the
screen shows "not connected yet". Plan indicators come from ``citybrain.indicators`` when that
package exists.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from citybrain.core import clock
from citybrain.events import evaluation
from citybrain.events.enums import OPEN_STATUSES, Status
from citybrain.events.models import Event, EventCategory, EventLog
from citybrain.geo import service as geo_service

log = logging.getLogger("citybrain.cockpit")

CHINA = evaluation.CHINA
TICKER_SIZE = 10
TOP_N = 5
TOP_DAYS = 30
MAX_POINTS = 20000  # open events drawn on the map; more than this is a data problem, not a screen
OPEN = sorted(s.value for s in OPEN_STATUSES)
# Open and running: a suspended (挂账) case does not count as overdue while it is suspended.
RUNNING = sorted(s.value for s in OPEN_STATUSES if s != Status.SUSPENDED)


def N_(message: str) -> str:
    """Marks an English msgid for extraction; the page translates it when it renders."""
    return message


# --- the provider registry --------------------------------------------------------------------


@dataclass(frozen=True)
class PanelProvider:
    """One vital-sign panel: ``compute(db, now)`` returns its JSON data (``None``: no data yet)."""

    key: str
    title: str  # English msgid
    compute: Callable[[Session, datetime], dict[str, Any] | None]


# Panels the screen has a place for, in screen order, whether or not a provider serves them yet.
PLACEHOLDERS: tuple[tuple[str, str], ...] = (
    ("aqi", N_("Air quality (AQI)")),
    ("waterlogging", N_("Waterlogging levels")),
    ("parking", N_("Parking occupancy")),
    ("data_quality", N_("Data-pool quality score")),
    ("device_online", N_("Online device rate")),
    ("iot_alarms", N_("Active IoT alarms")),
)
# Modules that register providers on import once their domain exists (looked for, never required).
OPTIONAL_SOURCES = ("citybrain.cockpit.iot_panels", "citybrain.iot.cockpit", "citybrain.data.cockpit",
                    "citybrain.environment.cockpit", "citybrain.parking.cockpit")

# ``db.info`` key of a dict that lives for one snapshot's panels (see ``_panels``).
PASS_CACHE = "cockpit.panel_pass"
_providers: dict[str, PanelProvider] = {}
_providers_lock = threading.Lock()
_looked_for: set[str] = set()


def register(provider: PanelProvider) -> Callable[[], None]:
    """Serve a panel from now on (replacing an earlier provider of the same key); returns undo,
    which brings back the provider it replaced."""
    with _providers_lock:
        previous = _providers.get(provider.key)
        _providers[provider.key] = provider

    def unregister() -> None:
        with _providers_lock:
            if _providers.get(provider.key) is provider:
                if previous is None:
                    del _providers[provider.key]
                else:
                    _providers[provider.key] = previous

    return unregister


def providers() -> dict[str, PanelProvider]:
    for name in OPTIONAL_SOURCES:
        if name in _looked_for:
            continue
        _looked_for.add(name)
        try:
            if importlib.util.find_spec(name) is not None:
                importlib.import_module(name)
        except ModuleNotFoundError:
            pass  # that domain has not landed yet: its panels stay "not connected"
        except Exception:  # noqa: BLE001 - a broken optional module must not take the cockpit down
            log.exception("cockpit: could not load panel source %s", name)
    with _providers_lock:
        return dict(_providers)


def _panels(db: Session, now: datetime) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    registered = providers()
    # Providers of one snapshot may share work (one query for several panels) through this dict.
    db.info[PASS_CACHE] = {}
    try:
        _compute_panels(db, now, registered, out)
    finally:
        db.info.pop(PASS_CACHE, None)
    return out


def _compute_panels(db: Session, now: datetime, registered: dict[str, PanelProvider],
                    out: dict[str, dict[str, Any]]) -> None:
    for key, title in PLACEHOLDERS:
        provider = registered.get(key)
        data = None
        if provider is not None:
            try:
                data = provider.compute(db, now)
            except Exception:  # noqa: BLE001
                log.exception("cockpit panel %s failed", key)
        out[key] = {"key": key, "title": title, "connected": data is not None, "data": data}


def indicators(db: Session) -> dict[str, Any]:
    """The plan indicators (表1) from ``citybrain.indicators`` if that package is installed."""
    try:
        if importlib.util.find_spec("citybrain.indicators") is None:
            return {"connected": False, "items": []}
        module = importlib.import_module("citybrain.indicators.service")
        summary = module.progress_summary(db)
    except Exception:  # noqa: BLE001 - the indicators package may be half-built: degrade, don't fail
        log.exception("cockpit: plan indicators unavailable")
        return {"connected": False, "items": []}
    items = [{k: _plain(v) for k, v in dict(row).items()} for row in summary or []]
    return {"connected": True, "items": items}


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


# --- the events domain's figures --------------------------------------------------------------


def china_midnight(now: datetime, days_back: int = 0) -> datetime:
    local = now.astimezone(CHINA) - timedelta(days=days_back)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def overdue_clause(now: datetime) -> Any:
    """Open, running and past its deadline (the same rule as ``events.service.list_events``)."""
    return Event.status.in_(RUNNING) & or_(Event.overdue.is_(True), Event.due_at < now)


def _count(db: Session, *where: Any) -> int:
    return int(db.scalar(select(func.count()).select_from(Event).where(*where)) or 0)


def category_names(db: Session) -> dict[str, str]:
    return {code: name for code, name in db.execute(select(EventCategory.code, EventCategory.name))}


def township_names(db: Session) -> dict[str, str]:
    return {d.code: d.name for d in geo_service.list_divisions(db) if d.level == "township"}


def _top(db: Session, column: Any, names: dict[str, str], since: datetime) -> list[dict[str, Any]]:
    q = (select(column, func.count()).where(Event.created_at >= since, column.is_not(None))
         .group_by(column).order_by(func.count().desc(), column).limit(TOP_N))
    return [{"code": code, "name": names.get(code, code), "count": int(n)} for code, n in db.execute(q)]


def on_time_rate(db: Session, now: datetime) -> dict[str, Any]:
    """按期处置率 of this China month, from the evaluation (``events.evaluation``)."""
    label, start, end = evaluation.parse_month(None, now=now)
    rows = evaluation.evaluate(db, period_start=start, period_end=end, by="township", now=now)
    whole = evaluation.total(rows)
    rate = whole.on_time_handle_rate
    return {"month": label, "rate": None if rate is None else round(rate * 100, 1),
            "handled_on_time": whole.handled_on_time, "dispatched": whole.dispatched}


def public_event(event: Event, categories: dict[str, str], townships: dict[str, str],
                 now: datetime) -> dict[str, Any]:
    """An event as the big screen may show it: no names, phones, descriptions or addresses."""
    late = event.status in RUNNING and (event.overdue or (event.due_at is not None and event.due_at < now))
    return {
        "id": event.id, "tracking_no": event.tracking_no,
        "category": categories.get(event.category_code, event.category_code),
        "township_code": event.township_code,
        "township": townships.get(event.township_code or "", ""),
        "status": event.status, "urgency": event.urgency, "overdue": bool(late),
        "due_at": _iso(event.due_at), "created_at": _iso(event.created_at),
        "lon": event.lon, "lat": event.lat,
    }


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def _points(db: Session, townships: dict[str, str], categories: dict[str, str], now: datetime) -> list[list[Any]]:
    """Open located events as compact rows: [id, lon, lat, urgency, overdue, tracking_no, category,
    township, status, due_at]; the page keys its side panel on them."""
    q = (select(Event.id, Event.lon, Event.lat, Event.urgency, Event.status, Event.overdue, Event.due_at,
                Event.tracking_no, Event.category_code, Event.township_code)
         .where(Event.status.in_(OPEN), Event.lon.is_not(None), Event.lat.is_not(None))
         .order_by(Event.id).limit(MAX_POINTS))
    rows = []
    for r in db.execute(q):
        late = r.status in RUNNING and (r.overdue or (r.due_at is not None and r.due_at < now))
        rows.append([r.id, round(r.lon, 6), round(r.lat, 6), r.urgency, bool(late), r.tracking_no,
                     categories.get(r.category_code, r.category_code), townships.get(r.township_code or "", ""),
                     r.status, _iso(r.due_at)])
    return rows


def ticker(db: Session, categories: dict[str, str], townships: dict[str, str], now: datetime) -> list[dict[str, Any]]:
    latest = db.scalars(select(Event).order_by(Event.created_at.desc(), Event.id.desc()).limit(TICKER_SIZE))
    return [public_event(e, categories, townships, now) for e in latest]


def events_figures(db: Session, now: datetime) -> dict[str, Any]:
    today = china_midnight(now)
    return {
        "today": _count(db, Event.created_at >= today),
        "open": _count(db, Event.status.in_(OPEN)),
        "overdue": _count(db, overdue_clause(now)),
        "urgent_open": _count(db, Event.status.in_(OPEN), Event.urgency != "normal"),
    }


def snapshot(db: Session, *, now: datetime | None = None) -> dict[str, Any]:
    """Everything the big screen shows, at ``now``."""
    now = now or clock.now()
    categories = category_names(db)
    townships = township_names(db)
    since = now - timedelta(days=TOP_DAYS)
    return {
        "generated_at": now.isoformat(),
        "events": events_figures(db, now),
        "on_time": on_time_rate(db, now),
        "top_categories": _top(db, Event.category_code, categories, since),
        "top_townships": _top(db, Event.township_code, townships, since),
        "ticker": ticker(db, categories, townships, now),
        "points": _points(db, townships, categories, now),
        "panels": _panels(db, now),
        "indicators": indicators(db),
    }


# --- leader views -----------------------------------------------------------------------------


def township(db: Session, *, code: str, now: datetime | None = None, limit: int = 200) -> dict[str, Any]:
    """The drill-down of one township: open events, by category, overdue, and the list."""
    now = now or clock.now()
    townships = township_names(db)
    geo_service.get_division(db, code=code)  # NotFound for an unknown code
    categories = category_names(db)
    in_township = (Event.township_code == code, Event.status.in_(OPEN))
    by_category = db.execute(select(Event.category_code, func.count()).where(*in_township)
                             .group_by(Event.category_code).order_by(func.count().desc(), Event.category_code))
    events = db.scalars(select(Event).where(*in_township)
                        .order_by(Event.due_at.is_(None), Event.due_at, Event.id).limit(limit))
    return {
        "code": code, "name": townships.get(code, code),
        "open": _count(db, *in_township),
        "overdue": _count(db, Event.township_code == code, overdue_clause(now)),
        "by_category": [{"code": c, "name": categories.get(c, c), "count": int(n)} for c, n in by_category],
        "events": [public_event(e, categories, townships, now) for e in events],
    }


def replay(db: Session, *, now: datetime | None = None, hours: int = 24) -> dict[str, Any]:
    """Events reported or changed in the last ``hours``, bucketed by hour (0 = oldest), from the
    timeline. One row per event and hour: its last state in that hour."""
    now = now or clock.now()
    start = now - timedelta(hours=hours)
    q = (select(EventLog.event_id, EventLog.at, EventLog.action, EventLog.to_status,
                Event.lon, Event.lat, Event.urgency, Event.tracking_no)
         .join(Event, Event.id == EventLog.event_id)
         .where(EventLog.at >= start, EventLog.at <= now, Event.lon.is_not(None))
         .order_by(EventLog.at, EventLog.id))
    latest: dict[tuple[int, int], list[Any]] = {}
    for r in db.execute(q):
        at = r.at if r.at.tzinfo else r.at.replace(tzinfo=now.tzinfo)
        hour = min(int((at - start).total_seconds() // 3600), hours - 1)
        latest[(hour, r.event_id)] = [hour, r.event_id, round(r.lon, 6), round(r.lat, 6), r.urgency,
                                      r.action, r.to_status, r.tracking_no]
    return {"start": start.isoformat(), "end": now.isoformat(), "hours": hours,
            "rows": sorted(latest.values(), key=lambda row: (row[0], row[1]))}


def briefing(db: Session, *, now: datetime | None = None) -> dict[str, Any]:
    """The daily briefing: yesterday's and today's figures, the overdue list, top categories."""
    now = now or clock.now()
    today, yesterday = china_midnight(now), china_midnight(now, 1)
    categories = category_names(db)
    townships = township_names(db)

    def day(start: datetime, end: datetime) -> dict[str, Any]:
        return {"date": start.date().isoformat(),
                "reported": _count(db, Event.created_at >= start, Event.created_at < end),
                "closed": _count(db, Event.closed_at >= start, Event.closed_at < end),
                "top_categories": _top_between(db, categories, start, end)}

    overdue = db.scalars(select(Event).where(overdue_clause(now)).order_by(Event.due_at, Event.id).limit(200))
    return {
        "generated_at": now.isoformat(),
        "yesterday": day(yesterday, today), "today": day(today, now + timedelta(seconds=1)),
        "events": events_figures(db, now), "on_time": on_time_rate(db, now),
        "top_categories": _top(db, Event.category_code, categories, now - timedelta(days=TOP_DAYS)),
        "overdue": [public_event(e, categories, townships, now) for e in overdue],
    }


def _top_between(db: Session, names: dict[str, str], start: datetime, end: datetime) -> list[dict[str, Any]]:
    q = (select(Event.category_code, func.count()).where(Event.created_at >= start, Event.created_at < end)
         .group_by(Event.category_code).order_by(func.count().desc(), Event.category_code).limit(TOP_N))
    return [{"code": c, "name": names.get(c, c), "count": int(n)} for c, n in db.execute(q)]
