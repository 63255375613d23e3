"""A realistic, deterministic event history for the demo district (issue 3, item 10).

SYNTHETIC DATA: every report, place and handling time here is generated from a seeded random
number generator; none describes a real case.

Two steps:

``plan_history`` (pure, no database) decides *what* was reported: when (a seasonal curve over
the months, fewer reports at weekends, most of them in the daytime), where (points sampled
inside the township polygons, the urban 街道 much denser than the 镇), which small class (summer
brings 路面积水, 暴露垃圾 and 露天烧烤; winter 道路结冰积雪), through which channel (citizen page,
12345 hotline, grid workers, sensors) and how the case will be handled (not accepted, handled on
time or late, reworked after a failed verification, extended, stuck).

``generate_history`` replays that plan through the real service layer — ``service.report`` and
``service.transition`` for every step (accept → automatic register and dispatch → start →
handle → verify_pass / verify_fail → close) — in time order, with ``citybrain.core.clock``
moved to each step's moment, so the timeline, the audit log (its ``at`` is the historical
moment), tracking numbers and deadlines are historical. Steps that would fall after ``until``
never happen, which leaves the most recent cases open. Nothing is committed here: the caller
commits once.
"""

from __future__ import annotations

import heapq
import json
import math
import random
import time
from bisect import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from typing import Any

import shapely
from shapely.geometry import shape
from sqlalchemy import select
from sqlalchemy.orm import Session

from citybrain.core import clock
from citybrain.core.actor import Actor, system_actor
from citybrain.events import service
from citybrain.events.models import Event, EventCategory
from citybrain.events.schemas import EventReportIn
from citybrain.events.service import CHINA
from citybrain.geo import service as geo_service

__all__ = ["PlannedEvent", "generate_history", "plan_history", "township_geometries"]

# Relative report density per township (all events, not per km²). The five 街道 are the old
# town of 周村 (small and dense); the 镇 are large and rural.
TOWNSHIP_WEIGHT: dict[str, float] = {
    "370306001000": 3.2,  # 丝绸路街道
    "370306002000": 2.6,  # 大街街道
    "370306003000": 2.6,  # 青年路街道
    "370306004000": 2.0,  # 永安街道
    "370306005000": 2.0,  # 城北路街道
    "370306100000": 1.1,  # 北郊镇
    "370306101000": 1.0,  # 南郊镇
    "370306102000": 0.9,  # 王村镇
    "370306103000": 0.5,  # 萌水镇
    "370306104000": 0.5,  # 商家镇
}
# Overall volume by month (Jan … Dec): more reports in the warm, rainy months.
MONTH_VOLUME = (0.75, 0.7, 0.9, 1.0, 1.1, 1.25, 1.4, 1.4, 1.15, 1.0, 0.9, 0.8)
WEEKDAY_VOLUME = (1.0, 1.0, 1.0, 1.0, 0.95, 0.55, 0.45)  # Mon … Sun
# Reports by hour of the day (China time), a daytime curve with a morning and evening peak.
HOUR_VOLUME = (0.15, 0.1, 0.08, 0.08, 0.1, 0.2, 0.5, 1.2, 1.8, 2.0, 1.9, 1.6, 1.1, 1.2, 1.6, 1.8, 1.8,
               1.6, 1.4, 1.2, 1.0, 0.7, 0.45, 0.25)

_SUMMER = {6: 1.0, 7: 1.0, 8: 1.0}


def _season(peak: Mapping[int, float], *, base: float = 1.0) -> tuple[float, ...]:
    return tuple(peak.get(m, base) for m in range(1, 13))


# small class → (base weight, monthly multiplier Jan … Dec). Only classes common in a district.
CATEGORY_MIX: dict[str, tuple[float, tuple[float, ...]]] = {
    "E0101": (10.0, _season({5: 1.3, 6: 1.7, 7: 1.9, 8: 1.9, 9: 1.3})),  # 暴露垃圾
    "E0109": (3.0, _season({5: 0.6, 6: 2.5, 7: 6.0, 8: 5.5, 9: 1.5}, base=0.1)),  # 路面积水
    "E0103": (5.0, _season({}, base=1.0)),  # 道路不洁
    "E0108": (5.0, _season({})),  # 乱堆物堆料
    "E0201": (7.0, _season({})),  # 非法小广告
    "E0503": (7.0, _season({})),  # 机动车乱停放
    "E0504": (4.0, _season({})),  # 非机动车乱停放
    "E0501": (4.0, _season({5: 1.4, 6: 1.6, 7: 1.6, 8: 1.6, 9: 1.3}, base=0.8)),  # 无照经营游商
    "E0502": (5.0, _season({6: 1.3, 7: 1.4, 8: 1.4})),  # 店外经营
    "E0505": (2.0, _season({6: 2.5, 7: 3.5, 8: 3.5, 9: 1.5}, base=0.2)),  # 露天烧烤
    "E0111": (2.0, _season({})),  # 餐饮油烟
    "E0303": (2.5, _season({3: 1.5, 4: 1.5, 5: 1.3, 12: 0.5, 1: 0.4, 2: 0.4})),  # 工地扬尘
    "E0302": (1.5, _season({})),  # 道路遗撒
    "E0301": (1.5, _season({6: 1.3, 7: 1.3, 8: 1.3})),  # 施工扰民
    "E0604": (1.0, _season({6: 4.0, 10: 4.0}, base=0.1)),  # 秸秆焚烧
    "E0605": (1.0, _season({6: 2.0, 7: 3.0, 8: 3.0, 9: 1.5}, base=0.2)),  # 病媒生物孳生
    "E0409": (1.5, _season({12: 3.0, 1: 4.0, 2: 2.5, 11: 0.4}, base=0.0)),  # 道路结冰积雪
    "E0407": (0.8, _season({7: 3.0, 8: 2.5})),  # 树木倒伏
    "C0101": (1.5, _season({})),  # 上水井盖
    "C0102": (1.5, _season({})),  # 污水井盖
    "C0104": (1.5, _season({6: 2.0, 7: 2.5, 8: 2.5})),  # 雨水箅子
    "C0110": (4.0, _season({11: 1.4, 12: 1.5, 1: 1.5})),  # 路灯
    "C0206": (3.0, _season({3: 1.4, 7: 1.3, 8: 1.3})),  # 车行道
    "C0207": (2.5, _season({})),  # 人行道
    "C0302": (3.0, _season({6: 1.4, 7: 1.5, 8: 1.5})),  # 垃圾箱
    "C0401": (1.5, _season({7: 1.6, 8: 1.6})),  # 行道树
    "C0202": (1.5, _season({})),  # 交通信号灯
    "C0602": (1.0, _season({})),  # 健身设施
}
# Sensors report only what a device can see: covers (tilt sensors), standing water, dust, fumes.
SENSOR_CATEGORIES = frozenset({"C0101", "C0102", "E0109", "E0303", "E0111"})
CHANNEL_MIX = (("grid", 0.38), ("hotline", 0.30), ("citizen", 0.26), ("sensor", 0.06))

DESCRIPTIONS: dict[str, tuple[str, ...]] = {
    "E0101": ("路边有一堆生活垃圾没人清理", "小区门口垃圾堆放，有异味", "垃圾桶旁散落垃圾"),
    "E0109": ("雨后路面积水很深，行人无法通过", "路口积水，车辆通行困难", "人行道积水"),
    "E0201": ("电线杆上贴满小广告", "墙上喷涂办证小广告"),
    "E0503": ("机动车占用人行道停放", "车辆停在消防通道上"),
    "C0110": ("路灯晚上不亮", "一排路灯都不亮了", "路灯杆倾斜"),
    "C0206": ("路面有坑槽，容易伤车", "车行道塌陷开裂"),
}
_DEFAULT_DESCRIPTIONS = ("现场发现问题，请尽快处理", "市民反映此处有问题", "巡查发现，需要处置")
_RESULTS = ("已清理完毕", "已现场处置，恢复正常", "已督促责任单位整改到位", "已维修完成", "已劝离并清理现场")
_REJECT_REASONS = ("不属于城市管理受理范围", "信息不实，现场核实无此问题", "重复上报")
_REWORK_REASONS = ("现场复核仍有残留", "处置不彻底，需返工", "照片与现场不符")
_EXTENSION_REASONS = ("需协调其他单位配合", "需采购配件", "天气原因无法施工")


@dataclass(frozen=True)
class PlannedEvent:
    """One report and the fate of its case; times are UTC."""

    seq: int
    at: datetime
    category_code: str
    channel: str
    township_code: str
    lon: float
    lat: float
    description: str
    fate: str  # handled | rejected | stuck_accept | stuck_handle
    accept_h: float  # report → accept/reject (hours)
    start_h: float  # dispatch → start
    handle_frac: float  # handling time as a fraction of the stage's time limit (> 1: late)
    verify_h: float  # handled → verification
    close_h: float  # verified → closed
    reworks: int  # failed verifications before it passes
    extension: bool  # a 延期 request, approved
    result: str = ""
    reason: str = ""


def _weighted(rng: random.Random, items: list[Any], cum: list[float]) -> Any:
    return items[bisect(cum, rng.random() * cum[-1])]


def township_geometries(db: Session) -> dict[str, shapely.Geometry]:
    """The loaded townships' polygons (WGS-84), prepared for point-in-polygon tests."""
    geoms = {}
    for div in geo_service.list_divisions(db):
        if div.level == "township":
            geom = shape(json.loads(div.geometry))
            shapely.prepare(geom)
            geoms[div.code] = geom
    return geoms


def _point_in(rng: random.Random, geom: shapely.Geometry, inner: shapely.Geometry) -> tuple[float, float]:
    min_lon, min_lat, max_lon, max_lat = geom.bounds
    # Clustered around the township's centre of activity half of the time (towns are densest
    # at their seat), uniform over the polygon otherwise.
    centre = geom.representative_point()
    for _ in range(1000):
        if rng.random() < 0.5:
            lon = rng.gauss(centre.x, (max_lon - min_lon) / 8)
            lat = rng.gauss(centre.y, (max_lat - min_lat) / 8)
        else:
            lon, lat = rng.uniform(min_lon, max_lon), rng.uniform(min_lat, max_lat)
        lon, lat = round(lon, 6), round(lat, 6)
        # ``inner`` keeps a margin from the edge: a point on a shared border may be located next door.
        if inner.contains(shapely.Point(lon, lat)):
            return lon, lat
    centre = geom.representative_point()
    return round(centre.x, 6), round(centre.y, 6)


def plan_history(
    *, seed: int, count: int, until: datetime, days: int, townships: Mapping[str, shapely.Geometry]
) -> list[PlannedEvent]:
    """``count`` reports over the ``days`` before ``until``, deterministic from ``seed``."""
    if until.tzinfo is None:
        raise ValueError("until must be timezone-aware")
    rng = random.Random(f"citybrain-events-history:{seed}")
    start_day = (until.astimezone(CHINA) - timedelta(days=days)).date()
    day_list = [start_day + timedelta(days=i) for i in range(days + 1)]
    day_cum = list(accumulate(MONTH_VOLUME[d.month - 1] * WEEKDAY_VOLUME[d.weekday()] for d in day_list))
    hours = list(range(24))
    hour_cum = list(accumulate(HOUR_VOLUME))
    codes = sorted(townships)
    inner = {c: townships[c].buffer(-2e-4) for c in codes}
    for g in inner.values():
        shapely.prepare(g)
    town_cum = list(accumulate(TOWNSHIP_WEIGHT.get(c, 1.0) for c in codes))
    cats = sorted(CATEGORY_MIX)
    cat_cum_by_month = {m: list(accumulate(CATEGORY_MIX[c][0] * CATEGORY_MIX[c][1][m - 1] for c in cats))
                        for m in range(1, 13)}
    channels = [c for c, _ in CHANNEL_MIX]
    channel_cum = list(accumulate(w for _, w in CHANNEL_MIX))
    planned: list[tuple[datetime, int, dict[str, Any]]] = []
    for i in range(count):
        while True:
            day = _weighted(rng, day_list, day_cum)
            hour = _weighted(rng, hours, hour_cum)
            local = datetime(day.year, day.month, day.day, hour, rng.randrange(60), rng.randrange(60),
                             tzinfo=CHINA)
            at = local.astimezone(UTC)
            if at < until:
                break
        code = _weighted(rng, cats, cat_cum_by_month[day.month])
        channel = _weighted(rng, channels, channel_cum)
        if channel == "sensor" and code not in SENSOR_CATEGORIES:
            channel = "grid"
        township = _weighted(rng, codes, town_cum)
        lon, lat = _point_in(rng, townships[township], inner[township])
        roll = rng.random()
        fate = ("rejected" if roll < 0.03 and channel != "sensor" else
                "stuck_accept" if roll < 0.04 and channel != "sensor" else
                "stuck_handle" if roll < 0.07 else "handled")
        reworks = 0
        while reworks < 2 and rng.random() < (0.09 if reworks == 0 else 0.2):
            reworks += 1
        planned.append((at, i, dict(
            category_code=code, channel=channel, township_code=township, lon=lon, lat=lat,
            description=rng.choice(DESCRIPTIONS.get(code, _DEFAULT_DESCRIPTIONS)), fate=fate,
            accept_h=rng.lognormvariate(math.log(0.4), 0.9),
            start_h=rng.lognormvariate(math.log(1.0), 0.8),
            # Median at 55 % of the time limit; about one case in six is handled late.
            handle_frac=rng.lognormvariate(math.log(0.55), 0.6),
            verify_h=rng.lognormvariate(math.log(3.0), 0.8),
            close_h=rng.lognormvariate(math.log(1.5), 0.7),
            reworks=reworks, extension=rng.random() < 0.03,
            result=rng.choice(_RESULTS), reason=rng.choice(_REJECT_REASONS),
        )))
    planned.sort(key=lambda p: (p[0], p[1]))
    return [PlannedEvent(seq=n, at=at, **fields) for n, (at, _i, fields) in enumerate(planned)]


# --- replay through the service layer -----------------------------------------------------------


@dataclass
class _Actors:
    command: Actor = field(default_factory=lambda: system_actor("指挥中心值班员（演示）"))
    hotline: Actor = field(default_factory=lambda: system_actor("12345热线坐席（演示）"))
    grid: Actor = field(default_factory=lambda: system_actor("网格员（演示）"))
    sensor: Actor = field(default_factory=lambda: system_actor("物联感知（演示）"))
    department: Actor = field(default_factory=lambda: system_actor("责任单位经办人（演示）"))


def _reporter(channel: str, actors: _Actors) -> Actor | None:
    return {"citizen": None, "hotline": actors.hotline, "grid": actors.grid, "sensor": actors.sensor}[channel]


def generate_history(
    db: Session, *, seed: int, count: int, until: datetime, days: int = 120,
) -> dict[str, Any]:
    """Report ``count`` historical events and walk each through the workflow up to ``until``.

    Every step is a real ``service.report`` / ``service.transition`` call (timeline and audit
    entries included) with the clock set to the step's moment. The previous clock is restored
    afterwards, also on error. Flushes, never commits.
    """
    started = time.perf_counter()
    plan = plan_history(seed=seed, count=count, until=until, days=days, townships=township_geometries(db))
    rng = random.Random(f"citybrain-events-replay:{seed}")
    actors = _Actors()
    previous_clock = clock._now  # noqa: SLF001 - restored below, whoever set it
    moment = [until]
    clock.set_clock(lambda: moment[0])
    # (when, tie-breaker, step, plan, event id, state)
    queue: list[tuple[datetime, int, str, PlannedEvent, int | None, dict[str, Any]]] = []
    tie = 0

    def schedule(at: datetime, step: str, p: PlannedEvent, event_id: int | None, state: dict[str, Any]) -> None:
        nonlocal tie
        if at < until:
            tie += 1
            heapq.heappush(queue, (at, tie, step, p, event_id, state))

    steps = 0
    # Strong references keep the rows in the session's identity map, so the service's
    # ``db.get`` calls are answered without a query (the map itself only holds weak ones).
    keep: dict[Any, Any] = {("category", c.code): c for c in db.scalars(select(EventCategory))}
    try:
        for p in plan:
            schedule(p.at, "report", p, None, {"reworks": 0})
        while queue:
            at, _tie, step, p, event_id, state = heapq.heappop(queue)
            moment[0] = at
            steps += 1
            if step == "report":
                event = service.report(db, data=EventReportIn(
                    channel=p.channel, category_code=p.category_code, description=p.description,
                    lon=p.lon, lat=p.lat, reporter_name="" if p.channel == "sensor" else "市民",
                    external_id=f"demo-alarm-{seed}-{p.seq}" if p.channel == "sensor" else None,
                ), actor=_reporter(p.channel, actors))
                keep[event.id] = event
                if event.status == "dispatched":  # machine channel: dispatched at once
                    _after_dispatch(schedule, event, p, state, at)
                elif p.fate == "rejected":
                    schedule(at + timedelta(hours=p.accept_h), "reject", p, event.id, state)
                elif p.fate != "stuck_accept":
                    schedule(at + timedelta(hours=p.accept_h), "accept", p, event.id, state)
                continue
            assert event_id is not None
            if step == "reject":
                service.transition(db, event_id=event_id, action="reject", actor=actors.command, reason=p.reason)
            elif step == "accept":
                event = service.transition(db, event_id=event_id, action="accept", actor=actors.command)
                if event.status == "dispatched":
                    _after_dispatch(schedule, event, p, state, at)
            elif step == "start":
                event = service.transition(db, event_id=event_id, action="start", actor=actors.department)
                if p.fate == "stuck_handle":
                    continue  # started and then left lying: it runs overdue
                if p.extension and not state.get("extended"):
                    state["extended"] = True
                    schedule(at + timedelta(hours=1), "request_extension", p, event_id, state)
                _schedule_handle(schedule, event, p, state, at)
            elif step == "request_extension":
                if service.get_event(db, event_id=event_id).status not in ("dispatched", "in_progress"):
                    continue  # handled before anyone asked for more time
                service.transition(db, event_id=event_id, action="request_extension", actor=actors.department,
                                   reason=rng.choice(_EXTENSION_REASONS), value=2, unit="working_days")
                schedule(at + timedelta(hours=rng.uniform(0.5, 4)), "approve_extension", p, event_id, state)
            elif step == "approve_extension":
                event = service.get_event(db, event_id=event_id)
                if event.status in ("dispatched", "in_progress") and event.extension_request:
                    service.transition(db, event_id=event_id, action="approve_extension", actor=actors.command)
            elif step == "handle":
                service.transition(db, event_id=event_id, action="handle", actor=actors.department, result=p.result)
                schedule(at + timedelta(hours=p.verify_h * rng.uniform(0.5, 1.5)), "verify", p, event_id, state)
            elif step == "verify":
                if state["reworks"] < p.reworks:
                    state["reworks"] += 1
                    event = service.transition(db, event_id=event_id, action="verify_fail", actor=actors.grid,
                                               reason=rng.choice(_REWORK_REASONS))
                    schedule(at + timedelta(hours=p.start_h * rng.uniform(0.3, 1.0)), "start", p, event_id, state)
                else:
                    service.transition(db, event_id=event_id, action="verify_pass", actor=actors.grid)
                    schedule(at + timedelta(hours=p.close_h), "close", p, event_id, state)
            elif step == "close":
                service.transition(db, event_id=event_id, action="close", actor=actors.command)
    finally:
        clock.set_clock(previous_clock)
    db.flush()
    keep.clear()
    return {"events": len(plan), "steps": steps, "seconds": round(time.perf_counter() - started, 2)}


def _after_dispatch(schedule: Any, event: Event, p: PlannedEvent, state: dict[str, Any], at: datetime) -> None:
    schedule(at + timedelta(hours=p.start_h), "start", p, event.id, state)


def _schedule_handle(schedule: Any, event: Event, p: PlannedEvent, state: dict[str, Any], at: datetime) -> None:
    """Handling takes a fraction of the stage's time limit (counted in working time, so the
    wall-clock span to ``due_at`` already holds nights, weekends and holidays)."""
    due = event.due_at or at + timedelta(hours=8)
    span = max((due - at).total_seconds(), 1800.0)
    frac = p.handle_frac * (0.6 if state["reworks"] else 1.0)
    schedule(at + timedelta(seconds=span * frac), "handle", p, event.id, state)
