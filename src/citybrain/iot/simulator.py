"""The demo sensor simulator: realistic readings for the demo devices, published over real MQTT.

``Scenario`` is pure: what a device reads at an instant, deterministic from the seed. Time in the
scenario starts at ``start_ms`` and runs ``speed`` times faster than the wall clock; the readings'
``ts`` is always the wall clock (the platform refuses timestamps in the future). What happens,
in cycles of six scenario hours from the start:

* a rainstorm from minute 3: rain rises to ~60 mm/h and stops after about an hour; rain gauges
  report the last hour's rain; waterlogging gauges rise with the rain that has not drained away,
  the low spots above 30 cm for half an hour (the demo rule raises a dispatched alarm);
* a pollution episode from minute 90: PM2.5 above 115 µg/m³ for about an hour at most stations;
* all the time: diurnal PM2.5 (morning and evening peaks) and O3 (afternoon), parking occupancy
  following commute hours, street lights on at night, now and then a manhole cover tilting open
  or a smoke detector going off, about 0.3 % faulty readings (out of range: dead-lettered), and a
  few devices going silent for a while (the "no data" rule raises a warning).

``Simulator`` publishes the readings with paho-mqtt (QoS 1), one connection per device (user
name = key, password = secret), except detectors behind a gateway, whose readings the gateway
sends as one batch. All connections are served by one thread through paho's external-loop API.
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import json
import logging
import math
import selectors
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt

from .ingest import GATEWAY_SEGMENT, TOPIC_ROOT

log = logging.getLogger("citybrain.iot.simulator")

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
CYCLE_MS = 6 * HOUR_MS
CHINA_OFFSET_MS = 8 * HOUR_MS
STORM_AT_MS = 3 * MINUTE_MS
POLLUTION_AT_MS = 90 * MINUTE_MS
FAULT_RATE = 0.003

# Seconds between two readings of a device, by product (wall clock).
INTERVAL_S: dict[str, float] = {
    "air_quality_station": 60, "waterlogging_gauge": 60, "rain_gauge": 60, "manhole_cover": 120,
    "parking_detector": 120, "smoke_detector": 300, "street_light": 300, "water_quality_station": 300,
    "gateway": 60,
}


@dataclass(frozen=True)
class SimDevice:
    key: str
    product: str
    secret: str = ""
    gateway_key: str | None = None


def _unit(*parts: object) -> float:
    """A deterministic number in [0, 1) from the parts."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return struct.unpack(">Q", digest)[0] / 2**64


def _bump(t: float, rise: float, hold: float, fall: float) -> float:
    """0 → 1 over ``rise``, 1 for ``hold``, 1 → 0 over ``fall`` (t from the start of the rise)."""
    if t <= 0 or t >= rise + hold + fall:
        return 0.0
    if t < rise:
        return t / rise
    if t < rise + hold:
        return 1.0
    return 1 - (t - rise - hold) / fall


class Scenario:
    """What every demo device reads at a scenario instant; pure and deterministic from the seed."""

    def __init__(self, seed: int, start_ms: int) -> None:
        self.seed = seed
        self.start_ms = start_ms

    # --- the weather and the city --------------------------------------------------------

    def _cycle(self, t: int) -> tuple[int, int] | None:
        """(cycle number, ms into the cycle), or None before the start (history: no episodes)."""
        if t < self.start_ms:
            return None
        return divmod(t - self.start_ms, CYCLE_MS)

    def rain_rate(self, t: int) -> float:
        """Rain intensity in mm/h."""
        cyc = self._cycle(t)
        if cyc is None:
            return 0.0
        x = (cyc[1] - STORM_AT_MS) / MINUTE_MS
        return 60.0 * _bump(x, 20, 15, 30) * (0.8 + 0.4 * _unit(self.seed, "storm", cyc[0]))

    def _rain_since(self, t: int, minutes: int, *, half_life_min: float | None = None) -> float:
        """mm of rain in the last ``minutes`` (decayed with ``half_life_min`` if given)."""
        total, step = 0.0, 2
        for i in range(0, minutes, step):
            rate = self.rain_rate(t - i * MINUTE_MS)
            weight = 0.5 ** (i / half_life_min) if half_life_min else 1.0
            total += rate * step / 60 * weight
        return total

    def pollution(self, t: int) -> float:
        cyc = self._cycle(t)
        if cyc is None:
            return 0.0
        return _bump((cyc[1] - POLLUTION_AT_MS) / MINUTE_MS, 30, 60, 30)

    @staticmethod
    def hour(t: int) -> float:
        return ((t + CHINA_OFFSET_MS) % 86_400_000) / HOUR_MS

    @staticmethod
    def weekday(t: int) -> int:
        return int((t + CHINA_OFFSET_MS) // 86_400_000 + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday

    # --- faults and silence -----------------------------------------------------------------

    def is_faulty(self, dev: SimDevice, t: int) -> bool:
        return t >= self.start_ms and _unit(self.seed, "fault", dev.key, t // 1000) < FAULT_RATE

    def is_silent(self, dev: SimDevice, t: int) -> bool:
        """About 3 % of devices stop sending for 40-100 min in each cycle (the gateways never do)."""
        cyc = self._cycle(t)
        if cyc is None or dev.product == "gateway" or _unit(self.seed, "silent", dev.key, cyc[0]) >= 0.03:
            return False
        begin = (5 + 60 * _unit(self.seed, "silent-at", dev.key, cyc[0])) * MINUTE_MS
        length = (40 + 60 * _unit(self.seed, "silent-for", dev.key, cyc[0])) * MINUTE_MS
        return begin <= cyc[1] < begin + length

    # --- readings -------------------------------------------------------------------------------

    def values(self, dev: SimDevice, t: int) -> dict[str, Any]:
        """The device's property values at scenario time ``t`` (epoch ms), faults included."""
        reading = getattr(self, "_" + dev.product)(dev, t)
        if self.is_faulty(dev, t):
            reading = self._fault(dev, reading)
        return reading

    def _noise(self, dev: SimDevice, t: int, what: str, scale: float) -> float:
        return (2 * _unit(self.seed, what, dev.key, t // MINUTE_MS) - 1) * scale

    def _trait(self, dev: SimDevice, what: str, low: float, high: float) -> float:
        return low + (high - low) * _unit(self.seed, "trait", what, dev.key)

    def _battery(self, dev: SimDevice, t: int) -> int:
        return max(5, min(100, round(self._trait(dev, "battery", 55, 100) - (t / 86_400_000) % 30 * 0.3)))

    def _air_quality_station(self, dev: SimDevice, t: int) -> dict[str, Any]:
        h = self.hour(t)
        morning = math.exp(-((h - 8) ** 2) / 4)
        evening = math.exp(-((h - 20) ** 2) / 6)
        sun = max(0.0, math.sin((h - 7) / 14 * math.pi)) if 7 <= h <= 21 else 0.0
        site = self._trait(dev, "site", 0.8, 1.25)
        washed = 1 - 0.5 * min(1.0, self._rain_since(t, 120) / 20)
        pm25 = (32 + 18 * morning + 24 * evening) * site * washed + self._noise(dev, t, "pm25", 4)
        pm25 += 125 * self.pollution(t) * self._trait(dev, "episode", 0.85, 1.35)
        pm25 = max(3.0, pm25)
        temperature = 11 + 8 * math.sin((h - 9) / 24 * 2 * math.pi) + self._noise(dev, t, "temp", 0.4)
        humidity = min(100.0, 55 - 15 * sun + 40 * min(1.0, self.rain_rate(t) / 10) + self._noise(dev, t, "rh", 2))
        return {
            "pm25": round(pm25, 1),
            "pm10": round(pm25 * 1.55 + 12 + self._noise(dev, t, "pm10", 5), 1),
            "so2": round(max(1.0, 9 * site + self._noise(dev, t, "so2", 2)), 1),
            "no2": round(max(2.0, (22 + 22 * morning + 18 * evening) * site + self._noise(dev, t, "no2", 3)), 1),
            "co": round(max(0.1, 0.55 + 0.35 * (morning + evening) + self._noise(dev, t, "co", 0.05)), 2),
            "o3": round(max(2.0, 28 + 110 * sun ** 2 * site + self._noise(dev, t, "o3", 5)), 1),
            "temperature": round(temperature, 1),
            "humidity": round(max(5.0, humidity), 1),
        }

    def _waterlogging_gauge(self, dev: SimDevice, t: int) -> dict[str, Any]:
        # Low spots collect more water; what has not drained (half-life 25 min) stands on the road.
        depth = 1.4 * self._trait(dev, "lowness", 0.3, 1.7) * self._rain_since(t, 180, half_life_min=25)
        depth = max(0.0, depth + (self._noise(dev, t, "level", 0.6) if depth > 1 else 0.0))
        return {"level_cm": round(depth, 1), "battery": self._battery(dev, t)}

    def _rain_gauge(self, dev: SimDevice, t: int) -> dict[str, Any]:
        local = self._trait(dev, "rainfall", 0.75, 1.25)
        return {"rain_mm_1h": round(self._rain_since(t, 60) * local, 1)}

    def _manhole_cover(self, dev: SimDevice, t: int) -> dict[str, Any]:
        cyc = self._cycle(t)
        tilt = abs(self._noise(dev, t, "tilt", 1.5))
        opened = False
        if cyc is not None and _unit(self.seed, "manhole", dev.key, cyc[0]) < 0.08:
            at = (10 + 300 * _unit(self.seed, "manhole-at", dev.key, cyc[0])) * MINUTE_MS
            if at <= cyc[1] < at + 25 * MINUTE_MS:
                tilt = 20 + 40 * _unit(self.seed, "manhole-tilt", dev.key, cyc[0])
                opened = cyc[1] < at + 12 * MINUTE_MS
        return {"tilt_deg": round(tilt, 1), "open": opened, "battery": self._battery(dev, t)}

    def _parking_detector(self, dev: SimDevice, t: int) -> dict[str, Any]:
        h, workday = self.hour(t), self.weekday(t) < 5
        if self._trait(dev, "lot", 0, 1) < 0.6:  # office and shopping streets
            busy = 0.85 if workday and 8.5 <= h < 18 else 0.55 if 10 <= h < 21 else 0.12
        else:  # residential: full at night, half empty while people are at work
            busy = 0.45 if workday and 8 <= h < 17.5 else 0.9 if h >= 19 or h < 7 else 0.65
        occupied = _unit(self.seed, "parked", dev.key, t // (20 * MINUTE_MS)) < busy
        return {"occupied": occupied, "battery": self._battery(dev, t)}

    def _smoke_detector(self, dev: SimDevice, t: int) -> dict[str, Any]:
        cyc = self._cycle(t)
        smoke = False
        if cyc is not None and _unit(self.seed, "fire", dev.key, cyc[0]) < 0.02:
            at = (30 + 240 * _unit(self.seed, "fire-at", dev.key, cyc[0])) * MINUTE_MS
            smoke = at <= cyc[1] < at + 8 * MINUTE_MS
        return {"smoke": smoke, "battery": self._battery(dev, t)}

    def _street_light(self, dev: SimDevice, t: int) -> dict[str, Any]:
        h = self.hour(t)
        dusk = 17.5 + self._trait(dev, "dusk", 0, 0.5)
        on = h >= dusk or h < 6.2
        brightness = 0 if not on else 60 if 0 <= h < 5.5 or h >= 23 else 100
        power = 0.4 if not on else brightness * 1.5 * self._trait(dev, "lamp", 0.9, 1.1) + self._noise(dev, t, "w", 2)
        return {"on": on, "brightness": brightness, "power_w": round(max(0.0, power), 1), "mode": "auto"}

    def _water_quality_station(self, dev: SimDevice, t: int) -> dict[str, Any]:
        h = self.hour(t)
        runoff = min(1.0, self._rain_since(t, 240, half_life_min=90) / 15)
        site = self._trait(dev, "river", 0.8, 1.3)
        return {
            "ph": round(7.4 + 0.3 * math.sin((h - 10) / 24 * 2 * math.pi) + self._noise(dev, t, "ph", 0.05), 2),
            "do": round(max(1.0, 7.2 + 1.5 * math.sin((h - 10) / 24 * 2 * math.pi) - 1.5 * runoff), 2),
            "cod": round(16 * site + 12 * runoff + self._noise(dev, t, "cod", 1), 1),
            "nh3n": round(max(0.05, 0.55 * site + 0.6 * runoff + self._noise(dev, t, "nh3n", 0.05)), 3),
            "tp": round(max(0.01, 0.11 * site + 0.12 * runoff + self._noise(dev, t, "tp", 0.01)), 3),
            "turbidity": round(max(1.0, 12 * site + 90 * runoff + self._noise(dev, t, "ntu", 1.5)), 1),
        }

    def _gateway(self, dev: SimDevice, t: int) -> dict[str, Any]:
        return {}

    def _fault(self, dev: SimDevice, reading: dict[str, Any]) -> dict[str, Any]:
        """A stuck or broken sensor: one numeric value far outside its physical range."""
        broken = {"air_quality_station": ("pm25", -999.0), "waterlogging_gauge": ("level_cm", 999.0),
                  "rain_gauge": ("rain_mm_1h", -1.0), "manhole_cover": ("tilt_deg", 360.0),
                  "parking_detector": ("battery", 255), "smoke_detector": ("battery", 255),
                  "street_light": ("power_w", 65535.0), "water_quality_station": ("ph", 15.5)}.get(dev.product)
        return reading if broken is None else reading | {broken[0]: broken[1]}

    # --- messages -------------------------------------------------------------------------------

    def message(self, dev: SimDevice, t: int, ts_ms: int,
                children: Iterable[SimDevice] = ()) -> tuple[str, bytes] | None:
        """(topic, payload) the device publishes at scenario time ``t`` stamped ``ts_ms``; None when silent."""
        if dev.product == "gateway":
            items = [{"device": c.key, "ts": ts_ms, "values": self.values(c, t)}
                     for c in children if not self.is_silent(c, t)]
            if not items:
                return None
            return f"{TOPIC_ROOT}/{GATEWAY_SEGMENT}/{dev.key}/telemetry", json.dumps({"devices": items}).encode()
        if self.is_silent(dev, t):
            return None
        payload = json.dumps({"ts": ts_ms, "values": self.values(dev, t)}, separators=(",", ":")).encode()
        return f"{TOPIC_ROOT}/{dev.product}/{dev.key}/telemetry", payload


# --- publishing ---------------------------------------------------------------------------


@dataclass
class Stats:
    published: int = 0
    acknowledged: int = 0
    silent: int = 0
    faulty: int = 0
    connected: int = 0
    refused: dict[str, str] = field(default_factory=dict)

    def line(self) -> str:
        return (f"published {self.published}, acknowledged {self.acknowledged}, faulty {self.faulty}, "
                f"skipped while silent {self.silent}, connections {self.connected}"
                + (f", refused logins {len(self.refused)}" if self.refused else ""))


def parse_url(url: str) -> tuple[str, int, str | None, str | None]:
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
        raise ValueError(f"not an mqtt://host:port URL: {url!r}")
    return (parts.hostname, parts.port or 1883, unquote(parts.username) if parts.username else None,
            unquote(parts.password) if parts.password else None)


class Simulator:
    """Publishes the scenario's readings for ``devices`` to the broker at ``url``."""

    def __init__(self, devices: Iterable[SimDevice], *, url: str, seed: int, rate: float = 0.0, speed: float = 1.0,
                 start_ms: int | None = None, wall: Callable[[], float] = time.time) -> None:
        self.host, self.port, _user, _password = parse_url(url)
        self.devices = list(devices)
        self.wall = wall
        self.started_wall_ms = int(wall() * 1000)
        self.scenario = Scenario(seed, self.started_wall_ms if start_ms is None else start_ms)
        self.speed = speed
        self.rate = rate
        self.stats = Stats()
        self._children: dict[str, list[SimDevice]] = {}
        for dev in self.devices:
            if dev.gateway_key:
                self._children.setdefault(dev.gateway_key, []).append(dev)
        self._senders = [d for d in self.devices if not d.gateway_key or d.gateway_key not in
                         {g.key for g in self.devices if g.product == "gateway"}]
        self._clients: dict[str, mqtt.Client] = {}
        self._selector = selectors.DefaultSelector()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def scenario_ms(self, wall_ms: int) -> int:
        return self.scenario.start_ms + int((wall_ms - self.started_wall_ms) * self.speed)

    def interval_s(self, dev: SimDevice) -> float:
        if self.rate > 0:
            return max(0.001, len(self._senders) / self.rate)
        return INTERVAL_S.get(dev.product, 60)

    # paho's external loop: sockets are registered with one selector

    def _client(self, dev: SimDevice) -> mqtt.Client:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=dev.key, protocol=mqtt.MQTTv311)
        client.username_pw_set(dev.key, dev.secret)
        client.max_queued_messages_set(1000)
        client.on_socket_open = lambda c, _u, sock: self._selector.register(sock, selectors.EVENT_READ, c)
        client.on_socket_close = lambda _c, _u, sock: self._unregister(sock)
        client.on_connect = lambda _c, _u, _f, rc, _p: self._on_connect(dev, rc)
        client.on_disconnect = lambda *_a: setattr(self.stats, "connected", self.stats.connected - 1)
        client.on_publish = lambda *_a: setattr(self.stats, "acknowledged", self.stats.acknowledged + 1)
        return client

    def _unregister(self, sock: Any) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(sock)

    def _on_connect(self, dev: SimDevice, rc: mqtt.ReasonCode) -> None:
        if rc.is_failure:
            self.stats.refused[dev.key] = str(rc)
            if len(self.stats.refused) <= 3:
                log.warning("simulator: %s refused by the broker: %s", dev.key, rc)
        else:
            self.stats.connected += 1
            self.stats.refused.pop(dev.key, None)

    def _connect(self, dev: SimDevice) -> None:
        client = self._clients.get(dev.key)
        try:
            if client is None:
                client = self._clients[dev.key] = self._client(dev)
                client.connect(self.host, self.port, keepalive=60)
            else:
                client.reconnect()
        except OSError as exc:
            log.debug("simulator: %s cannot connect: %s", dev.key, exc)

    def start(self, duration: float | None = None) -> Simulator:
        self._thread = threading.Thread(target=self.run, args=(duration,), name="citybrain-simulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def run(self, duration: float | None = None) -> Stats:
        """Publish until ``duration`` seconds have passed or ``stop()``; returns the counts."""
        end = None if duration is None else time.monotonic() + duration
        now = time.monotonic()
        queue: list[tuple[float, int, SimDevice]] = []
        for i, dev in enumerate(self._senders):
            self._connect(dev)
            offset = _unit(self.scenario.seed, "phase", dev.key) * self.interval_s(dev)
            queue.append((now + min(offset, 5.0 if self.rate <= 0 else offset), i, dev))
        heapq.heapify(queue)
        next_retry = now + 5
        try:
            while not self._stop.is_set() and (end is None or time.monotonic() < end):
                self._pump(min(0.05, max(0.0, queue[0][0] - time.monotonic())) if queue else 0.05)
                now = time.monotonic()
                while queue and queue[0][0] <= now:
                    due, i, dev = heapq.heappop(queue)
                    self._publish(dev)
                    heapq.heappush(queue, (max(due + self.interval_s(dev), now - 1), i, dev))
                if now >= next_retry:
                    next_retry = now + 5
                    for dev in self._senders:
                        client = self._clients.get(dev.key)
                        if client is None or not client.is_connected():
                            self._connect(dev)
        finally:
            self._drain()
        return self.stats

    def _pump(self, timeout: float) -> None:
        for key, _events in self._selector.select(timeout):
            key.data.loop_read()
        for client in self._clients.values():
            if client.want_write():
                client.loop_write()
            client.loop_misc()

    def _publish(self, dev: SimDevice) -> None:
        client = self._clients.get(dev.key)
        if client is None or not client.is_connected():
            return
        wall_ms = int(self.wall() * 1000)
        t = self.scenario_ms(wall_ms)
        msg = self.scenario.message(dev, t, wall_ms, self._children.get(dev.key, ()))
        if msg is None:
            self.stats.silent += 1
            return
        if any(self.scenario.is_faulty(d, t) for d in [dev, *self._children.get(dev.key, ())]):
            self.stats.faulty += 1
        client.publish(msg[0], msg[1], qos=1)
        self.stats.published += 1

    def _drain(self, timeout: float = 3.0) -> None:
        deadline = time.monotonic() + timeout
        while self.stats.acknowledged < self.stats.published and time.monotonic() < deadline:
            self._pump(0.05)
        for client in self._clients.values():
            client.disconnect()
            client.loop_write()
        self._selector.close()
