"""Loading a department's CSV file into a catalog resource: rows per second on SQLite and PostgreSQL.

    .venv/bin/python bench/loading_bench.py [--rows 200000] [--modes append,replace,upsert] [--pg-url URL]

Writes a GB18030 CSV (as Excel saves it in China) of ``--rows`` population rows with valid GB 11643
ID numbers, Chinese dates and names, then loads it through ``loading.load_file`` — encoding
detection, header matching, typing every cell, duplicate-key checks, batched inserts, the load
report — into a fresh resource, once per mode (append into the empty table, replace, upsert of
every row). PostgreSQL runs in a scratch database that is dropped afterwards.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from citybrain.core import migrate
from citybrain.core.actor import system_actor
from citybrain.core.db import make_engine
from citybrain.data import catalog, loading
from citybrain.data.identifiers import make_id_number
from citybrain.data.schemas import EntryIn
from citybrain.org import service as org_service

ITEMS = [
    {"code": "id_number", "name": "公民身份号码", "data_type": "string", "length": 18, "required": True},
    {"code": "name", "name": "姓名", "data_type": "string", "length": 50, "required": True},
    {"code": "birth_date", "name": "出生日期", "data_type": "date"},
    {"code": "mobile", "name": "手机号码", "data_type": "string", "length": 11},
    {"code": "township_code", "name": "所属镇街代码", "data_type": "string", "length": 9},
    {"code": "household_size", "name": "户内人数", "data_type": "integer"},
]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂"


def write_csv(path: Path, rows: int) -> None:
    rnd = random.Random(7)
    start = date(1940, 1, 1)
    with path.open("w", encoding="gb18030", newline="") as f:
        f.write(",".join(i["name"] for i in ITEMS) + "\r\n")
        for n in range(rows):
            birth = start + timedelta(days=rnd.randrange(25_000))
            number = _unique_id(n)
            f.write(f"{number},{rnd.choice(SURNAMES)}{rnd.choice(GIVEN)}{rnd.choice(GIVEN)},{birth:%Y/%m/%d},"
                    f"1{rnd.randrange(3, 10)}{rnd.randrange(10**9):09d},370306{rnd.randrange(1, 11):03d},"
                    f"{rnd.randrange(1, 7)}\r\n")


REGIONS = ("370302", "370303", "370304", "370305", "370306", "370321", "370322", "370323")


def _unique_id(n: int) -> str:
    """A distinct valid ID number per row: order, then region, then birth day advance."""
    region = REGIONS[(n // 999) % len(REGIONS)]
    return make_id_number(region, date(1940, 1, 1) + timedelta(days=n // (999 * len(REGIONS))), n % 999 + 1)


def run(engine: Engine, label: str, csv_path: Path, modes: list[str]) -> list[dict[str, Any]]:
    migrate.upgrade(engine)
    actor = system_actor("bench")
    results = []
    with Session(engine) as db:
        org_service.load_shipped_departments(db, actor=actor)
        entry = catalog.create_entry(db, actor=actor, data=EntryIn.model_validate({
            "code": f"9999999/police-{uuid.uuid4().hex[:6]}", "name": "人口装载测试", "class_kind": "base",
            "class_code": "1-01-001", "provider_department_code": "police", "sharing_type": "unconditional",
            "items": ITEMS, "key_fields": ["id_number"]}))
        db.commit()
        for mode in modes:
            started = time.perf_counter()
            load = loading.load_file(db, entry_id=entry.id, data=csv_path, filename=csv_path.name, mode=mode,
                                     actor=actor, max_bytes=2**31)
            db.commit()
            seconds = time.perf_counter() - started
            assert load.status == "loaded", load.report
            result = {"backend": label, "mode": mode, "rows": load.rows_read, "seconds": round(seconds, 2),
                      "rows_per_s": round(load.rows_read / seconds)}
            print(f"{label:10s} {mode:8s} {load.rows_read:8d} rows  {seconds:7.2f} s  {result['rows_per_s']:8d} rows/s")
            results.append(result)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--modes", default="append,replace,upsert")
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test",
                        help="an existing database on the server to create the scratch database from ('' to skip)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "population.csv"
        write_csv(csv_path, args.rows)
        print(f"{csv_path.stat().st_size / 2**20:.1f} MB GB18030 CSV, {args.rows} rows")
        engine = make_engine(f"sqlite:///{Path(tmp) / 'load.db'}")
        results += run(engine, "sqlite", csv_path, modes)
        engine.dispose()
        if args.pg_url:
            name = f"cb_loadbench_{uuid.uuid4().hex[:6]}"
            admin = create_engine(args.pg_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            try:
                engine = make_engine(admin.url.set(database=name).render_as_string(hide_password=False))
                results += run(engine, "postgresql", csv_path, modes)
                engine.dispose()
            finally:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
