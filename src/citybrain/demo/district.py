"""Load the Zhoucun demo district: departments, geography, one account per role, base data.

Deterministic from the seed: the same seed gives the same residents, enterprises and
passwords, so a demo can be reproduced and a test can log in with what was printed.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import date, datetime
from datetime import time as dtime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citybrain.core.actor import Actor
from citybrain.core.permissions import Role
from citybrain.data import service as data_service
from citybrain.events import catalog as events_catalog
from citybrain.events.models import Event
from citybrain.events.service import CHINA
from citybrain.geo import places as geo_places
from citybrain.geo import service as geo_service
from citybrain.geo.grid import DEFAULT_CELL_SIZE_M, generate_grid, lattice_origin
from citybrain.geo.partition import DISTRICT_CODE, load_boundary_wgs84, load_townships, partition_townships
from citybrain.indicators import demo as indicators_demo
from citybrain.org import service as org_service
from citybrain.org.schemas import UserCreate

from .datapool import load_datapool_demo, run_demo_quality
from .iot import load_demo_iot
from .people import generate_enterprises, generate_residents

log = logging.getLogger("citybrain.demo")

DISTRICT_NAME = "周村区"
BOUNDARY_SOURCE = ("Amap district boundary (shfshanyue/china-geojson data/370306.json), "
                   "GCJ-02 converted to WGS-84; no 审图号")
TOWNSHIP_SOURCE = "generated approximation (Voronoi partition of the district boundary); names and codes: NBS 2023"


@dataclass(frozen=True)
class DemoAccount:
    username: str
    password: str
    role: str
    department: str | None
    display_name: str


def demo_accounts(seed: int) -> list[DemoAccount]:
    def pw(username: str) -> str:
        digest = hashlib.sha256(f"citybrain-demo:{seed}:{username}".encode()).hexdigest()
        return f"Zc-{digest[:10]}"

    spec = [
        ("admin", Role.ADMIN, "bigdata", "区大数据局管理员"),
        ("leader", Role.LEADER, None, "区领导（演示）"),
        ("cityadmin", Role.STAFF, "cityadmin", "综合执法局工作人员"),
        ("ecology", Role.STAFF, "ecology", "生态环境分局工作人员"),
        ("silulu", Role.STAFF, "ts-silulu", "丝绸路街道办事处工作人员"),
        ("police", Role.STAFF, "police", "公安周村分局工作人员"),
        ("market", Role.STAFF, "market", "区市场监管局工作人员"),
        ("tax", Role.STAFF, "tax", "区税务局工作人员"),
        ("hrss", Role.STAFF, "hrss", "区人社局工作人员"),
        ("gridworker", Role.GRID_WORKER, "ts-silulu", "丝绸路街道网格员"),
        ("citizen", Role.CITIZEN, None, "市民（演示）"),
    ]
    return [DemoAccount(u, pw(u), str(r), d, n) for u, r, d, n in spec]


def load_geography(db: Session, *, actor: Actor) -> dict[str, int]:
    started = time.perf_counter()
    boundary = load_boundary_wgs84()
    pieces = partition_townships(boundary)
    townships = [
        geo_service.TownshipInput(code=t["code12"], name=t["name"], kind=t["type"], geometry=pieces[t["code12"]],
                                  approximate=True, source=TOWNSHIP_SOURCE)
        for t in load_townships()
    ]
    origin = lattice_origin(boundary)
    cells = generate_grid(pieces, DEFAULT_CELL_SIZE_M, origin)
    counts = geo_service.load_district(
        db, code=DISTRICT_CODE + "000000", name=DISTRICT_NAME, boundary=boundary,
        boundary_source=BOUNDARY_SOURCE, townships=townships, cells=cells, origin=origin,
        cell_size_m=DEFAULT_CELL_SIZE_M, actor=actor,
    )
    log.info("geography loaded", extra={**counts, "seconds": round(time.perf_counter() - started, 2)})
    return counts


def load_demo(
    db: Session, *, seed: int, actor: Actor, today: date, residents: int = 5000, enterprises: int = 800,
    events: int = 0, data_dir: Path | str | None = None, datapool: bool = True, quality: bool = False,
) -> dict[str, object]:
    """Idempotent: each part is loaded only if it is not there yet.

    ``events``: how many historical events to generate (``events_history``) when the event
    table is empty; 0 (the default, used by the test fixtures) generates none.
    ``data_dir``: where evidence files go; with it, synthetic plan-indicator reports are loaded
    (once), without it only the indicator table.
    ``datapool``: create the shipped base/thematic databases and fill them with synthetic rows.
    ``quality``: then run every shipped resource's quality rules once (the dashboard's first scores).
    """
    summary: dict[str, object] = {"departments": org_service.load_shipped_departments(db, actor=actor)}
    if not geo_service.district_loaded(db):
        summary |= load_geography(db, actor=actor)
    summary["places"] = geo_places.load_places(db, actor=actor)
    # The citizen report page and the event channels need the shipped classification catalog.
    summary["event_categories"] = events_catalog.sync_catalog(db, actor=actor)
    accounts = demo_accounts(seed)
    created = []
    for acc in accounts:
        if org_service.get_user_by_username(db, username=acc.username) is None:
            org_service.create_user(db, data=UserCreate(
                username=acc.username, password=acc.password, role=acc.role,  # type: ignore[arg-type]
                department=acc.department, display_name=acc.display_name), actor=actor)
            created.append(acc.username)
    summary["users"] = created
    summary |= indicators_demo.load_demo_indicators(db, actor=actor, today=today, data_dir=data_dir)
    codes = [t["code9"] for t in load_townships()]
    if data_service.count_residents(db) == 0 and residents:
        people = generate_residents(seed, residents, township_codes=codes, today=today)
        summary["residents"] = data_service.load_residents(db, residents=people, actor=actor)
    if data_service.count_enterprises(db) == 0 and enterprises:
        firms = generate_enterprises(seed, enterprises, township_codes=codes, today=today)
        summary["enterprises"] = data_service.load_enterprises(db, enterprises=firms, actor=actor)
    if datapool:
        pool = load_datapool_demo(db, seed=seed, actor=actor, residents=residents, enterprises=enterprises,
                                  today=today)
        if pool:
            summary["datapool_rows"] = sum(pool.values())
        if quality:
            summary["quality_runs"] = run_demo_quality(db, actor=actor)
    summary |= load_demo_iot(db, seed=seed, actor=actor)
    if events and db.scalar(select(func.count()).select_from(Event)) == 0:
        from .events_history import generate_history

        # The history ends at the start of ``today`` (China time), so it depends only on the
        # seed and the date; the live generator fills in the rest of the day.
        until = datetime.combine(today, dtime(0), tzinfo=CHINA)
        summary["events_history"] = generate_history(db, seed=seed, count=events, until=until)
    return summary
