"""Named places of the district (government seat, scenic area, campuses …) and matching a
free-text address against them, so a report that says "周村古商城东门" lands on the map without
coordinates. Loaded from the packaged data files (see ``data/README.md``); stored in WGS-84.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from importlib import resources

from sqlalchemy import JSON, Float, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from citybrain.core import audit, clock
from citybrain.core.actor import Actor
from citybrain.core.db import Base

from . import coords
from . import service as geo_service

log = logging.getLogger("citybrain.geo.places")

NAMED_PLACES_FILE = "zhoucun_named_places.csv"
CAMPUSES_FILE = "zibo_university_campuses_gcj02.csv"
DISTRICT_ADCODE = "370306"
CAMPUS_SOURCE = "Naptie/cn-university-geocoder univ_supp.json @ 2025-07-12 (via zibo_university_campuses_gcj02.csv)"
CAMPUS_LICENSE = "MPL-2.0"
CAMPUS_CONFIDENCE = "medium"  # third-party geocode; its CRS is not stated, probably GCJ-02

# Short forms people write in addresses. Curated by hand: each must name only that place
# (so no "大街", which is also a 街道, and no bare "学院").
ALIASES: dict[str, tuple[str, ...]] = {
    "周村区人民政府": ("区政府", "区人民政府", "周村区政府"),
    "周村古商城": ("古商城", "古商街"),
    "齐鲁医药学院": ("齐鲁医药",),
    "山东农业工程学院淄博校区": ("山东农业工程学院", "农业工程学院"),
    "山东轻工职业学院": ("轻工职业学院", "轻工学院"),
}
# A parenthesis holding a note ("区政府驻地，按…") rather than part of the name ("淄博校区").
_NOTE_RE = re.compile(r"（[^）]*[，,][^）]*）")


class Place(Base):
    __tablename__ = "place"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    aliases: Mapped[list[str]] = mapped_column(JSON, default=list)
    kind: Mapped[str] = mapped_column(String(30))  # district_government | scenic_area | university …
    lon: Mapped[float] = mapped_column(Float)  # WGS-84
    lat: Mapped[float] = mapped_column(Float)
    township_code: Mapped[str | None] = mapped_column(String(12))
    source: Mapped[str] = mapped_column(String(300), default="")
    license: Mapped[str] = mapped_column(String(100), default="")
    confidence: Mapped[str] = mapped_column(String(20), default="")  # high | medium | low
    created_at: Mapped[datetime]


@dataclass(frozen=True)
class PlaceInput:
    name: str
    kind: str
    lon: float  # WGS-84
    lat: float
    source: str
    license: str
    confidence: str


# --- the packaged files ---------------------------------------------------------------------


def _read(name: str) -> list[dict[str, str]]:
    text = resources.files("citybrain.geo").joinpath("data", name).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def clean_name(raw: str) -> str:
    """``周村区人民政府（区政府驻地，按…）`` → ``周村区人民政府``; ``山东农业工程学院（淄博校区）`` →
    ``山东农业工程学院淄博校区``."""
    return _NOTE_RE.sub("", raw).replace("（", "").replace("）", "").strip()


def named_places() -> list[PlaceInput]:
    """Rows of ``zhoucun_named_places.csv`` with a coordinate, except universities (they come
    from the campus file). The rows give GCJ-02 (some only probably so) and a derived WGS-84
    pair; the derived pair is what we store."""
    out = []
    for row in _read(NAMED_PLACES_FILE):
        if not row["lon_wgs84_derived"] or row["kind"] == "university":
            continue
        out.append(PlaceInput(
            name=clean_name(row["name"]), kind=row["kind"],
            lon=float(row["lon_wgs84_derived"]), lat=float(row["lat_wgs84_derived"]),
            source=row["source"], license=row["license"],
            confidence=row["confidence"].split(":")[0].strip(),
        ))
    return out


def campuses() -> list[PlaceInput]:
    """The campuses inside the district from the Zibo campus file, GCJ-02 converted to WGS-84."""
    out = []
    for row in _read(CAMPUSES_FILE):
        if row["district_adcode_by_pip"] != DISTRICT_ADCODE:
            continue
        lon, lat = coords.gcj02_to_wgs84(float(row["lon"]), float(row["lat"]))
        out.append(PlaceInput(
            name=row["university"] + row["campus"], kind="university", lon=round(lon, 7), lat=round(lat, 7),
            source=CAMPUS_SOURCE, license=CAMPUS_LICENSE, confidence=CAMPUS_CONFIDENCE,
        ))
    return out


def shipped_places() -> list[PlaceInput]:
    return named_places() + campuses()


# --- the table ------------------------------------------------------------------------------


def load_places(db: Session, *, actor: Actor, places: list[PlaceInput] | None = None) -> int:
    """Add the shipped places the database does not have yet (by name); returns how many.

    Each is located with ``geo.locate`` for its township; one outside the loaded district is
    skipped with a warning. Without a loaded district nothing is added (there is nothing to
    locate against). A system loader (CLI, demo), so it asks for no permission.
    """
    if not geo_service.district_loaded(db):
        return 0
    existing = set(db.scalars(select(Place.name)))
    added = []
    for item in shipped_places() if places is None else places:
        if item.name in existing:
            continue
        try:
            found = geo_service.locate(db, lon=item.lon, lat=item.lat)
        except geo_service.OutsideDistrict:
            log.warning("place outside the district skipped", extra={"place": item.name})
            continue
        db.add(Place(name=item.name, aliases=list(ALIASES.get(item.name, ())), kind=item.kind,
                     lon=item.lon, lat=item.lat, township_code=found["township_code"], source=item.source,
                     license=item.license, confidence=item.confidence, created_at=clock.now()))
        existing.add(item.name)
        added.append(item.name)
    db.flush()
    if added:
        audit.record(db, actor=actor, action="geo.load_places", object_type="place",
                     after={"created": len(added), "names": added})
    return len(added)


def list_places(db: Session) -> list[Place]:
    return list(db.scalars(select(Place).order_by(Place.id)))


def match_place(db: Session, *, text: str) -> Place | None:
    """The place whose name or alias is the longest one contained in ``text``; ties go to the
    older place. None when no place is named (or ``text`` is blank)."""
    text = "".join((text or "").split())
    if not text:
        return None
    best: tuple[int, int] | None = None
    winner = None
    for place in list_places(db):
        hits = [len(term) for term in (place.name, *(place.aliases or ())) if term and term in text]
        if hits and (best is None or (-max(hits), place.id) < best):
            best, winner = (-max(hits), place.id), place
    return winner
