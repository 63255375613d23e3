"""Indicators computed from platform data, through providers registered by code.

A provider is ``fn(db) -> Measurement | Unavailable``. The built-in ones below cover what the
platform holds today; a module that lands later (the data pool, IoT video devices) calls
``register_provider(code, fn)`` at import and replaces the placeholder, and the indicator is
picked up from then on. A provider that raises is logged and reads as ``no_data``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta, timezone

from sqlalchemy.orm import Session

from citybrain.core import clock
from citybrain.events import catalog as events_catalog
from citybrain.org import service as org_service

log = logging.getLogger("citybrain.indicators")
CHINA = timezone(timedelta(hours=8))


@dataclass(frozen=True)
class Measurement:
    value: float
    as_of: date
    note: str = ""


@dataclass(frozen=True)
class Unavailable:
    reason: str  # English; the pages translate the known ones


Provider = Callable[[Session], "Measurement | Unavailable"]
_PROVIDERS: dict[str, Provider] = {}


def register_provider(code: str, fn: Provider) -> Callable[[], None]:
    """Compute indicator ``code`` with ``fn`` (replacing any earlier provider); returns an
    unregister function that restores the previous one."""
    previous = _PROVIDERS.get(code)
    _PROVIDERS[code] = fn

    def unregister() -> None:
        if previous is None:
            _PROVIDERS.pop(code, None)
        else:
            _PROVIDERS[code] = previous

    return unregister


def provider_for(code: str) -> Provider | None:
    return _PROVIDERS.get(code)


def measure(db: Session, code: str) -> Measurement | Unavailable:
    fn = _PROVIDERS.get(code)
    if fn is None:
        return Unavailable("no provider registered")
    try:
        return fn(db)
    except Exception:  # noqa: BLE001 - one broken provider must not break the indicator table
        log.exception("indicator provider failed", extra={"indicator": code})
        return Unavailable("provider failed")


def today() -> date:
    return clock.now().astimezone(CHINA).date()


# --- built-in providers ------------------------------------------------------------------


def merged_grid_departments(db: Session) -> Measurement:
    """Active departments of kind ``bureau`` that are the default responsible department of at
    least one active class in the event classification catalog: the bureaus whose problems
    reach them through the one grid. Township offices are the grid itself and do not count."""
    routed = {c.department_code for c in events_catalog.list_categories(db)}
    bureaus = [d for d in org_service.list_departments(db, include_inactive=False)
               if d.kind == "bureau" and d.code in routed]
    names = ", ".join(sorted(d.code for d in bureaus))
    return Measurement(float(len(bureaus)), today(), note=names)


def thematic_databases(_db: Session) -> Unavailable:
    """Replaced by the data pool when it lands: count of thematic databases in its catalog."""
    return Unavailable("data pool not connected")


def video_networking(_db: Session) -> Unavailable:
    """Replaced by the IoT module once video devices are registered: networked (online)
    cameras in key public areas ÷ registered cameras in key public areas × 100."""
    return Unavailable("no video devices registered (IoT not connected)")


register_provider("merged_grid_departments", merged_grid_departments)
register_provider("thematic_databases", thematic_databases)
register_provider("video_networking", video_networking)
