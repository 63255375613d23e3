"""Data quality JSON API under /api/data: rules, runs (trend), department scores, correction tasks.

Reading needs ``data:read``; running checks and editing rules needs the right to publish the
resource (its provider department's staff, or a data administrator).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from citybrain.core.actor import Actor
from citybrain.core.auth import require
from citybrain.core.db import DbSession

from . import quality
from .enums import RuleKind

router = APIRouter()

Reader = Annotated[Actor, require("data:read")]


class RuleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item_code: str = Field(min_length=1, max_length=40)
    kind: RuleKind
    params: dict[str, Any] = Field(default_factory=dict)
    severity: Literal["error", "warning"] = "error"
    description: str = Field(default="", max_length=300)


@router.get("/entries/{entry_id}/rules", summary="Quality rules declared on a resource")
def list_rules(entry_id: int, db: DbSession, actor: Reader) -> list[dict[str, Any]]:
    return [quality.rule_dict(r) for r in quality.list_rules(db, entry_id=entry_id)]


@router.post("/entries/{entry_id}/rules", status_code=201, summary="Declare a quality rule on a field")
def add_rule(entry_id: int, body: RuleCreate, db: DbSession, actor: Reader) -> dict[str, Any]:
    rule = quality.add_rule(db, entry_id=entry_id, item_code=body.item_code, kind=body.kind.value,
                            params=body.params, severity=body.severity, description=body.description, actor=actor)
    return quality.rule_dict(rule)


@router.delete("/rules/{rule_id}", status_code=204, summary="Remove a quality rule")
def delete_rule(rule_id: int, db: DbSession, actor: Reader) -> Response:
    quality.delete_rule(db, rule_id=rule_id, actor=actor)
    return Response(status_code=204)


@router.post("/entries/{entry_id}/quality-runs", status_code=201, summary="Run the quality checks now")
def run_now(entry_id: int, db: DbSession, actor: Reader) -> dict[str, Any]:
    qrun = quality.run(db, entry_id=entry_id, actor=actor)
    return quality.run_dict(qrun)


@router.get("/entries/{entry_id}/quality-runs", summary="A resource's runs, oldest first (the trend)")
def trend(entry_id: int, db: DbSession, actor: Reader,
          limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
    return [quality.run_dict(r, full=False) for r in quality.trend(db, entry_id=entry_id, limit=limit)]


@router.get("/quality-runs/{run_id}", summary="One run with per-rule counts, samples and disagreements")
def get_run(run_id: int, db: DbSession, actor: Reader) -> dict[str, Any]:
    return quality.run_dict(quality.get_run(db, run_id=run_id))


@router.get("/quality/departments", summary="Quality score per department")
def department_scores(db: DbSession, actor: Reader) -> list[dict[str, Any]]:
    return quality.department_scores(db)


@router.get("/quality/tasks", summary="Correction tasks opened by quality runs")
def tasks(db: DbSession, actor: Reader, status: Literal["open", "resolved"] | None = None,
          department_id: int | None = None) -> list[dict[str, Any]]:
    return [quality.task_dict(t) for t in quality.tasks(db, status=status, department_id=department_id)]


@router.get("/quality/disagreements", summary="Cross-source disagreements of each resource's latest run")
def disagreements(db: DbSession, actor: Reader, department_id: int | None = None) -> list[dict[str, Any]]:
    return quality.disagreements(db, department_id=department_id)
