"""Request and response models of the IoT JSON API (/api/iot)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .thingmodel import Product, Property

DeviceStateName = Literal["active", "disabled", "retired"]


class DeviceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    key: str = Field(min_length=2, max_length=64)
    name: str = Field(min_length=1, max_length=120)
    product: str = Field(min_length=1, max_length=64)
    department_code: str = Field(min_length=1, max_length=32)
    lon: float | None = None
    lat: float | None = None
    crs: str = "wgs84"
    address: str = Field(default="", max_length=200)
    install_date: date | None = None
    gateway_key: str | None = Field(default=None, max_length=64)


class DeviceUpdate(BaseModel):
    """Only the fields sent change. ``lon``/``lat`` come together; both ``null`` clears the location."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str | None = Field(default=None, min_length=1, max_length=120)
    address: str | None = Field(default=None, max_length=200)
    lon: float | None = None
    lat: float | None = None
    crs: str = "wgs84"
    state: DeviceStateName | None = None


class DeviceStateRead(BaseModel):
    ts: int
    data: dict[str, Any]
    last_seen: int
    status: str | None


class DeviceRead(BaseModel):
    key: str
    name: str
    product: str
    department_id: int
    department_code: str | None = None
    gateway_key: str | None
    lon: float | None
    lat: float | None
    township_code: str | None
    grid_code: str | None
    address: str
    install_date: date | None
    state: str
    has_secret: bool
    secret_rotated_at: datetime | None
    created_at: datetime
    updated_at: datetime
    online: bool
    latest: DeviceStateRead | None = None


class DeviceCreated(DeviceRead):
    secret: str = Field(description="Shown once; only its salted hash is stored")


class DevicePage(BaseModel):
    items: list[DeviceRead]
    total: int
    limit: int
    offset: int


class SecretRead(BaseModel):
    key: str
    secret: str = Field(description="Shown once; only its salted hash is stored")


class ImportRow(BaseModel):
    row: int
    key: str
    status: Literal["created", "valid", "refused"]
    reason: str = ""


class Credential(BaseModel):
    key: str
    secret: str


class ImportReport(BaseModel):
    dry_run: bool
    total: int
    created: int
    valid: int
    refused: int
    rows: list[ImportRow]
    credentials: list[Credential]


class ProductSummary(BaseModel):
    identifier: str
    name: str
    category: str
    online_timeout_s: int
    retention_days: int
    properties: int
    updated_at: datetime
    updated_by: str


class ProductDefinitionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    definition: str = Field(min_length=1, max_length=200_000)


class RuleIn(BaseModel):
    """A rule as ``rules.parse_rule`` reads it; ``id`` comes from the path on PUT."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: str | None = Field(default=None, max_length=64)
    name: str = Field(default="", max_length=120)
    product: str = Field(min_length=1, max_length=64)
    device: str | None = Field(default=None, max_length=64)
    property: str = Field(min_length=1, max_length=64)
    kind: str
    params: dict[str, Any] = Field(default_factory=dict)
    severity: str = "major"
    dispatch: bool = False
    category_code: str | None = Field(default=None, max_length=20)
    enabled: bool = True


class RuleRead(BaseModel):
    id: str
    name: str
    product: str
    device: str | None
    property: str
    kind: str
    params: dict[str, Any]
    severity: str
    dispatch: bool
    category_code: str | None
    enabled: bool
    updated_at: datetime


# --- thing models as JSON -------------------------------------------------------------------------


def property_dict(prop: Property) -> dict[str, Any]:
    unit = None if prop.unit is None else {"code": prop.unit.code, "display": prop.unit.display,
                                           "uncefact": prop.unit.uncefact}
    return {"identifier": prop.identifier, "name": prop.name, "type": prop.type.value, "unit": unit,
            "min": prop.min, "max": prop.max, "values": [{"value": v, "name": n} for v, n in prop.values],
            "max_length": prop.max_length, "description": prop.description}


def product_dict(product: Product) -> dict[str, Any]:
    return {
        "identifier": product.identifier, "name": product.name, "category": product.category,
        "online_timeout_s": product.online_timeout_s, "retention_days": product.retention_days,
        "properties": [property_dict(p) for p in product.properties],
        "events": [{"identifier": e.identifier, "name": e.name, "level": e.level.value,
                    "params": [property_dict(p) for p in e.params]} for e in product.events],
        "commands": [{"identifier": c.identifier, "name": c.name, "params": [property_dict(p) for p in c.params]}
                     for c in product.commands],
    }


class AlarmRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    rule_id: str
    device_key: str
    product: str
    severity: str
    category_code: str | None
    dispatch: bool
    message: str
    value: Any | None
    status: str
    raised_at: datetime
    last_seen: datetime
    count: int
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    cleared_at: datetime | None
    cleared_by: str | None
    lon: float | None
    lat: float | None
    device_name: str | None = None


class AlarmPage(BaseModel):
    items: list[AlarmRead]
    total: int
    limit: int
    offset: int


class DeadLetterRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    received_at: datetime
    source: str
    topic: str
    device_key: str | None
    code: str
    reason: str
    size: int
    payload: str


class DeadLetterPage(BaseModel):
    items: list[DeadLetterRead]
    total: int
    limit: int
    offset: int
    counts: dict[str, int]
