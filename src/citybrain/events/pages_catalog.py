"""Admin pages for the event catalog: every small class with its department, urgency and stage
time limits, and a form that edits them through ``catalog.update_category`` (validated and
audited there; this module only turns the form into a change set)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from citybrain.core.actor import Actor
from citybrain.core.auth import page_require
from citybrain.core.db import DbSession
from citybrain.core.errors import DomainError
from citybrain.org import service as org_service
from citybrain.web.render import gettext_for, render

from . import catalog
from .enums import TimeUnit, Urgency
from .models import EventCategory

router = APIRouter(include_in_schema=False)
CatalogAdmin = Annotated[Actor, Depends(page_require("events:admin"))]


def N_(msgid: str) -> str:  # noqa: N802 - marks an English msgid for extraction; translated in templates
    return msgid


KIND_LABELS = {"component": N_("Component"), "event": N_("Event")}
STAGE_LABELS = {
    "accept": N_("Acceptance"), "dispatch": N_("Dispatch"), "handle": N_("Handling"),
    "verify": N_("Verification"), "close": N_("Closing"),
}
UNIT_LABELS = {"working_hours": N_("working hours"), "working_days": N_("working days"),
               "natural_hours": N_("natural hours")}
URGENCY_LABELS = {"normal": N_("Normal"), "urgent": N_("Urgent"), "critical": N_("Critical")}
_CHECKBOXES = ("township_handles", "public", "active")
_TEXTS = ("name", "description", "department_code", "urgency", "keywords")


def _labels() -> dict[str, Any]:
    return {"category_kind_labels": KIND_LABELS, "stage_labels": STAGE_LABELS, "unit_labels": UNIT_LABELS,
            "urgency_labels": URGENCY_LABELS, "stages": catalog.STAGES, "units": list(TimeUnit),
            "urgencies": list(Urgency)}


def _large_classes(categories: list[EventCategory]) -> list[tuple[str, str]]:
    return sorted({(c.major_code, c.major_name) for c in categories})


@router.get("/admin/categories")
def categories_page(request: Request, db: DbSession, actor: CatalogAdmin, kind: str = "",
                    major: str = "") -> Response:
    every = catalog.list_categories(db, active_only=False)
    shown = [c for c in every if (not kind or c.kind == kind) and (not major or c.major_code == major)]
    departments = {d.code: d.name for d in org_service.list_departments(db)}
    return render(request, "events/catalog/list.html", {
        "categories": shown, "total": len(every), "large_classes": _large_classes(every),
        "query": {"kind": kind, "major": major}, "department_names": departments,
        "format_limit": catalog.format_limit, **_labels(),
    }, actor=actor)


def _edit_page(request: Request, db: DbSession, actor: Actor, category: EventCategory,
               form: dict[str, Any], status_code: int = 200, error: str = "") -> Response:
    return render(request, "events/catalog/edit.html", {
        "category": category, "form": form, "error": error,
        "departments": org_service.list_departments(db), **_labels(),
    }, actor=actor, status_code=status_code)


def _form_of(category: EventCategory) -> dict[str, Any]:
    """The stored values in the shape the form posts, so one template shows both."""
    form: dict[str, Any] = {key: getattr(category, key) for key in _TEXTS}
    form.update({key: "1" if getattr(category, key) else "" for key in _CHECKBOXES})
    for stage in catalog.STAGES:
        limit = (category.time_limits or {}).get(stage) or {}
        form[f"{stage}_value"] = catalog.format_limit(limit).split()[0] if limit else ""
        form[f"{stage}_unit"] = limit.get("unit", "")
    return form


@router.get("/admin/categories/{code}")
def category_edit_page(request: Request, db: DbSession, actor: CatalogAdmin, code: str) -> Response:
    category = catalog.get_category(db, code=code)
    return _edit_page(request, db, actor, category, _form_of(category))


def changes_from_form(form: dict[str, str]) -> dict[str, Any]:
    """Form fields → ``update_category`` changes; the service validates every value."""
    changes: dict[str, Any] = {key: form.get(key, "") for key in _TEXTS}
    changes.update({key: form.get(key) == "1" for key in _CHECKBOXES})
    changes["time_limits"] = {
        stage: {"value": form.get(f"{stage}_value", "").strip(), "unit": form.get(f"{stage}_unit", "").strip()}
        for stage in catalog.STAGES
    }
    return changes


@router.post("/admin/categories/{code}")
async def category_update(request: Request, db: DbSession, actor: CatalogAdmin, code: str) -> Response:
    category = catalog.get_category(db, code=code)
    raw = await request.form()
    form = {k: v for k, v in raw.items() if isinstance(v, str) and k != "csrf_token"}
    try:
        with db.begin_nested():
            catalog.update_category(db, code=code, changes=changes_from_form(form), actor=actor)
    except DomainError as exc:
        db.refresh(category)
        error = gettext_for(request)("Nothing was saved: %(reason)s") % {"reason": str(exc)}
        return _edit_page(request, db, actor, category, form, status_code=422, error=error)
    return RedirectResponse(f"/admin/categories?kind={category.kind}&major={category.major_code}", status_code=303)
