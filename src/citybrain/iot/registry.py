"""Products and devices: the registry every message is checked against.

Products live in ``iot_product`` as the TOML text of their thing model (the shipped
``data/products.toml`` is loaded by ``sync_products``; admins edit them afterwards). Devices
carry a key (their MQTT user name) and a secret that is shown once and stored as
``sha256(salt || secret)``: secrets are 32 random bytes, so a slow password hash buys nothing
and would cap how fast devices can connect.

``DeviceDirectory`` is the read side ingestion uses: an in-memory map of devices refreshed when
the registry changes (by ``updated_at``), so checking a message never touches the database.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from importlib import resources
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citybrain.core import audit, clock
from citybrain.core.actor import Actor
from citybrain.core.errors import Conflict, Invalid, NotFound
from citybrain.geo import service as geo_service
from citybrain.org.models import Department

from .models import Device, DeviceState
from .models import Product as ProductRow
from .thingmodel import Product, load_products

KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{1,63}$")
STATES = ("active", "disabled", "retired")
GATEWAY_PRODUCT = "gateway"


# --- products -----------------------------------------------------------------------------


def _split_products(text: str) -> dict[str, str]:
    """Each [[product]] table of a products file as its own TOML text, by identifier."""
    chunks: dict[str, str] = {}
    parts = re.split(r"(?m)^(?=\[\[product\]\]\s*$)", text)
    for part in parts:
        if not part.lstrip().startswith("[[product]]"):
            continue
        ident = tomllib.loads(part)["product"][0]["identifier"]
        chunks[ident] = part.strip() + "\n"
    return chunks


def shipped_products_text() -> str:
    return resources.files("citybrain.iot").joinpath("data/products.toml").read_text(encoding="utf-8")


def sync_products(db: Session, *, actor: Actor, text: str | None = None, overwrite: bool = False) -> list[str]:
    """Load products from a products file (the shipped one by default); returns the identifiers
    added or replaced. Products already stored are kept unless ``overwrite``."""
    text = shipped_products_text() if text is None else text
    parsed = load_products(text)  # validates the whole file first: nothing is stored on error
    chunks = _split_products(text)
    changed = []
    for ident, product in parsed.items():
        row = db.get(ProductRow, ident)
        if row is not None and not overwrite:
            continue
        if row is None:
            row = ProductRow(identifier=ident)
            db.add(row)
        row.name, row.category, row.definition = product.name, product.category, chunks[ident]
        row.updated_at, row.updated_by = clock.now(), actor.label
        changed.append(ident)
    if changed:
        db.flush()
        audit.record(db, actor=actor, action="iot.products_loaded", object_type="iot_product",
                     object_id=None, after={"products": changed})
    return changed


def products(db: Session) -> dict[str, Product]:
    """Every stored product's thing model, parsed."""
    rows = db.scalars(select(ProductRow).order_by(ProductRow.identifier)).all()
    return load_products("\n".join(row.definition for row in rows)) if rows else {}


def update_product(db: Session, *, identifier: str, definition: str, actor: Actor) -> Product:
    """Replace one product's thing model with new TOML text (one [[product]] table)."""
    row = db.get(ProductRow, identifier)
    if row is None:
        raise NotFound(f"no product {identifier!r}")
    try:
        parsed = load_products(definition)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise Invalid(f"thing model refused: {exc}") from None
    if list(parsed) != [identifier]:
        raise Invalid(f"the text must define exactly one product, {identifier!r} (found {sorted(parsed)})")
    product = parsed[identifier]
    before = {"definition": row.definition}
    row.name, row.category, row.definition = product.name, product.category, definition.strip() + "\n"
    row.updated_at, row.updated_by = clock.now(), actor.label
    db.flush()
    audit.record(db, actor=actor, action="iot.product_updated", object_type="iot_product",
                 object_id=identifier, before=before, after={"definition": row.definition})
    return product


# --- credentials --------------------------------------------------------------------------


def hash_secret(salt: str, secret: str) -> str:
    return hashlib.sha256(f"{salt}:{secret}".encode()).hexdigest()


def new_secret() -> tuple[str, str, str]:
    """(secret shown once, salt, hash)."""
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_hex(8)
    return secret, salt, hash_secret(salt, secret)


def secret_matches(salt: str | None, stored: str | None, secret: str) -> bool:
    if not salt or not stored or not secret:
        return False
    return hmac.compare_digest(hash_secret(salt, secret), stored)


# --- devices ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceIn:
    key: str
    name: str
    product: str
    department_code: str
    lon: float | None = None
    lat: float | None = None
    crs: str = "wgs84"
    address: str = ""
    install_date: date | None = None
    gateway_key: str | None = None


def _department(db: Session, code: str) -> Department:
    dept = db.scalar(select(Department).where(Department.code == code))
    if dept is None:
        raise Invalid(f"unknown department code {code!r}")
    return dept


def check_device_in(db: Session, data: DeviceIn, *, known_products: Iterable[str]) -> dict[str, Any]:
    """Validate one registration; returns the column values or raises Invalid (nothing stored)."""
    if not KEY_RE.match(data.key or ""):
        raise Invalid(f"device key {data.key!r} must be 2-64 letters, digits, '_', '.', '-'")
    name = (data.name or "").strip()
    if not name or len(name) > 120:
        raise Invalid("device name must be 1-120 characters")
    if data.product not in set(known_products):
        raise Invalid(f"unknown product {data.product!r}")
    dept = _department(db, data.department_code)
    values: dict[str, Any] = {"key": data.key, "name": name, "product": data.product, "department_id": dept.id,
                              "address": (data.address or "").strip()[:200], "install_date": data.install_date,
                              "gateway_key": data.gateway_key or None, "lon": None, "lat": None,
                              "township_code": None, "grid_code": None}
    if data.install_date is not None and data.install_date > clock.now().date():
        raise Invalid(f"install date {data.install_date} is in the future")
    if (data.lon is None) != (data.lat is None):
        raise Invalid("give both lon and lat, or neither")
    if data.lon is not None:
        where = geo_service.locate(db, lon=data.lon, lat=data.lat, crs=data.crs)  # Invalid / OutsideDistrict
        values["lon"], values["lat"] = where["wgs84"]
        values["township_code"], values["grid_code"] = where["township_code"], where["grid_code"]
    if values["gateway_key"]:
        gateway = db.scalar(select(Device).where(Device.key == values["gateway_key"]))
        if gateway is None or gateway.product != GATEWAY_PRODUCT:
            raise Invalid(f"gateway {values['gateway_key']!r} is not a registered gateway device")
    return values


def register(db: Session, data: DeviceIn, *, actor: Actor) -> tuple[Device, str]:
    """Register one device; returns it and its secret (shown once, never stored)."""
    values = check_device_in(db, data, known_products=products(db))
    actor.check_department(values["department_id"])
    if db.scalar(select(Device.id).where(Device.key == data.key)) is not None:
        raise Conflict(f"device key {data.key!r} is already registered")
    device, secret = create_checked(db, values, actor=actor)
    db.flush()
    return device, secret


def create_checked(db: Session, values: dict[str, Any], *, actor: Actor) -> tuple[Device, str]:
    """Add a device from values ``check_device_in`` accepted (bulk import: flushed by the caller)."""
    secret, salt, digest = new_secret()
    now = clock.now()
    device = Device(**values, state="active", secret_salt=salt, secret_hash=digest, secret_rotated_at=now,
                    created_at=now, updated_at=now)
    db.add(device)
    audit.record(db, actor=actor, action="iot.device_registered", object_type="iot_device", object_id=device.key,
                 after={k: v for k, v in values.items() if k != "install_date"}
                 | {"install_date": str(values["install_date"] or "")})
    return device, secret


def get_device(db: Session, key: str) -> Device:
    device = db.scalar(select(Device).where(Device.key == key))
    if device is None:
        raise NotFound(f"no device {key!r}")
    return device


def rotate_secret(db: Session, *, key: str, actor: Actor) -> str:
    device = get_device(db, key)
    actor.check_department(device.department_id)
    if device.state == "retired":
        raise Conflict(f"device {key!r} is retired")
    secret, device.secret_salt, device.secret_hash = new_secret()
    device.secret_rotated_at = device.updated_at = clock.now()
    db.flush()
    audit.record(db, actor=actor, action="iot.secret_rotated", object_type="iot_device", object_id=key)
    return secret


def revoke_secret(db: Session, *, key: str, actor: Actor) -> None:
    """The device can no longer authenticate until a new secret is issued."""
    device = get_device(db, key)
    actor.check_department(device.department_id)
    device.secret_salt = device.secret_hash = None
    device.updated_at = clock.now()
    db.flush()
    audit.record(db, actor=actor, action="iot.secret_revoked", object_type="iot_device", object_id=key)


def set_state(db: Session, *, key: str, state: str, actor: Actor) -> Device:
    if state not in STATES:
        raise Invalid(f"state must be one of {', '.join(STATES)}")
    device = get_device(db, key)
    actor.check_department(device.department_id)
    before = device.state
    if before == state:
        return device
    if before == "retired":
        raise Conflict(f"device {key!r} is retired; register a new device instead")
    device.state = state
    device.updated_at = clock.now()
    db.flush()
    audit.record(db, actor=actor, action="iot.device_state", object_type="iot_device", object_id=key,
                 before={"state": before}, after={"state": state})
    return device


def update_device(db: Session, *, key: str, changes: dict[str, Any], actor: Actor) -> Device:
    """Change a device's ``name``, ``address`` or ``location`` (``(lon, lat, crs)``, or None to
    clear it; township and grid are recomputed). Unknown keys are refused."""
    unknown = sorted(set(changes) - {"name", "address", "location"})
    if unknown:
        raise Invalid(f"cannot change {', '.join(unknown)}")
    device = get_device(db, key)
    actor.check_department(device.department_id)
    if device.state == "retired":
        raise Conflict(f"device {key!r} is retired")
    before = {"name": device.name, "address": device.address, "lon": device.lon, "lat": device.lat,
              "township_code": device.township_code}
    if "name" in changes:
        name = (changes["name"] or "").strip()
        if not name or len(name) > 120:
            raise Invalid("device name must be 1-120 characters")
        device.name = name
    if "address" in changes:
        address = (changes["address"] or "").strip()
        if len(address) > 200:
            raise Invalid("address must be at most 200 characters")
        device.address = address
    if "location" in changes:
        location = changes["location"]
        if location is None:
            device.lon = device.lat = device.township_code = device.grid_code = None
        else:
            lon, lat, crs = location
            where = geo_service.locate(db, lon=lon, lat=lat, crs=crs)  # Invalid / OutsideDistrict
            device.lon, device.lat = where["wgs84"]
            device.township_code, device.grid_code = where["township_code"], where["grid_code"]
    after = {"name": device.name, "address": device.address, "lon": device.lon, "lat": device.lat,
             "township_code": device.township_code}
    if after == before:
        return device
    device.updated_at = clock.now()
    db.flush()
    audit.record(db, actor=actor, action="iot.device_updated", object_type="iot_device", object_id=key,
                 before=before, after=after)
    return device


def list_devices(db: Session, *, actor: Actor, product: str | None = None, township: str | None = None,
                 state: str | None = None, q: str | None = None, limit: int = 200, offset: int = 0
                 ) -> tuple[list[tuple[Device, DeviceState | None]], int]:
    """Devices the actor may see (department staff: their department's), with their latest state."""
    query = select(Device, DeviceState).outerjoin(DeviceState, DeviceState.device_id == Device.id)
    if not actor.sees_all_departments:
        query = query.where(Device.department_id == actor.department_id)
    if product:
        query = query.where(Device.product == product)
    if township:
        query = query.where(Device.township_code == township)
    if state:
        query = query.where(Device.state == state)
    if q:
        like = f"%{q.strip()}%"
        query = query.where(Device.key.ilike(like) | Device.name.ilike(like) | Device.address.ilike(like))
    total = db.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = db.execute(query.order_by(Device.key).limit(limit).offset(offset)).all()
    return [(d, s) for d, s in rows], total


# --- the directory ingestion reads ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    id: int
    key: str
    product: str
    state: str
    gateway_key: str | None
    secret_salt: str | None
    secret_hash: str | None
    lon: float | None
    lat: float | None
    department_id: int


class DeviceDirectory:
    """Devices by key, in memory, refreshed at most every ``ttl_s`` when the registry changed.

    ``lookup`` of an unknown key re-reads that one key (at most once per ``ttl_s`` per key), so
    a device registered a moment ago is accepted without waiting for the refresh.
    """

    def __init__(self, session_factory: Callable[[], Session], *, ttl_s: float = 5.0) -> None:
        self._session_factory = session_factory
        self._ttl = ttl_s
        self._lock = threading.Lock()
        self._devices: dict[str, DeviceInfo] = {}
        self._mark: tuple[Any, ...] | None = None
        self._checked = 0.0
        self._misses: dict[str, float] = {}
        self._products: dict[str, Product] = {}
        self._verified: dict[tuple[str, str], bool] = {}

    @staticmethod
    def _info(d: Device) -> DeviceInfo:
        return DeviceInfo(d.id, d.key, d.product, d.state, d.gateway_key, d.secret_salt, d.secret_hash,
                          d.lon, d.lat, d.department_id)

    def refresh(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked < self._ttl:
            return
        with self._lock:
            self._checked = now
            db = self._session_factory()
            try:
                mark = tuple(db.execute(select(func.count(Device.id), func.max(Device.updated_at))).one()) + tuple(
                    db.execute(select(func.count(ProductRow.identifier), func.max(ProductRow.updated_at))).one())
                if mark != self._mark or force:
                    self._devices = {d.key: self._info(d) for d in db.scalars(select(Device))}
                    self._products = products(db)
                    self._verified.clear()
                    self._misses.clear()
                    self._mark = mark
            finally:
                db.close()

    @property
    def products(self) -> dict[str, Product]:
        self.refresh()
        return self._products

    def lookup(self, key: str) -> DeviceInfo | None:
        self.refresh()
        info = self._devices.get(key)
        if info is not None or not KEY_RE.match(key):
            return info
        now = time.monotonic()
        if now - self._misses.get(key, -1e9) < self._ttl:
            return None
        self._misses[key] = now
        db = self._session_factory()
        try:
            device = db.scalar(select(Device).where(Device.key == key))
            if device is None:
                return None
            info = self._devices[key] = self._info(device)
            return info
        finally:
            db.close()

    def known(self) -> dict[str, DeviceInfo]:
        """The devices loaded now, by key (for tight loops; ``lookup`` for keys missing here)."""
        self.refresh()
        return self._devices

    def authenticate(self, key: str, secret: str) -> DeviceInfo | None:
        """The active device with this key and secret, or None."""
        info = self.lookup(key)
        if info is None or info.state != "active":
            return None
        cache_key = (key, hashlib.sha256(secret.encode()).hexdigest())
        ok = self._verified.get(cache_key)
        if ok is None:
            ok = secret_matches(info.secret_salt, info.secret_hash, secret)
            if len(self._verified) > 100_000:
                self._verified.clear()
            self._verified[cache_key] = ok
        return info if ok else None

    def all(self) -> list[DeviceInfo]:
        self.refresh()
        return list(self._devices.values())
