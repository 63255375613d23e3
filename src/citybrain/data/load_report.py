"""The load report (what was wrong, where), and matching a file's header to information items."""

from __future__ import annotations

from collections import Counter
from typing import Any

from .models import InfoItem
from .readers import FileProblem

MAX_ERRORS = 200
MAX_WARNINGS = 50
_VALUE_CHARS = 100


class Report:
    """Per-row errors (first ``MAX_ERRORS`` listed, all counted by reason), warnings, file problems."""

    def __init__(self) -> None:
        self.errors: list[dict[str, Any]] = []
        self.warnings: list[dict[str, Any]] = []
        self.error_counts: Counter[str] = Counter()
        self.warning_counts: Counter[str] = Counter()
        self.problems: list[str] = []
        self.header: list[dict[str, Any]] = []

    @property
    def failed(self) -> bool:
        return bool(self.problems or self.error_counts)

    def problem(self, message: str) -> None:
        self.problems.append(message)

    def error(self, row: int, column: str | None, value: Any, reason: str, **extra: Any) -> None:
        self.error_counts[reason] += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append({"row": row, "column": column, "value": _shown(value), "reason": reason, **extra})

    def warn(self, row: int, column: str | None, value: Any, reason: str) -> None:
        self.warning_counts[reason] += 1
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append({"row": row, "column": column, "value": _shown(value), "reason": reason})

    def as_dict(self, *, seconds: float, rows: int) -> dict[str, Any]:
        return {
            "problems": self.problems,
            "header": self.header,
            "errors_total": sum(self.error_counts.values()),
            "error_counts": dict(self.error_counts),
            "errors": self.errors,
            "warnings_total": sum(self.warning_counts.values()),
            "warning_counts": dict(self.warning_counts),
            "warnings": self.warnings,
            "seconds": round(seconds, 3),
            "rows_per_second": round(rows / seconds) if seconds > 0 else None,
        }


def _shown(value: Any) -> str:
    text = "" if value is None else (value.isoformat() if hasattr(value, "isoformat") else str(value))
    return text if len(text) <= _VALUE_CHARS else text[:_VALUE_CHARS] + "…"


def header_mapping(header: list[str], items: list[InfoItem]) -> list[InfoItem | None]:
    """Each header cell's item, by 信息项名称 or code. Unknown, duplicate or missing columns are refused:
    the entry's items define the table's shape."""
    if not header:
        raise FileProblem("no rows: there is no header and no data")
    by_label: dict[str, InfoItem] = {}
    for item in items:
        by_label[item.code] = item
        by_label.setdefault(item.name.strip(), item)
    mapped: list[InfoItem | None] = []
    problems, unknown, seen = [], [], {}
    for position, cell in enumerate(header, start=1):
        label = cell.strip().lstrip("\ufeff")
        if not label:
            problems.append(f"column {position} has no header")
            mapped.append(None)
            continue
        item = by_label.get(label) or by_label.get(label.lower())
        if item is None:
            unknown.append(label)
        elif item.code in seen:
            problems.append(f"columns {seen[item.code]!r} and {label!r} are both item {item.code}")
        else:
            seen[item.code] = label
        mapped.append(item)
    missing = [f"{i.name} ({i.code})" for i in items if i.required and i.code not in seen]
    if missing:
        problems.append(f"missing required column(s): {', '.join(missing)}")
    if unknown:
        known = ", ".join(f"{i.name} ({i.code})" for i in items)
        problems.append(f"unknown column(s): {', '.join(unknown)}; the resource's items are: {known}")
    if problems:
        raise FileProblem("; ".join(problems))
    return mapped
