"""``citybrain ingest``: MQTT ingestion workers as separate processes.

Each worker is a process with its own database pool, ``DeviceDirectory``, ``Ingestor`` and
``Consumer`` (client id ``citybrain-<group>-<n>``, stable across restarts so the broker keeps
its session and redelivers what it had not acknowledged). The parent restarts a worker that
dies, stops them all on SIGINT/SIGTERM, and can write their combined counters to a JSON file
every few seconds (``--stats-file``, used by ``bench/iot_bench.py``).
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from citybrain.config import Settings

log = logging.getLogger("citybrain.iot.worker")


def _worker(settings_env: dict[str, str], index: int, stats_queue: Any, interval_s: float) -> None:
    os.environ.update(settings_env)
    from citybrain.config import load_settings
    from citybrain.core.db import make_engine, make_sessionmaker
    from citybrain.core.logging import setup_logging

    from .consumer import BrokerAddress, Consumer
    from .ingest import Ingestor
    from .registry import DeviceDirectory

    settings = load_settings()
    setup_logging(settings.log_level, settings.log_format)
    engine = make_engine(settings.effective_database_url)
    factory = make_sessionmaker(engine)
    directory = DeviceDirectory(factory)
    ingestor = Ingestor(factory, directory, max_payload_bytes=settings.iot_max_payload_kb * 1024,
                        max_future_s=settings.iot_max_future_s)
    group = settings.mqtt_share_group
    consumer = Consumer(ingestor, BrokerAddress.parse(settings.mqtt_url), client_id=f"citybrain-{group}-{index}",
                        share_group=group)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    directory.refresh(force=True)
    consumer.start(wait_s=0)
    while not stop.wait(interval_s):
        if stats_queue is not None:
            snap = ingestor.stats.snapshot()
            with ingestor.stats.lock:
                snap["latency_sample"] = list(ingestor.stats.latencies)[-2000:]
            stats_queue.put((index, snap))
    consumer.stop()
    engine.dispose()


def _combine(snaps: dict[int, dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {"workers": len(snaps), "messages": 0, "readings": 0, "stored": 0, "dead_letters": 0,
                             "batches": 0, "refused": {}}
    sample: list[float] = []
    for snap in snaps.values():
        for key in ("messages", "readings", "stored", "dead_letters", "batches"):
            total[key] += snap[key]
        for code, count in snap["refused"].items():
            total["refused"][code] = total["refused"].get(code, 0) + count
        sample.extend(snap.get("latency_sample", []))
    sample.sort()
    for name, q in (("latency_p50_ms", 0.5), ("latency_p99_ms", 0.99)):
        total[name] = round(sample[min(len(sample) - 1, int(q * len(sample)))] * 1000, 1) if sample else None
    total["at"] = time.time()
    return total


def run(settings: Settings, *, workers: int, stats_file: Path | None, interval_s: float = 2.0) -> None:
    env = {f"CITYBRAIN_{k.upper()}": (str(v).lower() if isinstance(v, bool) else str(v))
           for k, v in settings.model_dump().items()}
    ctx = mp.get_context("spawn")
    stats_queue = ctx.Queue() if stats_file else None
    procs: dict[int, Any] = {}

    def spawn(index: int) -> None:
        proc = ctx.Process(target=_worker, args=(env, index, stats_queue, interval_s), name=f"ingest-{index}",
                           daemon=False)
        proc.start()
        procs[index] = proc

    for index in range(workers):
        spawn(index)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    snaps: dict[int, dict[str, Any]] = {}
    log.info("%d ingestion worker(s) consuming from %s", workers, settings.mqtt_url)
    while not stopping.is_set():
        deadline = time.monotonic() + interval_s
        while stats_queue is not None and time.monotonic() < deadline:
            try:
                index, snap = stats_queue.get(timeout=max(0.05, deadline - time.monotonic()))
                snaps[index] = snap
            except Exception:  # noqa: BLE001 - queue.Empty from another module
                break
        if stats_queue is None:
            stopping.wait(interval_s)
        if stats_file is not None and snaps:
            tmp = stats_file.with_suffix(stats_file.suffix + ".tmp")
            tmp.write_text(json.dumps(_combine(snaps)), encoding="utf-8")
            tmp.replace(stats_file)
        for index, proc in list(procs.items()):
            if not proc.is_alive() and not stopping.is_set():
                log.error("ingestion worker %d exited with %s; restarting", index, proc.exitcode)
                spawn(index)
    for proc in procs.values():
        if proc.is_alive():
            proc.terminate()
    for proc in procs.values():
        proc.join(timeout=30)
