"""Pages: the indicator table, one indicator's history with the report form, evidence files,
and the annual evaluation report as HTML and PDF."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from starlette.datastructures import UploadFile

from citybrain.core.actor import Actor
from citybrain.core.auth import page_require
from citybrain.core.db import DbSession
from citybrain.core.errors import DomainError, Invalid
from citybrain.org import service as org_service
from citybrain.web.render import gettext_for, language, render

from . import computed, evidence, report, service

router = APIRouter(include_in_schema=False)
Reader = Annotated[Actor, Depends(page_require("indicators:read"))]
Reporter = Annotated[Actor, Depends(page_require("indicators:report"))]


def sparkline(values: list[float], width: int = 96, height: int = 24) -> str:
    """SVG polyline points for a small history chart (drawn server-side: no script needed)."""
    if len(values) < 2:
        return ""
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    step = width / (len(values) - 1)
    return " ".join(f"{i * step:.1f},{height - 2 - (v - low) / span * (height - 4):.1f}" for i, v in enumerate(values))


def _helpers(request: Request) -> dict[str, Any]:
    _ = gettext_for(request)
    lang = language(request)
    return {
        "number": report.number,
        "target_text": lambda row: report.target_text(row, _),
        "baseline_text": lambda row: report.baseline_text(row, _),
        "status_label": lambda status: report.status_label(status, _),
        "source_label": lambda source: report.source_label(source, _),
        "reason_text": lambda reason: report.reason_text(reason, _),
        "loc": lambda row, key: report.localized(row, key, lang),
        "badges": report.STATUS_BADGES,
    }


@router.get("/indicators")
def indicators_page(request: Request, db: DbSession, actor: Reader) -> Response:
    rows = service.progress_summary(db)
    histories = service.all_history(db)
    lines = {code: sparkline([r.value for r in reports]) for code, reports in histories.items()}
    return render(request, "indicators/list.html", {
        "rows": rows, "lines": lines, "year": computed.today().year, **_helpers(request),
    }, actor=actor)


def _detail(request: Request, db: DbSession, actor: Actor, code: str, status_code: int = 200,
            **ctx: Any) -> Response:
    indicator = service.get_indicator(db, code=code)
    row = next((r for r in service.progress_summary(db) if r["code"] == code), None)
    departments = {d.id: d.name for d in org_service.list_departments(db)}
    responsible = next((d for d in org_service.list_departments(db) if d.code == indicator.department_code), None)
    ctx.setdefault("form", {})
    return render(request, "indicators/detail.html", {
        "indicator": indicator, "row": row, "history": service.history(db, code=code),
        "can_report": service.can_report(db, indicator=indicator, actor=actor),
        "department_names": departments, "responsible": responsible, "today": computed.today().isoformat(),
        "max_mb": evidence.MAX_EVIDENCE_BYTES // (1024 * 1024), **_helpers(request), **ctx,
    }, actor=actor, status_code=status_code)


@router.get("/indicators/{code}")
def indicator_page(request: Request, db: DbSession, actor: Reader, code: str, notice: str = "") -> Response:
    return _detail(request, db, actor, code, notice=notice == "saved")


def explain(request: Request, exc: DomainError) -> str:
    """One readable line, in the reader's language, for a refused report."""
    _ = gettext_for(request)
    reason = exc.details.get("reason")
    if reason == "out_of_range":
        return _("The value is outside the valid range %(min)s–%(max)s.") % {
            "min": report.number(exc.details["min"]), "max": report.number(exc.details["max"])}  # type: ignore[arg-type]
    if reason == "missing":
        return _("Evidence is required: attach a PDF, DOCX, XLSX, PNG or JPEG file.")
    if reason == "not_document":
        return _("The evidence file is not a document; accepted: PDF, DOCX, XLSX, PNG, JPEG.")
    if reason == "too_large":
        return _("The evidence file may be at most %(mb)s MB.") % {"mb": evidence.MAX_EVIDENCE_BYTES // (1024 * 1024)}
    if reason == "future":
        return _("The as-of date cannot be in the future.")
    if reason == "too_early":
        return _("The as-of date must be in 2020 or later.")
    if reason == "not_a_number":
        return _("The value must be a number.")
    if reason == "bad_date":
        return _("The as-of date must be a date (YYYY-MM-DD).")
    return exc.message


def _parse_value(text: str) -> float:
    try:
        return float(text.strip())
    except ValueError:
        raise Invalid("the value must be a number", field="value", reason="not_a_number") from None


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise Invalid("the as-of date must be YYYY-MM-DD", field="as_of", reason="bad_date") from None


@router.post("/indicators/{code}/reports")
async def report_create(request: Request, db: DbSession, actor: Reporter, code: str) -> Response:
    raw = await request.form()
    form = {k: v for k, v in raw.items() if isinstance(v, str) and k != "csrf_token"}
    upload = raw.get("evidence")
    content, filename = b"", ""
    if isinstance(upload, UploadFile):
        content = await upload.read(evidence.MAX_EVIDENCE_BYTES + 1)
        filename = upload.filename or ""
    indicator = service.get_indicator(db, code=code)
    service.check_can_report(db, indicator=indicator, actor=actor)  # Forbidden: the error page (403)
    try:
        with db.begin_nested():
            service.submit_report(db, code=code, value=_parse_value(form.get("value", "")),
                                  as_of=_parse_date(form.get("as_of", "")), note=form.get("note", ""),
                                  evidence_bytes=content, filename=filename, actor=actor,
                                  data_dir=request.app.state.settings.data_dir)
    except Invalid as exc:
        return _detail(request, db, actor, code, status_code=422, error=explain(request, exc), form=form)
    return RedirectResponse(f"/indicators/{code}?notice=saved", status_code=303)


@router.get("/indicators/evidence/{report_id:int}")
def evidence_file(request: Request, db: DbSession, actor: Reader, report_id: int) -> Response:
    row = service.get_report(db, report_id=report_id)
    path = evidence.stored_file(row.evidence_path, data_dir=request.app.state.settings.data_dir)
    return FileResponse(path, media_type=row.evidence_content_type, filename=row.evidence_filename,
                        headers={"X-Content-Type-Options": "nosniff"})


@router.get("/indicators/report/{year:int}.pdf")
def annual_report_pdf(request: Request, db: DbSession, actor: Reader, year: int) -> Response:
    data = report.render_pdf(report.build_report(db, year=year), _=gettext_for(request), lang=language(request))
    return Response(data, media_type="application/pdf", headers={
        "Content-Disposition": f'inline; filename="indicators-{year}.pdf"'})


@router.get("/indicators/report/{year:int}")
def annual_report_page(request: Request, db: DbSession, actor: Reader, year: int) -> Response:
    annual = report.build_report(db, year=year)
    _ = gettext_for(request)
    return render(request, "indicators/report.html", {
        "report": annual, "method": report.method_text(_), "status_order": list(annual.counts),
        **_helpers(request),
    }, actor=actor)
