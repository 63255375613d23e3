"""Data quality benchmark: 13 rules over a synthetic population of 10,000,000 rows.

Two figures, kept apart on purpose:

1. **Checks in memory** — the rows already in a polars frame, every rule (the GB 11643 checksum,
   uniqueness, a reference and a cross-source join among them) run through
   ``quality_checks.evaluate``, the very function ``quality.run`` calls. Target ≥ 5,000,000 rows/s.
2. **End to end from the database** — ``quality.run`` on a smaller resource stored in SQLite and
   PostgreSQL (reading the rows is most of that time), so the rate a department sees is known.

Usage::

    python bench/quality_bench.py [--rows 10000000] [--db-rows 1000000] [--no-db] [--json out.json]

PostgreSQL is used when reachable at CITYBRAIN_BENCH_PG_URL (default the test server's
``postgresql+psycopg://postgres@127.0.0.1:5432/test``); a scratch database is created and dropped.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from citybrain.data import quality_checks as qc

TODAY = date(2026, 11, 1)
REGION = "370306"
TOWNSHIPS = [f"370306{n:03d}" for n in (1, 2, 3, 4, 100, 101, 102, 103, 104, 105)]
SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈")
GIVEN = list("伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂英华建国玉兰志强秀兰海燕文博宇轩子涵梓萱浩然")
ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
CHECK_CHARS = np.array(list("10X98765432"))


def _id_numbers(rng: np.random.Generator, n: int, wrong_share: float) -> tuple[np.ndarray, np.ndarray]:
    """Valid-looking 370306 ID numbers (independent numpy arithmetic) with a share made wrong."""
    combos = rng.choice(44_000 * 1000, n, replace=False)  # distinct (birth day, order) pairs
    twins = np.flatnonzero(rng.random(n) < 0.0001)  # 0.01% repeat another row's number
    combos[twins] = combos[twins - 1]
    days, order = combos // 1000 - 25_000, combos % 1000  # births 1901..2022
    births = (np.datetime64("1970-01-01") + days.astype("timedelta64[D]")).astype("datetime64[D]")
    ymd = np.char.replace(np.datetime_as_string(births), "-", "").astype(np.int64)
    body = 370306 * 10**11 + ymd * 1000 + order
    digits = (body[:, None] // (10 ** np.arange(16, -1, -1, dtype=np.int64))) % 10
    check = (digits * ID_WEIGHTS).sum(axis=1) % 11
    wrong = rng.random(n) < wrong_share
    check = np.where(wrong, (check + 1 + rng.integers(0, 10, n)) % 11, check)
    return body, CHECK_CHARS[check], np.datetime_as_string(births)


def population(n: int, seed: int = 7) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    body, check, births = _id_numbers(rng, n, 0.01)
    surname, given = pl.Series(SURNAMES), pl.Series(GIVEN)
    mobile = 13_000_000_000 + rng.integers(0, 6_999_999_999, n)
    mobile = np.where(rng.random(n) < 0.001, mobile - 3_000_000_000, mobile)  # 1‰ start with 10
    frame = pl.DataFrame({
        "_id": np.arange(1, n + 1, dtype=np.int64),
        "id_number": pl.Series(body).cast(pl.String) + pl.Series(check),
        "name": surname.gather(rng.integers(0, len(SURNAMES), n)) + given.gather(rng.integers(0, len(GIVEN), n))
        + pl.Series(np.where(rng.random(n) < 0.5, "", GIVEN[0])),
        "sex": pl.Series(["男", "女"]).gather(rng.integers(0, 2, n)),
        "birth_date": pl.Series(births),
        "mobile": pl.Series(mobile).cast(pl.String),
        "township_code": pl.Series(TOWNSHIPS + ["370306999"]).gather(
            np.where(rng.random(n) < 0.002, len(TOWNSHIPS), rng.integers(0, len(TOWNSHIPS), n))),
        "household_size": rng.integers(1, 9, n),
        "postcode": pl.Series(["255300", "25530"]).gather((rng.random(n) < 0.001).astype(np.int64)),
        "address": pl.Series(["周村区丝绸路1号", "周村区正阳街2号", None]).gather(
            np.where(rng.random(n) < 0.001, 2, rng.integers(0, 2, n))),
    })
    return frame


def source_registry(frame: pl.DataFrame, seed: int = 8) -> pl.DataFrame:
    """The authoritative copy (公安户籍): same people, 0.5% of names spelt differently."""
    rng = np.random.default_rng(seed)
    frame = frame.filter(pl.col("id_number").is_first_distinct())
    differ = pl.Series(rng.random(frame.height) < 0.005)
    return frame.select(pl.col("id_number").alias("key"),
                        pl.when(differ).then(pl.col("name") + "一").otherwise(pl.col("name")).alias("value"))


def specs(source: pl.DataFrame | None) -> list[qc.RuleSpec]:
    cross = {"source_entry_code": "1010100/police-00001", "source_item_code": "name", "key": ["id_number", "key"]}
    return [
        qc.RuleSpec(item="id_number", kind="id_number", params={"regions": [REGION]}),
        qc.RuleSpec(item="id_number", kind="unique"),
        qc.RuleSpec(item="id_number", kind="not_null"),
        qc.RuleSpec(item="name", kind="not_null"),
        qc.RuleSpec(item="name", kind="regex", params={"pattern": r"[\u4e00-\u9fa5·]{2,20}"}),
        qc.RuleSpec(item="sex", kind="in_set", params={"values": ["男", "女"]}),
        qc.RuleSpec(item="birth_date", kind="date", params={"min": "1900-01-01", "max": TODAY.isoformat()}),
        qc.RuleSpec(item="mobile", kind="mobile", severity="warning"),
        qc.RuleSpec(item="township_code", kind="reference", values=pl.Series(TOWNSHIPS),
                    params={"entry_code": "township", "item_code": "code"}),
        qc.RuleSpec(item="household_size", kind="range", params={"min": 1, "max": 20}),
        qc.RuleSpec(item="postcode", kind="regex", params={"pattern": r"[0-9]{6}"}),
        qc.RuleSpec(item="address", kind="not_null", severity="warning"),
        qc.RuleSpec(item="name", kind="cross_source", params=cross, source=source),
    ]


def in_memory(rows: int, repeats: int) -> dict[str, Any]:
    t = time.perf_counter()
    frame = population(rows)
    source = source_registry(frame)
    generated = time.perf_counter() - t
    timings, result = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        result = qc.evaluate(frame, specs(source), today=TODAY)
        timings.append(time.perf_counter() - t)
    best, median = min(timings), statistics.median(timings)
    assert result is not None
    out = {"rows": rows, "rules": len(result.results), "generate_s": round(generated, 2),
           "seconds": [round(s, 3) for s in timings], "best_s": round(best, 3), "median_s": round(median, 3),
           "rows_per_s": round(rows / best), "rows_per_s_median": round(rows / median),
           "score": result.score, "failed_rows": result.failed_rows,
           "per_rule_failed": {f"{r['item_code']}:{r['kind']}": r["failed"] for r in result.results}}
    del frame, source, result
    gc.collect()
    return out


# --- end to end through quality.run --------------------------------------------------------------


def _load(url: str, rows: int) -> dict[str, Any]:
    from sqlalchemy.orm import Session

    from citybrain.core import migrate
    from citybrain.core.actor import system_actor
    from citybrain.core.db import make_engine
    from citybrain.data import quality, storage
    from citybrain.org import service as org_service

    sys_actor = system_actor("bench")
    engine = make_engine(url)
    migrate.upgrade(engine)
    frame = population(rows, seed=11)
    with Session(engine) as db:
        org_service.load_shipped_departments(db, actor=sys_actor)
        entry = _entry(db, sys_actor)
        t = time.perf_counter()
        _insert(db, entry, frame.drop("_id"))
        db.commit()
        inserted = time.perf_counter() - t
        for spec in specs(None)[:12]:
            if spec.kind != "reference":
                quality.add_rule(db, entry_id=entry.id, item_code=spec.item, kind=spec.kind, params=spec.params,
                                 severity=spec.severity, actor=sys_actor)
        db.commit()
        t = time.perf_counter()
        quality.read_frame(db, entry, [i.code for i in entry.items])
        read_s = time.perf_counter() - t
        t = time.perf_counter()
        qrun = quality.run(db, entry_id=entry.id, actor=sys_actor)
        run_s = time.perf_counter() - t
        db.rollback()
        storage.drop_table(db, entry)
        db.commit()
    engine.dispose()
    return {"rows": rows, "rules": len(qrun.results), "insert_s": round(inserted, 2), "read_s": round(read_s, 2),
            "run_s": round(run_s, 2), "rows_per_s_end_to_end": round(rows / run_s), "score": qrun.score}


def _entry(db: Any, actor: Any) -> Any:
    from citybrain.data import catalog
    from citybrain.data.schemas import EntryIn

    items = [{"code": c, "name": c, "data_type": t} for c, t in [
        ("id_number", "string"), ("name", "string"), ("sex", "string"), ("birth_date", "string"),
        ("mobile", "string"), ("township_code", "string"), ("household_size", "integer"), ("postcode", "string"),
        ("address", "string")]]
    data = EntryIn.model_validate({"code": f"1010100/bench-{uuid.uuid4().hex[:8]}", "name": "人口基准测试",
                                   "class_kind": "base", "class_code": "1-01-001", "provider_department_code": "police",
                                   "sharing_type": "unconditional", "items": items})
    return catalog.create_entry(db, data=data, actor=actor)


def _insert(db: Any, entry: Any, frame: pl.DataFrame) -> None:
    frame = frame.with_columns(pl.lit(1).alias("_load"))
    cols = ", ".join(f'"{c}"' for c in frame.columns)
    raw = db.connection().connection.driver_connection
    table = f"ds_{entry.id}"
    if db.get_bind().dialect.name == "postgresql":
        with raw.cursor() as cur, cur.copy(f'COPY "{table}" ({cols}) FROM STDIN WITH (FORMAT csv)') as copy:
            for chunk in frame.iter_slices(200_000):
                copy.write(chunk.write_csv(include_header=False))
    else:
        marks = ", ".join("?" for _ in frame.columns)
        for chunk in frame.iter_slices(200_000):
            raw.executemany(f'INSERT INTO "{table}" ({cols}) VALUES ({marks})', chunk.rows())
    entry.row_count, entry.version = frame.height, 1


def end_to_end(rows: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        out["sqlite"] = _load(f"sqlite:///{Path(tmp) / 'bench.db'}", rows)
    pg = os.environ.get("CITYBRAIN_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    try:
        from sqlalchemy import create_engine, text

        admin = create_engine(pg, isolation_level="AUTOCOMMIT")
        name = f"citybrain_qbench_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - PostgreSQL is optional here
        out["postgresql"] = {"skipped": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}
        return out
    try:
        out["postgresql"] = _load(admin.url.set(database=name).render_as_string(hide_password=False), rows)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows checked in memory")
    parser.add_argument("--repeats", type=int, default=5,
                        help="in-memory runs; the best and the median are reported (the machine may be shared)")
    parser.add_argument("--db-rows", type=int, default=1_000_000, help="rows for the end-to-end runs")
    parser.add_argument("--no-db", action="store_true", help="skip the end-to-end database runs")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    figures: dict[str, Any] = {"threads": pl.thread_pool_size(), "polars": pl.__version__}
    figures["in_memory"] = mem = in_memory(args.rows, args.repeats)
    print(f"in memory: {mem['rows']:,} rows x {mem['rules']} rules: best of {args.repeats} {mem['best_s']} s = "
          f"{mem['rows_per_s']:,} rows/s, median {mem['median_s']} s = {mem['rows_per_s_median']:,} rows/s; "
          f"score {mem['score']}, failed rows {mem['failed_rows']:,}")
    for rule, failed in mem["per_rule_failed"].items():
        print(f"  {rule:<32} failed {failed:>10,}")
    if not args.no_db:
        figures["end_to_end"] = e2e = end_to_end(args.db_rows)
        for backend, fig in e2e.items():
            if "skipped" in fig:
                print(f"{backend}: skipped ({fig['skipped']})")
                continue
            print(f"{backend}: quality.run over {fig['rows']:,} stored rows, {fig['rules']} rules: {fig['run_s']} s "
                  f"= {fig['rows_per_s_end_to_end']:,} rows/s (reading the rows alone {fig['read_s']} s; "
                  f"bulk insert {fig['insert_s']} s)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
