"""Benchmarks of the unified event command (issue 3, Performance). Prints figures, asserts nothing.

(a) bulk     N events through locate → classify → dispatch with the service layer
             (``catalog.match_category`` on the text, ``service.report``, ``service.transition``
             accept → automatic register + dispatch), SQLite and PostgreSQL; events/s.
(b) intake   a real ``citybrain serve`` (uvicorn, one process) on 127.0.0.1 against a fresh
             database with the demo loaded; ``wrk`` with a Lua script POSTs /api/events from
             loopback: a paced run at ~200 requests/s and a saturation run; rps, p50/p99.
(c) eval     1,000,000 historical events on PostgreSQL, written straight into a bench-only
             database with INSERT … SELECT generate_series (a benchmark fixture: no service
             layer, no audit), then ``evaluation.evaluate`` for one month by department.

PostgreSQL: a fresh database ``citybrain_bench_<random>`` on CITYBRAIN_BENCH_PG_ADMIN
(default postgresql+psycopg://postgres@127.0.0.1:5432/postgres), dropped afterwards.

Usage: python bench/events_bench.py [--bulk N] [--rate 200] [--duration 20] [--eval-rows N]
       [--only bulk,intake,eval] [--no-pg]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from citybrain.core import migrate
from citybrain.core.actor import system_actor
from citybrain.core.db import make_engine
from citybrain.demo.district import load_demo
from citybrain.demo.events_history import CATEGORY_MIX, DESCRIPTIONS, township_geometries
from citybrain.events import catalog, service
from citybrain.events.schemas import EventReportIn

PG_ADMIN = os.environ.get("CITYBRAIN_BENCH_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
VENV_BIN = Path(sys.executable).parent


@contextlib.contextmanager
def pg_database() -> Iterator[str]:
    name = f"citybrain_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextlib.contextmanager
def sqlite_database() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        yield f"sqlite:///{Path(tmp) / 'bench.db'}"


def backends(no_pg: bool) -> list[tuple[str, contextlib.AbstractContextManager[str]]]:
    found = [("sqlite", sqlite_database())]
    if not no_pg:
        found.append(("postgresql", pg_database()))
    return found


def prepare(url: str, *, residents: int = 200, enterprises: int = 50) -> None:
    engine = make_engine(url)
    migrate.upgrade(engine)
    with Session(engine) as db:
        load_demo(db, seed=1, actor=system_actor("bench"), today=date(2026, 11, 1), residents=residents,
                  enterprises=enterprises)
        catalog.sync_catalog(db, actor=system_actor("bench"))
        db.commit()
    engine.dispose()


def sample_points(url: str, n: int, seed: int = 42) -> list[tuple[str, float, float]]:
    """(township, lon, lat) inside the district's townships."""
    import shapely

    engine = make_engine(url)
    with Session(engine) as db:
        towns = township_geometries(db)
    engine.dispose()
    rng, codes, out = random.Random(seed), sorted(towns), []
    while len(out) < n:
        code = rng.choice(codes)
        min_lon, min_lat, max_lon, max_lat = towns[code].bounds
        lon, lat = round(rng.uniform(min_lon, max_lon), 6), round(rng.uniform(min_lat, max_lat), 6)
        if towns[code].contains(shapely.Point(lon, lat)):
            out.append((code, lon, lat))
    return out


# --- (a) bulk ------------------------------------------------------------------------------------


def bench_bulk(label: str, url: str, n: int) -> dict[str, float]:
    prepare(url)
    points = sample_points(url, min(n, 5000))
    texts = [t for code in sorted(CATEGORY_MIX) for t in DESCRIPTIONS.get(code, ())] or ["路边有暴露垃圾"]
    engine = make_engine(url)
    api, command = system_actor("bench-api"), system_actor("bench-command")
    rng = random.Random(7)
    dispatched = 0
    with Session(engine) as db:
        categories = catalog.list_categories(db)
        t0 = time.perf_counter()
        for i in range(n):
            _town, lon, lat = points[i % len(points)]
            description = rng.choice(texts)
            category = catalog.best_match(categories, description) or categories[0]
            event = service.report(db, data=EventReportIn(
                channel="api", category_code=category.code, description=description, lon=lon, lat=lat),
                actor=api)
            event = service.transition(db, event_id=event.id, action="accept", actor=command)
            dispatched += event.status == "dispatched"
            if i % 500 == 499:
                db.commit()
                db.expunge_all()
                categories = catalog.list_categories(db)
        db.commit()
        elapsed = time.perf_counter() - t0
    engine.dispose()
    rate = n / elapsed
    print(f"[bulk/{label}] {n:,} events located, classified, reported, accepted and dispatched in "
          f"{elapsed:.1f} s: {rate:,.0f} events/s ({dispatched:,} dispatched; commit every 500)", flush=True)
    return {"n": n, "seconds": elapsed, "rate": rate}


# --- (b) intake under load ----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _lua_script(points: list[tuple[str, float, float]], token: str, delay_ms: float) -> str:
    pts = ",".join(f"{{{lon},{lat}}}" for _t, lon, lat in points[:500])
    cats = ",".join(f'"{c}"' for c in sorted(CATEGORY_MIX))
    delay = f"function delay() return {delay_ms:.1f} end" if delay_ms > 0 else ""
    return f"""
local pts = {{{pts}}}
local cats = {{{cats}}}
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"
local n = 0
request = function()
  n = n + 1
  local p = pts[math.random(#pts)]
  local body = string.format('{{"channel":"api","category_code":"%s","description":"bench report %d",'
    .. '"lon":%.6f,"lat":%.6f}}', cats[math.random(#cats)], n, p[1], p[2])
  return wrk.format(nil, "/api/events", nil, body)
end
{delay}
local codes = {{}}
response = function(status, headers, body)
  codes[status] = (codes[status] or 0) + 1
end
done = function(summary, latency, requests)
  io.write(string.format("JSON {{\\"requests\\":%d,\\"duration_us\\":%d,\\"p50_us\\":%d,\\"p90_us\\":%d,"
    .. "\\"p99_us\\":%d,\\"max_us\\":%d,\\"errors_status\\":%d,\\"errors_connect\\":%d,"
    .. "\\"errors_timeout\\":%d}}\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, summary.errors.status, summary.errors.connect,
    summary.errors.timeout))
end
"""


def _wrk(port: int, script: Path, *, connections: int, threads: int, seconds: int) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "-s", str(script),
         f"http://127.0.0.1:{port}/api/events"],
        capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    if os.environ.get("BENCH_DEBUG"):
        print(out)
    line = next(x for x in out.splitlines() if x.startswith("JSON "))
    data = json.loads(line[5:])
    data["rps"] = data["requests"] / (data["duration_us"] / 1e6)
    return data


def bench_intake(label: str, url: str, *, rate: int, duration: int) -> list[dict[str, float]]:
    if shutil.which("wrk") is None:
        print(f"[intake/{label}] skipped: wrk is not installed (apt-get install wrk)")
        return []
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "CITYBRAIN_DATABASE_URL": url, "CITYBRAIN_DATA_DIR": tmp,
               "CITYBRAIN_SECRET_KEY": "bench-" + uuid.uuid4().hex * 2, "CITYBRAIN_LOG_LEVEL": "WARNING"}
        prepare(url)
        token = subprocess.run([str(VENV_BIN / "citybrain"), "token", "create", "--username", "admin",
                                "--name", "bench"], env=env, capture_output=True, text=True, check=True,
                               timeout=60).stdout.strip().splitlines()[0]
        port = _free_port()
        server_log = open(Path(tmp) / "server.log", "w")  # noqa: SIM115 - closed with the server
        server = subprocess.Popen([str(VENV_BIN / "citybrain"), "serve", "--host", "127.0.0.1", "--port", str(port)],
                                  env=env, stdout=server_log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
                if server.poll() is not None:
                    raise RuntimeError(f"citybrain serve exited: {(Path(tmp) / 'server.log').read_text()[-2000:]}")
                time.sleep(0.2)
            points = sample_points(url, 500)
            # Paced: c connections, each waiting c/rate seconds before its next request, so the
            # offered load is at most `rate` requests/s (wrk 4 has no open-loop -R option).
            connections = 20
            script = Path(tmp) / "paced.lua"
            script.write_text(_lua_script(points, token, delay_ms=connections / rate * 1000))
            paced = _wrk(port, script, connections=connections, threads=1, seconds=duration)
            paced["mode"] = f"paced ~{rate}/s, {connections} connections"
            results.append(paced)
            script2 = Path(tmp) / "max.lua"
            script2.write_text(_lua_script(points, token, delay_ms=0))
            flat = _wrk(port, script2, connections=20, threads=2, seconds=min(duration, 10))
            flat["mode"] = "saturation, 20 connections"
            results.append(flat)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
            server_log.close()
            shutil.copy(Path(tmp) / "server.log", "/tmp/citybrain-bench-server.log")
    for r in results:
        print(f"[intake/{label}] {r['mode']}: {r['requests']:,} requests, {r['rps']:.0f} req/s, "
              f"p50 {r['p50_us'] / 1e3:.1f} ms, p90 {r['p90_us'] / 1e3:.1f} ms, p99 {r['p99_us'] / 1e3:.1f} ms, "
              f"max {r['max_us'] / 1e3:.0f} ms, non-2xx/3xx {r['errors_status']}, "
              f"timeouts {r['errors_timeout']}", flush=True)
    return results


# --- (c) evaluation over a million events --------------------------------------------------------

_FILL_EVENTS = """
INSERT INTO event (id, tracking_no, channel, category_code, description, address, lon, lat, location_state,
  township_code, status, urgency, department_id, dispatch_reason, reporter_name, reporter_phone,
  reporter_email, stage, overdue, rework_count, result, rating, created_at, updated_at, closed_at, version)
SELECT g, 'ZB' || lpad(g::text, 10, '0'), 'api',
  (CAST(:cats AS text[]))[1 + g % cardinality(CAST(:cats AS text[]))], 'bench', '',
  117.8, 36.8, 'located', (CAST(:towns AS text[]))[1 + (g / 7) % cardinality(CAST(:towns AS text[]))],
  CASE WHEN g % 20 = 0 THEN 'in_progress' WHEN g % 33 = 0 THEN 'handled' ELSE 'closed' END,
  'normal', (CAST(:depts AS int[]))[1 + (g / 3) % cardinality(CAST(:depts AS int[]))], 'bench', '', '', '',
  NULL, false, CASE WHEN g % 11 = 0 THEN 1 ELSE 0 END, 'done',
  CASE WHEN g % 4 = 0 THEN 1 + g % 5 END,
  CAST(:start AS timestamptz) + (g * :step) * interval '1 second', :start + (g * :step + 3600) * interval '1 second',
  CASE WHEN g % 20 <> 0 AND g % 33 <> 0
       THEN CAST(:start AS timestamptz) + (g * :step + 86400) * interval '1 second' END, 5
FROM generate_series(1, :n) AS g
"""
# Three stage-leaving timeline entries per event, as workflow._record_stage_left writes them.
_FILL_LOGS = """
INSERT INTO event_log (event_id, at, actor, action, from_status, to_status, note, data)
SELECT e.id, e.created_at + interval '1 hour', 'bench', a.action, 'x', 'y', '',
  json_build_object('stage_left', a.stage, 'working_s', 3600 + (e.id % 50) * 600,
                    'late', (e.id + a.k) % 9 = 0)
FROM event e CROSS JOIN (VALUES (1, 'dispatch', 'dispatch'), (2, 'handle', 'handle'),
                                (3, 'verify_pass', 'verify')) AS a(k, action, stage)
"""


def bench_evaluation(rows: int) -> dict[str, float]:
    from citybrain.events import evaluation
    from citybrain.org import service as org_service

    with pg_database() as url:
        engine = make_engine(url)
        migrate.upgrade(engine)
        with Session(engine) as db:
            org_service.load_shipped_departments(db, actor=system_actor("bench"))
            catalog.sync_catalog(db, actor=system_actor("bench"))
            db.commit()
            depts = [d.id for d in org_service.list_departments(db, include_inactive=False)]
            cats = sorted(c.code for c in catalog.list_categories(db))
        towns = [f"370306{c}000" for c in ("001", "002", "003", "004", "005", "100", "101", "102", "103", "104")]
        start = datetime(2025, 11, 1, tzinfo=UTC)
        step = int(365 * 86400 / rows)  # a year of history
        t0 = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(text(_FILL_EVENTS), {"cats": cats, "towns": towns, "depts": depts, "start": start,
                                              "step": step, "n": rows})
            conn.execute(text("SELECT setval(pg_get_serial_sequence('event', 'id'), :n)"), {"n": rows})
            conn.execute(text(_FILL_LOGS))
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE event"))
            conn.execute(text("VACUUM ANALYZE event_log"))
        fill = time.perf_counter() - t0
        with Session(engine) as db:
            logs = db.scalar(text("SELECT count(*) FROM event_log"))
            p_start, p_end = evaluation.month_period(2026, 6)
            timings = []
            for _ in range(5):
                t = time.perf_counter()
                result = evaluation.evaluate(db, period_start=p_start, period_end=p_end, by="department",
                                             now=datetime(2026, 11, 26, tzinfo=UTC))
                timings.append(time.perf_counter() - t)
            in_month = sum(r.due for r in result)
        engine.dispose()
    timings.sort()
    print(f"[eval/postgresql] {rows:,} events + {logs:,} timeline rows (filled in {fill:.0f} s); "
          f"evaluate(by=department, 2026-06: {in_month:,} cases, {len(result)} departments): "
          f"median {timings[2] * 1e3:.0f} ms, best {timings[0] * 1e3:.0f} ms, worst {timings[-1] * 1e3:.0f} ms",
          flush=True)
    return {"rows": rows, "median_s": timings[2]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bulk", type=int, default=100_000, help="events in the bulk run (default 100,000)")
    parser.add_argument("--rate", type=int, default=200, help="paced intake rate, requests/s")
    parser.add_argument("--duration", type=int, default=20, help="seconds of paced intake load")
    parser.add_argument("--eval-rows", type=int, default=1_000_000)
    parser.add_argument("--only", default="bulk,intake,eval")
    parser.add_argument("--no-pg", action="store_true", help="SQLite only")
    args = parser.parse_args()
    parts = set(re.split(r"[ ,]+", args.only))
    print(f"citybrain events bench, {os.cpu_count()} CPUs, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC", flush=True)
    if "bulk" in parts:
        for label, db in backends(args.no_pg):
            with db as url:
                bench_bulk(label, url, args.bulk)
    if "intake" in parts:
        for label, db in backends(args.no_pg):
            with db as url:
                bench_intake(label, url, rate=args.rate, duration=args.duration)
    if "eval" in parts and not args.no_pg:
        bench_evaluation(args.eval_rows)


if __name__ == "__main__":
    main()
