"""Benchmarks of the foundation: demo load time, locate() throughput, grid bbox queries.

Runs against a fresh SQLite file (and PostgreSQL when CITYBRAIN_BENCH_PG_URL is set) and
prints figures; it asserts nothing. Usage: ``make bench`` or ``python bench/run.py``.
"""

from __future__ import annotations

import os
import random
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

from sqlalchemy.orm import Session

from citybrain.core import migrate
from citybrain.core.actor import system_actor
from citybrain.core.db import make_engine
from citybrain.demo.district import load_demo
from citybrain.geo import service as geo


def bench(url: str, label: str) -> None:
    engine = make_engine(url)
    t0 = time.perf_counter()
    migrate.upgrade(engine)
    t1 = time.perf_counter()
    with Session(engine) as db:
        load_demo(db, seed=1, actor=system_actor("bench"), today=date(2026, 11, 1))
        db.commit()
    t2 = time.perf_counter()
    print(f"[{label}] migrate {t1 - t0:.2f} s; demo load (32k grid cells, 5000 residents, 800 firms) {t2 - t1:.2f} s")

    rng = random.Random(42)
    with Session(engine) as db:
        points = []
        while len(points) < 2000:
            lon, lat = rng.uniform(117.69, 117.975), rng.uniform(36.641, 36.892)
            try:
                geo.locate(db, lon=lon, lat=lat)
                points.append((lon, lat))
            except geo.OutsideDistrict:
                continue
        t = time.perf_counter()
        for lon, lat in points:
            geo.locate(db, lon=lon, lat=lat)
        elapsed = time.perf_counter() - t
        print(f"[{label}] locate(): {len(points) / elapsed:,.0f} points/s "
              f"({elapsed / len(points) * 1e3:.3f} ms each, in-district points, one process)")

        timings = []
        for _ in range(50):
            lon, lat = rng.uniform(117.75, 117.92), rng.uniform(36.70, 36.85)
            t = time.perf_counter()
            fc = geo.grids_geojson(db, bbox=(lon, lat, lon + 0.03, lat + 0.02), limit=5000)
            timings.append(time.perf_counter() - t)
        print(f"[{label}] grids bbox 0.03x0.02 deg (~{len(fc['features'])} cells): median "
              f"{statistics.median(timings) * 1e3:.1f} ms, max {max(timings) * 1e3:.1f} ms")
    engine.dispose()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        bench(f"sqlite:///{Path(tmp) / 'bench.db'}", "sqlite")
    if pg := os.environ.get("CITYBRAIN_BENCH_PG_URL"):
        bench(pg, "postgresql")


if __name__ == "__main__":
    main()
