"""Vectorised quality checks over polars frames: pure functions, no database.

A check is a list of ``(failing condition, reason)`` pairs over one column. A row fails the check
when any condition is true; its reason is the first true condition's text. The conditions are
evaluated over every row at once (polars expressions, no Python per row); reasons are computed
only for the few sample rows shown to people.

Null values pass every check except ``not_null`` (which also fails blank strings): whether a
field must be filled is that rule's business alone. ``evaluate`` runs a whole rule set and
computes per-rule counts, samples, the rows failing any error rule and the score.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import polars as pl

Conditions = list[tuple[pl.Expr, str]]


@dataclass(frozen=True)
class Check:
    """``conditions`` give each failing row its reason; ``fast`` (when set) is a cheaper expression
    true for exactly the same rows, used to count failures over the whole frame."""

    conditions: Conditions
    fast: pl.Expr | None = None
    # Named intermediate columns, computed stage by stage before the conditions (polars does
    # not always share a sub-expression used many times; a column is computed once).
    stages: tuple[tuple[pl.Expr, ...], ...] = ()
    # When set, ``fast`` only marks suspects (a superset of the failing rows, usually a handful)
    # and ``confirm`` takes the suspect rows (a frame) and says which of them really fail.
    confirm: Callable[[pl.DataFrame], pl.Series] | None = None


def with_stages(frame: pl.LazyFrame, check: Check) -> pl.LazyFrame:
    for stage in check.stages:
        frame = frame.with_columns(stage)
    return frame


def confirmed(frame: pl.DataFrame, check: Check, suspects: pl.Series) -> pl.Series:
    """The failing rows among ``suspects`` (a boolean mask) of a check with ``confirm``."""
    assert check.confirm is not None
    rows = suspects.arg_true()
    if rows.is_empty():
        return suspects
    real = check.confirm(frame[rows])
    return pl.Series(suspects.name, np.zeros(frame.height, dtype=bool)).scatter(rows.filter(real), True)


def outcome(frame: pl.DataFrame, check: Check) -> pl.DataFrame:
    """Columns ``failed`` and ``reason`` for every row of ``frame`` (for samples and tests)."""
    out = with_stages(frame.lazy(), check).select(failed(check).alias("failed"),
                                                  reason(check).alias("reason")).collect()
    if check.confirm is not None:
        out = out.with_columns(confirmed(frame, check, out["failed"]))
    return out

SAMPLES_PER_RULE = 10
SAMPLES_PER_CROSS_CHECK = 50
WARNING_WEIGHT = 0.5




def _text(column: str) -> pl.Expr:
    return pl.col(column).cast(pl.String)


def failed(check: Check) -> pl.Expr:
    """True for every row failing the check (nulls in a condition count as passing)."""
    if check.fast is not None:
        return check.fast.fill_null(False)
    if not check.conditions:  # e.g. a date rule without bounds on a column already typed as dates
        return pl.lit(False)
    return pl.any_horizontal([cond.fill_null(False) for cond, _ in check.conditions])


def reason(check: Check) -> pl.Expr:
    """The first failing condition's reason, or null (only evaluated on sample rows)."""
    if not check.conditions:
        return pl.lit(None, dtype=pl.String)
    return pl.coalesce([pl.when(cond.fill_null(False)).then(pl.lit(text)) for cond, text in check.conditions])


# --- generic checks ------------------------------------------------------------------------------


def not_null(column: str) -> Check:
    col = pl.col(column)
    blank = _text(column).str.strip_chars() == ""
    return Check([(col.is_null(), "value is missing"), (blank, "value is blank")])


def unique(column: str, tmp: str = "_uq_") -> Check:
    """Duplicates found through sorted 64-bit hashes (cheap), then confirmed on the suspects' values."""
    col, hashed = pl.col(column), pl.col(f"{tmp}h")
    ordered = hashed.sort()
    stages = ((col.hash().alias(f"{tmp}h"),),)
    suspects = col.is_not_null() & hashed.is_in(ordered.filter(ordered == ordered.shift(1)).implode())

    def confirm(rows: pl.DataFrame) -> pl.Series:
        return rows[column].is_duplicated()

    return Check([(col.is_not_null() & col.is_duplicated(), "value occurs more than once")], fast=suspects,
                 stages=stages, confirm=confirm)


def in_set(column: str, values: list[Any], dtype: pl.DataType) -> Check:
    if dtype.is_numeric():
        allowed = pl.Series([float(v) for v in values], dtype=pl.Float64)
        return Check([(~pl.col(column).cast(pl.Float64).is_in(allowed.implode()),
                       "value is not one of the allowed values")])
    allowed = pl.Series([str(v) for v in values], dtype=pl.String)
    return Check([(~_text(column).is_in(allowed.implode()), "value is not one of the allowed values")])


def value_range(column: str, lo: Any, hi: Any, dtype: pl.DataType) -> Check:
    conds: Conditions = []
    if dtype == pl.Date:
        value = pl.col(column)
        lo, hi = (None if b is None else _as_date(b) for b in (lo, hi))
    elif dtype.is_numeric():
        value = pl.col(column).cast(pl.Float64)
    else:
        value = _text(column).str.strip_chars().cast(pl.Float64, strict=False)
        conds.append((pl.col(column).is_not_null() & value.is_null(), "value is not a number"))
    if lo is not None:
        conds.append((value < pl.lit(lo), f"value is below the minimum {lo}"))
    if hi is not None:
        conds.append((value > pl.lit(hi), f"value is above the maximum {hi}"))
    return Check(conds)


def regex(column: str, pattern: str) -> Check:
    return Check([(~_text(column).str.contains(f"^(?:{pattern})$"), "value does not match the pattern")])


def date_value(column: str, dtype: pl.DataType, *, lo: Any = None, hi: Any = None,
               fmt: str = "%Y-%m-%d") -> Check:
    """A real calendar date (written exactly in ``fmt`` when stored as text), optionally in bounds."""
    conds: Conditions = []
    if dtype in (pl.Date, pl.Datetime):
        value = pl.col(column).cast(pl.Date)
    else:
        text = _text(column)
        value = text.str.to_date(fmt, strict=False, cache=False)  # a cache costs more than it saves
        if fmt == "%Y-%m-%d":  # the common case: a length test replaces writing every date back
            bad = (text.str.len_bytes() != 10) | value.is_null()
            conds.append((text.is_not_null() & bad, f"value is not a real date written {fmt}"))
        else:
            conds.append((text.is_not_null() & value.is_null(), f"value is not a real date written {fmt}"))
            conds.append((value.dt.to_string(fmt) != text, f"value is not written {fmt}"))
    if lo is not None:
        conds.append((value < pl.lit(_as_date(lo)), f"date is before {lo}"))
    if hi is not None:
        conds.append((value > pl.lit(_as_date(hi)), f"date is after {hi}"))
    return Check(conds)


def reference(column: str, values: pl.Series) -> Check:
    return Check([(~_text(column).is_in(values.cast(pl.String).drop_nulls().unique().implode()),
                   "value does not exist in the referenced resource")])


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


from .quality_ids import credit_code, id_number, mobile, org_code  # noqa: E402

# --- running a rule set --------------------------------------------------------------------------


@dataclass
class RuleSpec:
    """One rule ready to evaluate; reference values or the source frame are resolved by the caller."""

    item: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    severity: str = "error"
    rule_id: int | None = None
    description: str = ""
    values: pl.Series | None = None  # reference: the referenced item's values
    source: pl.DataFrame | None = None  # cross_source: columns "key" and "value"
    skipped: str | None = None  # why the rule could not run (e.g. its source has no rows)


@dataclass
class Evaluation:
    rows: int
    failed_rows: int  # rows failing at least one error rule
    warning_rows: int  # rows failing only warning rules
    score: float
    results: list[dict[str, Any]]
    disagreements: list[dict[str, Any]]


def build_check(spec: RuleSpec, schema: pl.Schema, *, today: date, tmp: str = "_t_") -> Check:
    p, item, dtype = spec.params, spec.item, schema[spec.item]
    match spec.kind:
        case "not_null":
            return not_null(item)
        case "unique":
            return unique(item, tmp=tmp)
        case "in_set":
            return in_set(item, p["values"], dtype)
        case "range":
            return value_range(item, p.get("min"), p.get("max"), dtype)
        case "regex":
            return regex(item, p["pattern"])
        case "date":
            return date_value(item, dtype, lo=p.get("min"), hi=p.get("max"), fmt=p.get("format", "%Y-%m-%d"))
        case "reference":
            return reference(item, spec.values if spec.values is not None else pl.Series([], dtype=pl.String))
        case "id_number":
            return id_number(item, today=today, regions=p.get("regions"), tmp=tmp)
        case "credit_code":
            return credit_code(item)
        case "org_code":
            return org_code(item)
        case "mobile":
            return mobile(item)
    raise ValueError(f"unknown rule kind {spec.kind!r}")


_SEED_2 = 0x5EED_C0DE  # a second, independent hash seed


def _cross_source_exact(frame: pl.DataFrame, key_here: str, item: str, source: pl.DataFrame
                        ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The slow exact path (a join on the key text): ``(_i, _j)`` of every matched pair and of
    the pairs whose values differ. Used only when 64-bit key hashes collide."""
    src = source.with_row_index("_j").filter(pl.col("key").is_not_null() & pl.col("key").is_first_distinct())
    here = frame.select(_text(key_here).alias("key"), _text(item).alias("_val")).with_row_index("_i")
    joined = here.join(src, on="key", how="inner")
    bad = joined.filter(pl.col("_val").ne_missing(pl.col("value")))
    return joined.select("_i", "_j"), bad.select("_i", "_j")


def _cross_source_pairs(frame: pl.DataFrame, key_here: str, item: str, source: pl.DataFrame
                        ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Match each row with the source's first row of the same key through sorted 64-bit key
    hashes (two sorts and a merge, no hash table), then compare a fingerprint of key and value.

    Only the rows whose fingerprints differ (the few suspects) are compared as text; their keys
    must really be equal, else a hash collided and the exact join runs instead.
    """
    key, value = _text(key_here), _text(item)
    src_key, src_value = pl.col("key"), pl.col("value")
    here_q = frame.lazy().with_row_index("_i").filter(key.is_not_null()) \
        .select(key.hash().alias("_h"), "_i", (key.hash(_SEED_2) ^ value.hash(_SEED_2 + 1)).alias("_f")).sort("_h")
    src_q = source.lazy().with_row_index("_j").filter(src_key.is_not_null()) \
        .select(src_key.hash().alias("_h"), "_j", (src_key.hash(_SEED_2) ^ src_value.hash(_SEED_2 + 1)).alias("_f")) \
        .sort("_h", maintain_order=True)  # a repeated key's first row comes first
    here, src = (f.to_dict() for f in pl.collect_all([here_q, src_q]))
    h_here, h_src = here["_h"].to_numpy(), src["_h"].to_numpy()
    pos = np.minimum(np.searchsorted(h_src, h_here), max(len(h_src) - 1, 0))
    hit = h_src[pos] == h_here if len(h_src) else np.zeros(len(h_here), dtype=bool)
    pos = pos[hit]
    i, j = here["_i"].to_numpy()[hit], src["_j"].to_numpy()[pos]
    suspect = here["_f"].to_numpy()[hit] != src["_f"].to_numpy()[pos]
    si, sj = pl.Series("_i", i[suspect], dtype=pl.UInt32), pl.Series("_j", j[suspect], dtype=pl.UInt32)
    if (frame[key_here].cast(pl.String).gather(si) != source["key"].gather(sj)).any():
        return _cross_source_exact(frame, key_here, item, source)
    differs = frame[item].cast(pl.String).gather(si).ne_missing(source["value"].gather(sj))
    pairs = pl.DataFrame({"_i": pl.Series(i, dtype=pl.UInt32), "_j": pl.Series(j, dtype=pl.UInt32)})
    return pairs, pl.DataFrame([si, sj]).filter(differs)


def cross_source(frame: pl.DataFrame, spec: RuleSpec) -> tuple[pl.Series, dict[str, Any]]:
    """Compare ``spec.item`` with the authoritative source's value for the same key.

    Values are compared as text, exactly; a row whose key the source does not have is counted
    as unmatched, not as a disagreement. A source with a repeated key is ambiguous: its first
    row for the key is compared. Rows are matched on 64-bit key hashes and a row agrees when a
    64-bit fingerprint of its key and value equals the source row's (a false agreement needs a
    fingerprint collision); every reported disagreement is confirmed on the text.
    """
    key_here = spec.params["key"][0]
    source = spec.source if spec.source is not None else pl.DataFrame({"key": [], "value": []})
    source = source.select(pl.col("key").cast(pl.String), pl.col("value").cast(pl.String))
    pairs, bad = _cross_source_pairs(frame, key_here, spec.item, source)
    bad = bad.with_columns(frame["_id"].gather(bad["_i"]).alias("_id")).sort("_id")
    mask = pl.Series(spec.item, np.zeros(frame.height, dtype=bool))
    if bad.height:
        mask = mask.scatter(bad["_i"], True)
    shown = bad.head(SAMPLES_PER_CROSS_CHECK)
    summary = {
        "rule_id": spec.rule_id, "item_code": spec.item, "source_entry_code": spec.params["source_entry_code"],
        "source_item_code": spec.params["source_item_code"], "key": spec.params["key"],
        "compared": pairs.height, "unmatched": frame.height - pairs.height, "disagreements": bad.height,
        "samples": [{"_id": r_id, "key": k, "field": spec.item, "value_here": v, "value_source": s}
                    for r_id, k, v, s in zip(shown["_id"], frame[key_here].cast(pl.String).gather(shown["_i"]),
                                             frame[spec.item].cast(pl.String).gather(shown["_i"]),
                                             source["value"].gather(shown["_j"]), strict=True)],
    }
    return mask, summary


def _result(spec: RuleSpec, checked: int, failed_count: int, samples: list[dict[str, Any]]) -> dict[str, Any]:
    return {"rule_id": spec.rule_id, "item_code": spec.item, "kind": spec.kind, "severity": spec.severity,
            "params": spec.params, "description": spec.description, "checked": checked,
            "failed": failed_count, "samples": samples, "skipped": spec.skipped}


def evaluate(frame: pl.DataFrame, specs: list[RuleSpec], *, today: date) -> Evaluation:
    """Run every rule over ``frame`` (which has an ``_id`` column) and score the result.

    score = 100 × (1 − (E + ½·W) / rows), E = rows failing any error rule, W = rows failing only
    warning rules; an empty frame scores 100.
    """
    rows = frame.height
    runnable = [s for s in specs if s.skipped is None]
    checks = {i: build_check(s, frame.schema, today=today, tmp=f"_r{i}_")
              for i, s in enumerate(runnable) if s.kind != "cross_source"}
    staged = frame.lazy()
    for check in checks.values():
        staged = with_stages(staged, check)
    crossing = [(i, s) for i, s in enumerate(runnable) if s.kind == "cross_source"]
    # Cross-source checks run in a side thread: their numpy merge overlaps the polars query.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = [(i, pool.submit(cross_source, frame, spec)) for i, spec in crossing]
        masks = staged.select([failed(c).alias(f"r{i}") for i, c in checks.items()]).collect() if checks \
            else pl.DataFrame()
        masks = masks.with_columns(confirmed(frame, c, masks[f"r{i}"]) for i, c in checks.items() if c.confirm)
        disagreements = []
        for i, job in pending:
            mask, summary = job.result()
            mask = mask.alias(f"r{i}")
            masks = masks.with_columns(mask) if masks.width else mask.to_frame()
            disagreements.append(summary)
    counts = masks.sum().row(0, named=True) if masks.width else {}
    error_cols = [f"r{i}" for i, s in enumerate(runnable) if s.severity == "error"]
    warn_cols = [f"r{i}" for i, s in enumerate(runnable) if s.severity != "error"]
    any_error, any_warn = _any(masks, error_cols, rows), _any(masks, warn_cols, rows)
    failed_rows = int(any_error.sum())
    warning_rows = int((any_warn & ~any_error).sum())
    results, n = [], 0
    for spec in specs:
        if spec.skipped is not None:
            results.append(_result(spec, 0, 0, []))
            continue
        col, count = f"r{n}", int(counts.get(f"r{n}") or 0)
        checked = rows if spec.kind in ("not_null", "cross_source") else rows - frame[spec.item].null_count()
        samples = _samples(frame, spec, masks[col], checks.get(n), disagreements) if count else []
        results.append(_result(spec, checked, count, samples))
        n += 1
    score = 100.0 if rows == 0 else round(100.0 * (1 - (failed_rows + WARNING_WEIGHT * warning_rows) / rows), 2)
    return Evaluation(rows=rows, failed_rows=failed_rows, warning_rows=warning_rows, score=score,
                      results=results, disagreements=disagreements)


def _any(masks: pl.DataFrame, cols: list[str], rows: int) -> pl.Series:
    return masks.select(pl.any_horizontal(cols)).to_series() if cols else pl.repeat(False, rows, eager=True)


def _samples(frame: pl.DataFrame, spec: RuleSpec, mask: pl.Series, check: Check | None,
             disagreements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if check is None:  # cross-source: the disagreement samples say it with both values
        summary = next(d for d in disagreements if d["item_code"] == spec.item and d["rule_id"] == spec.rule_id)
        return [{"_id": s["_id"], "value": s["value_here"], "reason": f"source has {s['value_source']!r}"}
                for s in summary["samples"][:SAMPLES_PER_RULE]]
    picked = frame[mask.arg_true().head(SAMPLES_PER_RULE)]
    shown = with_stages(picked.lazy(), check).select(pl.col("_id"), _text(spec.item).alias("value"),
                                                     reason(check).alias("reason"))
    return shown.collect().to_dicts()
