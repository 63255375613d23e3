"""MQTT load generator for the IoT ingestion bench (issue 4, Performance). Prints figures, asserts nothing.

A naive Python publisher (paho, one ``publish()`` per reading) tops out near the broker's own
rate on this 2-core machine, so this one is built not to be the bottleneck:

* several processes (``--processes``), each an asyncio loop with a few raw TCP connections
  (``--connections`` per process) speaking MQTT 3.1.1 itself: CONNECT, PUBLISH QoS 1 with packet
  ids, PUBACK and PINGREQ/PINGRESP handling;
* every packet is pre-encoded at start: a device's (or gateway's) PUBLISH is a fixed head (fixed
  header, topic), the 2-byte packet id and the payload split where the 13 timestamp digits go,
  so sending one is a few byte concatenations; packets due in one tick go out in one write;
* a target rate (``--rate``, device readings per second in total, either mode) kept by a 5 ms
  ticker that sends what is due since the start; a connection stops sending while 20,000
  messages are unacknowledged (what it is then behind is reported).

Devices are ``aq00000`` … (product ``air_quality_station``, 3 properties per reading: pm25,
pm10, o3, inside the thing model's ranges and below any alarm threshold a bench adds). Modes:

``device``   one message per reading on ``citybrain/air_quality_station/{device}/telemetry``:
             ``{"ts": <epoch ms>, "values": {"pm25": .., "pm10": .., "o3": ..}}``
``gateway``  one message per gateway per round on ``citybrain/gateway/{gateway}/telemetry``:
             ``{"devices": [{"device": key, "ts": ms, "values": {...}}, ...]}`` with ``--batch``
             devices (default 100) per gateway (``gw0000`` …, children in key order).

``ts`` is the publish time in epoch ms (the ingestor measures publish-to-state latency from
it) and strictly increasing per device. Each device's values cycle through 4 pre-encoded sets.

Usage: python bench/iot_loadgen.py [--mode device|gateway] [--rate 20000] [--duration 30]
       [--devices 10000] [--batch 100] [--processes 2] [--connections 4] [--url mqtt://127.0.0.1:1883]
Other benches import ``LoadConfig`` and ``run``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import queue
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

PRODUCT = "air_quality_station"
GATEWAY_PRODUCT = "gateway"
# (property, low, high): inside the thing model's min/max, below the bench's alarm threshold.
PROPERTIES = (("pm25", 5.0, 150.0), ("pm10", 10.0, 300.0), ("o3", 10.0, 250.0))
VARIANTS = 4  # pre-encoded value sets per device
TS_DIGITS = 13  # epoch ms from 2001 to 2286
TICK_S = 0.005
MAX_INFLIGHT = 20_000  # per connection; packet ids are 16 bits
KEEPALIVE_S = 60
LATENCY_BUCKETS = 10_000  # 1 ms buckets of publish -> PUBACK latency; the last one is "10 s or more"

PUBLISH_QOS1 = 0x32
PUBACK, PINGRESP, CONNACK = 4, 13, 2
PINGREQ = b"\xc0\x00"
DISCONNECT = b"\xe0\x00"
_PID = [i.to_bytes(2, "big") for i in range(65536)]


def device_key(i: int) -> str:
    return f"aq{i:05d}"


def gateway_key(g: int) -> str:
    return f"gw{g:04d}"


def gateway_children(devices: int, batch: int) -> list[list[int]]:
    """Device indices of each gateway, in order: gateway g has devices g*batch … g*batch+batch-1."""
    return [list(range(start, min(start + batch, devices))) for start in range(0, devices, batch)]


# --- MQTT 3.1.1 encoding --------------------------------------------------------------------


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(s: str | bytes) -> bytes:
    raw = s.encode() if isinstance(s, str) else s
    return len(raw).to_bytes(2, "big") + raw


def encode_connect(client_id: str, *, keepalive: int = KEEPALIVE_S, username: str | None = None,
                   password: str | None = None, clean: bool = True) -> bytes:
    flags = (0x02 if clean else 0) | (0x80 if username else 0) | (0x40 if password else 0)
    body = _string("MQTT") + bytes([4, flags]) + keepalive.to_bytes(2, "big") + _string(client_id)
    if username:
        body += _string(username)
    if password:
        body += _string(password)
    return b"\x10" + varint(len(body)) + body


@dataclass(frozen=True, slots=True)
class Template:
    """A QoS 1 PUBLISH with the packet id and the timestamp digits left open."""

    head: bytes  # fixed header + topic
    parts: tuple[bytes, ...]  # the payload, split where the timestamp digits go
    readings: int

    @classmethod
    def build(cls, topic: str, payload_parts: list[bytes], readings: int) -> Template:
        payload_len = sum(map(len, payload_parts)) + TS_DIGITS * (len(payload_parts) - 1)
        topic_b = _string(topic)
        head = bytes([PUBLISH_QOS1]) + varint(len(topic_b) + 2 + payload_len) + topic_b
        return cls(head, tuple(payload_parts), readings)

    def packet(self, pid: int, ts: int) -> bytes:
        return self.head + _PID[pid] + (b"%d" % ts).join(self.parts)


def encode_publish(topic: str, payload: bytes, pid: int) -> bytes:
    """One QoS 1 PUBLISH, encoded without templates (used by the test against paho)."""
    body = _string(topic) + _PID[pid] + payload
    return bytes([PUBLISH_QOS1]) + varint(len(body)) + body


def _values(rng: random.Random) -> bytes:
    return json.dumps({name: round(rng.uniform(lo, hi), 1) for name, lo, hi in PROPERTIES},
                      separators=(",", ":")).encode()


def device_templates(i: int, rng: random.Random) -> list[Template]:
    topic = f"citybrain/{PRODUCT}/{device_key(i)}/telemetry"
    return [Template.build(topic, [b'{"ts":', b',"values":' + _values(rng) + b"}"], 1) for _ in range(VARIANTS)]


def gateway_templates(g: int, children: list[int], rng: random.Random) -> list[Template]:
    topic = f"citybrain/gateway/{gateway_key(g)}/telemetry"
    out = []
    for _ in range(VARIANTS):
        parts, tail = [], b'{"devices":['
        for n, i in enumerate(children):
            parts.append(tail + (b"," if n else b"") + b'{"device":"' + device_key(i).encode() + b'","ts":')
            tail = b',"values":' + _values(rng) + b"}"
        parts.append(tail + b"]}")
        out.append(Template.build(topic, parts, len(children)))
    return out


# --- one process ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadConfig:
    url: str = "mqtt://127.0.0.1:1883"
    mode: str = "device"  # device | gateway
    devices: int = 10_000
    batch: int = 100  # devices per gateway message
    rate: float = 20_000.0  # device readings per second, in total
    duration: float = 30.0
    processes: int = 2
    connections: int = 4  # per process
    drain_s: float = 30.0  # how long to wait for outstanding PUBACKs at the end
    seed: int = 1
    client_prefix: str = "loadgen"

    @property
    def points_per_reading(self) -> int:
        return len(PROPERTIES)


@dataclass
class ConnStats:
    sent_msgs: int = 0
    sent_readings: int = 0
    acked_msgs: int = 0
    acked_readings: int = 0
    stalled_ticks: int = 0  # ticks spent waiting because MAX_INFLIGHT was reached
    latency: list[int] = field(default_factory=lambda: [0] * LATENCY_BUCKETS)


class Connection:
    """One MQTT connection publishing a share of the units (devices or gateways) round-robin."""

    def __init__(self, cfg: LoadConfig, name: str, units: list[tuple[list[int], list[Template]]], rate: float):
        self.cfg, self.name, self.units, self.rate = cfg, name, units, rate  # rate in messages/s
        self.stats = ConnStats()
        self.inflight_readings = [0] * 65536
        self.sent_at = [0.0] * 65536
        self.inflight = 0
        self.next_pid = 1
        self.last_ts: dict[int, int] = {}
        self.acked_all = asyncio.Event()
        self.reader: asyncio.StreamReader
        self.writer: asyncio.StreamWriter
        self.last_write = 0.0

    async def connect(self) -> None:
        url = urlsplit(self.cfg.url)
        self.reader, self.writer = await asyncio.open_connection(url.hostname or "127.0.0.1", url.port or 1883)
        self.writer.write(encode_connect(self.name, username=url.username, password=url.password))
        head = await self.reader.readexactly(4)
        if head[0] >> 4 != CONNACK or head[3] != 0:
            raise ConnectionError(f"{self.name}: CONNACK refused ({head.hex()})")
        self.last_write = time.monotonic()

    async def read_loop(self) -> None:
        buf, stats, lat = bytearray(), self.stats, self.stats.latency
        while True:
            chunk = await self.reader.read(65536)
            if not chunk:
                return
            buf += chunk
            now, i, n = time.monotonic(), 0, len(buf)
            while i + 2 <= n:
                kind, length, j, mult, complete = buf[i] >> 4, 0, i + 1, 1, False
                while j < n:  # remaining length
                    b = buf[j]
                    length += (b & 0x7F) * mult
                    mult <<= 7
                    j += 1
                    if not b & 0x80:
                        complete = True
                        break
                if not complete or j + length > n:
                    break
                if kind == PUBACK:
                    pid = (buf[j] << 8) | buf[j + 1]
                    readings = self.inflight_readings[pid]
                    if readings:
                        self.inflight_readings[pid] = 0
                        self.inflight -= 1
                        stats.acked_msgs += 1
                        stats.acked_readings += readings
                        ms = int((now - self.sent_at[pid]) * 1000)
                        lat[ms if ms < LATENCY_BUCKETS else LATENCY_BUCKETS - 1] += 1
                i = j + length
            del buf[:i]
            if self.inflight == 0:
                self.acked_all.set()

    def _burst(self, count: int, cursor: int) -> int:
        """Send ``count`` messages starting at unit ``cursor``; returns the next cursor."""
        now_ms = time.time_ns() // 1_000_000
        mono = time.monotonic()
        units, nunits, last_ts = self.units, len(self.units), self.last_ts
        packets, stats = [], self.stats
        for _ in range(count):
            devices, templates = units[cursor % nunits]
            ts = now_ms
            for d in devices:  # strictly increasing per device
                prev = last_ts.get(d, 0)
                if prev >= ts:
                    ts = prev + 1
            for d in devices:
                last_ts[d] = ts
            tpl = templates[(cursor // nunits) % VARIANTS]
            pid = self.next_pid
            while self.inflight_readings[pid]:  # never reuse an unacknowledged id
                pid = pid % 65535 + 1
            self.next_pid = pid % 65535 + 1
            self.inflight_readings[pid] = tpl.readings
            self.sent_at[pid] = mono
            packets.append(tpl.packet(pid, ts))
            stats.sent_readings += tpl.readings
            cursor += 1
        self.inflight += count
        stats.sent_msgs += count
        self.acked_all.clear()
        self.writer.write(b"".join(packets))
        self.last_write = mono
        return cursor

    async def publish_loop(self, start: float, end: float) -> None:
        loop = asyncio.get_running_loop()
        cursor, sent = 0, 0
        max_burst = max(1, int(self.rate * 0.1))
        while True:
            now = loop.time()
            if now >= end:
                break
            due = min(int((now - start) * self.rate) - sent, max_burst, MAX_INFLIGHT - self.inflight)
            if due > 0:
                cursor = self._burst(due, cursor)
                sent += due
                if self.writer.transport.get_write_buffer_size() > 1 << 20:
                    await self.writer.drain()
            elif self.inflight >= MAX_INFLIGHT:
                self.stats.stalled_ticks += 1
            if time.monotonic() - self.last_write > KEEPALIVE_S / 2:
                self.writer.write(PINGREQ)
                self.last_write = time.monotonic()
            await asyncio.sleep(TICK_S)
        await self.writer.drain()

    async def finish(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.acked_all.wait(), self.cfg.drain_s)
        self.writer.write(DISCONNECT)
        await self.writer.drain()
        self.writer.close()


def _units(cfg: LoadConfig, proc: int) -> list[tuple[list[int], list[Template]]]:
    """This process's share: (device indices, templates) per unit, a unit being a device or a gateway."""
    rng = random.Random(cfg.seed * 1000 + proc)
    if cfg.mode == "gateway":
        groups = gateway_children(cfg.devices, cfg.batch)
        return [(children, gateway_templates(g, children, rng))
                for g, children in enumerate(groups) if g % cfg.processes == proc]
    return [([i], device_templates(i, rng)) for i in range(proc, cfg.devices, cfg.processes)]


def _messages_per_s(cfg: LoadConfig) -> float:
    if cfg.mode == "gateway":
        return cfg.rate / (cfg.devices / len(gateway_children(cfg.devices, cfg.batch)))
    return cfg.rate


async def _process_main(cfg: LoadConfig, proc: int, ready, go, start_at, progress) -> dict:  # noqa: ANN001
    units = _units(cfg, proc)
    nconn = max(1, min(cfg.connections, len(units)))
    shares = [units[c::nconn] for c in range(nconn)]
    proc_rate = _messages_per_s(cfg) * len(units) / _total_units(cfg)
    conns = [Connection(cfg, f"{cfg.client_prefix}-{os.getpid()}-{proc}-{c}", share,
                        proc_rate * len(share) / len(units)) for c, share in enumerate(shares)]
    await asyncio.gather(*(c.connect() for c in conns))
    readers = [asyncio.create_task(c.read_loop()) for c in conns]
    ready.put(proc)
    while not go.is_set():
        await asyncio.sleep(0.005)
    loop = asyncio.get_running_loop()
    delay = start_at.value - time.time()
    start = loop.time() + max(0.0, delay)
    await asyncio.sleep(max(0.0, delay))
    cpu0 = time.process_time()
    reporter = asyncio.create_task(_report(conns, proc, progress))
    await asyncio.gather(*(c.publish_loop(start, start + cfg.duration) for c in conns))
    sent_end = time.time()
    await asyncio.gather(*(c.finish() for c in conns))
    reporter.cancel()
    for r in readers:
        r.cancel()
    totals = _sum_stats(conns)
    totals.update(proc=proc, cpu_s=time.process_time() - cpu0, sent_end=sent_end, final=True)
    return totals


def _total_units(cfg: LoadConfig) -> int:
    return len(gateway_children(cfg.devices, cfg.batch)) if cfg.mode == "gateway" else cfg.devices


def _sum_stats(conns: list[Connection]) -> dict:
    out = {"sent_msgs": 0, "sent_readings": 0, "acked_msgs": 0, "acked_readings": 0, "stalled_ticks": 0}
    latency = [0] * LATENCY_BUCKETS
    for c in conns:
        for k in out:
            out[k] += getattr(c.stats, k)
        for i, v in enumerate(c.stats.latency):
            if v:
                latency[i] += v
    out["latency"] = {i: v for i, v in enumerate(latency) if v}
    return out


async def _report(conns: list[Connection], proc: int, progress) -> None:  # noqa: ANN001
    while True:
        await asyncio.sleep(1.0)
        stats = _sum_stats(conns)
        del stats["latency"]
        progress.put({"proc": proc, "final": False, **stats})


def _child(cfg: LoadConfig, proc: int, ready, go, start_at, progress) -> None:  # noqa: ANN001
    try:
        import uvloop  # noqa: PLC0415  (faster when installed; not a dependency)

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(_process_main(cfg, proc, ready, go, start_at, progress))
    progress.put(result)


# --- the parent -----------------------------------------------------------------------------


@dataclass
class LoadResult:
    config: LoadConfig
    started: float  # wall clock of the first publish
    sent_end: float  # wall clock when the last process stopped sending
    sent_msgs: int
    sent_readings: int
    acked_msgs: int
    acked_readings: int
    stalled_ticks: int
    cpu_s: float  # CPU seconds of all generator processes while sending and draining
    ack_p50_ms: float
    ack_p99_ms: float

    @property
    def elapsed(self) -> float:
        return max(1e-9, self.sent_end - self.started)

    @property
    def sent_readings_per_s(self) -> float:
        return self.sent_readings / self.elapsed

    def summary(self) -> str:
        c = self.config
        pts = c.points_per_reading
        return (f"loadgen [{c.mode}{f', batch {c.batch}' if c.mode == 'gateway' else ''}] target {c.rate:,.0f} "
                f"readings/s ({c.rate * pts:,.0f} points/s), {c.devices:,} devices, {c.processes}x{c.connections} "
                f"connections, {self.elapsed:.1f} s: sent {self.sent_msgs:,} msgs / {self.sent_readings:,} "
                f"readings ({self.sent_msgs / self.elapsed:,.0f} msgs/s, {self.sent_readings_per_s * pts:,.0f} "
                f"points/s); acked {self.acked_msgs:,} msgs / {self.acked_readings:,} readings; PUBACK p50 "
                f"{self.ack_p50_ms:.0f} ms p99 {self.ack_p99_ms:.0f} ms; generator CPU {self.cpu_s:.1f} s "
                f"({self.cpu_s / self.elapsed:.2f} cores); stalled ticks {self.stalled_ticks}")


def percentile(hist: dict[int, int], q: float) -> float:
    total = sum(hist.values())
    if not total:
        return float("nan")
    rank, seen = q * total, 0
    for ms in sorted(hist):
        seen += hist[ms]
        if seen >= rank:
            return float(ms)
    return float(max(hist))


def run(cfg: LoadConfig, *, on_progress=None) -> LoadResult:  # noqa: ANN001
    """Run the generator in ``cfg.processes`` processes; blocks until they have finished.

    ``on_progress(totals)`` is called about once a second with the summed counters."""
    ctx = mp.get_context("spawn")
    ready, progress = ctx.Queue(), ctx.Queue()
    go, start_at = ctx.Event(), ctx.Value("d", 0.0)
    procs = [ctx.Process(target=_child, args=(cfg, p, ready, go, start_at, progress), daemon=True)
             for p in range(cfg.processes)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=120)
    start_at.value = time.time() + 0.2
    go.set()
    latest: dict[int, dict] = {}
    finals: list[dict] = []
    shown = time.monotonic()
    while len(finals) < len(procs):
        try:
            msg = progress.get(timeout=1.0)
        except queue.Empty:
            if not any(p.is_alive() for p in procs) and progress.empty():
                raise RuntimeError("a load generator process died") from None
            continue
        if msg["final"]:
            finals.append(msg)
        latest[msg["proc"]] = msg
        if on_progress is not None and not msg["final"] and time.monotonic() - shown >= 0.9:
            shown = time.monotonic()
            on_progress({k: sum(m[k] for m in latest.values()) for k in ("sent_msgs", "sent_readings",
                                                                        "acked_msgs", "acked_readings")})
    for p in procs:
        p.join(timeout=10)
    latency: dict[int, int] = {}
    for f in finals:
        for ms, n in f["latency"].items():
            latency[int(ms)] = latency.get(int(ms), 0) + n
    total = {k: sum(f[k] for f in finals) for k in ("sent_msgs", "sent_readings", "acked_msgs", "acked_readings",
                                                     "stalled_ticks", "cpu_s")}
    return LoadResult(config=cfg, started=start_at.value, sent_end=max(f["sent_end"] for f in finals), **total,
                      ack_p50_ms=percentile(latency, 0.5), ack_p99_ms=percentile(latency, 0.99))


def parser(description: str = __doc__.split("\n\n")[0]) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=description)
    d = LoadConfig()
    ap.add_argument("--url", default=d.url, help="broker, mqtt://[user:password@]host:port")
    ap.add_argument("--mode", choices=("device", "gateway"), default=d.mode)
    ap.add_argument("--devices", type=int, default=d.devices)
    ap.add_argument("--batch", type=int, default=d.batch, help="devices per gateway message")
    ap.add_argument("--rate", type=float, default=d.rate, help="device readings per second in total")
    ap.add_argument("--duration", type=float, default=d.duration, help="seconds of sending")
    ap.add_argument("--processes", type=int, default=d.processes)
    ap.add_argument("--connections", type=int, default=d.connections, help="per process")
    return ap


def config_from(args: argparse.Namespace, **overrides) -> LoadConfig:  # noqa: ANN003
    fields = {k: getattr(args, k) for k in ("url", "mode", "devices", "batch", "rate", "duration", "processes",
                                            "connections")}
    return LoadConfig(**(fields | overrides))


def main() -> None:
    args = parser().parse_args()
    cfg = config_from(args)
    t0 = time.time()

    def show(t: dict) -> None:
        print(f"  {time.time() - t0:5.1f} s sent {t['sent_readings']:,} readings, acked {t['acked_readings']:,}",
              file=sys.stderr)

    result = run(cfg, on_progress=show)
    print(result.summary())
    print(json.dumps({k: v for k, v in asdict(result).items() if k != "config"}))


if __name__ == "__main__":
    main()
