"""In real headless Chromium against `citybrain demo`, the data pool's whole path:

the police (provider of 户籍人口信息) upload a correction through the upload page (preview,
then load) and see the load report; the human-resources bureau (a consumer) requests access
with a purpose; the police approve it; the consumer then sees the rows masked; the big-data
bureau opens the quality dashboard with its trend chart and the cross-source disagreements.
No request leaves the server.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from citybrain.core.db import make_engine
from citybrain.data import catalog, storage
from e2e_helpers import demo_database, sign_in_page

pytestmark = pytest.mark.e2e

SHOTS = Path(__file__).resolve().parents[2] / "test-results"
POPULATION = "101001/police-00001"


def _population_row(url: str) -> tuple[int, dict[str, object]]:
    engine = make_engine(url)
    try:
        with Session(engine) as db:
            entry = catalog.get_by_code(db, code=POPULATION)
            row = db.execute(select(storage.table_for(entry)).limit(1)).mappings().one()
            return entry.id, {i.name: row[i.code] for i in entry.items}
    finally:
        engine.dispose()


def test_upload_request_approve_read_masked_and_watch_quality(page, demo_server, tmp_path_factory, tmp_path):  # noqa: ANN001
    base = demo_server.base_url
    entry_id, row = _population_row(demo_database(tmp_path_factory))
    row["户籍地址"] = "山东省淄博市周村区丝绸路街道测试路1号"
    csv_file = tmp_path / "correction.csv"
    csv_file.write_text(",".join(row) + "\n" + ",".join("" if v is None else str(v) for v in row.values()) + "\n",
                        encoding="utf-8-sig")

    sign_in_page(page, demo_server, "police")
    page.goto(f"{base}/data/upload?entry={entry_id}")
    page.select_option("#mode", "upsert")
    page.set_input_files("#file", str(csv_file))
    page.click("[data-testid=upload-form] button[type=submit]")
    page.wait_for_selector("[data-testid=preview-ok]")
    with page.expect_navigation():
        page.click("[data-testid=confirm-form] button[type=submit]")
    assert page.query_selector("[data-testid=load-report]"), "".join(demo_server.output[-60:])
    assert page.get_attribute("[data-testid=load-report]", "data-status") == "loaded", page.inner_text("main")

    sign_in_page(page, demo_server, "hrss")
    page.goto(f"{base}/data?q=户籍人口")
    page.click(f"a[href='/data/entries/{entry_id}']")
    page.wait_for_selector("[data-testid=rows-refused]")
    page.fill("#purpose", "核验参保人员身份信息")
    with page.expect_navigation():
        page.click("[data-testid=request-form] button[type=submit]")
    assert page.query_selector("[data-testid=pending]"), page.inner_text("main")

    sign_in_page(page, demo_server, "police")
    page.goto(f"{base}/data/requests")
    page.click("[data-testid=approve-form] button[type=submit]")
    page.wait_for_selector("[data-testid=incoming][data-status=approved]")

    sign_in_page(page, demo_server, "hrss")
    page.goto(f"{base}/data/entries/{entry_id}")
    page.wait_for_selector("[data-testid=rows]")
    table = page.inner_text("[data-testid=rows]")
    assert str(row["公民身份号码"]) not in table and "*" in table

    sign_in_page(page, demo_server, "admin")
    page.goto(f"{base}/data/quality")
    page.wait_for_selector("[data-testid=department-scores]")
    page.wait_for_selector("#quality-trend[data-ready='1']")  # the ECharts trend is drawn
    assert page.query_selector("tr[data-department=hrss] td[data-score]") is not None
    assert page.query_selector("[data-testid=disagreement]") is not None
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "data-quality.png"), full_page=True)
    assert page.outside_requests == []
