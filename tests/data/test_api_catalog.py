"""The catalog JSON API under /api/data: search with facets, entries, XLSX import and export.

Every refused write is checked to have changed nothing."""

from __future__ import annotations

import io
from urllib.parse import quote

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from citybrain.data import catalog, catalog_xlsx
from citybrain.data.models import CatalogEntry
from citybrain.org import service as org_service
from data_factories import PEOPLE_ITEMS, make_entry
from helpers import token_for

USERS = ("admin", "leader", "police", "market", "citizen")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture
def as_(client):
    cache = {username: token_for(client, username) for username in USERS}
    return cache.__getitem__


def body(code: str = "1010100/police-08001", department: str = "police", **change) -> dict:
    return {"code": code, "name": "流动人口信息", "class_kind": "base", "class_code": "1-01-003",
            "provider_department_code": department, "sharing_type": "conditional",
            "sharing_conditions": "仅用于人口服务管理", "items": PEOPLE_ITEMS, "key_fields": ["id_number"]} | change


def count(db) -> int:
    db.expire_all()
    return db.scalar(select(func.count()).select_from(CatalogEntry))


def test_search_answers_results_facets_and_the_query_words(client, db, as_) -> None:
    entry = make_entry(db, code="1010100/police-08001", name="户籍人口信息")
    db.commit()
    response = client.get("/api/data/entries", params={"q": "人口", "department": "police", "limit": 100},
                          headers=as_("leader"))
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["words"] == ["人口"]
    assert entry.code in [r["code"] for r in page["results"]]
    assert page["total"] == len(page["results"])
    assert all(r["provider_department_code"] == "police" for r in page["results"])
    assert page["facets"]["department"] == [{"value": "police", "label": page["results"][0]["provider_department_name"],
                                             "count": page["total"]}]
    sharing = {f["value"]: f["label"] for f in page["facets"]["sharing_type"]}
    assert sharing["conditional"] == "Conditional sharing"


def test_repeated_filter_values_are_alternatives(client, db, as_) -> None:
    one = client.get("/api/data/entries", params={"department": "police"}, headers=as_("leader")).json()["total"]
    two = client.get("/api/data/entries", params=[("department", "police"), ("department", "market")],
                     headers=as_("leader")).json()["total"]
    other = client.get("/api/data/entries", params={"department": "market"}, headers=as_("leader")).json()["total"]
    assert one > 0 and other > 0 and two == one + other


@pytest.mark.parametrize("params", [{"sort": "random"}, {"sharing_type": "sometimes"}, {"limit": 5000},
                                    {"offset": -1}, {"q": "人" * 201}])
def test_bad_search_parameters_answer_422(client, as_, params) -> None:
    response = client.get("/api/data/entries", params=params, headers=as_("leader"))
    assert response.status_code == 422 and response.json()["detail"]


def test_reading_needs_an_account_with_data_read(client, as_) -> None:
    assert client.get("/api/data/entries").status_code == 401
    assert client.get("/api/data/entries", headers=as_("citizen")).status_code == 403


def test_an_entry_shows_its_metadata_items_and_load_state(client, db, as_) -> None:
    entry = make_entry(db, code="1010100/police-08001")
    db.commit()
    response = client.get(f"/api/data/entries/{entry.id}", headers=as_("leader"))
    assert response.status_code == 200
    shown = response.json()
    assert shown["code"] == entry.code and shown["provider_department_code"] == "police"
    assert [i["code"] for i in shown["items"]] == [i["code"] for i in PEOPLE_ITEMS]
    assert (shown["row_count"], shown["version"], shown["quality_score"]) == (0, 0, None)
    assert shown["key_fields"] == ["id_number"] and shown["package_id"] == entry.package_id
    assert client.get("/api/data/entries/999999", headers=as_("leader")).status_code == 404


def test_department_staff_create_and_change_their_own_entries(client, db, as_) -> None:
    response = client.post("/api/data/entries", json=body(), headers=as_("police"))
    assert response.status_code == 201, response.text
    entry_id = response.json()["id"]
    changed = client.put(f"/api/data/entries/{entry_id}", json=body(abstract="新的摘要"), headers=as_("police"))
    assert changed.status_code == 200 and changed.json()["abstract"] == "新的摘要"
    assert catalog.get_entry(db, entry_id=entry_id).abstract == "新的摘要"


def test_staff_of_another_department_cannot_create_or_edit(client, db, as_) -> None:
    entry = make_entry(db, code="1010100/police-08001")
    db.commit()
    before = count(db)
    refused = client.post("/api/data/entries", json=body("1010100/police-08002"), headers=as_("market"))
    assert refused.status_code == 403 and count(db) == before
    edit = client.put(f"/api/data/entries/{entry.id}", json=body(entry.code, name="被改了"), headers=as_("market"))
    assert edit.status_code == 403
    db.expire_all()
    assert catalog.get_entry(db, entry_id=entry.id).name == "户籍人口信息"
    assert client.post("/api/data/entries", json=body("1010100/police-08003"),
                       headers=as_("leader")).status_code == 403
    admin = client.put(f"/api/data/entries/{entry.id}", json=body(entry.code, name="管理员改的"), headers=as_("admin"))
    assert admin.status_code == 200


@pytest.mark.parametrize(("change", "status"), [
    ({"sharing_type": "sometimes"}, 422), ({"items": []}, 422), ({"provider_department_code": "nowhere"}, 404),
    ({"code": "101001/police-00001"}, 409),
])
def test_bad_entries_are_refused_and_nothing_is_added(client, db, as_, change, status) -> None:
    before = count(db)
    response = client.post("/api/data/entries", json=body(**change), headers=as_("admin"))
    assert response.status_code == status, response.text
    assert count(db) == before


def _workbook(client, as_, **params) -> bytes:
    response = client.get("/api/data/catalog/export", params=params, headers=as_("leader"))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == XLSX
    return response.content


def test_export_downloads_the_filtered_entries_with_a_utf8_filename(client, db, as_) -> None:
    response = client.get("/api/data/catalog/export", params={"department": "police"}, headers=as_("leader"))
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment;") and f"filename*=UTF-8''{quote('信息资源目录')}" in disposition
    ws = load_workbook(io.BytesIO(response.content))[catalog_xlsx.SHEET]
    codes = {r[2] for r in ws.iter_rows(min_row=2, values_only=True)}
    police_id = org_service.get_department_by_code(db, code="police").id
    assert codes == {e.code for e in catalog.list_entries(db, department_id=police_id)} and codes


def test_import_dry_run_then_for_real(client, db, as_) -> None:
    entry = make_entry(db, code="1010100/police-08001")
    db.commit()
    data = _workbook(client, as_, q="户籍人口信息", department="police")
    db.delete(entry)
    db.commit()
    before = count(db)
    files = {"file": ("目录.xlsx", data, XLSX)}
    dry = client.post("/api/data/catalog/import", params={"dry_run": "true"}, files=files, headers=as_("police"))
    assert dry.status_code == 200, dry.text
    assert dry.json()["dry_run"] and "1010100/police-08001" in dry.json()["created"] and count(db) == before
    real = client.post("/api/data/catalog/import", files=files, headers=as_("police"))
    assert real.status_code == 200 and "1010100/police-08001" in real.json()["created"]
    assert real.json()["counts"]["refused"] == 0
    assert count(db) == before + 1


def test_import_by_another_department_is_reported_refused(client, db, as_) -> None:
    make_entry(db, code="1010100/police-08001")
    db.commit()
    data = _workbook(client, as_, q="户籍人口信息", department="police")
    response = client.post("/api/data/catalog/import", files={"file": ("x.xlsx", data, XLSX)},
                           headers=as_("market"))
    assert response.status_code == 200
    report = response.json()
    assert report["created"] == [] and "1010100/police-08001" in report["refused"]
    assert all(e["row"] >= 2 and e["reason"] for e in report["errors"])


@pytest.mark.parametrize(("data", "status"), [(b"not a workbook", 422), (b"", 422)])
def test_import_of_a_bad_file_is_refused(client, db, as_, data, status) -> None:
    before = count(db)
    response = client.post("/api/data/catalog/import", files={"file": ("x.xlsx", data, XLSX)},
                           headers=as_("admin"))
    assert response.status_code == status and response.json()["detail"]
    assert count(db) == before


def test_import_needs_the_publish_permission(client, as_) -> None:
    files = {"file": ("x.xlsx", b"whatever", XLSX)}
    assert client.post("/api/data/catalog/import", files=files, headers=as_("leader")).status_code == 403
    assert client.post("/api/data/catalog/import", files=files).status_code == 401
