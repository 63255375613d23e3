"""Tables of the unified event command: categories, events, timeline, assignments, photos."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from citybrain.core.db import Base


class EventCategory(Base):
    """A GB/T 30428 small class (小类) of components (部件) or events (事件): configuration data."""

    __tablename__ = "event_category"

    code: Mapped[str] = mapped_column(String(16), primary_key=True)  # e.g. "E0101", "C0102"
    kind: Mapped[str] = mapped_column(String(10))  # component | event
    major_code: Mapped[str] = mapped_column(String(8))
    major_name: Mapped[str] = mapped_column(String(50))
    name: Mapped[str] = mapped_column(String(80))
    description: Mapped[str] = mapped_column(Text, default="")
    department_code: Mapped[str] = mapped_column(String(32))  # default responsible department
    township_handles: Mapped[bool] = mapped_column(default=False)  # dispatch to the 镇/街道 office
    urgency: Mapped[str] = mapped_column(String(10), default="normal")
    # {"accept": {"value": 1, "unit": "working_hours"}, "handle": {...}, ...}
    time_limits: Mapped[dict[str, Any]] = mapped_column(JSON)
    keywords: Mapped[str] = mapped_column(String(300), default="")
    public: Mapped[bool] = mapped_column(default=True)  # offered to citizens and Open311
    active: Mapped[bool] = mapped_column(default=True)


class Event(Base):
    __tablename__ = "event"
    __table_args__ = (
        Index("ix_event_status_due", "status", "due_at"),
        Index("ix_event_created", "created_at"),
        # Idempotent intake: one event per (channel, external id), e.g. a sensor alarm id.
        Index("ix_event_channel_external", "channel", "external_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tracking_no: Mapped[str] = mapped_column(String(24), unique=True)
    channel: Mapped[str] = mapped_column(String(12))
    external_id: Mapped[str | None] = mapped_column(String(64))
    category_code: Mapped[str] = mapped_column(ForeignKey("event_category.code"), index=True)
    description: Mapped[str] = mapped_column(Text)
    address: Mapped[str] = mapped_column(String(300), default="")
    lon: Mapped[float | None] = mapped_column(Float)  # WGS-84
    lat: Mapped[float | None] = mapped_column(Float)
    location_state: Mapped[str] = mapped_column(String(10))
    township_code: Mapped[str | None] = mapped_column(String(12), index=True)
    grid_code: Mapped[str | None] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(16), index=True)
    urgency: Mapped[str] = mapped_column(String(10))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"), index=True)
    dispatch_reason: Mapped[str] = mapped_column(String(300), default="")
    reporter_name: Mapped[str] = mapped_column(String(50), default="")
    reporter_phone: Mapped[str] = mapped_column(String(20), default="")
    reporter_email: Mapped[str] = mapped_column(String(120), default="")
    reporter_user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("event.id"))
    stage: Mapped[str | None] = mapped_column(String(10))
    stage_started_at: Mapped[datetime | None]
    due_at: Mapped[datetime | None]
    overdue: Mapped[bool] = mapped_column(default=False)
    rework_count: Mapped[int] = mapped_column(Integer, default=0)
    result: Mapped[str] = mapped_column(Text, default="")
    rating: Mapped[int | None] = mapped_column(Integer)  # citizen satisfaction 1-5
    # A pending 延期 request {"value", "unit", "reason", "by", "at"}; None when there is none.
    extension_request: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # While 挂账 (suspended): {"status", "stage", "remaining_s"} to restore on resume.
    suspension: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}


class EventLog(Base):
    """The event's timeline: every transition and note, with who and why."""

    __tablename__ = "event_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(40))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class EventAssignment(Base):
    """Joint handling: the lead department and assisting ones."""

    __tablename__ = "event_assignment"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id", ondelete="CASCADE"), index=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("department.id"), index=True)
    role: Mapped[str] = mapped_column(String(10))  # lead | assist
    assigned_at: Mapped[datetime]


class EventPhoto(Base):
    __tablename__ = "event_photo"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id", ondelete="CASCADE"), index=True)
    stage: Mapped[str] = mapped_column(String(12))  # report | handled | verified
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(40))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(300))  # relative to the data directory
    created_at: Mapped[datetime]


class DispatchRule(Base):
    """Category × area → department. The most specific matching rule wins (see dispatch.py)."""

    __tablename__ = "dispatch_rule"

    id: Mapped[int] = mapped_column(primary_key=True)
    category_code: Mapped[str | None] = mapped_column(String(16))  # None: any small class
    major_code: Mapped[str | None] = mapped_column(String(8))  # None: any large class
    township_code: Mapped[str | None] = mapped_column(String(12))  # None: whole district
    department_code: Mapped[str] = mapped_column(String(32))
    to_township_office: Mapped[bool] = mapped_column(default=False)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    note: Mapped[str] = mapped_column(String(200), default="")
    active: Mapped[bool] = mapped_column(default=True)
