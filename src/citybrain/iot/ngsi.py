"""Devices and their latest state as NGSI-LD entities (Smart Data Models types), and back.

One device is one entity, ``urn:ngsi-ld:<Type>:<device key>``. The type comes from the
device's product (``TYPES``); every other product is a ``Device``. A property keeps its thing
model identifier as its attribute name unless ``RENAMES`` gives the Smart Data Models name
(and, where the scales differ, a factor: SDM ``relativeHumidity`` and ``batteryLevel`` are
0..1, our ``humidity`` and ``battery`` are %). docs/ngsi-ld.md has the table.

Listing reads ``iot_device`` joined to ``iot_device_state`` as plain column tuples (never the
telemetry), builds one light :class:`Record` per device, filters those in Python (``q``,
geo-queries) and turns only the requested page into entity documents.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from importlib import resources
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from citybrain.core.actor import Actor
from citybrain.environment import aqi

from .models import Device, DeviceState
from .thingmodel import Product, Property, PropertyType

URN_PREFIX = "urn:ngsi-ld:"
CORE_CONTEXT = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
DEVICE_TYPE = "Device"
TYPES: Mapping[str, str] = {
    "air_quality_station": "AirQualityObserved",
    "water_quality_station": "WaterQualityObserved",
    "parking_detector": "ParkingSpot",
}
ALL_TYPES = (*TYPES.values(), DEVICE_TYPE)
RATIO_UNIT = "C62"  # UN/CEFACT "one": a dimensionless ratio


@dataclass(frozen=True, slots=True)
class Rename:
    name: str  # the NGSI-LD attribute name
    scale: float = 1.0  # NGSI-LD value = our value * scale
    unit_code: str | None = None  # replaces the thing model's uncefact code
    encode: Callable[[Any], Any] | None = None  # our value -> NGSI-LD value (instead of scale)
    decode: Callable[[Any], Any] | None = None  # NGSI-LD value -> our value; ValueError if impossible


def _parking_status(value: Any) -> str:
    return "occupied" if value else "free"


def _parking_occupied(value: Any) -> bool:
    if value == "occupied":
        return True
    if value == "free":
        return False
    raise ValueError("status must be 'occupied' or 'free'")


_BATTERY = Rename("batteryLevel", 0.01, RATIO_UNIT)
RENAMES: Mapping[str, Mapping[str, Rename]] = {
    "air_quality_station": {"humidity": Rename("relativeHumidity", 0.01, RATIO_UNIT)},
    "water_quality_station": {"ph": Rename("pH"), "do": Rename("O2"), "nh3n": Rename("NH4"),
                              "tp": Rename("P-TOT")},
    "parking_detector": {"occupied": Rename("status", encode=_parking_status, decode=_parking_occupied),
                         "battery": _BATTERY},
    "*": {"battery": _BATTERY},
}
# Attributes we compute or take from the registry: shown, never written through NGSI-LD.
DERIVED = frozenset({"location", "name", "address", "dateObserved", "airQualityIndex", "deviceState",
                     "controlledProperty", "dateLastValueReported"})


def entity_type(product: str) -> str:
    return TYPES.get(product, DEVICE_TYPE)


def entity_id(product: str, key: str) -> str:
    return f"{URN_PREFIX}{entity_type(product)}:{key}"


def split_id(value: str) -> tuple[str, str] | None:
    """(type, device key) of one of our entity ids, or None."""
    if not value.startswith(URN_PREFIX):
        return None
    kind, sep, key = value[len(URN_PREFIX):].partition(":")
    return (kind, key) if sep and kind and key else None


def iso_ms(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- per-product attribute maps --------------------------------------------------------------


@dataclass(frozen=True)
class AttrMap:
    name: str
    prop: Property
    rename: Rename | None

    @property
    def unit_code(self) -> str | None:
        if self.rename and self.rename.unit_code:
            return self.rename.unit_code
        return self.prop.unit.uncefact if self.prop.unit else None

    def to_ngsi(self, value: Any) -> Any:
        rename = self.rename
        if rename is None:
            return value
        if rename.encode:
            return rename.encode(value)
        if rename.scale != 1 and isinstance(value, int | float) and not isinstance(value, bool):
            return round(value * rename.scale, 6)
        return value

    def from_ngsi(self, value: Any) -> Any:
        rename = self.rename
        if rename is None:
            return value
        if rename.decode:
            return rename.decode(value)
        if rename.scale != 1 and isinstance(value, int | float) and not isinstance(value, bool):
            ours = round(value / rename.scale, 6)
            return int(ours) if self.prop.type is PropertyType.INT and float(ours).is_integer() else ours
        return value


@dataclass(frozen=True)
class TypeMap:
    product: Product
    type: str
    attrs: tuple[AttrMap, ...]
    by_name: Mapping[str, AttrMap] = field(init=False, repr=False, compare=False)
    by_prop: Mapping[str, AttrMap] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {a.name: a for a in self.attrs})
        object.__setattr__(self, "by_prop", {a.prop.identifier: a for a in self.attrs})


def type_maps(products: Mapping[str, Product]) -> dict[str, TypeMap]:
    maps = {}
    for ident, product in products.items():
        renames = {**RENAMES["*"], **RENAMES.get(ident, {})}
        attrs = tuple(AttrMap(renames[p.identifier].name if p.identifier in renames else p.identifier, p,
                              renames.get(p.identifier)) for p in product.properties)
        maps[ident] = TypeMap(product, entity_type(ident), attrs)
    return maps


# --- records: one device, its latest state --------------------------------------------------------


@dataclass
class Record:
    device_id: int
    key: str
    name: str
    product: str
    department_id: int
    lon: float | None
    lat: float | None
    address: str
    state: str
    ts: int | None
    data: Mapping[str, Any]
    last_seen: int | None
    tmap: TypeMap
    now_ms: int

    @property
    def id(self) -> str:
        return f"{URN_PREFIX}{self.tmap.type}:{self.key}"

    @property
    def type(self) -> str:
        return self.tmap.type

    @cached_property
    def values(self) -> dict[str, Any]:
        """Latest value of every attribute that has one, by NGSI-LD name."""
        out: dict[str, Any] = {}
        for prop, value in self.data.items():
            attr = self.tmap.by_prop.get(prop)
            if attr is not None and value is not None:
                out[attr.name] = attr.to_ngsi(value)
        return out

    @cached_property
    def computed(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.type == "AirQualityObserved":
            index = air_quality_index(self.data)
            if index is not None:
                out["airQualityIndex"] = index
        if self.type == DEVICE_TYPE:
            out["deviceState"] = self.device_state
            out["controlledProperty"] = [a.name for a in self.tmap.attrs]
            if self.last_seen is not None:
                out["dateLastValueReported"] = iso_ms(self.last_seen)
        return out

    @property
    def device_state(self) -> str:
        if self.state != "active":
            return self.state  # disabled | retired
        timeout = self.tmap.product.online_timeout_s * 1000
        return "online" if self.last_seen is not None and self.now_ms - self.last_seen <= timeout else "offline"

    def has(self, name: str) -> bool:
        if name == "location":
            return self.lon is not None
        if name == "name":
            return True
        return name in self.values or name in self.computed or (name == "address" and bool(self.address))

    def lookup(self, path: tuple[str, ...]) -> tuple[bool, Any]:
        """How the ``q`` evaluator reads this entity: ``pm25``, ``pm25.observedAt``, ``pm25.unitCode``."""
        name = path[0]
        if name in self.values:
            value: Any = self.values[name]
        elif name in self.computed:
            value = self.computed[name]
        elif name == "name":
            value = self.name
        else:
            return False, None
        if len(path) == 1 or path[1:] == ("value",):
            return True, value
        if path[1:] == ("observedAt",) and self.ts is not None and name in self.values:
            return True, iso_ms(self.ts)
        if path[1:] == ("unitCode",) and name in self.tmap.by_name:
            code = self.tmap.by_name[name].unit_code
            return code is not None, code
        return False, None


def air_quality_index(data: Mapping[str, Any]) -> int | None:
    """Hourly AQI (HJ 633) from the latest concentrations, or None when it cannot be scored."""
    given = {k: data[k] for k in ("so2", "no2", "co", "o3", "pm10", "pm25")
             if isinstance(data.get(k), int | float) and not isinstance(data.get(k), bool)}
    if not given:
        return None
    try:
        return aqi.hourly_aqi(**given).aqi
    except ValueError:  # SpecialRule (SO2 above 800 µg/m³ without a 24-hour mean) or a bad value
        return None


def load_records(db: Session, *, actor: Actor, maps: Mapping[str, TypeMap], now_ms: int,
                 types: Iterable[str] | None = None, keys: Iterable[str] | None = None) -> list[Record]:
    """Devices the actor may see (not retired), filtered in SQL by type and key, ordered by key."""
    query = (select(Device.id, Device.key, Device.name, Device.product, Device.department_id, Device.lon,
                    Device.lat, Device.address, Device.state, DeviceState.ts, DeviceState.data,
                    DeviceState.last_seen)
             .outerjoin(DeviceState, DeviceState.device_id == Device.id)
             .where(Device.state != "retired").order_by(Device.key))
    if not actor.sees_all_departments:
        query = query.where(Device.department_id == actor.department_id)
    if types is not None:
        wanted = set(types)
        products = [p for p, m in maps.items() if m.type in wanted]
        if not products:
            return []
        query = query.where(Device.product.in_(products))
    if keys is not None:
        key_list = sorted(set(keys))
        if not key_list:
            return []
        query = query.where(Device.key.in_(key_list))
    records = []
    for row in db.execute(query):
        tmap = maps.get(row.product)
        if tmap is None:
            continue
        records.append(Record(row.id, row.key, row.name, row.product, row.department_id, row.lon, row.lat,
                              row.address or "", row.state, row.ts, row.data or {}, row.last_seen, tmap, now_ms))
    return records


# --- entity documents --------------------------------------------------------------------------


def to_entity(rec: Record, *, attrs: set[str] | None = None, key_values: bool = False) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": rec.id, "type": rec.type}

    def want(name: str) -> bool:
        return attrs is None or name in attrs

    def prop(name: str, value: Any, *, observed: bool = False, unit: str | None = None) -> None:
        if not want(name):
            return
        if key_values:
            doc[name] = value
            return
        item: dict[str, Any] = {"type": "Property", "value": value}
        if observed and rec.ts is not None:
            item["observedAt"] = iso_ms(rec.ts)
        if unit:
            item["unitCode"] = unit
        doc[name] = item

    prop("name", rec.name)
    if rec.address:
        prop("address", {"streetAddress": rec.address})
    if rec.lon is not None and rec.lat is not None and want("location"):
        point = {"type": "Point", "coordinates": [rec.lon, rec.lat]}
        doc["location"] = point if key_values else {"type": "GeoProperty", "value": point}
    if rec.ts is not None and rec.type != DEVICE_TYPE:
        prop("dateObserved", iso_ms(rec.ts))
    for attr in rec.tmap.attrs:
        if attr.name in rec.values:
            prop(attr.name, rec.values[attr.name], observed=True, unit=attr.unit_code)
    for name, value in rec.computed.items():
        prop(name, value, observed=name == "airQualityIndex")
    return doc


# --- the way back: an upserted entity as one reading --------------------------------------------


class EntityRefused(ValueError):
    """One entity of an upsert that cannot become a reading; the message says why."""


def reading_from_entity(doc: Mapping[str, Any], tmap: TypeMap) -> tuple[dict[str, Any], str | None]:
    """(our property values, the observedAt they share or None) from one NGSI-LD entity
    (normalized or key-values). Registry and computed attributes (``DERIVED``) are skipped."""
    values: dict[str, Any] = {}
    observed: set[str] = set()
    for name, raw in doc.items():
        if name in ("id", "type", "@context") or name in DERIVED:
            continue
        attr = tmap.by_name.get(name)
        if attr is None:
            known = ", ".join(a.name for a in tmap.attrs)
            raise EntityRefused(f"{tmap.type} has no writable attribute {name!r} (known: {known})")
        value = raw
        if isinstance(raw, Mapping):
            kind = raw.get("type", "Property")
            if kind != "Property" or "value" not in raw:
                raise EntityRefused(f"{name} must be a Property with a value")
            value = raw["value"]
            if raw.get("observedAt") is not None:
                if not isinstance(raw["observedAt"], str):
                    raise EntityRefused(f"{name}.observedAt must be an ISO 8601 string")
                observed.add(raw["observedAt"])
            unit = raw.get("unitCode")
            if unit is not None and unit != attr.unit_code:
                raise EntityRefused(f"{name}.unitCode {unit!r} differs from {attr.unit_code!r}: send that unit")
        try:
            values[attr.prop.identifier] = attr.from_ngsi(value)
        except ValueError as exc:
            raise EntityRefused(f"{name}: {exc}") from None
    if not values:
        raise EntityRefused("the entity carries no property values")
    if len(observed) > 1:
        raise EntityRefused("all attributes of one entity must share one observedAt (they form one reading)")
    return values, next(iter(observed), None)


def context_document() -> dict[str, Any]:
    text = resources.files("citybrain.iot").joinpath("data/ngsi-context.jsonld").read_text(encoding="utf-8")
    return json.loads(text)


def context_terms() -> dict[str, str]:
    """Term -> IRI of our own @context (compact IRIs expanded)."""
    terms: dict[str, str] = {}
    for part in context_document()["@context"]:
        if isinstance(part, dict):
            terms.update({k: v for k, v in part.items() if isinstance(v, str)})
    for term, iri in list(terms.items()):
        prefix, sep, rest = iri.partition(":")
        if sep and prefix in terms and not rest.startswith("//"):
            terms[term] = terms[prefix] + rest
    return terms
