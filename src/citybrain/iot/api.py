"""JSON API of the IoT hub under /api/iot (devices, products, rules, alarms, dead letters).

Devices: ``iot:read`` to read, ``iot:manage`` to register and change them — department staff
their own department's only (the registry checks). Products and rules: ``iot:admin`` to change.
Alarms and dead letters: ``iot:alarm``. A device secret is in a response exactly once: when it
is created (registration, import, rotation).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, Response, UploadFile
from sqlalchemy import select
from sqlalchemy.orm import Session

from citybrain.core import clock
from citybrain.core.actor import Actor
from citybrain.core.auth import require
from citybrain.core.db import DbSession
from citybrain.core.errors import Invalid, NotFound
from citybrain.org import service as org_service

from . import console, device_import, registry, rules_store
from .models import AlarmRecord, AlarmRule, Device, DeviceState
from .models import Product as ProductRow
from .schemas import (
    AlarmPage,
    AlarmRead,
    Credential,
    DeadLetterPage,
    DeadLetterRead,
    DeviceCreate,
    DeviceCreated,
    DevicePage,
    DeviceRead,
    DeviceStateRead,
    DeviceUpdate,
    ImportReport,
    ImportRow,
    ProductDefinitionIn,
    ProductSummary,
    RuleIn,
    RuleRead,
    SecretRead,
    product_dict,
)
from .thingmodel import Product

router = APIRouter()

Reader = Annotated[Actor, require("iot:read")]
Manager = Annotated[Actor, require("iot:manage")]
Admin = Annotated[Actor, require("iot:admin")]
AlarmHandler = Annotated[Actor, require("iot:alarm")]

MAX_IMPORT_BYTES = 20 * 1024 * 1024
MAX_DEFINITION_BYTES = 200_000


def now_ms() -> int:
    return int(clock.now().timestamp() * 1000)


def department_codes(db: Session) -> dict[int, str]:
    return {d.id: d.code for d in org_service.list_departments(db)}


def device_read(device: Device, state: DeviceState | None, *, products: dict[str, Product],
                codes: dict[int, str], at_ms: int) -> DeviceRead:
    latest = None if state is None else DeviceStateRead(ts=state.ts, data=dict(state.data or {}),
                                                        last_seen=state.last_seen, status=state.status)
    return DeviceRead(
        key=device.key, name=device.name, product=device.product, department_id=device.department_id,
        department_code=codes.get(device.department_id), gateway_key=device.gateway_key, lon=device.lon,
        lat=device.lat, township_code=device.township_code, grid_code=device.grid_code, address=device.address,
        install_date=device.install_date, state=device.state, has_secret=device.secret_hash is not None,
        secret_rotated_at=device.secret_rotated_at, created_at=device.created_at, updated_at=device.updated_at,
        online=console.is_online(state.last_seen if state else None, products.get(device.product), now_ms=at_ms),
        latest=latest)


def _one_device(db: Session, key: str, actor: Actor) -> DeviceRead:
    device = registry.get_device(db, key)
    actor.check_department(device.department_id)
    return device_read(device, db.get(DeviceState, device.id), products=registry.products(db),
                       codes=department_codes(db), at_ms=now_ms())


# --- devices --------------------------------------------------------------------------------------


@router.post("/devices", response_model=DeviceCreated, status_code=201,
             summary="Register a device; the response carries its secret, once")
def register_device(body: DeviceCreate, db: DbSession, actor: Manager) -> DeviceCreated:
    device, secret = registry.register(db, registry.DeviceIn(**body.model_dump()), actor=actor)
    read = _one_device(db, device.key, actor)
    return DeviceCreated(**read.model_dump(), secret=secret)


@router.get("/devices", response_model=DevicePage, summary="Devices the caller may see, with filters")
def list_devices(
    db: DbSession, actor: Reader, product: str | None = None, township: str | None = None,
    state: str | None = None, online: bool | None = None, q: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100, offset: Annotated[int, Query(ge=0)] = 0,
) -> DevicePage:
    if state and state not in registry.STATES:
        raise Invalid(f"state must be one of {', '.join(registry.STATES)}")
    products, at = registry.products(db), now_ms()
    rows, total, _counts = console.list_devices(
        db, actor=actor, products=products, now_ms=at, limit=limit, offset=offset,
        filters=console.DeviceFilters(product=product, township=township, state=state, online=online, q=q))
    codes = department_codes(db)
    return DevicePage(items=[device_read(d, s, products=products, codes=codes, at_ms=at) for d, s in rows],
                      total=total, limit=limit, offset=offset)


@router.post("/devices/import", response_model=ImportReport,
             summary="Register devices in bulk from a CSV or XLSX file, with a report of every row")
def import_devices(db: DbSession, actor: Manager, file: Annotated[UploadFile, File()],
                   dry_run: Annotated[bool, Form()] = False) -> ImportReport:
    data = file.file.read(MAX_IMPORT_BYTES + 1)
    if len(data) > MAX_IMPORT_BYTES:
        raise Invalid(f"the file is larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MB")
    result = device_import.import_devices(db, data=data, filename=file.filename or "", actor=actor,
                                          dry_run=dry_run)
    return import_report(result)


def import_report(result: device_import.ImportResult) -> ImportReport:
    return ImportReport(
        dry_run=result.dry_run, total=len(result.rows), created=result.count("created"),
        valid=result.count("valid"), refused=result.count("refused"),
        rows=[ImportRow(row=r.row, key=r.key, status=r.status, reason=r.reason) for r in result.rows],
        credentials=[Credential(key=k, secret=s) for k, s in result.credentials])


@router.get("/devices/{key}", response_model=DeviceRead, summary="One device with its latest state")
def get_device(key: str, db: DbSession, actor: Reader) -> DeviceRead:
    return _one_device(db, key, actor)


@router.patch("/devices/{key}", response_model=DeviceRead,
              summary="Change a device's name, address, location or state (active, disabled, retired)")
def update_device(key: str, body: DeviceUpdate, db: DbSession, actor: Manager) -> DeviceRead:
    sent = body.model_fields_set
    changes: dict[str, Any] = {f: getattr(body, f) for f in ("name", "address") if f in sent}
    if "name" in changes and changes["name"] is None:
        raise Invalid("name: a device needs a name")
    if sent & {"lon", "lat"}:
        if (body.lon is None) != (body.lat is None) or not {"lon", "lat"} <= sent:
            raise Invalid("give both lon and lat (both null clears the location)")
        changes["location"] = None if body.lon is None else (body.lon, body.lat, body.crs)
    elif "crs" in sent:
        raise Invalid("crs applies to lon and lat; send them too")
    if changes:
        registry.update_device(db, key=key, changes=changes, actor=actor)
    if body.state is not None:
        registry.set_state(db, key=key, state=body.state, actor=actor)
    elif "state" in sent:
        raise Invalid("state: must be one of active, disabled, retired")
    return _one_device(db, key, actor)


@router.post("/devices/{key}/secret", response_model=SecretRead,
             summary="Issue a new secret (the old one stops working); the response carries it, once")
def rotate_secret(key: str, db: DbSession, actor: Manager) -> SecretRead:
    return SecretRead(key=key, secret=registry.rotate_secret(db, key=key, actor=actor))


@router.delete("/devices/{key}/secret", status_code=204,
               summary="Revoke the device's secret: it cannot connect until a new one is issued")
def revoke_secret(key: str, db: DbSession, actor: Manager) -> Response:
    registry.revoke_secret(db, key=key, actor=actor)
    return Response(status_code=204)


@router.get("/devices/{key}/history", summary="A numeric property's history: raw readings or rollups by span")
def device_history(key: str, db: DbSession, actor: Reader, prop: str, start: datetime | None = None,
                   end: datetime | None = None,
                   range_: Annotated[str | None, Query(alias="range")] = None) -> dict[str, Any]:
    device = registry.get_device(db, key)
    actor.check_department(device.department_id)
    console.numeric_property(registry.products(db).get(device.product), prop)
    if range_ is not None:
        if start is not None or end is not None:
            raise Invalid("give either range or start/end, not both")
        start_ms, end_ms = console.range_bounds(range_, now_ms=now_ms())
    else:
        end_ms = _epoch_ms(end) if end is not None else now_ms() + 1
        start_ms = _epoch_ms(start) if start is not None else end_ms - 86400 * 1000
    series = console.history(db, device, prop, start_ms, end_ms)
    return {"device": key, "start": start_ms, "end": end_ms, **series.as_json()}


def _epoch_ms(value: datetime) -> int:
    if value.tzinfo is None:  # a time without a zone is UTC, like every timestamp of the API
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


# --- products -------------------------------------------------------------------------------------


@router.get("/products", response_model=list[ProductSummary], summary="Every product (thing model) in short")
def list_products(db: DbSession, actor: Reader) -> list[ProductSummary]:
    parsed = registry.products(db)
    rows = db.scalars(select(ProductRow).order_by(ProductRow.identifier))
    return [ProductSummary(identifier=r.identifier, name=r.name, category=r.category,
                           online_timeout_s=parsed[r.identifier].online_timeout_s,
                           retention_days=parsed[r.identifier].retention_days,
                           properties=len(parsed[r.identifier].properties), updated_at=r.updated_at,
                           updated_by=r.updated_by) for r in rows]


def _product(db: Session, identifier: str) -> dict[str, Any]:
    row = db.get(ProductRow, identifier)
    if row is None:
        raise NotFound(f"no product {identifier!r}")
    product = registry.products(db)[identifier]
    return product_dict(product) | {"definition": row.definition, "updated_at": row.updated_at.isoformat(),
                                    "updated_by": row.updated_by}


@router.get("/products/{identifier}", summary="A product's thing model as JSON, with its TOML text")
def get_product(identifier: str, db: DbSession, actor: Reader) -> dict[str, Any]:
    return _product(db, identifier)


async def raw_body(request: Request) -> bytes:
    """The request body as sent (read on the event loop, so the endpoint can stay synchronous)."""
    return await request.body()


@router.put("/products/{identifier}", summary="Replace a product's thing model (TOML text, or JSON {definition})")
def put_product(identifier: str, request: Request, db: DbSession, actor: Admin,
                raw: Annotated[bytes, Depends(raw_body)]) -> dict[str, Any]:
    if len(raw) > MAX_DEFINITION_BYTES:
        raise Invalid(f"the definition is longer than {MAX_DEFINITION_BYTES} bytes")
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            definition = ProductDefinitionIn.model_validate(json.loads(raw)).definition
        except ValueError as exc:
            raise Invalid(f'expected a JSON object {{"definition": "<TOML text>"}}: {exc}') from None
    else:
        try:
            definition = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Invalid("the TOML text must be UTF-8") from None
    registry.update_product(db, identifier=identifier, definition=definition, actor=actor)
    return _product(db, identifier)


# --- rules ----------------------------------------------------------------------------------------


def rule_read(row: AlarmRule) -> RuleRead:
    return RuleRead(**rules_store.rule_dict(row), enabled=row.enabled, updated_at=row.updated_at)


@router.get("/rules", response_model=list[RuleRead], summary="Alarm rules, optionally of one product")
def list_rules(db: DbSession, actor: Reader, product: str | None = None) -> list[RuleRead]:
    return [rule_read(r) for r in rules_store.list_rules(db, product=product)]


@router.post("/rules", response_model=RuleRead, status_code=201, summary="Create an alarm rule")
def create_rule(body: RuleIn, db: DbSession, actor: Admin) -> RuleRead:
    return rule_read(rules_store.create_rule(db, data=body.model_dump(), actor=actor))


@router.get("/rules/{rule_id}", response_model=RuleRead, summary="One alarm rule")
def get_rule(rule_id: str, db: DbSession, actor: Reader) -> RuleRead:
    return rule_read(rules_store.get_rule(db, rule_id))


@router.put("/rules/{rule_id}", response_model=RuleRead, summary="Replace an alarm rule's definition")
def update_rule(rule_id: str, body: RuleIn, db: DbSession, actor: Admin) -> RuleRead:
    data = body.model_dump(exclude_unset=False)
    if "enabled" not in body.model_fields_set:
        data.pop("enabled")
    return rule_read(rules_store.update_rule(db, rule_id=rule_id, data=data, actor=actor))


@router.delete("/rules/{rule_id}", status_code=204, summary="Delete an alarm rule that has no active alarm")
def delete_rule(rule_id: str, db: DbSession, actor: Admin) -> Response:
    rules_store.delete_rule(db, rule_id=rule_id, actor=actor)
    return Response(status_code=204)


@router.post("/rules/{rule_id}/enable", response_model=RuleRead, summary="Enable an alarm rule")
def enable_rule(rule_id: str, db: DbSession, actor: Admin) -> RuleRead:
    return rule_read(rules_store.set_enabled(db, rule_id=rule_id, enabled=True, actor=actor))


@router.post("/rules/{rule_id}/disable", response_model=RuleRead, summary="Disable an alarm rule")
def disable_rule(rule_id: str, db: DbSession, actor: Admin) -> RuleRead:
    return rule_read(rules_store.set_enabled(db, rule_id=rule_id, enabled=False, actor=actor))


# --- alarms and dead letters ----------------------------------------------------------------------


def alarm_read(row: AlarmRecord, device: Device | None = None) -> AlarmRead:
    read = AlarmRead.model_validate(row)
    read.device_name = device.name if device is not None else None
    return read


@router.get("/alarms", response_model=AlarmPage,
            summary="Alarms the caller may see, newest first (status: a status or active/unacknowledged/cleared)")
def list_alarms(db: DbSession, actor: Reader, status: str | None = None, severity: str | None = None,
                product: str | None = None, device: str | None = None,
                limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                offset: Annotated[int, Query(ge=0)] = 0) -> AlarmPage:
    rows, total = console.list_alarms(db, actor=actor, status=status, severity=severity, product=product,
                                      device_key=device, limit=limit, offset=offset)
    return AlarmPage(items=[alarm_read(a, d) for a, d in rows], total=total, limit=limit, offset=offset)


@router.post("/alarms/{alarm_id}/acknowledge", response_model=AlarmRead, summary="Acknowledge an alarm")
def acknowledge_alarm(alarm_id: str, db: DbSession, actor: AlarmHandler) -> AlarmRead:
    return alarm_read(console.acknowledge_alarm(db, alarm_id, actor))


@router.post("/alarms/{alarm_id}/clear", response_model=AlarmRead,
             summary="Clear an active alarm (a dispatching alarm annotates its event)")
def clear_alarm(alarm_id: str, db: DbSession, actor: AlarmHandler) -> AlarmRead:
    return alarm_read(console.clear_alarm(db, alarm_id, actor))


@router.get("/dead-letters", response_model=DeadLetterPage,
            summary="Refused messages with their reason code, newest first, and counts per code")
def list_dead_letters(db: DbSession, actor: AlarmHandler, code: str | None = None, device: str | None = None,
                      limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                      offset: Annotated[int, Query(ge=0)] = 0) -> DeadLetterPage:
    rows, total = console.list_dead_letters(db, actor=actor, code=code, device_key=device, limit=limit,
                                            offset=offset)
    return DeadLetterPage(items=[DeadLetterRead.model_validate(r) for r in rows], total=total, limit=limit,
                          offset=offset, counts=console.dead_letter_counts(db, actor=actor, device_key=device))
