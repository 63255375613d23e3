"""The annual evaluation report (监测评估) of the plan's indicators: its data, shared by the
HTML page and the PDF, and the PDF itself (reportlab; Chinese through the built-in CID font
STSong-Light, so no font file is needed).

Labels take a ``gettext`` function so the report speaks the reader's language.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from citybrain.core import clock
from citybrain.core.errors import NotFound

from . import computed, progress, service

Gettext = Callable[[str], str]
FIRST_YEAR = 2021  # the plan runs 2021–2025; later years evaluate against the 2025 target
PDF_FONT = "STSong-Light"
OP_SYMBOLS = {">=": "≥", ">": ">", "=": "", "<=": "≤"}
STATUS_BADGES = {"on_track": "ok", "at_risk": "warning", "behind": "danger", "no_data": "muted"}


def number(value: float | None) -> str:
    """84.0 → "84", 84.567 → "84.57", None → ""."""
    if value is None:
        return ""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def target_text(row: dict[str, Any], _: Gettext) -> str:
    if row["target_2025"] is None:
        return _("per plan")
    return f"{OP_SYMBOLS.get(row['target_op'], '')}{number(row['target_2025'])}"


def baseline_text(row: dict[str, Any], _: Gettext) -> str:
    return _("per plan") if row["baseline_2020"] is None else number(row["baseline_2020"])


def status_label(status: str, _: Gettext) -> str:
    return {"on_track": _("On track"), "at_risk": _("At risk"), "behind": _("Behind"),
            "no_data": _("No data")}.get(status, status)


def source_label(source: str, _: Gettext) -> str:
    return {"computed": _("Computed"), "reported": _("Reported by department")}.get(source, source)


def reason_text(reason: str, _: Gettext) -> str:
    known = {
        "data pool not connected": _("Data pool not connected"),
        "no video devices registered (IoT not connected)": _("No video devices registered (IoT not connected)"),
        "no report yet": _("No report yet"),
        "no value yet": _("No value yet"),
        "no target recorded (per plan)": _("No target recorded (per plan)"),
        "computed values are not kept for past dates": _("Computed values are not kept for past dates"),
        "no provider registered": _("No provider registered"),
        "provider failed": _("Provider failed"),
    }
    return known.get(reason, reason)


def localized(row: dict[str, Any], key: str, lang: str) -> str:
    """Chinese names from the plan; the English ones when the reader chose English."""
    return (row.get(f"{key}_en") or row[key]) if lang == "en" else row[key]


@dataclass
class AnnualReport:
    year: int
    evaluated_on: date
    generated_at: datetime
    rows: list[dict[str, Any]]
    reports_in_year: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        found = dict.fromkeys(progress.STATUSES, 0)
        for row in self.rows:
            found[row["status"]] += 1
        return found

    @property
    def has_synthetic(self) -> bool:
        return any(row.get("synthetic") for row in self.rows)


def check_year(year: int) -> None:
    if not FIRST_YEAR <= year <= computed.today().year:
        raise NotFound(f"no evaluation report for {year}: years {FIRST_YEAR}–{computed.today().year}")


def build_report(db: Session, *, year: int) -> AnnualReport:
    """Where each indicator stood at the end of ``year`` (or today, for the current year)."""
    check_year(year)
    on = min(date(year, 12, 31), computed.today())
    rows = service.progress_summary(db, on=on)
    in_year = {
        code: [r for r in reports if r.as_of.year == year]
        for code, reports in service.all_history(db, until=on).items()
    }
    return AnnualReport(year=year, evaluated_on=on, generated_at=clock.now(), rows=rows,
                        reports_in_year={k: v for k, v in in_year.items() if v})


# --- PDF ---------------------------------------------------------------------------------


def _register_font() -> None:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont

    if PDF_FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(PDF_FONT))


def render_pdf(report: AnnualReport, *, _: Gettext, lang: str) -> bytes:
    from xml.sax.saxutils import escape

    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    _register_font()
    body = ParagraphStyle("body", fontName=PDF_FONT, fontSize=9, leading=13, wordWrap="CJK")
    small = ParagraphStyle("small", parent=body, fontSize=8, leading=11)
    title = ParagraphStyle("title", parent=body, fontSize=16, leading=22, spaceAfter=6)
    heading = ParagraphStyle("heading", parent=body, fontSize=12, leading=17, spaceBefore=8, spaceAfter=4)

    def p(text: str, style: ParagraphStyle = small) -> Paragraph:
        return Paragraph(escape(text), style)

    story: list[Any] = [
        p(_("Plan indicators: annual evaluation report %(year)s") % {"year": report.year}, title),
        p(_("Zhoucun District smart-city plan 2021–2025, table 1 (监测评估)"), body),
        p(_("Evaluated on %(date)s; generated at %(at)s") % {
            "date": report.evaluated_on.isoformat(),
            "at": report.generated_at.astimezone(computed.CHINA).strftime("%Y-%m-%d %H:%M")}, body),
        Spacer(1, 4 * mm),
        p(_("Summary"), heading),
        p("  ".join(f"{status_label(s, _)}: {n}" for s, n in report.counts.items()), body),
        p(_("Indicators"), heading),
    ]
    header = [_("No."), _("Domain"), _("Indicator"), _("Unit"), _("2020 baseline"), _("2025 target"),
              _("Latest value"), _("As of"), _("Expected now"), _("Status"), _("Source")]
    data = [[p(h) for h in header]]
    for i, row in enumerate(report.rows, start=1):
        latest = number(row["latest_value"]) + (" *" if row.get("synthetic") else "")
        status = status_label(row["status"], _)
        if row["status"] == "no_data" and row.get("reason"):
            status += f" ({reason_text(row['reason'], _)})"
        data.append([p(str(i)), p(localized(row, "domain", lang)), p(localized(row, "name", lang)), p(row["unit"]),
                     p(baseline_text(row, _)), p(target_text(row, _)), p(latest), p(row["latest_date"] or ""),
                     p(number(row["expected_now"])), p(status), p(source_label(row["source"], _))])
    widths = [10, 24, 62, 14, 20, 20, 20, 22, 20, 38, 18]
    table = Table(data, colWidths=[w * mm for w in widths], repeatRows=1)
    table.setStyle(TableStyle([
        ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8edf3")),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ]))
    story.append(table)
    story.append(p(_("Reports filed in %(year)s") % {"year": report.year}, heading))
    names = {row["code"]: localized(row, "name", lang) for row in report.rows}
    if report.reports_in_year:
        for code, reports in report.reports_in_year.items():
            values = "; ".join(f"{r.as_of.isoformat()} {number(r.value)}" for r in reports)
            story.append(p(f"{names.get(code, code)}: {values}"))
    else:
        story.append(p(_("No reports were filed in this year.")))
    story.append(p(_("Method"), heading))
    story.append(p(method_text(_), small))
    if report.has_synthetic:
        story.append(p("* " + _("Synthetic demo value, not a real statistic."), small))
    out = io.BytesIO()
    doc = SimpleDocTemplate(out, pagesize=landscape(A4), leftMargin=12 * mm, rightMargin=12 * mm,
                            topMargin=12 * mm, bottomMargin=12 * mm,
                            title=f"Plan indicators {report.year}", author="citybrain")
    doc.build(story)
    return out.getvalue()


def method_text(_: Gettext) -> str:
    return _("Expected value: linear from the 2020 baseline (2020-12-31) to the 2025 target (2025-12-31), "
             "the target itself afterwards. On track: the latest value is at or beyond the expected value; "
             "at risk: short of it by at most a tenth of the gap between baseline and target; behind: further short; "
             "no data: no value or no target. Without a baseline the value is compared with the target.")
