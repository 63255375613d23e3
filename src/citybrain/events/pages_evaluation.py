"""The evaluation page (综合评价) with CSV and XLSX exports: the district for leaders and the
command centre, one's own department or township for staff and grid workers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from citybrain.core.actor import Actor
from citybrain.core.auth import page_require
from citybrain.core.db import DbSession
from citybrain.core.errors import Forbidden
from citybrain.core.permissions import Role
from citybrain.org import service as org_service
from citybrain.web.render import gettext_for, render

from . import evaluation

router = APIRouter(include_in_schema=False)

Month = Annotated[str, Query(max_length=7)]
By = Annotated[str, Query(pattern="^(department|township)$")]


def _scope(db: DbSession, actor: Actor) -> dict[str, Any]:
    """Leaders and the command centre see the district; department staff their own department's
    cases; grid workers their township's."""
    if actor.sees_all_departments:
        return {}
    if actor.department_id is None:
        raise Forbidden("the evaluation needs a department or a leader's role")
    if actor.role == Role.GRID_WORKER:
        dept = org_service.get_department(db, department_id=actor.department_id)
        if not dept.division_code:
            raise Forbidden("your department has no township")
        return {"township_code": dept.division_code}
    return {"department_id": actor.department_id}


Reader = Annotated[Actor, Depends(page_require("events:read"))]


def _compute(db: DbSession, actor: Actor, month: str, by: str) -> tuple[str, list[evaluation.Row]]:
    label, start, end = evaluation.parse_month(month)
    return label, evaluation.evaluate(db, period_start=start, period_end=end, by=by, **_scope(db, actor))


@router.get("/evaluation")
def evaluation_page(request: Request, db: DbSession, actor: Reader, month: Month = "",
                    by: By = "department") -> Response:
    _ = gettext_for(request)
    label, rows = _compute(db, actor, month, by)
    total = evaluation.total(rows, name=_("Total")) if rows else None
    chart = {
        "names": [row.name if row.key else _("Unassigned") for row in rows],
        "on_time_handle": [evaluation.cell(row, "on_time_handle_rate") for row in rows],
        "on_time_close": [evaluation.cell(row, "on_time_close_rate") for row in rows],
        "labels": {"on_time_handle": _("On-time handling rate %"),
                   "on_time_close": _("On-time closure rate %")},
    }
    return render(request, "events/evaluation.html", {
        "month": label, "by": by, "rows": rows, "total": total, "chart": chart,
        "columns": [(column, _(header)) for column, header in evaluation.COLUMNS],
        "cell": evaluation.cell,
    }, actor=actor)


def _headers(request: Request) -> list[str]:
    _ = gettext_for(request)
    return [_(header) for _column, header in evaluation.COLUMNS]


@router.get("/evaluation.csv")
def evaluation_csv(request: Request, db: DbSession, actor: Reader, month: Month = "",
                   by: By = "department") -> Response:
    _ = gettext_for(request)
    label, rows = _compute(db, actor, month, by)
    body = evaluation.to_csv(rows, _headers(request), total_name=_("Total"))
    return Response(body.encode("utf-8"), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="evaluation-{by}-{label}.csv"'})


@router.get("/evaluation.xlsx")
def evaluation_xlsx(request: Request, db: DbSession, actor: Reader, month: Month = "",
                    by: By = "department") -> Response:
    _ = gettext_for(request)
    label, rows = _compute(db, actor, month, by)
    body = evaluation.to_xlsx(rows, _headers(request), title=label, total_name=_("Total"))
    return Response(body, media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    headers={"Content-Disposition": f'attachment; filename="evaluation-{by}-{label}.xlsx"'})
