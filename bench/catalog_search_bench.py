"""Catalog search latency over 2,000 synthetic catalog entries, on SQLite and PostgreSQL.

    .venv/bin/python bench/catalog_search_bench.py [--entries 2000] [--repeat 30] [--pg-url URL]

The district has 1,579 catalog entries; each query runs through ``data.search.search`` (Chinese
word segmentation, AND over words, facets over the matched set) ``--repeat`` times; p50 and p95
are printed per query. PostgreSQL runs in a scratch database that is dropped afterwards.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from citybrain.core import migrate
from citybrain.core.actor import system_actor
from citybrain.core.db import make_engine
from citybrain.data import search, segment
from citybrain.data.models import CatalogEntry
from citybrain.org import service as org_service

TOPICS = ["户籍人口", "流动人口", "企业登记", "税务申报", "社保缴纳", "医疗救助", "学校学籍", "道路交通", "排污许可",
          "安全生产", "食品经营", "药品零售", "住房保障", "低保救助", "就业失业", "公积金", "不动产登记", "网格事件",
          "空气质量", "水质监测", "建筑工地", "养老服务", "残疾人", "退役军人", "法律援助", "信用评价", "行政处罚"]
KINDS = ["信息", "台账", "统计", "名录", "记录", "明细", "汇总表"]
ABSTRACTS = ["全区{t}的基本情况，按月更新", "{t}数据，由部门业务系统导出", "用于政务服务和社会治理的{t}明细"]
QUERIES = [("", {}), ("人口", {}), ("人口信息", {}), ("企业 税务", {}), ("救助", {"sharing_type": ["conditional"]}),
           ("空气质量监测", {}), ("不存在的词", {})]


def fill(db: Session, n: int) -> None:
    depts = org_service.list_departments(db)
    rnd = random.Random(5)
    now = datetime.now(UTC)
    rows = []
    for i in range(n):
        topic = rnd.choice(TOPICS)
        name, dept = topic + rnd.choice(KINDS), rnd.choice(depts)
        abstract = rnd.choice(ABSTRACTS).format(t=rnd.choice(TOPICS))
        kind = rnd.choice(["base", "thematic", "department"])
        rows.append({
            "code": f"9{i:06d}/{dept.code}-{i:05d}", "name": name, "package_id": str(uuid.uuid4()), "slug": f"b-{i}",
            "resource_id": str(uuid.uuid4()), "class_kind": kind,
            "class_code": {"base": "1", "thematic": "2", "department": "3"}[kind] + "-01-001", "class_name": "",
            "database": None, "provider_department_id": dept.id, "provider_code": dept.code, "abstract": abstract,
            "keywords": "", "format": "数据库", "sharing_type": rnd.choice(["unconditional", "conditional", "none"]),
            "sharing_conditions": "", "sharing_method": "接口", "open_type": "closed", "update_cycle": "monthly",
            "published_on": None, "related_codes": [], "key_fields": [], "row_count": 0, "version": 0,
            "synthetic": True, "search_text": segment.index_text(f"{name} {abstract} {dept.name} 姓名 编号 日期"),
            "created_at": now, "updated_at": now})
    db.execute(insert(CatalogEntry), rows)
    db.commit()


def run(engine: Engine, label: str, entries: int, repeat: int) -> None:
    migrate.upgrade(engine)
    with Session(engine) as db:
        org_service.load_shipped_departments(db, actor=system_actor("bench"))
        db.commit()
        fill(db, entries)
        for q, filters in QUERIES:
            search.search(db, q=q, filters=filters)
            times = []
            for _ in range(repeat):
                started = time.perf_counter()
                result = search.search(db, q=q, filters=filters)
                times.append(time.perf_counter() - started)
            times.sort()
            p95 = times[max(0, int(0.95 * len(times)) - 1)]
            print(f"{label:10s} q={q!r:16s} filters={list(filters)!s:18s} total={result.total:5d} "
                  f"p50={statistics.median(times) * 1000:6.1f} ms  p95={p95 * 1000:6.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test",
                        help="an existing database on the server to create the scratch database from ('' to skip)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'search.db'}")
        run(engine, "sqlite", args.entries, args.repeat)
        engine.dispose()
    if not args.pg_url:
        return
    name = f"cb_searchbench_{uuid.uuid4().hex[:6]}"
    admin = create_engine(args.pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        engine = make_engine(admin.url.set(database=name).render_as_string(hide_password=False))
        run(engine, "postgresql", args.entries, args.repeat)
        engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
