"""The cockpit's data-quality panel comes from the data pool's quality runs."""

from __future__ import annotations

import json

from citybrain.cockpit import aggregates
from citybrain.data import catalog, quality


def test_the_panel_shows_the_district_score_and_the_lowest_departments(db, frozen_clock, admin_actor) -> None:
    empty = aggregates.snapshot(db, now=frozen_clock[0])["panels"]["data_quality"]
    assert empty["connected"] is True and empty["data"]["value"] is None and empty["data"]["items"] == []
    for code in ("101001/police-00001", "302001/hrss-00001"):
        quality.run(db, entry_id=catalog.get_by_code(db, code=code).id, actor=admin_actor)
    panel = aggregates.snapshot(db, now=frozen_clock[0])["panels"]["data_quality"]
    assert panel["connected"] is True
    data = panel["data"]
    scores = {i["name"]: i["value"] for i in data["items"]}
    assert set(scores) == {"市公安局周村分局", "区人力资源和社会保障局"}
    assert min(scores.values()) <= data["value"] <= max(scores.values())
    assert data["open_tasks"] >= 1  # the demo's hrss copy carries deliberate errors
    hrss = catalog.get_by_code(db, code="302001/hrss-00001")
    assert hrss.items and "370306" not in json.dumps(data, ensure_ascii=False)  # no row values on the screen
