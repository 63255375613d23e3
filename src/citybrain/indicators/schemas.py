"""Response models of the indicator API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict


class IndicatorProgressRead(BaseModel):
    """One row of ``service.progress_summary``."""

    code: str
    domain: str
    domain_en: str
    name: str
    name_en: str
    unit: str
    baseline_2020: float | None
    target_2025: float | None
    target_op: Literal[">=", ">", "=", "<="]
    basis: str
    department_code: str
    source: Literal["computed", "reported"]
    latest_value: float | None
    latest_date: date | None
    status: Literal["on_track", "at_risk", "behind", "no_data"]
    expected_now: float | None
    reason: str
    note: str
    synthetic: bool


class IndicatorReportRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    indicator_code: str
    value: float
    as_of: date
    note: str
    department_id: int | None
    reported_by: str
    evidence_filename: str
    evidence_content_type: str
    evidence_size: int
    evidence_sha256: str
    synthetic: bool
    created_at: datetime
