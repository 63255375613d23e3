"""The data pool's pages: browse, upload with preview, request and approve access, quality dashboard.

Uses the demo accounts of the provider (police: 户籍人口信息, 有条件共享), a consumer (hrss) and
the big-data bureau (admin), and the shipped catalog with its demo rows.
"""

from __future__ import annotations

import re

from sqlalchemy import func, select

from citybrain.data import catalog, storage
from citybrain.data.models import AccessLog, DataLoad, Grant, ShareRequest
from helpers import csrf_from, sign_in

POPULATION = "101001/police-00001"


def _form(client, path: str) -> str:
    return csrf_from(client.get(path).text)


def test_catalog_browser_searches_chinese_words_and_offers_facets(client) -> None:
    sign_in(client, "hrss")
    page = client.get("/data", params={"q": "人口"})
    assert page.status_code == 200
    assert "户籍人口信息" in page.text
    assert 'data-facet="sharing_type"' in page.text and 'data-facet="department"' in page.text
    filtered = client.get("/data", params={"sharing_type": "unconditional"})
    assert "市场主体登记信息" in filtered.text and "户籍人口信息" not in filtered.text
    assert "公共信用信息" not in client.get("/data", params={"q": "人口 信用卡"}).text


def test_the_provider_sees_its_rows_in_clear_and_a_consumer_without_grant_sees_none(client, db) -> None:
    entry = catalog.get_by_code(db, code=POPULATION)
    row = db.execute(select(storage.table_for(entry).c.id_number).limit(1)).scalar_one()
    sign_in(client, "police")
    own = client.get(f"/data/entries/{entry.id}")
    assert own.status_code == 200 and row in own.text and 'data-testid="run-quality"' in own.text
    sign_in(client, "hrss")
    other = client.get(f"/data/entries/{entry.id}")
    assert other.status_code == 200
    assert row not in other.text and 'data-testid="rows-refused"' in other.text
    assert 'data-testid="request-form"' in other.text and 'data-testid="run-quality"' not in other.text


def test_request_approve_then_the_consumer_reads_masked_rows_and_the_read_is_logged(client, db) -> None:
    entry = catalog.get_by_code(db, code=POPULATION)
    row = db.execute(select(storage.table_for(entry).c.id_number).limit(1)).scalar_one()
    sign_in(client, "hrss")
    token = _form(client, f"/data/entries/{entry.id}")
    empty = client.post(f"/data/entries/{entry.id}/request", data={"csrf_token": token, "purpose": " ", "days": "30"})
    assert empty.status_code == 422 and 'data-testid="sharing-error"' in empty.text
    assert db.scalar(select(func.count()).select_from(ShareRequest)) == 0
    sent = client.post(f"/data/entries/{entry.id}/request", follow_redirects=False,
                       data={"csrf_token": token, "purpose": "核验参保人员身份", "days": "30"})
    assert sent.status_code == 303
    request_id = db.scalar(select(ShareRequest.id).where(ShareRequest.entry_id == entry.id))

    sign_in(client, "police")
    inbox = client.get("/data/requests")
    assert f'data-request="{request_id}" data-status="pending"' in inbox.text and "核验参保人员身份" in inbox.text
    token = csrf_from(inbox.text)
    refused = client.post(f"/data/requests/{request_id}/refuse", data={"csrf_token": token, "reason": ""})
    assert refused.status_code == 422
    approved = client.post(f"/data/requests/{request_id}/approve", follow_redirects=False,
                           data={"csrf_token": token, "days": "30"})
    assert approved.status_code == 303
    assert db.scalar(select(func.count()).select_from(Grant).where(Grant.entry_id == entry.id)) == 1

    sign_in(client, "hrss")
    logged = db.scalar(select(func.count()).select_from(AccessLog))
    page = client.get(f"/data/entries/{entry.id}")
    assert 'data-testid="grant"' in page.text and 'data-testid="rows"' in page.text
    assert row not in page.text and (row[:6] + "*") in page.text  # masked, not in clear
    assert db.scalar(select(func.count()).select_from(AccessLog)) == logged + 1
    grants = client.get("/data/grants")
    assert entry.resource_id in grants.text


def test_upload_preview_then_load_and_a_bad_file_changes_nothing(client, db) -> None:
    entry = catalog.get_by_code(db, code="101001/police-00001")
    before = (entry.version, entry.row_count)
    sign_in(client, "police")
    token = _form(client, f"/data/upload?entry={entry.id}")
    bad = "公民身份号码,姓名\n110101199003070000,张三\n".encode()
    page = client.post("/data/upload", data={"csrf_token": token, "entry": str(entry.id), "mode": "append",
                                             "action": "preview"}, files={"file": ("bad.csv", bad, "text/csv")})
    assert page.status_code == 200 and 'data-testid="preview-refused"' in page.text
    assert 'data-testid="confirm-form"' not in page.text
    db.refresh(entry)
    assert (entry.version, entry.row_count) == before


def test_upload_of_a_good_file_is_previewed_kept_and_loaded(client, db) -> None:
    from data_factories import make_entry

    entry = make_entry(db, code="1010100/police-09999", name="测试人口", key_fields=["id_number"])
    sign_in(client, "police")
    token = _form(client, f"/data/upload?entry={entry.id}")
    good = "公民身份号码,姓名,出生日期\n11010519491231002X,李四,1949-12-31\n".encode("gb18030")
    page = client.post("/data/upload", data={"csrf_token": token, "entry": str(entry.id), "mode": "append",
                                             "action": "preview"}, files={"file": ("ok.csv", good, "text/csv")})
    assert page.status_code == 200 and 'data-testid="preview-ok"' in page.text, page.text
    assert db.scalar(select(func.count()).select_from(storage.table_for(entry))) == 0  # preview stores nothing
    kept = re.search(r'name="token" value="([^"]+)"', page.text).group(1)
    done = client.post("/data/upload", data={"csrf_token": token, "entry": str(entry.id), "mode": "append",
                                             "action": "load", "token": kept, "filename": "ok.csv"})
    assert done.status_code == 201 and 'data-testid="load-ok"' in done.text
    assert db.scalar(select(func.count()).select_from(storage.table_for(entry))) == 1
    again = client.post("/data/upload", data={"csrf_token": token, "entry": str(entry.id), "mode": "append",
                                              "action": "load", "token": kept, "filename": "ok.csv"})
    assert again.status_code == 422  # the kept file is used once
    assert db.scalar(select(func.count()).select_from(DataLoad).where(DataLoad.entry_id == entry.id)) == 1


def test_another_department_cannot_upload_into_a_resource(client, db) -> None:
    entry = catalog.get_by_code(db, code=POPULATION)
    sign_in(client, "hrss")
    token = _form(client, "/data/upload")
    page = client.post("/data/upload", data={"csrf_token": token, "entry": str(entry.id), "mode": "replace",
                                             "action": "preview"},
                       files={"file": ("x.csv", "公民身份号码\n1\n".encode(), "text/csv")})
    assert page.status_code == 422 and "another department" in page.text


def test_quality_run_from_the_page_feeds_the_dashboard(client, db) -> None:
    entry = catalog.get_by_code(db, code="302001/hrss-00001")
    sign_in(client, "hrss")
    token = _form(client, f"/data/entries/{entry.id}")
    run = client.post(f"/data/entries/{entry.id}/quality", data={"csrf_token": token}, follow_redirects=True)
    assert run.status_code == 200 and 'data-testid="run-score"' in run.text
    assert 'data-testid="disagreement"' in run.text  # the demo misspells some names against the population
    sign_in(client, "admin")
    board = client.get("/data/quality")
    assert 'data-department="hrss"' in board.text and 'data-testid="disagreement"' in board.text
    sign_in(client, "police")
    assert client.get(run.url.path).status_code == 403  # failing values are the provider's and the bureau's
