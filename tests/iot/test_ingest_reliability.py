"""Reliability of MQTT ingestion with real brokers and real processes.

- kill -9 of `citybrain ingest` mid-stream: after a restart every message is stored exactly once;
- a broker restart: the worker reconnects and resumes by itself;
- a flood of malformed messages: every valid message is still stored, the bad ones are counted.

The system Mosquitto (127.0.0.1:1883) serves the flood test; the kill and restart tests start
their own Mosquitto on a free port so they can configure an unbounded queue and restart it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session

from citybrain.core import migrate
from citybrain.core.actor import system_actor
from citybrain.core.db import make_engine
from citybrain.iot import registry
from citybrain.iot.models import DeadLetter, Telemetry
from citybrain.iot.registry import DeviceIn
from citybrain.org import service as org_service
from conftest import BACKENDS, PG_ADMIN_URL

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
DEVICES = 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


class Mosquitto:
    """A private broker: unbounded queues (so an offline session loses nothing), restartable."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.conf = tmp / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n"
                             f"persistence false\nlog_dest stderr\nlog_type error\n")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    if not Path(MOSQUITTO).exists():
        pytest.fail("mosquitto is not installed (the project's setup installs it)")
    b = Mosquitto(tmp_path)
    b.start()
    yield b
    b.stop()


@pytest.fixture(params=BACKENDS)
def fresh_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated database of its own with departments, products and DEVICES devices."""
    drop = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ingest.db'}"
    else:
        name = f"citybrain_ingest_{uuid.uuid4().hex[:10]}"
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = admin.url.set(database=name).render_as_string(hide_password=False)

        def drop() -> None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    engine = make_engine(url)
    migrate.upgrade(engine)
    actor = system_actor("test")
    with Session(engine) as db:
        org_service.load_shipped_departments(db, actor=actor)
        registry.sync_products(db, actor=actor)
        for i in range(DEVICES):
            registry.register(db, DeviceIn(key=f"r-{i}", name=f"r{i}", product="air_quality_station",
                                           department_code="ecology"), actor=actor)
        db.commit()
    engine.dispose()
    yield url
    if drop:
        drop()


def stored(url: str) -> int:
    engine = make_engine(url)
    try:
        with Session(engine) as db:
            return db.scalar(select(func.count()).select_from(Telemetry))
    finally:
        engine.dispose()


def start_ingest(url: str, port: int, group: str, stats: Path) -> subprocess.Popen:
    env = os.environ | {"CITYBRAIN_DATABASE_URL": url, "CITYBRAIN_MQTT_URL": f"mqtt://127.0.0.1:{port}",
                        "CITYBRAIN_MQTT_SHARE_GROUP": group, "CITYBRAIN_LOG_FORMAT": "text",
                        "CITYBRAIN_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen([sys.executable, "-m", "citybrain.cli", "ingest", "--stats-file", str(stats)], env=env,
                            start_new_session=True)
    end = time.monotonic() + 60
    while not stats.exists():  # the first stats line is written once the worker runs
        if proc.poll() is not None:
            raise RuntimeError(f"citybrain ingest exited with {proc.returncode}")
        if time.monotonic() > end:
            raise TimeoutError("citybrain ingest did not start")
        time.sleep(0.1)
    return proc


def kill9(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            kill9(proc)


def publisher(port: int) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
    client.max_inflight_messages_set(200)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def reading(i: int, base: int) -> tuple[str, bytes]:
    device = f"r-{i % DEVICES}"
    return (f"citybrain/air_quality_station/{device}/telemetry",
            orjson.dumps({"ts": base + i, "values": {"pm25": 35.0, "pm10": 50.0, "o3": 60.0}}))


def wait_stored(url: str, expected: int, timeout: float) -> int:
    end = time.monotonic() + timeout
    count = stored(url)
    while count < expected and time.monotonic() < end:
        time.sleep(0.5)
        count = stored(url)
    return count


def test_kill_9_mid_stream_loses_nothing_and_stores_once(broker: Mosquitto, fresh_db: str, tmp_path: Path) -> None:
    total = 6000
    group = f"k{uuid.uuid4().hex[:8]}"
    proc = start_ingest(fresh_db, broker.port, group, tmp_path / "stats.json")
    pub = publisher(broker.port)
    base = int(time.time() * 1000) - 600_000
    infos = []
    killed = False
    try:
        for i in range(total):
            infos.append(pub.publish(*reading(i, base), qos=1))
            if i == total // 3:
                # Wait until some are stored, so the kill lands mid-stream with work in flight.
                wait_stored(fresh_db, 1, 30)
                kill9(proc)
                killed = True
        for info in infos:
            info.wait_for_publish(30)  # the broker acknowledged every message
        assert killed and stored(fresh_db) < total, "the kill did not land mid-stream"
        proc = start_ingest(fresh_db, broker.port, group, tmp_path / "stats2.json")
        count = wait_stored(fresh_db, total, 120)
        assert count == total
        time.sleep(1.0)  # redeliveries still arriving would show up as more rows: they must not
        assert stored(fresh_db) == total
    finally:
        stop(proc)
        pub.loop_stop()


def test_broker_restart_ingestion_resumes_by_itself(broker: Mosquitto, fresh_db: str, tmp_path: Path) -> None:
    group = f"b{uuid.uuid4().hex[:8]}"
    stats = tmp_path / "stats.json"
    proc = start_ingest(fresh_db, broker.port, group, stats)
    base = int(time.time() * 1000) - 600_000
    try:
        pub = publisher(broker.port)
        for i in range(100):
            pub.publish(*reading(i, base), qos=1).wait_for_publish(10)
        assert wait_stored(fresh_db, 100, 30) == 100
        pub.loop_stop()
        broker.stop()
        time.sleep(1.0)
        broker.start()
        time.sleep(0.5)
        pub = publisher(broker.port)
        # The worker resubscribes within its reconnect delay; readings sent before it is back would
        # have no subscriber (the restarted broker has no sessions), so keep sending until they flow.
        sent = 100
        end = time.monotonic() + 60
        while stored(fresh_db) == 100 and time.monotonic() < end:
            pub.publish(*reading(sent, base), qos=1).wait_for_publish(10)
            sent += 1
            time.sleep(0.05)
        assert stored(fresh_db) > 100, "ingestion did not resume after the broker restart"
        for i in range(sent, sent + 200):
            pub.publish(*reading(i, base), qos=1).wait_for_publish(10)
        assert wait_stored(fresh_db, 300, 30) >= 300
        assert proc.poll() is None
        pub.loop_stop()
    finally:
        stop(proc)


def test_flood_of_malformed_messages_does_not_stop_valid_ones(fresh_db: str, tmp_path: Path) -> None:
    """Against the system Mosquitto at 127.0.0.1:1883."""
    wait_port(1883, 5)
    group = f"f{uuid.uuid4().hex[:8]}"
    stats = tmp_path / "stats.json"
    proc = start_ingest(fresh_db, 1883, group, stats)
    base = int(time.time() * 1000) - 600_000
    valid, bad = 2000, 10000
    try:
        pub = publisher(1883)
        garbage = [(f"citybrain/air_quality_station/r-{i % DEVICES}/telemetry", b"{oops" + bytes([i % 256]))
                   for i in range(bad // 2)]
        garbage += [(f"citybrain/air_quality_station/ghost-{i}/telemetry", b'{"pm25": 1}') for i in range(bad // 2)]
        infos = []
        for i in range(max(valid, bad)):
            if i < bad:
                infos.append(pub.publish(*garbage[i], qos=1))
            if i < valid:
                infos.append(pub.publish(*reading(i, base), qos=1))
        for info in infos:
            info.wait_for_publish(60)
        assert wait_stored(fresh_db, valid, 120) == valid
        end = time.monotonic() + 30
        snap = {}
        while time.monotonic() < end:
            snap = json.loads(stats.read_text())
            refused = snap["refused"]
            if refused.get("malformed_json", 0) >= bad // 2 and refused.get("unknown_device", 0) >= bad // 2:
                break
            time.sleep(0.5)
        # >= for unknown devices: the system broker is shared, other publishers' devices are unknown here.
        assert snap["refused"]["malformed_json"] == bad // 2
        assert snap["refused"]["unknown_device"] >= bad // 2
        engine = make_engine(fresh_db)
        with Session(engine) as db:
            letters = db.scalar(select(func.count()).select_from(DeadLetter))
        engine.dispose()
        assert 0 < letters <= bad  # stored with their reasons, capped per batch under a flood
        pub.loop_stop()
    finally:
        stop(proc)
