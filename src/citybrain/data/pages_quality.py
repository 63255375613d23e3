"""The quality dashboard (一数一源、多元校核): scores per department with trends, cross-source
disagreements, correction tasks, and a run's details.

Sample failing values can be personal data, so a run's details and the disagreement lists are
shown to the provider department and data administrators only; every data reader sees scores.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from citybrain.core import clock
from citybrain.core.actor import Actor
from citybrain.core.auth import page_require
from citybrain.core.db import DbSession
from citybrain.core.errors import Forbidden
from citybrain.web.render import render

from . import catalog, quality
from .models import CatalogEntry, QualityRun
from .pages import CHINA, common

router = APIRouter(include_in_schema=False)
Reader = Annotated[Actor, Depends(page_require("data:read"))]

TREND_DAYS = 90


def daily_trend(db: Session, *, department_ids: list[int]) -> dict[str, Any]:
    """Per department and day: the row-weighted score of each resource's last run that day."""
    since = clock.now() - timedelta(days=TREND_DAYS)
    runs = db.execute(select(QualityRun.entry_id, QualityRun.created_at, QualityRun.score, QualityRun.rows,
                             CatalogEntry.provider_department_id)
                      .join(CatalogEntry, CatalogEntry.id == QualityRun.entry_id)
                      .where(QualityRun.created_at >= since).order_by(QualityRun.created_at, QualityRun.id)).all()
    last: dict[tuple[int, str], dict[int, tuple[float, int]]] = defaultdict(dict)
    days: set[str] = set()
    for entry_id, at, score, rows, dept in runs:
        if dept not in department_ids:
            continue
        day = at.astimezone(CHINA).strftime("%Y-%m-%d")
        days.add(day)
        last[(dept, day)][entry_id] = (score, rows)
    ordered = sorted(days)
    series: dict[int, list[float | None]] = {}
    for dept in department_ids:
        current: dict[int, tuple[float, int]] = {}
        points: list[float | None] = []
        for day in ordered:
            current.update(last.get((dept, day), {}))  # a resource keeps its score until re-run
            weight = sum(max(r, 1) for _s, r in current.values())
            points.append(round(sum(s * max(r, 1) for s, r in current.values()) / weight, 2) if weight else None)
        if any(p is not None for p in points):
            series[dept] = points
    return {"days": ordered, "series": series}


@router.get("/data/quality")
def dashboard(request: Request, db: DbSession, actor: Reader) -> Response:
    scores = quality.department_scores(db)
    sees_all = actor.can("data:admin") or actor.role == "leader"
    mine = None if sees_all else actor.department_id
    trend = daily_trend(db, department_ids=[s["department_id"] for s in scores])
    names = {s["department_id"]: s["department_name"] for s in scores}
    entries = list(db.scalars(select(CatalogEntry).where(CatalogEntry.quality_score.is_not(None))
                              .order_by(CatalogEntry.quality_score, CatalogEntry.code).limit(20)))
    tasks = quality.tasks(db, status="open", department_id=mine) if (sees_all or mine) else []
    names_by_entry = dict(db.execute(select(CatalogEntry.id, CatalogEntry.name)
                                     .where(CatalogEntry.id.in_({t.entry_id for t in tasks}))).all())
    ctx = {**common(db), "scores": scores, "sees_all": sees_all, "entries": entries, "entry_names": names_by_entry,
           "chart": {"days": trend["days"], "series": [{"name": names[d], "data": pts}
                                                       for d, pts in trend["series"].items()]},
           "tasks": tasks,
           "disagreements": quality.disagreements(db, department_id=mine) if (sees_all or mine) else []}
    return render(request, "data/quality.html", ctx, actor=actor)


@router.get("/data/quality/runs/{run_id}")
def run_page(request: Request, run_id: int, db: DbSession, actor: Reader) -> Response:
    qrun = quality.get_run(db, run_id=run_id)
    entry = catalog.get_entry(db, entry_id=qrun.entry_id)
    if not (actor.can("data:admin") or actor.role == "leader" or actor.department_id == entry.provider_department_id):
        raise Forbidden("a run's failing values are shown to the provider department and data administrators only")
    runs = quality.trend(db, entry_id=entry.id, limit=30)
    ctx = {**common(db), "run": qrun, "entry": entry,
           "chart": {"days": [r.created_at.astimezone(CHINA).strftime("%m-%d %H:%M") for r in runs],
                     "series": [{"name": entry.name, "data": [r.score for r in runs]}]}}
    return render(request, "data/quality_run.html", ctx, actor=actor)


@router.post("/data/entries/{entry_id}/quality")
def run_now(request: Request, entry_id: int, db: DbSession, actor: Reader) -> Response:
    qrun = quality.run(db, entry_id=entry_id, actor=actor)  # checks data:publish of the provider
    return RedirectResponse(f"/data/quality/runs/{qrun.id}", status_code=303)
