"""Tables of the IoT hub: products, devices, latest state, telemetry, rollups, rules, alarms,
dead letters.

Telemetry timestamps are Unix epoch milliseconds (BIGINT) on every backend: cheap to index and
to bucket (``ts - ts % 60000``), and the PostgreSQL table is range-partitioned by day on them
(see the 0005 migration and ``storage.py``).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from citybrain.core.db import Base

# The latest state is merged key by key on every write: JSONB on PostgreSQL for ``||``.
StateJSON = JSON().with_variant(JSONB(), "postgresql")
BigId = BigInteger().with_variant(Integer, "sqlite")


class Product(Base):
    """A product's thing model as the TOML table it was written in (``thingmodel.load_products``)."""

    __tablename__ = "iot_product"

    identifier: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    category: Mapped[str] = mapped_column(String(64))
    definition: Mapped[str] = mapped_column(Text)  # TOML text of one [[product]] table
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(120))


class Device(Base):
    __tablename__ = "iot_device"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)  # the device's login name
    name: Mapped[str] = mapped_column(String(120))
    product: Mapped[str] = mapped_column(ForeignKey("iot_product.identifier"), index=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("department.id"), index=True)
    gateway_key: Mapped[str | None] = mapped_column(String(64), index=True)  # parent gateway, if any
    lon: Mapped[float | None] = mapped_column(Float)  # WGS-84
    lat: Mapped[float | None] = mapped_column(Float)
    township_code: Mapped[str | None] = mapped_column(String(12), index=True)
    grid_code: Mapped[str | None] = mapped_column(String(32))
    address: Mapped[str] = mapped_column(String(200), default="")
    install_date: Mapped[date | None]
    state: Mapped[str] = mapped_column(String(16), default="active")  # active | disabled | retired
    # sha256(salt || secret), hex. Secrets are 32 random bytes, so a fast hash is enough.
    secret_salt: Mapped[str | None] = mapped_column(String(32))
    secret_hash: Mapped[str | None] = mapped_column(String(64))
    secret_rotated_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime] = mapped_column(index=True)


class DeviceState(Base):
    """The latest value of every property of a device, and when it was last heard from."""

    __tablename__ = "iot_device_state"

    device_id: Mapped[int] = mapped_column(ForeignKey("iot_device.id", ondelete="CASCADE"), primary_key=True)
    ts: Mapped[int] = mapped_column(BigInteger)  # epoch ms of the newest reading merged in
    data: Mapped[dict[str, Any]] = mapped_column(StateJSON)
    last_seen: Mapped[int] = mapped_column(BigInteger)  # epoch ms of the last message received
    status: Mapped[str | None] = mapped_column(String(16))  # what the device last said on .../status


class Telemetry(Base):
    """One reading: every property a device reported at one instant. (device, ts) is the key,
    so a message delivered twice is stored once."""

    __tablename__ = "iot_telemetry"

    device_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ts: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)


class Rollup(Base):
    """Downsampled numeric properties: ``period`` is 60 (1 min) or 3600 (1 h) seconds."""

    __tablename__ = "iot_rollup"

    device_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    prop: Mapped[str] = mapped_column(String(64), primary_key=True)
    period: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # epoch ms of the bucket start
    count: Mapped[int] = mapped_column(Integer)
    sum: Mapped[float] = mapped_column(Float)
    min: Mapped[float] = mapped_column(Float)
    max: Mapped[float] = mapped_column(Float)


class RollupMark(Base):
    """How far each rollup period has been computed (epoch ms, exclusive)."""

    __tablename__ = "iot_rollup_mark"

    period: Mapped[int] = mapped_column(Integer, primary_key=True)
    done_until: Mapped[int] = mapped_column(BigInteger)


class DeadLetter(Base):
    __tablename__ = "iot_dead_letter"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(index=True)
    source: Mapped[str] = mapped_column(String(10))  # mqtt | http
    topic: Mapped[str] = mapped_column(String(300))
    device_key: Mapped[str | None] = mapped_column(String(64), index=True)
    code: Mapped[str] = mapped_column(String(40), index=True)
    reason: Mapped[str] = mapped_column(String(500))
    size: Mapped[int] = mapped_column(Integer)
    payload: Mapped[str] = mapped_column(Text)  # the first bytes, decoded with replacement


class AlarmRule(Base):
    __tablename__ = "iot_rule"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    product: Mapped[str] = mapped_column(ForeignKey("iot_product.identifier"), index=True)
    device_key: Mapped[str | None] = mapped_column(String(64))
    property: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(20))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    severity: Mapped[str] = mapped_column(String(16))
    dispatch: Mapped[bool] = mapped_column(Boolean, default=False)
    category_code: Mapped[str | None] = mapped_column(String(20))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime]


class AlarmRecord(Base):
    __tablename__ = "iot_alarm"
    __table_args__ = (
        # At most one active alarm per (rule, device), across every ingestion worker.
        Index("uq_iot_alarm_active", "rule_id", "device_key", unique=True,
              sqlite_where=text("status IN ('active_unack', 'active_ack')"),
              postgresql_where=text("status IN ('active_unack', 'active_ack')")),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    rule_id: Mapped[str] = mapped_column(String(64))
    device_key: Mapped[str] = mapped_column(String(64), index=True)
    product: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    category_code: Mapped[str | None] = mapped_column(String(20))
    dispatch: Mapped[bool] = mapped_column(Boolean)
    message: Mapped[str] = mapped_column(String(500))
    value: Mapped[Any | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), index=True)
    raised_at: Mapped[datetime] = mapped_column(index=True)
    last_seen: Mapped[datetime]
    count: Mapped[int] = mapped_column(Integer, default=1)
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(120))
    cleared_at: Mapped[datetime | None]
    cleared_by: Mapped[str | None] = mapped_column(String(120))
    lon: Mapped[float | None] = mapped_column(Float)
    lat: Mapped[float | None] = mapped_column(Float)


class DeviceEvent(Base):
    """An event a device reported on ``.../event`` (a smoke alarm, a lamp fault …)."""

    __tablename__ = "iot_device_event"
    __table_args__ = (Index("ix_iot_device_event_device_ts", "device_id", "ts"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("iot_device.id", ondelete="CASCADE"))
    ts: Mapped[int] = mapped_column(BigInteger)
    event: Mapped[str] = mapped_column(String(64))
    level: Mapped[str] = mapped_column(String(16))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
