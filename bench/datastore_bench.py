"""CKAN ``datastore_search`` latency on a 1,000,000-row resource in PostgreSQL, through a real server.

What it does:

1. creates a scratch PostgreSQL database, migrates it, loads the shipped departments and two
   staff accounts (provider ``police``, consumer ``market``);
2. creates a 有条件共享 catalog entry through ``catalog.create_entry`` (key field ``id_number``,
   so ``storage`` gives it a unique index) and bulk-loads the rows with ``COPY``; ``ANALYZE``;
3. the consumer files a request, the provider approves it (a grant with a field subset, masked);
4. starts ``uvicorn`` in a child process (``citybrain.app:app_from_environment``) and makes N
   ``datastore_search`` calls with ``filters={"id_number": <a random existing number>}`` and the
   default ``include_total`` — each call checks the grant, masks, and writes an access-log row;
5. prints p50/p95/p99 (ms) and drops the database (``--keep`` keeps it).

Usage::

    python bench/datastore_bench.py [--rows 1000000] [--calls 1000] [--json out.json]

PostgreSQL at CITYBRAIN_BENCH_PG_URL (default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``).
The ID numbers are unique synthetic 18-digit strings (not checksummed: no check runs here).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from citybrain.core import migrate
from citybrain.core.actor import system_actor
from citybrain.core.db import make_engine
from citybrain.data import catalog, sharing, storage
from citybrain.data.schemas import EntryIn
from citybrain.org import auth, service
from citybrain.org.schemas import UserCreate

PG = os.environ.get("CITYBRAIN_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
ITEMS = [
    {"code": "id_number", "name": "公民身份号码", "data_type": "string", "length": 18, "personal": "id_number"},
    {"code": "name", "name": "姓名", "data_type": "string", "length": 50, "personal": "name"},
    {"code": "mobile", "name": "手机号码", "data_type": "string", "length": 11, "personal": "mobile"},
    {"code": "township_code", "name": "乡镇街道代码", "data_type": "string", "length": 9},
    {"code": "household_size", "name": "户内人数", "data_type": "integer"},
]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"


def id_number(n: int) -> str:
    return f"370306{n:012d}"


def setup(url: str, rows: int) -> tuple[str, str]:
    """Entry, rows, users and a grant; returns (resource_id, consumer token)."""
    engine = make_engine(url)
    migrate.upgrade(engine)
    admin = system_actor("bench")
    with Session(engine) as db:
        service.load_shipped_departments(db, actor=admin)
        for user in ("police", "market"):
            service.create_user(db, data=UserCreate(username=user, password=f"Bench-{secrets.token_hex(8)}",
                                                    role="staff", department=user), actor=admin)
        entry = catalog.create_entry(db, data=EntryIn.model_validate({
            "code": "1010100/bench-00001", "name": "人口基础信息（基准测试）", "class_kind": "base",
            "class_code": "1-01-001", "provider_department_code": "police", "sharing_type": "conditional",
            "sharing_conditions": "基准测试", "items": ITEMS, "key_fields": ["id_number"]}), actor=admin)
        db.commit()
        table = storage.table_name(entry.id)
        started = time.perf_counter()
        raw = db.connection().connection.driver_connection
        rng = random.Random(5)
        with raw.cursor() as cur, cur.copy(
                f"COPY {table} (_load, id_number, name, mobile, township_code, household_size) FROM STDIN") as copy:
            for n in range(rows):
                copy.write_row((1, id_number(n), rng.choice(SURNAMES) + "某", f"139{n:08d}",
                                f"370306{rng.randrange(1, 12):03d}", rng.randrange(1, 7)))
        db.execute(text(f"ANALYZE {table}"))
        entry.row_count, entry.version = rows, 1
        db.commit()
        print(f"loaded {rows:,} rows with COPY in {time.perf_counter() - started:.1f} s", flush=True)
        police = service.get_user_by_username(db, username="police")
        market = service.get_user_by_username(db, username="market")
        req = sharing.file_request(db, entry_id=entry.id, actor=auth.actor_for(market, via="token"),
                                   purpose="基准测试", fields=["id_number", "name", "township_code", "household_size"])
        sharing.approve(db, request_id=req.id, actor=auth.actor_for(police, via="token"))
        token, _ = auth.issue_token(db, user=market, scopes=None, days=1, actor=admin, name="bench")
        db.commit()
        resource_id = entry.resource_id
    engine.dispose()
    return resource_id, token


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(url: str, port: int, data_dir: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYBRAIN_")}
    env |= {"CITYBRAIN_DATABASE_URL": url, "CITYBRAIN_SECRET_KEY": secrets.token_urlsafe(40),
            "CITYBRAIN_DATA_DIR": str(data_dir), "CITYBRAIN_INGEST_ENABLED": "false",
            "CITYBRAIN_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "citybrain.app:app_from_environment",
                             "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
                             "--no-access-log"], env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("the server did not become ready")


def measure(base: str, resource_id: str, token: str, rows: int, calls: int) -> dict[str, Any]:
    rng = random.Random(11)
    url = f"{base}/api/3/action/datastore_search"
    latencies: list[float] = []
    with httpx.Client(headers={"Authorization": token}, timeout=30) as client:
        for n in range(calls + 50):  # the first 50 warm the connection pool and caches, not counted
            params = {"resource_id": resource_id, "filters": json.dumps({"id_number": id_number(rng.randrange(rows))})}
            started = time.perf_counter()
            r = client.get(url, params=params)
            elapsed = (time.perf_counter() - started) * 1000
            body = r.json()
            if r.status_code != 200 or body["result"]["total"] != 1:
                raise SystemExit(f"unexpected answer: {r.status_code} {r.text[:300]}")
            if n >= 50:
                latencies.append(elapsed)
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    return {"calls": calls, "p50_ms": round(statistics.median(latencies), 2), "p95_ms": round(q[94], 2),
            "p99_ms": round(q[98], 2), "max_ms": round(max(latencies), 2),
            "sample_record": body["result"]["records"][0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()
    admin = create_engine(PG, isolation_level="AUTOCOMMIT")
    name = f"citybrain_bench_ds_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    proc = None
    try:
        resource_id, token = setup(url, args.rows)
        port = free_port()
        with tempfile.TemporaryDirectory() as tmp:
            proc = start_server(url, port, Path(tmp))
            result = {"rows": args.rows, **measure(f"http://127.0.0.1:{port}", resource_id, token, args.rows,
                                                   args.calls)}
        print(json.dumps(result, ensure_ascii=False, indent=2))
        target = "met" if result["p99_ms"] < 100 else "NOT met"
        print(f"datastore_search p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms, p99 {result['p99_ms']} ms "
              f"(target p99 < 100 ms: {target})")
        if args.json:
            args.json.write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
        if not args.keep:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
