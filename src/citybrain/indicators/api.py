"""JSON API of the plan indicators (mounted at /api/indicators by ``core.api``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter

from citybrain.core.actor import Actor
from citybrain.core.auth import require
from citybrain.core.db import DbSession

from . import service
from .models import IndicatorReport
from .schemas import IndicatorProgressRead, IndicatorReportRead

router = APIRouter()
Reader = Annotated[Actor, require("indicators:read")]


@router.get("", response_model=list[IndicatorProgressRead],
            summary="Every plan indicator with its latest value and progress toward 2025")
def list_progress(db: DbSession, actor: Reader) -> list[dict[str, Any]]:
    return service.progress_summary(db)


@router.get("/{code}/reports", response_model=list[IndicatorReportRead],
            summary="The reports of one indicator, newest as-of date first")
def list_reports(db: DbSession, actor: Reader, code: str) -> list[IndicatorReport]:
    return service.history(db, code=code)
