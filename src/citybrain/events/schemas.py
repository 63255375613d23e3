"""Request and response models of the event command. The intake model is shared by every
channel (citizen page, grid worker, hotline, JSON API, Open311, sensor alarms)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .enums import Channel

MAX_DESCRIPTION = 4000


class EventReportIn(BaseModel):
    """One report from any channel. Location: lon+lat (with crs), or an address to match."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    channel: Channel
    category_code: str = Field(min_length=1, max_length=16)
    description: str = Field(min_length=1, max_length=MAX_DESCRIPTION)
    lon: float | None = None
    lat: float | None = None
    crs: str = "wgs84"
    address: str = Field(default="", max_length=300)
    reporter_name: str = Field(default="", max_length=50)
    reporter_phone: str = Field(default="", max_length=20)
    reporter_email: str = Field(default="", max_length=120)
    external_id: str | None = Field(default=None, max_length=64)
    urgency: str | None = Field(default=None, pattern=r"^(normal|urgent|critical)$")

    @field_validator("description")
    @classmethod
    def _no_html(cls, value: str) -> str:
        if "<" in value and ">" in value:
            raise ValueError("must be plain text; HTML is not accepted")
        return value


class EventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    tracking_no: str
    channel: str
    category_code: str
    description: str
    address: str
    lon: float | None
    lat: float | None
    location_state: str
    township_code: str | None
    grid_code: str | None
    status: str
    urgency: str
    department_id: int | None
    dispatch_reason: str
    stage: str | None
    due_at: datetime | None
    overdue: bool
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    version: int


class EventActionIn(BaseModel):
    """Body of ``POST /api/events/{id}/actions/{action}``; which fields matter depends on the action."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    expected_version: int | None = None
    note: str = Field(default="", max_length=2000)
    reason: str = Field(default="", max_length=500)
    result: str = Field(default="", max_length=MAX_DESCRIPTION)  # handle
    department_code: str | None = Field(default=None, max_length=32)  # dispatch (manual), reassign
    department_codes: list[str] = Field(default_factory=list, max_length=20)  # assist
    value: float | None = None  # request_extension: length …
    unit: str | None = None  # … and unit (working_hours | working_days | natural_hours)
    lon: float | None = None  # locate
    lat: float | None = None
    crs: str = "wgs84"

    def action_data(self) -> dict[str, object]:
        data = self.model_dump(exclude={"expected_version", "note"}, exclude_defaults=True)
        return data


class EventLogRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor: str
    action: str
    from_status: str | None
    to_status: str | None
    note: str
    data: dict[str, object] | None


class EventTrackingStep(BaseModel):
    at: datetime
    action: str
    status: str | None


class EventTrackingRead(BaseModel):
    """What anyone holding a tracking number may see: no reporter, no staff names, no point."""

    tracking_no: str
    category_code: str
    category_name: str
    status: str
    township_code: str | None
    township_name: str | None
    department_name: str | None
    result: str
    created_at: datetime
    updated_at: datetime
    due_at: datetime | None
    closed_at: datetime | None
    steps: list[EventTrackingStep]
