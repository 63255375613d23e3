"""End-to-end IoT ingestion bench (issue 4, Performance). Prints figures, asserts nothing.

For each configuration (mode × backend) on a fresh database:

1. migrate, load the shipped departments and products, one alarm rule on pm25 (a threshold the
   generated values never cross, so every reading is evaluated and none raises an alarm), and
   register the devices with a bulk INSERT into ``iot_device`` (a bench fixture: no audit entries,
   no secrets; the ingestor only needs the rows). In gateway mode the children carry their
   gateway's key and the gateways are registered as ``gateway`` devices;
2. the floor: a bare raw-MQTT subscriber (``iot_floor``) on ``citybrain/#`` while the generator
   (``iot_loadgen``) publishes at the same target rate (``--floor-duration``);
3. ``citybrain ingest --workers N --stats-file …`` against the same broker, the generator for
   ``--duration`` seconds; the stats file (every 2 s) gives readings, dead letters and the
   publish-to-commit latency of recent readings; per-process CPU from psutil;
4. afterwards: rows in ``iot_telemetry`` and ``iot_device_state`` counted, compared with the
   readings the broker acknowledged to the generator (nothing may be lost).

Broker: by default the bench starts its own ``mosquitto`` on 127.0.0.1:18833 with
``max_queued_messages 1000000`` (``--broker own``): the system Mosquitto at 1883 keeps its
defaults (at most 1,000 queued QoS 1 messages per subscriber, then *drops*; measured: 0.4-1.2 %
of messages lost by a bare subscriber at 30,000-40,000 msgs/s) and other people's tests publish
to it. ``--broker system`` uses 127.0.0.1:1883. Each run uses its own share group, and the
ingestion workers' persistent sessions are removed from the broker afterwards.

PostgreSQL: a fresh ``citybrain_bench_<random>`` database on CITYBRAIN_BENCH_PG_ADMIN (default
postgresql+psycopg://postgres@127.0.0.1:5432/postgres), dropped afterwards; SQLite: a file in a
temporary directory.

Usage: python bench/iot_bench.py [--quick] [--modes device,gateway] [--backends postgresql,sqlite]
       [--rate 20000] [--duration 120] [--workers 2] [--broker own|system] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import psutil
from sqlalchemy import create_engine, func, insert, select, text
from sqlalchemy.orm import Session

from citybrain.core import migrate
from citybrain.core.actor import system_actor
from citybrain.core.db import make_engine
from citybrain.iot import registry
from citybrain.iot.models import AlarmRule, DeadLetter, Device, DeviceState, Telemetry
from citybrain.org import service as org_service
from citybrain.org.models import Department

sys.path.insert(0, str(Path(__file__).parent))
import iot_floor  # noqa: E402
import iot_loadgen as lg  # noqa: E402

PG_ADMIN = os.environ.get("CITYBRAIN_BENCH_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
VENV_BIN = Path(sys.executable).parent
DEPARTMENT = "ecology"


# --- databases ------------------------------------------------------------------------------------


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


def database(backend: str) -> contextlib.AbstractContextManager[str]:
    return pg_database() if backend == "postgresql" else sqlite_database()


def prepare(url: str, cfg: lg.LoadConfig) -> dict[str, float]:
    """Migrate, load departments/products/one rule, bulk-register the devices; returns timings."""
    engine = make_engine(url)
    t0 = time.perf_counter()
    migrate.upgrade(engine)
    t1 = time.perf_counter()
    actor = system_actor("bench")
    now = datetime.now(UTC)
    rng = random.Random(cfg.seed)
    with Session(engine) as db:
        org_service.load_shipped_departments(db, actor=actor)
        registry.sync_products(db, actor=actor)
        db.add(AlarmRule(id="bench-pm25", name="PM2.5 over 500", product=lg.PRODUCT, device_key=None,
                         property="pm25", kind="threshold", params={"op": ">", "value": 500}, severity="major",
                         dispatch=False, category_code=None, enabled=True, updated_at=now))
        dept = db.scalar(select(Department.id).where(Department.code == DEPARTMENT))
        common = {"department_id": dept, "address": "", "install_date": None, "state": "active",
                  "secret_salt": None, "secret_hash": None, "secret_rotated_at": None, "township_code": None,
                  "grid_code": None, "created_at": now, "updated_at": now}
        rows = []
        groups = lg.gateway_children(cfg.devices, cfg.batch) if cfg.mode == "gateway" else []
        parent = {}
        for g, children in enumerate(groups):
            rows.append(common | {"key": lg.gateway_key(g), "name": f"网关 {g}", "product": lg.GATEWAY_PRODUCT,
                                  "gateway_key": None, "lon": None, "lat": None})
            parent.update(dict.fromkeys(children, lg.gateway_key(g)))
        for i in range(cfg.devices):
            rows.append(common | {"key": lg.device_key(i), "name": f"空气站 {i}", "product": lg.PRODUCT,
                                  "gateway_key": parent.get(i), "lon": round(rng.uniform(117.75, 117.92), 6),
                                  "lat": round(rng.uniform(36.70, 36.85), 6)})
        for start in range(0, len(rows), 5000):
            db.execute(insert(Device), rows[start:start + 5000])
        db.commit()
    t2 = time.perf_counter()
    engine.dispose()
    return {"migrate_s": t1 - t0, "setup_s": t2 - t1}


def count_rows(url: str) -> dict[str, int]:
    engine = make_engine(url)
    with Session(engine) as db:
        counts = {"telemetry_rows": db.scalar(select(func.count()).select_from(Telemetry)) or 0,
                  "state_rows": db.scalar(select(func.count()).select_from(DeviceState)) or 0,
                  "dead_letter_rows": db.scalar(select(func.count()).select_from(DeadLetter)) or 0}
    engine.dispose()
    return counts


# --- broker ---------------------------------------------------------------------------------------


def forget_sessions(url: str, client_ids: list[str]) -> None:
    """Remove the workers' persistent sessions (clean start, session expiry 0) so the broker stops
    queueing for a share group nobody will use again."""
    import paho.mqtt.client as mqtt

    address = url.removeprefix("mqtt://")
    host, port = address.rsplit(":", 1)
    for client_id in client_ids:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        with contextlib.suppress(OSError):
            client.connect(host, int(port), clean_start=True)
            client.loop_start()
            time.sleep(0.2)
            client.disconnect()
            client.loop_stop()


# --- CPU ------------------------------------------------------------------------------------------


class CpuMeter:
    """CPU seconds by role between ``start()`` and ``stop()``: ingest (the CLI and its workers),
    broker, PostgreSQL (every postgres process: includes anyone else's queries), and the whole
    machine (so what nobody here used is visible as "other")."""

    def __init__(self, ingest_pid: int, broker_pid: int | None) -> None:
        self.ingest_pid, self.broker_pid = ingest_pid, broker_pid
        self.before: dict[str, float] = {}
        self.wall = 0.0

    def _ingest(self) -> float:
        total = 0.0
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(self.ingest_pid)
            for p in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    t = p.cpu_times()
                    total += t.user + t.system
        return total

    def _sample(self) -> dict[str, float]:
        out = {"ingest": self._ingest(), "broker": 0.0, "postgres": 0.0}
        if self.broker_pid:
            with contextlib.suppress(psutil.Error):
                t = psutil.Process(self.broker_pid).cpu_times()
                out["broker"] = t.user + t.system
        for p in psutil.process_iter(["name"]):
            if p.info["name"] in ("postgres", "postmaster"):
                with contextlib.suppress(psutil.Error):
                    t = p.cpu_times()
                    out["postgres"] += t.user + t.system
        sys_t = psutil.cpu_times()
        out["machine"] = sum(sys_t) - sys_t.idle - getattr(sys_t, "iowait", 0.0)
        return out

    def start(self) -> None:
        self.before, self.wall = self._sample(), time.monotonic()

    def stop(self) -> dict[str, float]:
        """Cores used by each role over the interval."""
        after, wall = self._sample(), time.monotonic() - self.wall
        return {k: max(0.0, after[k] - self.before[k]) / wall for k in after} | {"wall_s": wall}


# --- ingest run -----------------------------------------------------------------------------------


@dataclass
class IngestRun:
    backend: str
    mode: str
    target_readings_per_s: float
    setup: dict[str, float]
    floor: dict[str, float]
    load: dict[str, float]
    ingest: dict[str, float | None]
    rows: dict[str, int]
    cpu: dict[str, float]
    stats: dict = field(default_factory=dict)


def _read_stats(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def run_ingest(url: str, mqtt_url: str, broker_pid: int | None, cfg: lg.LoadConfig, *, workers: int,
               catch_up_s: float) -> tuple[lg.LoadResult, dict, dict, list[dict]]:
    group = f"bench_{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        stats_path = Path(tmp) / "stats.json"
        env = os.environ | {"CITYBRAIN_DATABASE_URL": url, "CITYBRAIN_MQTT_URL": mqtt_url,
                            "CITYBRAIN_MQTT_SHARE_GROUP": group, "CITYBRAIN_LOG_LEVEL": "WARNING"}
        proc = subprocess.Popen([str(VENV_BIN / "citybrain"), "ingest", "--workers", str(workers),
                                 "--stats-file", str(stats_path)], env=env, start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                stats = _read_stats(stats_path)
                if stats and stats.get("workers") == workers:
                    break
                if proc.poll() is not None:
                    raise RuntimeError(f"citybrain ingest exited with {proc.returncode}")
                time.sleep(0.2)
            else:
                raise RuntimeError("citybrain ingest wrote no stats within 60 s")
            time.sleep(1.0)  # every worker has subscribed by now (stats come after consumer.start)
            meter = CpuMeter(proc.pid, broker_pid)
            meter.start()
            series: list[dict] = []

            def poll(_totals: dict) -> None:
                snap = _read_stats(stats_path)
                if snap and (not series or snap["at"] != series[-1]["at"]):
                    series.append(snap)

            load = lg.run(cfg, on_progress=poll)
            # Wait until every acknowledged reading is stored, or nothing moved for catch_up_s.
            last_change, seen = time.monotonic(), -1
            while True:
                snap = _read_stats(stats_path)
                if snap and (not series or snap["at"] != series[-1]["at"]):
                    series.append(snap)
                # "stored" counts rows newly written; "readings" also counts redelivered ones again.
                done = series[-1]["stored"] + series[-1]["dead_letters"] if series else 0
                if done != seen:
                    seen, last_change = done, time.monotonic()
                if done >= load.acked_readings or time.monotonic() - last_change > catch_up_s:
                    break
                time.sleep(0.5)
            cpu = meter.stop()
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            forget_sessions(mqtt_url, [f"citybrain-{group}-{n}" for n in range(workers)])
        final = _read_stats(stats_path) or (series[-1] if series else {})
    return load, final, cpu, series


def summarize_ingest(load: lg.LoadResult, final: dict, series: list[dict]) -> dict[str, float | None]:
    """Throughput from the first stats snapshot that had everything, latency over the sending window."""
    done_at = next((s["at"] for s in series if s["stored"] >= load.acked_readings), None)
    end = done_at or (series[-1]["at"] if series else load.sent_end)
    readings = final.get("stored", 0)
    window = [s for s in series if load.started + 5 <= s["at"] <= load.sent_end and s.get("latency_p50_ms")]
    return {
        "readings": readings, "processed": final.get("readings", 0), "messages": final.get("messages", 0),
        "dead_letters": final.get("dead_letters", 0),
        "batches": final.get("batches", 0),
        "readings_per_s": readings / max(1e-9, end - load.started),
        "caught_up_after_s": (done_at - load.sent_end) if done_at else None,
        "latency_p50_ms": statistics.median(s["latency_p50_ms"] for s in window) if window else None,
        "latency_p99_ms": statistics.median(s["latency_p99_ms"] for s in window) if window else None,
        "latency_p99_max_ms": max(s["latency_p99_ms"] for s in window) if window else None,
    }


def bench_one(backend: str, mode: str, args: argparse.Namespace, mqtt_url: str, broker_pid: int | None
              ) -> IngestRun:
    cfg = lg.LoadConfig(url=mqtt_url, mode=mode, devices=args.devices, batch=args.batch, rate=args.rate,
                        duration=args.duration, processes=args.processes, connections=args.connections)
    pts = cfg.points_per_reading
    label = f"[{backend} {mode}]"
    with database(backend) as url:
        setup = prepare(url, cfg)
        print(f"{label} migrate {setup['migrate_s']:.1f} s, departments/products/rule/devices "
              f"{setup['setup_s']:.1f} s", flush=True)
        floor = iot_floor.measure(replace(cfg, duration=args.floor_duration))
        print(f"{label} {floor.summary()}", flush=True)
        load, final, cpu, series = run_ingest(url, mqtt_url, broker_pid, cfg, workers=args.workers,
                                              catch_up_s=args.catch_up)
        print(f"{label} {load.summary()}", flush=True)
        ingest = summarize_ingest(load, final, series)
        rows = count_rows(url)
    run = IngestRun(
        backend=backend, mode=mode, target_readings_per_s=cfg.rate, setup=setup,
        floor={"readings_per_s": floor.readings_per_s, "msgs_per_s": floor.msgs_per_s, "lost": floor.lost,
               "p50_ms": floor.lat_p50_ms, "p99_ms": floor.lat_p99_ms, "sustained": floor.sustained},
        load={"sent_readings": load.sent_readings, "acked_readings": load.acked_readings,
              "acked_msgs": load.acked_msgs, "sent_readings_per_s": load.sent_readings_per_s,
              "elapsed_s": load.elapsed, "generator_cores": load.cpu_s / load.elapsed},
        ingest=ingest, rows=rows, cpu=cpu, stats=final)
    lost = load.acked_readings - rows["telemetry_rows"]
    lat = (f"p50 {ingest['latency_p50_ms']:.0f} ms, p99 {ingest['latency_p99_ms']:.0f} ms "
           f"(worst 2-s window {ingest['latency_p99_max_ms']:.0f} ms)" if ingest["latency_p50_ms"] is not None
           else "n/a")
    caught = "never" if ingest["caught_up_after_s"] is None else f"{ingest['caught_up_after_s']:.1f} s"
    msgs_s = ingest["messages"] / max(1e-9, ingest["readings"] / max(1e-9, ingest["readings_per_s"]))
    print(f"{label} ingest: {ingest['readings_per_s']:,.0f} readings/s = {ingest['readings_per_s'] * pts:,.0f} "
          f"points/s, {msgs_s:,.0f} msgs/s ({ingest['readings_per_s'] / max(1e-9, floor.readings_per_s):.0%} of the "
          f"floor {floor.readings_per_s * pts:,.0f} points/s); publish->commit {lat}; caught up "
          f"{caught} after the last publish ({ingest['processed']:,} readings processed, redeliveries "
          f"included); stored {rows['telemetry_rows']:,} rows for {load.acked_readings:,} acked readings "
          f"({'nothing lost' if lost == 0 else f'{lost:,} MISSING' if lost > 0 else f'{-lost:,} extra'}), "
          f"{rows['state_rows']:,} states, {rows['dead_letter_rows']:,} dead letters; CPU cores: ingest "
          f"{cpu['ingest']:.2f}, broker {cpu['broker']:.2f}, postgres {cpu['postgres']:.2f}, generator "
          f"{load.cpu_s / load.elapsed:.2f}, whole machine {cpu['machine']:.2f} of 2", flush=True)
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="15 s, 1,000 devices, one worker: a smoke run")
    ap.add_argument("--modes", default="device,gateway")
    ap.add_argument("--backends", default="postgresql,sqlite")
    ap.add_argument("--rate", type=float, default=20_000.0, help="target device readings/s (x3 data points)")
    ap.add_argument("--duration", type=float, default=120.0, help="seconds the generator sends to ingestion")
    ap.add_argument("--floor-duration", type=float, default=30.0)
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--processes", type=int, default=2, help="generator processes")
    ap.add_argument("--connections", type=int, default=4, help="generator connections per process")
    ap.add_argument("--catch-up", type=float, default=30.0, help="give up when nothing is stored for this long")
    ap.add_argument("--broker", choices=("own", "system"), default="own")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    if args.quick:
        args.duration, args.floor_duration, args.devices, args.workers = 15.0, 5.0, 1000, 1
        args.rate = min(args.rate, 3000.0)
        args.batch = min(args.batch, 50)
    runs = []
    with iot_floor.broker(args.broker) as (mqtt_url, broker_pid):
        print(f"broker {mqtt_url} ({args.broker}); {psutil.cpu_count()} CPUs", flush=True)
        for backend in args.backends.split(","):
            for mode in args.modes.split(","):
                runs.append(bench_one(backend, mode, args, mqtt_url, broker_pid))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in runs], indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
