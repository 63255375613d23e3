"""Benchmarks of the cockpit (issue 6, Performance). Prints figures, asserts nothing.

Setup     a temporary data dir and SQLite database, migrated, the demo district loaded (seed 1,
          200 residents, 50 enterprises), then N open events (default 5,000) made through the
          service layer (``service.report`` + ``service.transition`` accept, a commit every 500),
          before the server starts. With ``--sensors N`` (default 10,000) the demo's 365 devices
          are topped up to N sensors by bulk inserts into ``iot_device``/``iot_device_state`` (every
          product, latest state within its timeout for ~90%, 100 active alarms; as
          ``bench/cockpit_iot_bench.py`` does); 50 of the added water-level gauges get known secrets
          so the live runs can post readings through HTTP ingestion. Then a real ``citybrain serve``
          (uvicorn, one process, embedded MQTT broker on a free port) on a free 127.0.0.1 port.
(1) render   /cockpit in headless Chromium (Debian's /usr/bin/chromium, Playwright) as the demo
             leader: navigation start → ``#cockpit[data-state=ready]`` (map and first snapshot
             drawn, see static/js/cockpit.js) with ``[data-vital=open]`` showing the database's
             count; median of 5 loads, each in a fresh browser context.
(2) latency  the page stays open; the page itself POSTs /api/events (admin bearer token, no
             cookies) at ``--rate`` per second for ``--duration`` s — with sensors, every other
             change is instead a reading ``POST /api/iot/telemetry`` (HTTP Basic, device key and
             secret) raising the highest water level by 0.1 cm, seen in the waterlogging panel —;
             a MutationObserver on the open-events number (and the level) records when it
             changes (``performance.now()``, the page's own clock). Latency of a POST = first
             moment the number reaches the value that includes it, minus the moment the POST's
             response arrived. Long tasks
             (PerformanceObserver 'longtask') are counted during the run. Then a short burst at
             ``--burst-rate`` changes/s (default 50, the issue's rate) for long tasks only.
(3) sse      ``--subscribers`` (default 50) concurrent streams of /cockpit/stream (leader
             session cookie from one httpx login) while events arrive at ``--sse-rate`` per
             second for ``--duration`` s: server CPU (utime+stime of the server process and its
             children from /proc) as a fraction of one core, snapshots received per subscriber.
             A baseline with the same POST load and no subscribers is measured first.

Everything runs on loopback; the server is killed at the end.

Usage: python bench/cockpit_bench.py [--events N] [--sensors N] [--rate 5] [--burst-rate 50] [--duration 20]
       [--subscribers 50] [--sse-rate 10] [--loads 5] [--only render,latency,sse]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
from sqlalchemy.orm import Session

from citybrain.core import migrate
from citybrain.core.actor import system_actor
from citybrain.core.db import make_engine
from citybrain.demo.district import demo_accounts, load_demo
from citybrain.demo.events_history import CATEGORY_MIX, DESCRIPTIONS, township_geometries
from citybrain.events import catalog, service
from citybrain.events.schemas import EventReportIn

VENV_BIN = Path(sys.executable).parent
CHROMIUM = os.environ.get("CITYBRAIN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SEED = 1
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- setup ----------------------------------------------------------------------------------------


def sample_points(url: str, n: int, seed: int = 42) -> list[tuple[float, float]]:
    import shapely

    engine = make_engine(url)
    with Session(engine) as db:
        towns = township_geometries(db)
    engine.dispose()
    rng, codes, out = random.Random(seed), sorted(towns), []
    while len(out) < n:
        geom = towns[rng.choice(codes)]
        min_lon, min_lat, max_lon, max_lat = geom.bounds
        lon, lat = round(rng.uniform(min_lon, max_lon), 6), round(rng.uniform(min_lat, max_lat), 6)
        if geom.contains(shapely.Point(lon, lat)):
            out.append((lon, lat))
    return out


def setup(url: str, data_dir: str, n: int) -> list[tuple[float, float]]:
    t0 = time.perf_counter()
    engine = make_engine(url)
    migrate.upgrade(engine)
    with Session(engine) as db:
        load_demo(db, seed=SEED, actor=system_actor("bench"), today=date.today(), residents=200, enterprises=50,
                  events=0, data_dir=data_dir)
        catalog.sync_catalog(db, actor=system_actor("bench"))
        db.commit()
    t1 = time.perf_counter()
    points = sample_points(url, min(max(n, 1), 2000))
    texts = [t for code in sorted(CATEGORY_MIX) for t in DESCRIPTIONS.get(code, ())] or ["路边有暴露垃圾"]
    api, command, rng = system_actor("bench-api"), system_actor("bench-command"), random.Random(7)
    with Session(engine) as db:
        categories = catalog.list_categories(db)
        for i in range(n):
            lon, lat = points[i % len(points)]
            description = rng.choice(texts)
            category = catalog.best_match(categories, description) or categories[0]
            event = service.report(db, data=EventReportIn(
                channel="api", category_code=category.code, description=description, lon=lon, lat=lat), actor=api)
            service.transition(db, event_id=event.id, action="accept", actor=command)
            if i % 500 == 499:
                db.commit()
                db.expunge_all()
                categories = catalog.list_categories(db)
        db.commit()
    engine.dispose()
    print(f"[setup] demo district loaded in {t1 - t0:.1f} s; {n:,} open events (report + accept, service layer) "
          f"in {time.perf_counter() - t1:.1f} s", flush=True)
    return points


LIVE_GAUGES = 50  # added gauges with known secrets, for readings through HTTP ingestion


def load_sensors(url: str, total: int) -> list[tuple[str, str]]:
    """Top the demo's devices up to ``total`` with bulk inserts (device + latest state), 100 active
    alarms among them. Returns (key, secret) of LIVE_GAUGES water-level gauges that may post."""
    import json

    from sqlalchemy import func, insert, select

    from citybrain.geo import service as geo_service
    from citybrain.iot import registry
    from citybrain.iot.models import AlarmRecord, Device, DeviceState
    from citybrain.org.models import Department

    sys.path.insert(0, str(Path(__file__).parent))
    from cockpit_iot_bench import MIX, _ring, _values

    t0 = time.perf_counter()
    engine = make_engine(url)
    rng, now = random.Random(11), datetime.now(UTC)
    now_ms = int(now.timestamp() * 1000)
    with Session(engine) as db:
        have = db.scalar(select(func.count()).select_from(Device)) or 0
        n = max(0, total - have)
        dept = db.scalar(select(Department.id).where(Department.code == "cityadmin"))
        towns = {d.code: _ring(json.loads(d.geometry)) for d in geo_service.list_divisions(db) if d.level == "township"}
        products = registry.products(db)
        kinds = ["waterlogging_gauge"] * 400 + ["air_quality_station"] * 60
        kinds += [product for product, share in MIX for _ in range(int(n * share))]
        kinds = (kinds + ["parking_detector"] * n)[:n]
        devices, states, live = [], [], []
        for i, product in enumerate(kinds):
            code = rng.choice(sorted(towns))
            lon, lat = rng.choice(towns[code])
            key = f"bench-{i}"
            row = {"key": key, "name": f"压测设备{i}", "product": product, "department_id": dept,
                   "lon": lon + rng.uniform(-0.002, 0.002), "lat": lat + rng.uniform(-0.002, 0.002),
                   "township_code": code, "address": "", "state": "active", "created_at": now, "updated_at": now}
            if product == "waterlogging_gauge" and len(live) < LIVE_GAUGES:
                secret = f"bench-secret-{i}-{uuid.uuid4().hex}"
                row |= {"secret_salt": "bench", "secret_hash": registry.hash_secret("bench", secret)}
                live.append((key, secret))
            devices.append(row)
            timeout = products[product].online_timeout_s
            seen = now_ms - int(rng.uniform(0, timeout * (1.1 if rng.random() < 0.9 else 3)) * 1000)
            data = _values(product, rng)
            if product == "waterlogging_gauge":
                data["level_cm"] = rng.uniform(0, 15)  # the live readings raise the highest level from 20 cm
            states.append({"device_id": key, "ts": seen, "last_seen": seen, "status": None, "data": data})
        if devices:
            db.execute(insert(Device), devices)
            ids = dict(db.execute(select(Device.key, Device.id).where(Device.key.like("bench-%"))).all())
            for st in states:
                st["device_id"] = ids[st["device_id"]]
            db.execute(insert(DeviceState), states)
            db.execute(insert(AlarmRecord), [
                {"id": uuid.uuid4().hex, "rule_id": "bench", "device_key": f"bench-{i * (n // 100)}",
                 "product": kinds[i * (n // 100)], "severity": rng.choice(("critical", "major", "minor", "warning")),
                 "category_code": None, "dispatch": False, "message": "bench", "value": 1,
                 "status": rng.choice(("active_unack", "active_ack")), "raised_at": now, "last_seen": now,
                 "count": 1} for i in range(min(100, n))])
        db.commit()
        count = db.scalar(select(func.count()).select_from(Device))
    engine.dispose()
    print(f"[setup] {count:,} sensors ({n:,} bulk-inserted with latest states, 100 active alarms) "
          f"in {time.perf_counter() - t0:.1f} s", flush=True)
    return live


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _proc_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = Path(f"/proc/{d}/stat").read_text()
                ppid = int(stat[stat.rindex(")") + 2:].split()[1])
                children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def cpu_seconds(root: int) -> float:
    """utime + stime of the server process and its descendants, in seconds."""
    total = 0
    for pid in _proc_tree(root):
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / CLK_TCK


class Server:
    def __init__(self, url: str, data_dir: str) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CITYBRAIN_")}
        self.env |= {"CITYBRAIN_DATABASE_URL": url, "CITYBRAIN_DATA_DIR": data_dir,
                     "CITYBRAIN_SECRET_KEY": "bench-" + uuid.uuid4().hex * 2, "CITYBRAIN_LOG_LEVEL": "WARNING",
                     "CITYBRAIN_MQTT_PORT": str(_free_port())}  # not the Mosquitto of the test suite
        self.data_dir = Path(data_dir)
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def token(self, username: str) -> str:
        out = subprocess.run([str(VENV_BIN / "citybrain"), "token", "create", "--username", username, "--name",
                              "bench"], env=self.env, capture_output=True, text=True, check=True, timeout=60)
        return out.stdout.strip().splitlines()[0]

    def start(self) -> None:
        self.log = open(self.data_dir / "server.log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([str(VENV_BIN / "citybrain"), "serve", "--host", "127.0.0.1", "--port",
                                      str(self.port)], env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("citybrain serve exited: " + (self.data_dir / "server.log").read_text()[-2000:])
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base}/readyz", timeout=1).status_code == 200:
                    return
            time.sleep(0.3)
        raise RuntimeError("citybrain serve did not become ready")

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        self.log.close()


def login_cookies(base: str, username: str, password: str) -> dict[str, str]:
    with httpx.Client(base_url=base, timeout=10) as c:
        page = c.get("/login")
        csrf = re.search(r'name="csrf_token" value="([^"]*)"', page.text)
        r = c.post("/login", data={"username": username, "password": password, "next": "/cockpit",
                                   "csrf_token": csrf.group(1) if csrf else ""})
        if r.status_code != 303 or "cb_session" not in c.cookies:
            raise RuntimeError(f"login as {username} failed: HTTP {r.status_code}")
        return dict(c.cookies)


def open_count(base: str, cookies: dict[str, str]) -> int:
    r = httpx.get(f"{base}/api/cockpit/snapshot", cookies=cookies, timeout=30)
    r.raise_for_status()
    return int(r.json()["events"]["open"])


# --- (1) + (2): the browser --------------------------------------------------------------------------

# Runs before the page's own scripts: records when the cockpit says it is drawn, every change of
# the open-events number, and long tasks.
INIT_SCRIPT = """
(() => {
  const B = window.__bench = { ready: null, changes: [], wl: [], longtasks: [] };
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) B.longtasks.push([e.startTime, e.duration]);
    }).observe({ type: 'longtask', buffered: true });
  } catch (e) { B.longtaskError = String(e); }
  let last = null, lastWl = null;
  const check = () => {
    const root = document.getElementById('cockpit');
    const open = document.querySelector('[data-vital="open"]');
    const v = open ? open.getAttribute('data-value') : null;
    if (v !== null && v !== last) { last = v; B.changes.push([performance.now(), Number(v)]); }
    const wl = document.querySelector('[data-panel="waterlogging"] [data-iot="value"]');
    const w = wl ? wl.getAttribute('data-value') : null;
    if (w !== null && w !== '' && w !== lastWl) { lastWl = w; B.wl.push([performance.now(), Number(w)]); }
    if (B.ready === null && root && root.getAttribute('data-state') === 'ready' && v !== null && v !== '') {
      B.ready = performance.now(); B.readyOpen = Number(v);
      requestAnimationFrame(() => { B.painted = performance.now(); });
    }
  };
  new MutationObserver(check).observe(document, { subtree: true, childList: true, attributes: true,
    attributeFilter: ['data-state', 'data-value'] });
})();
"""

# The change number i of a run, in the page: an event (POST /api/events, admin bearer token) or,
# when gauges are given and i is odd, a reading (POST /api/iot/telemetry, HTTP Basic) of level
# `level` of gauge number i/2. Resolves to [kind, response status].
CHANGE_JS = """
const change = (i, token, points, cats, gauges, level, tag) => {
  if (gauges.length && i % 2 === 1) {
    const g = gauges[((i - 1) / 2) % gauges.length];
    return fetch('/api/iot/telemetry', { method: 'POST', credentials: 'omit',
      headers: { 'Content-Type': 'application/json', Authorization: 'Basic ' + btoa(g[0] + ':' + g[1]) },
      body: JSON.stringify({ ts: Date.now(), values: { level_cm: level, battery: 80 } }) })
      .then((r) => ['reading', r.status]);
  }
  const p = points[i % points.length];
  return fetch('/api/events', { method: 'POST', credentials: 'omit',
    headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + token },
    body: JSON.stringify({ channel: 'api', category_code: cats[i % cats.length],
                           description: tag + ' ' + i, lon: p[0], lat: p[1] }) }).then((r) => ['event', r.status]);
};
"""

# In the page: a change at `rate`/s for `seconds` s, each awaited (so the k-th event response implies
# at least base + k open events, and the k-th reading a highest level of at least 20.0 + 0.1 k);
# returns the response times (performance.now()) per kind.
POST_LOOP = """
async ([token, rate, seconds, points, cats, gauges]) => {
""" + CHANGE_JS + """
  const done = { event: [], reading: [] }, statuses = {};
  const t0 = performance.now(), n = Math.round(rate * seconds);
  for (let i = 0; i < n; i++) {
    const due = t0 + i * 1000 / rate, wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const level = Math.round(200 + done.reading.length) / 10;  // 20.0, 20.1, … cm: below the demo's 30 cm rule
    const [kind, status] = await change(i, token, points, cats, gauges, level, 'cockpit bench');
    statuses[kind + ' ' + status] = (statuses[kind + ' ' + status] || 0) + 1;
    if (status < 300) done[kind].push(performance.now());
  }
  return { done, statuses, elapsed: performance.now() - t0 };
}
"""

# Same, but fire-and-forget so the offered rate holds even when a response takes longer than 1/rate.
BURST_LOOP = """
async ([token, rate, seconds, points, cats, gauges]) => {
""" + CHANGE_JS + """
  const statuses = {}, pending = [];
  const t0 = performance.now(), n = Math.round(rate * seconds);
  for (let i = 0; i < n; i++) {
    const due = t0 + i * 1000 / rate, wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    pending.push(change(i, token, points, cats, gauges, 5 + (i % 100) / 10, 'cockpit burst')
      .then(([kind, status]) => { statuses[kind + ' ' + status] = (statuses[kind + ' ' + status] || 0) + 1; }));
  }
  await Promise.all(pending);
  return { statuses, elapsed: performance.now() - t0 };
}
"""


def latencies(done: list[float], changes: list[list[float]], expected) -> tuple[list[float], int]:  # noqa: ANN001
    """For the k-th response (at time t): first screen value >= expected(k) at or after t, minus t."""
    lat, missed = [], 0
    for k, t in enumerate(done, start=1):
        want = expected(k)
        seen = next((ct for ct, v in changes if ct >= t and v >= want), None)
        # The screen may already show it (the snapshot was computed after the commit but arrived
        # before fetch resolved): then latency is ~0.
        if seen is None and any(v >= want for ct, v in changes if ct < t):
            seen = t
        if seen is None:
            missed += 1
        else:
            lat.append(seen - t)
    return lat, missed


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def bench_browser(server: Server, cookies: dict[str, str], token: str, points: list[tuple[float, float]],
                  args: argparse.Namespace, parts: set[str], gauges: list[tuple[str, str]]) -> None:
    from playwright.sync_api import sync_playwright

    cookie_list = [{"name": k, "value": v, "domain": "127.0.0.1", "path": "/"} for k, v in cookies.items()]
    cats = sorted(CATEGORY_MIX)
    pts = [list(p) for p in points[:200]]
    live = [list(g) for g in gauges]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            def new_page():  # noqa: ANN202
                ctx = browser.new_context(viewport={"width": 1920, "height": 1080}, locale="zh-CN")
                ctx.add_cookies(cookie_list)
                pg = ctx.new_page()
                pg.add_init_script(INIT_SCRIPT)
                return ctx, pg

            expected = open_count(server.base, cookies)
            if "render" in parts:
                readies, paints, fcps, bytes_, sensors = [], [], [], [], []
                for _ in range(args.loads):
                    ctx, pg = new_page()
                    pg.goto(f"{server.base}/cockpit", wait_until="commit", timeout=30_000)
                    pg.wait_for_function("window.__bench && window.__bench.painted !== undefined", timeout=30_000)
                    b = pg.evaluate("""() => ({ready: __bench.ready, painted: __bench.painted, open: __bench.readyOpen,
                        sensors: Number(document.getElementById('cockpit').getAttribute('data-sensors') || 0),
                        fcp: (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime,
                        html: performance.getEntriesByType('navigation')[0].transferSize})""")
                    if b["open"] != expected:
                        print(f"[render] warning: screen shows {b['open']} open events, database {expected}")
                    readies.append(b["ready"])
                    paints.append(b["painted"])
                    fcps.append(b["fcp"] or 0)
                    bytes_.append(b["html"] or 0)
                    sensors.append(b["sensors"])
                    ctx.close()
                print(f"[render] /cockpit, {expected:,} open events, {min(sensors):,} sensors on the map, "
                      f"{args.loads} loads: navigation start → "
                      f"data-state=ready with the open count: median {statistics.median(readies):.0f} ms "
                      f"(min {min(readies):.0f}, max {max(readies):.0f}); → next frame painted: median "
                      f"{statistics.median(paints):.0f} ms; first contentful paint median "
                      f"{statistics.median(fcps):.0f} ms; "
                      f"page HTML {statistics.median(bytes_) / 1024:.0f} KiB", flush=True)
            if "latency" in parts:
                ctx, pg = new_page()
                pg.goto(f"{server.base}/cockpit", wait_until="commit", timeout=30_000)
                pg.wait_for_function("window.__bench && window.__bench.ready !== null", timeout=30_000)
                pg.wait_for_timeout(2000)  # let the stream's first snapshot land
                base = pg.evaluate("__bench.changes[__bench.changes.length - 1][1]")
                start = pg.evaluate("performance.now()")
                res = pg.evaluate(POST_LOOP, [token, args.rate, args.duration, pts, cats, live])
                pg.wait_for_timeout(3000)  # the last changes reach the screen
                changes = pg.evaluate("__bench.changes")
                levels = pg.evaluate("__bench.wl")
                longtasks = [d for s, d in pg.evaluate("__bench.longtasks") if s >= start]
                ev_lat, ev_missed = latencies(res["done"]["event"], changes, lambda k: base + k)
                rd_lat, rd_missed = latencies(res["done"]["reading"], levels, lambda k: round(20 + (k - 1) / 10, 1))
                done = len(res["done"]["event"]) + len(res["done"]["reading"])
                rate = done / (res["elapsed"] / 1000)
                print(f"[latency] {done} changes at {rate:.1f}/s for {res['elapsed'] / 1000:.0f} s "
                      f"(statuses {res['statuses']}), {len(changes)} screen changes of the open number, "
                      f"{len(levels)} of the highest water level", flush=True)
                for name, lat, missed in (("event → open-events number", ev_lat, ev_missed),
                                          ("reading → waterlogging level", rd_lat, rd_missed)):
                    if lat:
                        print(f"[latency]   {name} shows it: {len(lat)} changes, p50 {pct(lat, 0.5):.0f} ms, "
                              f"p95 {pct(lat, 0.95):.0f} ms, max {max(lat):.0f} ms"
                              f"{f', {missed} never seen' if missed else ''}", flush=True)
                print(f"[latency]   long tasks during the run: {len(longtasks)}"
                      f"{f', max {max(longtasks):.0f} ms' if longtasks else ''}", flush=True)
                if args.burst_rate:
                    start = pg.evaluate("performance.now()")
                    n0 = len(pg.evaluate("__bench.changes"))
                    res = pg.evaluate(BURST_LOOP, [token, args.burst_rate, args.burst_seconds, pts, cats, live])
                    pg.wait_for_timeout(2500)
                    longtasks = [d for s, d in pg.evaluate("__bench.longtasks") if s >= start]
                    n1 = len(pg.evaluate("__bench.changes"))
                    offered = sum(res["statuses"].values()) / (res["elapsed"] / 1000)
                    worst = (f", max {max(longtasks):.0f} ms, over 200 ms: {sum(d > 200 for d in longtasks)}"
                             if longtasks else "")
                    print(f"[burst] {sum(res['statuses'].values())} changes offered at {offered:.0f}/s for "
                          f"{res['elapsed'] / 1000:.1f} s (statuses {res['statuses']}), {n1 - n0} screen updates "
                          f"of the open number; long tasks: {len(longtasks)}{worst}", flush=True)
                ctx.close()
        finally:
            browser.close()


# --- (3): 50 SSE subscribers -----------------------------------------------------------------------


async def _post_loop(client: httpx.AsyncClient, token: str, rate: float, seconds: float,
                     points: list[tuple[float, float]], gauges: list[tuple[str, str]] = ()) -> dict[str, int]:
    cats, statuses = sorted(CATEGORY_MIX), {}
    t0, n = time.monotonic(), int(rate * seconds)
    for i in range(n):
        wait = t0 + i / rate - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        lon, lat = points[i % len(points)]
        try:
            if gauges and i % 2:  # every other change a reading through HTTP ingestion
                key, secret = gauges[(i // 2) % len(gauges)]
                r = await client.post("/api/iot/telemetry", auth=(key, secret),
                                      json={"ts": int(time.time() * 1000), "values": {"level_cm": 5 + i % 100 / 10}})
                kind = "reading"
            else:
                r = await client.post("/api/events", headers={"Authorization": f"Bearer {token}"},
                                      json={"channel": "api", "category_code": cats[i % len(cats)],
                                            "description": f"sse bench {i}", "lon": lon, "lat": lat})
                kind = "event"
            statuses[f"{kind} {r.status_code}"] = statuses.get(f"{kind} {r.status_code}", 0) + 1
        except httpx.HTTPError as exc:
            statuses[type(exc).__name__] = statuses.get(type(exc).__name__, 0) + 1
    return statuses


async def _subscriber(base: str, cookies: dict[str, str], counts: list[int], idx: int, stop: asyncio.Event,
                      opened: asyncio.Event | None = None) -> None:
    timeout = httpx.Timeout(10, read=30)
    async with httpx.AsyncClient(base_url=base, cookies=cookies, timeout=timeout) as c, \
            c.stream("GET", "/cockpit/stream", headers={"Accept": "text/event-stream"}) as r:
        if r.status_code != 200:
            counts[idx] = -r.status_code
            return
        async for line in r.aiter_lines():
            if line == "event: snapshot":
                counts[idx] += 1
            if stop.is_set():
                return


async def _sse(server: Server, cookies: dict[str, str], token: str, points: list[tuple[float, float]],
               args: argparse.Namespace, gauges: list[tuple[str, str]]) -> None:
    assert server.proc is not None
    pid = server.proc.pid
    async with httpx.AsyncClient(base_url=server.base, timeout=10) as client:
        # Baseline: the same POST load, nobody watching.
        c0, t0 = cpu_seconds(pid), time.monotonic()
        st = await _post_loop(client, token, args.sse_rate, args.baseline_seconds, points, gauges)
        base_frac = (cpu_seconds(pid) - c0) / (time.monotonic() - t0)
        print(f"[sse] baseline, no subscribers, {sum(st.values())} POSTs at {args.sse_rate}/s for "
              f"{args.baseline_seconds} s ({st}): server CPU {base_frac:.2f} core", flush=True)
        n = args.subscribers
        counts, stop = [0] * n, asyncio.Event()
        subs = [asyncio.create_task(_subscriber(server.base, cookies, counts, i, stop)) for i in range(n)]
        deadline = time.monotonic() + 30
        while sum(1 for x in counts if x != 0) < n and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        connected = sum(1 for x in counts if x > 0)
        first = list(counts)
        await asyncio.sleep(1.5)  # past the first-snapshot burst
        c0, t0 = cpu_seconds(pid), time.monotonic()
        before = list(counts)
        st = await _post_loop(client, token, args.sse_rate, args.duration, points, gauges)
        await asyncio.sleep(1.5)
        window = time.monotonic() - t0
        frac = (cpu_seconds(pid) - c0) / window
        got = [a - b for a, b in zip(counts, before, strict=True)]
        stop.set()
        for t in subs:
            t.cancel()
        await asyncio.gather(*subs, return_exceptions=True)
    print(f"[sse] {n} subscribers ({connected} connected, first snapshot received by "
          f"{sum(1 for x in first if x > 0)}), {sum(st.values())} POSTs at {args.sse_rate}/s for {args.duration} s "
          f"({st}): server CPU {frac:.2f} core over {window:.0f} s; snapshots per subscriber during the window: "
          f"min {min(got)}, median {statistics.median(got):.0f}, max {max(got)}; subscribers with none: "
          f"{sum(1 for g in got if g <= 0)}", flush=True)


# --- main -------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=5000, help="open events made before the server starts")
    parser.add_argument("--sensors", type=int, default=10_000,
                        help="sensors in total (the demo's 365 topped up by bulk inserts; 0: the demo's only)")
    parser.add_argument("--loads", type=int, default=5, help="cockpit loads for the first-render median")
    parser.add_argument("--rate", type=float, default=5, help="POST /api/events per second in the latency run")
    parser.add_argument("--duration", type=float, default=20, help="seconds of the latency and SSE runs")
    parser.add_argument("--burst-rate", type=float, default=50, help="changes/s of the long-task burst (0: none)")
    parser.add_argument("--burst-seconds", type=float, default=10)
    parser.add_argument("--subscribers", type=int, default=50)
    parser.add_argument("--sse-rate", type=float, default=10)
    parser.add_argument("--baseline-seconds", type=float, default=10)
    parser.add_argument("--only", default="render,latency,sse")
    args = parser.parse_args()
    parts = set(re.split(r"[ ,]+", args.only))
    print(f"citybrain cockpit bench, {os.cpu_count()} CPUs, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        points = setup(url, tmp, args.events)
        gauges = load_sensors(url, args.sensors) if args.sensors else []
        server = Server(url, tmp)
        admin_token = server.token("admin")
        server.start()
        try:
            leader = next(a for a in demo_accounts(SEED) if a.username == "leader")
            cookies = login_cookies(server.base, leader.username, leader.password)
            if parts & {"render", "latency"}:
                bench_browser(server, cookies, admin_token, points, args, parts, gauges)
            if "sse" in parts:
                asyncio.run(_sse(server, cookies, admin_token, points, args, gauges))
            print(f"load average at the end {os.getloadavg()[0]:.1f}", flush=True)
        finally:
            server.stop()
            with contextlib.suppress(OSError):
                log = (Path(tmp) / "server.log").read_text()
                Path("/tmp/citybrain-cockpit-bench-server.log").write_text(log)


if __name__ == "__main__":
    main()
