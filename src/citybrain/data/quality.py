"""Data quality (一数一源、多元校核): rules as data, runs, scores, correction tasks.

A run reads the resource's rows into a polars frame straight through the database driver
(PostgreSQL ``COPY ... TO STDOUT`` as CSV; SQLite cursor fetches in large batches), evaluates
every rule with ``quality_checks`` and stores the outcome. Items that name an authoritative source
in the catalog (``source_entry_code``/``source_item_code``) are cross-checked against it on every
run without a rule row. Failures of error rules open (or update) the one open correction task of
the provider department; a later run without them resolves it.
"""

from __future__ import annotations

import io
import re
import time
from collections import defaultdict
from datetime import date
from typing import Any

import polars as pl
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citybrain.core import audit, clock
from citybrain.core.actor import Actor
from citybrain.core.errors import Invalid, NotFound
from citybrain.org import service as org_service

from . import catalog, quality_checks, storage
from .enums import ItemType, RuleKind, TaskStatus
from .models import CatalogEntry, CorrectionTask, QualityRule, QualityRun
from .quality_checks import RuleSpec

SEVERITIES = ("error", "warning")
_PARAMS: dict[str, tuple[set[str], set[str]]] = {  # kind: (required, optional)
    "not_null": (set(), set()), "unique": (set(), set()), "in_set": ({"values"}, set()),
    "range": (set(), {"min", "max"}), "regex": ({"pattern"}, set()), "date": (set(), {"min", "max", "format"}),
    "reference": ({"entry_code", "item_code"}, set()), "id_number": (set(), {"regions"}),
    "credit_code": (set(), set()), "org_code": (set(), set()), "mobile": (set(), set()),
    "cross_source": ({"source_entry_code", "source_item_code", "key"}, set()),
}
_FETCH_ROWS = 200_000


# --- reading rows --------------------------------------------------------------------------------


def _dtype(item_type: str) -> pl.DataType:
    return {"integer": pl.Int64(), "decimal": pl.Float64()}.get(item_type, pl.String())


def _typed(frame: pl.DataFrame, types: dict[str, str]) -> pl.DataFrame:
    casts = []
    for code, kind in types.items():
        if kind == ItemType.DATE:
            casts.append(pl.col(code).cast(pl.String).str.to_date("%Y-%m-%d", strict=False))
        elif kind == ItemType.BOOLEAN:
            casts.append(pl.col(code).cast(pl.String).is_in(["t", "1", "true", "True"]).alias(code))
    return frame.with_columns(casts) if casts else frame


def read_frame(db: Session, entry: CatalogEntry, columns: list[str]) -> pl.DataFrame:
    """``_id`` and the named item columns of an entry's rows, typed, ordered by ``_id``."""
    items = {i.code: i.data_type for i in entry.items}
    cols = ["_id", *dict.fromkeys(c for c in columns if c != "_id")]
    types = {c: items[c] for c in cols if c != "_id"}
    schema = {"_id": pl.Int64(), **{c: _dtype(t) for c, t in types.items()}}
    if not storage.exists(db, entry):
        return pl.DataFrame(schema=schema)
    db.flush()
    names = ", ".join(f'"{c}"' for c in cols)  # item codes are [a-z][a-z0-9_]*: safe to quote
    sql = f'SELECT {names} FROM "{storage.table_name(entry.id)}" ORDER BY "_id"'
    raw = db.connection().connection.driver_connection
    if db.get_bind().dialect.name == "postgresql":
        buf = io.BytesIO()
        with raw.cursor() as cur, cur.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER)") as copy:
            for block in copy:
                buf.write(block)
        buf.seek(0)
        string_schema = {c: pl.String() if c in types and types[c] in ("date", "datetime", "boolean") else d
                         for c, d in schema.items()}
        frame = pl.read_csv(buf, schema=string_schema) if buf.getbuffer().nbytes else pl.DataFrame(schema=schema)
    else:
        cur = raw.cursor()
        cur.execute(sql)
        loose = {c: (pl.String() if t in ("date", "datetime") else pl.Int64() if t == "boolean" else schema[c])
                 for c, t in types.items()}
        parts = []
        while batch := cur.fetchmany(_FETCH_ROWS):
            parts.append(pl.DataFrame(batch, schema={"_id": pl.Int64(), **loose}, orient="row"))
        cur.close()
        frame = pl.concat(parts) if parts else pl.DataFrame(schema={"_id": pl.Int64(), **loose})
    return _typed(frame, types)


# --- rules ---------------------------------------------------------------------------------------


def _item_codes(entry: CatalogEntry) -> set[str]:
    return {i.code for i in entry.items}


def _target(db: Session, entry_code: Any, item_code: Any, what: str) -> CatalogEntry:
    target = db.scalar(select(CatalogEntry).where(CatalogEntry.code == str(entry_code)))
    if target is None:
        raise Invalid(f"{what}: no catalog entry with code {entry_code!r}")
    if item_code not in _item_codes(target):
        raise Invalid(f"{what}: {entry_code} has no information item {item_code!r}")
    return target


def _check_bounds(params: dict[str, Any], item_type: str, kind: str) -> None:
    lo, hi = params.get("min"), params.get("max")
    if kind == "range" and lo is None and hi is None:
        raise Invalid("a range rule needs min, max or both")
    as_date = kind == "date" or item_type == ItemType.DATE
    try:
        bounds = [date.fromisoformat(str(v)) if as_date else float(v) for v in (lo, hi) if v is not None]
    except (TypeError, ValueError):
        raise Invalid(f"{kind} bounds must be {'ISO dates (YYYY-MM-DD)' if as_date else 'numbers'}") from None
    if len(bounds) == 2 and bounds[0] > bounds[1]:
        raise Invalid(f"{kind} min {lo} is greater than max {hi}")


def _check_regex(pattern: Any) -> None:
    if not isinstance(pattern, str) or not pattern or len(pattern) > 500:
        raise Invalid("regex pattern must be a non-empty string of at most 500 characters")
    try:
        re.compile(pattern)
        pl.Series(["x"]).str.contains(pattern)
    except (re.error, pl.exceptions.PolarsError) as exc:
        raise Invalid(f"regex pattern does not compile: {str(exc).splitlines()[0]}") from None


def _check_params(db: Session, entry: CatalogEntry, item_code: str, kind: str, params: dict[str, Any]) -> None:
    required, optional = _PARAMS[kind]
    missing, extra = required - set(params), set(params) - required - optional
    if missing:
        raise Invalid(f"a {kind} rule needs parameter(s) {', '.join(sorted(missing))}")
    if extra:
        raise Invalid(f"a {kind} rule does not take parameter(s) {', '.join(sorted(extra))}")
    item_type = next(i.data_type for i in entry.items if i.code == item_code)
    if kind == "in_set":
        values = params["values"]
        if not isinstance(values, list) or not values or len(values) > 1000 or \
                not all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in values):
            raise Invalid("in_set values must be a non-empty list of at most 1000 strings or numbers")
    elif kind in ("range", "date"):
        _check_bounds(params, item_type, kind)
        fmt = params.get("format", "%Y-%m-%d")
        if kind == "date" and (not isinstance(fmt, str) or not all(f in fmt for f in ("%Y", "%m", "%d"))):
            raise Invalid("date format must contain %Y, %m and %d")
    elif kind == "regex":
        _check_regex(params["pattern"])
    elif kind == "id_number" and "regions" in params:
        regions = params["regions"]
        if not isinstance(regions, list) or not regions or \
                not all(isinstance(r, str) and re.fullmatch(r"[1-9][0-9]{1,5}", r) for r in regions):
            raise Invalid("id_number regions must be a non-empty list of 2-6 digit region code prefixes")
    elif kind == "reference":
        _target(db, params["entry_code"], params["item_code"], "reference")
    elif kind == "cross_source":
        _check_cross_source(db, entry, params)


def _check_cross_source(db: Session, entry: CatalogEntry, params: dict[str, Any]) -> None:
    if params["source_entry_code"] == entry.code:
        raise Invalid("cross_source: the source must be another resource")
    source = _target(db, params["source_entry_code"], params["source_item_code"], "cross_source")
    key = params["key"]
    if not isinstance(key, list) or len(key) != 2 or not all(isinstance(k, str) for k in key):
        raise Invalid("cross_source key must be [item code here, item code in the source]")
    if key[0] not in _item_codes(entry):
        raise Invalid(f"cross_source key: this resource has no information item {key[0]!r}")
    if key[1] not in _item_codes(source):
        raise Invalid(f"cross_source key: {source.code} has no information item {key[1]!r}")


def add_rule(db: Session, *, entry_id: int, item_code: str, kind: str, params: dict[str, Any] | None = None,
             severity: str = "error", actor: Actor, description: str = "") -> QualityRule:
    entry = catalog.get_entry(db, entry_id=entry_id)
    catalog.check_can_publish(actor, entry)
    if kind not in set(RuleKind):
        raise Invalid(f"rule kind must be one of {', '.join(RuleKind)}")
    if severity not in SEVERITIES:
        raise Invalid("severity must be error or warning")
    if item_code not in _item_codes(entry):
        raise Invalid(f"{entry.code} has no information item {item_code!r}")
    params = dict(params or {})
    _check_params(db, entry, item_code, kind, params)
    rule = QualityRule(entry_id=entry.id, item_code=item_code, kind=kind, params=params, severity=severity,
                       description=description[:300], active=True, created_at=clock.now())
    db.add(rule)
    db.flush()
    audit.record(db, actor=actor, action="data.rule.add", object_type="data_quality_rule", object_id=str(rule.id),
                 after=rule_dict(rule))
    return rule


def delete_rule(db: Session, *, rule_id: int, actor: Actor) -> None:
    rule = db.get(QualityRule, rule_id)
    if rule is None:
        raise NotFound(f"quality rule {rule_id} not found")
    catalog.check_can_publish(actor, catalog.get_entry(db, entry_id=rule.entry_id))
    audit.record(db, actor=actor, action="data.rule.delete", object_type="data_quality_rule",
                 object_id=str(rule.id), before=rule_dict(rule))
    db.delete(rule)
    db.flush()


def list_rules(db: Session, *, entry_id: int) -> list[QualityRule]:
    catalog.get_entry(db, entry_id=entry_id)
    return list(db.scalars(select(QualityRule).where(QualityRule.entry_id == entry_id).order_by(QualityRule.id)))


def rule_dict(rule: QualityRule) -> dict[str, Any]:
    return {"id": rule.id, "entry_id": rule.entry_id, "item_code": rule.item_code, "kind": rule.kind,
            "params": rule.params, "severity": rule.severity, "description": rule.description,
            "active": rule.active, "created_at": rule.created_at}


# --- runs ----------------------------------------------------------------------------------------


def _declared_sources(entry: CatalogEntry) -> list[RuleSpec]:
    """一数一源 declared on items: a cross-source check each, keyed on the entries' key fields."""
    specs = []
    for item in entry.items:
        if item.source_entry_code and item.source_item_code:
            specs.append(RuleSpec(item=item.code, kind="cross_source", params={
                "source_entry_code": item.source_entry_code, "source_item_code": item.source_item_code, "key": []},
                description="authoritative source declared in the catalog (一数一源)"))
    return specs


def _resolve(db: Session, entry: CatalogEntry, spec: RuleSpec) -> None:
    """Fetch what a reference or cross-source rule compares with, or say why it cannot run."""
    p = spec.params
    code, item = (p["entry_code"], p["item_code"]) if spec.kind == "reference" else \
        (p["source_entry_code"], p["source_item_code"])
    target = db.scalar(select(CatalogEntry).where(CatalogEntry.code == code))
    if target is None or item not in _item_codes(target):
        spec.skipped = f"{code} or its item {item} no longer exists"
        return
    if spec.kind == "reference":
        spec.values = read_frame(db, target, [item])[item]
        return
    if not p["key"]:
        if not entry.key_fields or len(entry.key_fields) != len(target.key_fields) or len(entry.key_fields) != 1:
            spec.skipped = f"{entry.code} and {code} need one key field each to be matched"
            return
        p["key"] = [entry.key_fields[0], target.key_fields[0]]
    frame = read_frame(db, target, [p["key"][1], item])
    spec.source = frame.select(pl.col(p["key"][1]).alias("key"), pl.col(item).alias("value"))


def run(db: Session, *, entry_id: int, actor: Actor) -> QualityRun:
    """Check the entry's current rows against its rules and declared sources, and store the run."""
    entry = catalog.get_entry(db, entry_id=entry_id)
    catalog.check_can_publish(actor, entry)
    started = time.perf_counter()
    rules = [r for r in list_rules(db, entry_id=entry.id) if r.active]
    specs = [RuleSpec(item=r.item_code, kind=r.kind, params=dict(r.params), severity=r.severity, rule_id=r.id,
                      description=r.description) for r in rules]
    explicit = {(s.item, s.params.get("source_entry_code")) for s in specs if s.kind == "cross_source"}
    specs += [s for s in _declared_sources(entry) if (s.item, s.params["source_entry_code"]) not in explicit]
    for spec in specs:
        if spec.item not in _item_codes(entry):
            spec.skipped = f"item {spec.item} no longer exists"
        elif spec.kind in ("reference", "cross_source"):
            _resolve(db, entry, spec)
    needed = {s.item for s in specs if not s.skipped} | {s.params["key"][0] for s in specs
                                                          if s.kind == "cross_source" and not s.skipped}
    frame = read_frame(db, entry, sorted(needed))
    result = quality_checks.evaluate(frame, specs, today=clock.now().date())
    qrun = QualityRun(entry_id=entry.id, version=entry.version, rows=result.rows, failed_rows=result.failed_rows,
                      score=result.score, results=_jsonable(result.results),
                      disagreements=_jsonable(result.disagreements), seconds=round(time.perf_counter() - started, 3),
                      actor=actor.label, created_at=clock.now())
    db.add(qrun)
    entry.quality_score = result.score
    db.flush()
    _update_task(db, entry, qrun)
    audit.record(db, actor=actor, action="data.quality.run", object_type="data_catalog_entry",
                 object_id=str(entry.id), after={"run_id": qrun.id, "score": qrun.score, "rows": qrun.rows,
                                                 "failed_rows": qrun.failed_rows})
    return qrun


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)


def _summary(qrun: QualityRun) -> str:
    parts = [f"{r['item_code']} {r['kind']}: {r['failed']}" for r in qrun.results
             if r["severity"] == "error" and r["failed"]]
    return f"{qrun.failed_rows} of {qrun.rows} rows fail error rules ({'; '.join(parts)})"


def _update_task(db: Session, entry: CatalogEntry, qrun: QualityRun) -> None:
    task = db.scalar(select(CorrectionTask).where(CorrectionTask.entry_id == entry.id,
                                                  CorrectionTask.status == TaskStatus.OPEN))
    if qrun.failed_rows:
        if task is None:
            task = CorrectionTask(entry_id=entry.id, department_id=entry.provider_department_id,
                                  status=TaskStatus.OPEN, created_at=clock.now())
            db.add(task)
        task.run_id, task.summary, task.failed_rows = qrun.id, _summary(qrun), qrun.failed_rows
    elif task is not None:
        task.status, task.resolved_at, task.resolved_run_id = TaskStatus.RESOLVED, clock.now(), qrun.id
    db.flush()


def get_run(db: Session, *, run_id: int) -> QualityRun:
    qrun = db.get(QualityRun, run_id)
    if qrun is None:
        raise NotFound(f"quality run {run_id} not found")
    return qrun


def trend(db: Session, *, entry_id: int, limit: int = 100) -> list[QualityRun]:
    """The entry's latest runs, oldest first."""
    catalog.get_entry(db, entry_id=entry_id)
    runs = db.scalars(select(QualityRun).where(QualityRun.entry_id == entry_id)
                      .order_by(QualityRun.created_at.desc(), QualityRun.id.desc()).limit(limit))
    return list(reversed(list(runs)))


def run_dict(qrun: QualityRun, *, full: bool = True) -> dict[str, Any]:
    out = {"id": qrun.id, "entry_id": qrun.entry_id, "version": qrun.version, "rows": qrun.rows,
           "failed_rows": qrun.failed_rows, "score": qrun.score, "seconds": qrun.seconds, "actor": qrun.actor,
           "created_at": qrun.created_at}
    if full:
        out |= {"results": qrun.results, "disagreements": qrun.disagreements}
    return out


def task_dict(task: CorrectionTask) -> dict[str, Any]:
    return {c: getattr(task, c) for c in ("id", "entry_id", "department_id", "run_id", "status", "summary",
                                          "failed_rows", "created_at", "resolved_at", "resolved_run_id")}


def tasks(db: Session, *, status: str | None = None, department_id: int | None = None) -> list[CorrectionTask]:
    q = select(CorrectionTask).order_by(CorrectionTask.id.desc())
    if status is not None:
        if status not in set(TaskStatus):
            raise Invalid("task status must be open or resolved")
        q = q.where(CorrectionTask.status == status)
    if department_id is not None:
        q = q.where(CorrectionTask.department_id == department_id)
    return list(db.scalars(q))


def department_scores(db: Session) -> list[dict[str, Any]]:
    """Per department: row-weighted mean score of its checked resources, open tasks, last run."""
    entries = db.execute(select(CatalogEntry.id, CatalogEntry.provider_department_id, CatalogEntry.row_count,
                                CatalogEntry.quality_score).where(CatalogEntry.quality_score.is_not(None))).all()
    last = dict(db.execute(select(CatalogEntry.provider_department_id, func.max(QualityRun.created_at))
                           .join(QualityRun, QualityRun.entry_id == CatalogEntry.id)
                           .group_by(CatalogEntry.provider_department_id)).all())
    open_tasks = dict(db.execute(select(CorrectionTask.department_id, func.count())
                                 .where(CorrectionTask.status == TaskStatus.OPEN)
                                 .group_by(CorrectionTask.department_id)).all())
    per: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for _id, dept, rows, score in entries:
        per[dept].append((rows or 0, score))
    out = []
    for dept in org_service.list_departments(db):
        scored = per.get(dept.id)
        if not scored and not open_tasks.get(dept.id):
            continue
        weight = sum(r for r, _ in scored or [])
        mean = (sum(r * s for r, s in scored) / weight if weight else sum(s for _, s in scored) / len(scored)) \
            if scored else None
        out.append({"department_id": dept.id, "department_code": dept.code, "department_name": dept.name,
                    "resources": len(scored or []), "rows": weight,
                    "score": None if mean is None else round(mean, 2),
                    "open_tasks": open_tasks.get(dept.id, 0), "last_run_at": last.get(dept.id)})
    return out


def disagreements(db: Session, *, department_id: int | None = None) -> list[dict[str, Any]]:
    """Cross-source disagreements of each resource's latest run (the big-data bureau's view)."""
    latest = select(QualityRun.entry_id, func.max(QualityRun.id).label("run_id")).group_by(QualityRun.entry_id)
    sub = latest.subquery()
    q = select(QualityRun, CatalogEntry).join(sub, QualityRun.id == sub.c.run_id) \
        .join(CatalogEntry, CatalogEntry.id == QualityRun.entry_id).order_by(CatalogEntry.code)
    if department_id is not None:
        q = q.where(CatalogEntry.provider_department_id == department_id)
    out = []
    for qrun, entry in db.execute(q).all():
        checks = [d for d in qrun.disagreements or [] if d.get("disagreements")]
        if checks:
            out.append({"entry_id": entry.id, "entry_code": entry.code, "entry_name": entry.name,
                        "department_id": entry.provider_department_id, "run_id": qrun.id,
                        "checked_at": qrun.created_at, "checks": checks})
    return out
