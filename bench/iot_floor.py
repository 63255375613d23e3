"""The floor of the IoT ingestion bench: what the broker alone delivers to a bare subscriber from
the same load generator (``iot_loadgen``). Prints figures, asserts nothing.

A subscriber process on ``citybrain/#`` (QoS 1; with ``--subscribers N`` > 1 they share
``$share/floor/citybrain/#`` as ingestion workers do) counts messages and readings and the
publish-to-receive latency (the payload's first ``"ts"``). Two subscribers:

``raw``   asyncio, raw MQTT 5 with Receive Maximum 65,535 (as the ingestion consumer connects):
          parses PUBLISH, sends the PUBACKs of each read at once (the cheapest a Python subscriber
          can be);
``paho``  paho-mqtt 2.1, MQTT 3.1.1, an ``on_message`` callback (what a straightforward client does).

A rate is *sustained* when every message the broker acknowledged to the generator reached the
subscriber, the generator kept to its target (≥ 97 %), and the subscriber finished within 2 s
of the last publish (it was not building a backlog).

Usage: python bench/iot_floor.py [--mode device|gateway] [--rates 10000,20000,40000]
       [--subscriber raw|paho] [--subscribers 1] [--duration 20] [loadgen options]
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psutil

sys.path.insert(0, str(Path(__file__).parent))
import iot_loadgen as lg  # noqa: E402

LAT_BUCKETS = 60_000
OWN_PORT = 18833  # a private mosquitto (--broker own); 18830 is citybrain's embedded broker


def _ts_of(payload: bytes | memoryview) -> int | None:
    raw = bytes(payload[:400])
    k = raw.find(b'"ts":')
    if k < 0:
        return None
    try:
        return int(raw[k + 5:k + 5 + lg.TS_DIGITS])
    except ValueError:
        return None


class Counter:
    def __init__(self, n: int) -> None:
        self.n = n
        self.msgs = 0
        self.readings = 0
        self.first = 0.0
        self.last = 0.0
        self.latency: dict[int, int] = {}

    def add(self, payload: bytes | memoryview) -> None:
        now = time.time()
        if not self.msgs:
            self.first = now
        self.last = now
        self.msgs += 1
        self.readings += bytes(payload).count(b'"values"')
        ts = _ts_of(payload)
        if ts is not None:
            ms = max(0, min(LAT_BUCKETS - 1, int(now * 1000) - ts))
            self.latency[ms] = self.latency.get(ms, 0) + 1

    def snapshot(self, final: bool = False) -> dict:
        out = {"n": self.n, "msgs": self.msgs, "readings": self.readings, "first": self.first, "last": self.last,
               "final": final}
        if final:
            out["latency"] = self.latency
        return out


async def _read_packet(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    first = (await reader.readexactly(1))[0]
    length, mult = 0, 1
    while True:
        b = (await reader.readexactly(1))[0]
        length += (b & 0x7F) * mult
        mult <<= 7
        if not b & 0x80:
            break
    return first, await reader.readexactly(length)


async def _raw_subscribe(url: str, topic: str, client_id: str, counter: Counter, ready, stop) -> None:  # noqa: ANN001
    u = urlsplit(url)
    reader, writer = await asyncio.open_connection(u.hostname or "127.0.0.1", u.port or 1883)
    # MQTT 5 with Receive Maximum 65,535, as the ingestion consumer connects: the broker may keep
    # that many QoS 1 messages in flight instead of 20 (mosquitto's max_inflight_messages for v3).
    props = b"\x21\xff\xff"
    body = (lg._string("MQTT") + bytes([5, 0x02]) + (60).to_bytes(2, "big") + lg.varint(len(props)) + props
            + lg._string(client_id))
    if u.username:
        body = body[:7] + bytes([body[7] | 0x80 | (0x40 if u.password else 0)]) + body[8:] + lg._string(u.username)
        body += lg._string(u.password) if u.password else b""
    writer.write(b"\x10" + lg.varint(len(body)) + body)
    first, connack = await _read_packet(reader)
    if first >> 4 != lg.CONNACK or connack[1] != 0:
        raise ConnectionError(f"CONNACK refused: {connack.hex()}")
    body = b"\x00\x01\x00" + lg._string(topic) + b"\x01"
    writer.write(b"\x82" + lg.varint(len(body)) + body)
    first, suback = await _read_packet(reader)
    if first != 0x90 or suback[-1] > 1:
        raise ConnectionError(f"SUBACK refused: {suback.hex()}")
    ready.put(client_id)
    buf = bytearray()
    while not stop.is_set():
        try:
            chunk = await asyncio.wait_for(reader.read(262144), 0.2)
        except TimeoutError:
            continue
        if not chunk:
            break
        buf += chunk
        acks, i, n = [], 0, len(buf)
        view = memoryview(buf)
        while i + 2 <= n:
            first, length, j, mult, complete = buf[i], 0, i + 1, 1, False
            while j < n:
                b = buf[j]
                length += (b & 0x7F) * mult
                mult <<= 7
                j += 1
                if not b & 0x80:
                    complete = True
                    break
            if not complete or j + length > n:
                break
            if first >> 4 == 3:  # PUBLISH
                tlen = (buf[j] << 8) | buf[j + 1]
                k = j + 2 + tlen
                if (first >> 1) & 3:
                    acks.append(b"\x40\x02" + bytes(view[k:k + 2]))
                    k += 2
                plen, mult = 0, 1
                while True:  # v5 properties length
                    b = buf[k]
                    plen += (b & 0x7F) * mult
                    mult <<= 7
                    k += 1
                    if not b & 0x80:
                        break
                counter.add(view[k + plen:j + length])
            i = j + length
        view.release()
        del buf[:i]
        if acks:
            writer.write(b"".join(acks))
    writer.write(lg.DISCONNECT)
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    writer.close()


def _paho_subscribe(url: str, topic: str, client_id: str, counter: Counter, ready, stop) -> None:  # noqa: ANN001
    import paho.mqtt.client as mqtt

    u = urlsplit(url)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
    if u.username:
        client.username_pw_set(u.username, u.password)
    client.on_message = lambda _c, _u, msg: counter.add(msg.payload)
    client.on_subscribe = lambda *_a: ready.put(client_id)
    client.on_connect = lambda c, *_a: c.subscribe(topic, qos=1)
    client.connect(u.hostname or "127.0.0.1", u.port or 1883, keepalive=60)
    client.loop_start()
    while not stop.is_set():
        time.sleep(0.2)
    client.disconnect()
    client.loop_stop()


def _subscriber_child(n: int, kind: str, url: str, topic: str, client_id: str, ready, stop, out) -> None:  # noqa: ANN001
    counter = Counter(n)

    async def report() -> None:
        while not stop.is_set():
            out.put(counter.snapshot())
            await asyncio.sleep(0.5)

    if kind == "raw":
        async def both() -> None:
            task = asyncio.create_task(report())
            await _raw_subscribe(url, topic, client_id, counter, ready, stop)
            task.cancel()

        asyncio.run(both())
    else:
        import threading

        t = threading.Thread(target=_paho_subscribe, args=(url, topic, client_id, counter, ready, stop), daemon=True)
        t.start()
        while t.is_alive() and not stop.is_set():
            out.put(counter.snapshot())
            time.sleep(0.5)
        t.join(timeout=5)
    out.put(counter.snapshot(final=True))


@dataclass
class FloorResult:
    load: lg.LoadResult
    subscriber: str
    subscribers: int
    received_msgs: int
    received_readings: int
    first: float
    last: float
    lat_p50_ms: float
    lat_p99_ms: float

    @property
    def readings_per_s(self) -> float:
        return self.received_readings / max(1e-9, self.last - self.load.started)

    @property
    def msgs_per_s(self) -> float:
        return self.received_msgs / max(1e-9, self.last - self.load.started)

    @property
    def lost(self) -> int:
        return self.load.acked_readings - self.received_readings

    @property
    def sustained(self) -> bool:
        target = self.load.config.rate
        return (self.lost <= 0 and self.load.sent_readings_per_s >= 0.97 * target
                and self.last - self.load.sent_end <= 2.0)

    def summary(self) -> str:
        pts = self.load.config.points_per_reading
        return (f"floor [{self.load.config.mode}, {self.subscriber} x{self.subscribers}] target "
                f"{self.load.config.rate:,.0f} readings/s: received {self.received_msgs:,} msgs / "
                f"{self.received_readings:,} readings = {self.msgs_per_s:,.0f} msgs/s, "
                f"{self.readings_per_s * pts:,.0f} points/s; lost {self.lost:,}; publish->receive p50 "
                f"{self.lat_p50_ms:.0f} ms p99 {self.lat_p99_ms:.0f} ms; "
                f"{'SUSTAINED' if self.sustained else 'not sustained'}")


class Subscribers:
    """Bare subscriber processes, started before the generator and stopped after it."""

    def __init__(self, url: str, *, kind: str = "raw", count: int = 1) -> None:
        ctx = mp.get_context("spawn")
        self.kind, self.count = kind, count
        topic = "citybrain/#" if count == 1 else "$share/floor/citybrain/#"
        self.ready, self.stop, self.out = ctx.Queue(), ctx.Event(), ctx.Queue()
        tag = uuid.uuid4().hex[:6]
        self.procs = [ctx.Process(target=_subscriber_child, daemon=True,
                                  args=(n, kind, url, topic, f"floor-{tag}-{n}", self.ready, self.stop, self.out))
                      for n in range(count)]
        self.latest: dict[int, dict] = {}

    def start(self) -> None:
        for p in self.procs:
            p.start()
        for _ in self.procs:
            self.ready.get(timeout=30)
        time.sleep(0.3)  # the SUBACK is back; let the broker settle the subscription

    def received_readings(self) -> int:
        """Readings received so far (from the subscribers' latest reports)."""
        with contextlib.suppress(queue.Empty):
            while True:
                msg = self.out.get_nowait()
                self.latest[msg["n"]] = msg
        return sum(m["readings"] for m in self.latest.values())

    def finish(self, load: lg.LoadResult, *, idle_s: float = 3.0, max_wait_s: float = 60.0) -> FloorResult:
        """Wait until every acknowledged reading arrived (or nothing arrived for ``idle_s``), then stop."""
        seen, changed, deadline = -1, time.monotonic(), time.monotonic() + max_wait_s
        while time.monotonic() < deadline:
            readings = self.received_readings()
            if readings != seen:
                seen, changed = readings, time.monotonic()
            if readings >= load.acked_readings or time.monotonic() - changed > idle_s:
                break
            time.sleep(0.25)
        self.stop.set()
        finals = []
        end = time.monotonic() + 15
        while len(finals) < len(self.procs) and time.monotonic() < end:
            with contextlib.suppress(queue.Empty):
                msg = self.out.get(timeout=0.5)
                if msg["final"]:
                    finals.append(msg)
        for p in self.procs:
            p.join(timeout=5)
        latency: dict[int, int] = {}
        for f in finals:
            for ms, n in f["latency"].items():
                latency[ms] = latency.get(ms, 0) + n
        return FloorResult(load=load, subscriber=self.kind, subscribers=self.count,
                           received_msgs=sum(f["msgs"] for f in finals),
                           received_readings=sum(f["readings"] for f in finals),
                           first=min((f["first"] for f in finals if f["msgs"]), default=0.0),
                           last=max((f["last"] for f in finals), default=0.0),
                           lat_p50_ms=lg.percentile(latency, 0.5), lat_p99_ms=lg.percentile(latency, 0.99))


@contextlib.contextmanager
def broker(kind: str) -> Iterator[tuple[str, int | None]]:
    """(url, pid) of the broker to use; ``own`` starts a private mosquitto for the run."""
    if kind == "system":
        pid = next((p.pid for p in psutil.process_iter(["name"]) if p.info["name"] == "mosquitto"), None)
        yield "mqtt://127.0.0.1:1883", pid
        return
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp) / "mosquitto.conf"
        conf.write_text(f"listener {OWN_PORT} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                        "max_queued_messages 1000000\nlog_dest stderr\nlog_type error\nlog_type warning\n")
        proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", OWN_PORT), timeout=0.5).close()
                    break
                except OSError:
                    if proc.poll() is not None:
                        raise RuntimeError(f"mosquitto exited with {proc.returncode}") from None
                    time.sleep(0.1)
            yield f"mqtt://127.0.0.1:{OWN_PORT}", proc.pid
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def measure(cfg: lg.LoadConfig, *, subscriber: str = "raw", subscribers: int = 1) -> FloorResult:
    subs = Subscribers(cfg.url, kind=subscriber, count=subscribers)
    subs.start()
    try:
        load = lg.run(cfg)
    except BaseException:
        subs.stop.set()
        raise
    return subs.finish(load)


def main() -> None:
    ap = lg.parser(__doc__.split("\n\n")[0])
    ap.add_argument("--rates", default="10000,20000,40000", help="target readings/s to try, comma-separated")
    ap.add_argument("--modes", default="device,gateway")
    ap.add_argument("--subscriber", choices=("raw", "paho"), default="raw")
    ap.add_argument("--subscribers", type=int, default=1, help="> 1: a shared subscription")
    ap.add_argument("--broker", choices=("own", "system"), default=None,
                    help="own: start a private mosquitto (max_queued_messages 1000000) on 127.0.0.1:18833; "
                         "system: 127.0.0.1:1883; default: --url")
    ap.set_defaults(duration=20.0)
    args = ap.parse_args()
    with broker(args.broker) if args.broker else contextlib.nullcontext((args.url, None)) as (url, _pid):
        args.url = url
        rows = _sweep(args)
    _table(rows)


def _sweep(args) -> list[FloorResult]:  # noqa: ANN001
    rows = []
    for mode in args.modes.split(","):
        for rate in (float(r) for r in args.rates.split(",")):
            cfg = lg.config_from(args, mode=mode, rate=rate)
            result = measure(cfg, subscriber=args.subscriber, subscribers=args.subscribers)
            print(result.load.summary())
            print(result.summary(), flush=True)
            rows.append(result)
    return rows


def _table(rows: list[FloorResult]) -> None:
    print("\n| mode | subscriber | target points/s | generator sent points/s | received points/s | msgs/s | lost "
          "| p50 / p99 ms | sustained |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        pts = r.load.config.points_per_reading
        print(f"| {r.load.config.mode} | {r.subscriber} x{r.subscribers} | {r.load.config.rate * pts:,.0f} "
              f"| {r.load.sent_readings_per_s * pts:,.0f} | {r.readings_per_s * pts:,.0f} | {r.msgs_per_s:,.0f} "
              f"| {r.lost:,} | {r.lat_p50_ms:.0f} / {r.lat_p99_ms:.0f} | {'yes' if r.sustained else 'no'} |")


if __name__ == "__main__":
    main()
