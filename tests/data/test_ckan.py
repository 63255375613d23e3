"""CKAN Action API through the app: envelope, errors, package/organization actions, datastore_search."""

from __future__ import annotations

import pytest
from sqlalchemy import insert

from citybrain.data import storage
from data_factories import make_entry
from helpers import token_for


@pytest.fixture
def entries(db):
    people = make_entry(db, code="1010100/ckan-00001", name="流动人口登记信息", department="police",
                        sharing="conditional", keywords="流动人口,居住证", abstract="周村区流动人口居住登记")
    open_one = make_entry(db, code="3010100/ckan-00002", name="食品经营许可信息", department="market",
                          sharing="unconditional", class_kind="department", class_code="3-01-001",
                          keywords="食品,许可", abstract="食品经营许可证发放情况")
    db.execute(insert(storage.table_for(open_one)), [
        {"_load": 1, "id_number": f"37030619900101{n:04d}", "name": "王五", "mobile": "13912345678",
         "address": "周村区南郊镇", "household_size": n} for n in range(5)])
    db.commit()
    return people, open_one


def ok(response):
    body = response.json()
    assert response.status_code == 200 and body["success"] is True, response.text
    assert body["help"].endswith("/help_show?name=" + response.url.path.rsplit("/", 1)[1])
    return body["result"]


def error(response, status: int, kind: str) -> str:
    body = response.json()
    assert response.status_code == status and body["success"] is False, response.text
    assert body["error"]["__type"] == kind and "help" in body
    return body["error"]["message"]


@pytest.mark.parametrize("prefix", ["/api/3/action", "/api/action"])
def test_package_actions_in_ckan_shape(client, entries, prefix):
    people, _ = entries
    ckan = {"Authorization": token_for(client, "tax")["Authorization"].removeprefix("Bearer ")}
    assert people.slug in ok(client.get(f"{prefix}/package_list", headers=ckan))
    pkg = ok(client.get(f"{prefix}/package_show", params={"id": people.slug}, headers=ckan))
    assert (pkg["id"], pkg["name"], pkg["title"]) == (people.package_id, people.slug, "流动人口登记信息")
    assert pkg["organization"]["name"] == "police" and pkg["resources"][0]["id"] == people.resource_id
    assert pkg["resources"][0]["datastore_active"] is True
    assert {t["name"] for t in pkg["tags"]} == {"流动人口", "居住证"}
    extras = {e["key"]: e["value"] for e in pkg["extras"]}
    assert extras["resource_code"] == "1010100/ckan-00001" and extras["sharing_type"] == "conditional"
    shown = ok(client.post(f"{prefix}/package_show", json={"id": people.package_id}, headers=ckan))
    assert shown["name"] == people.slug


def test_package_search_words_fq_sort_and_facets(client, entries):
    people, open_one = entries
    h = {"X-CKAN-API-Key": token_for(client, "tax")["Authorization"].removeprefix("Bearer ")}
    res = ok(client.get("/api/3/action/package_search", headers=h, params={"q": "流动人口"}))
    assert people.slug in [p["name"] for p in res["results"]]
    res = ok(client.post("/api/3/action/package_search", headers=h, json={
        "q": "", "fq": 'organization:market tags:"食品"', "facet.field": '["organization", "sharing_type", "tags"]',
        "rows": 5, "sort": "name asc"}))
    assert [p["name"] for p in res["results"]] == [open_one.slug] and res["count"] == 1
    assert res["search_facets"]["organization"]["items"] == [
        {"count": 1, "display_name": res["results"][0]["organization"]["title"], "name": "market"}]
    assert res["facets"]["sharing_type"] == {"unconditional": 1}
    big = ok(client.get("/api/3/action/package_search", headers=h, params={"rows": 5000}))
    assert len(big["results"]) == min(big["count"], 1000)  # capped like CKAN
    msg = error(client.get("/api/3/action/package_search", headers=h, params={"fq": "color:red"}),
                400, "Search Query Error")
    assert "color" in msg
    error(client.get("/api/3/action/package_search", headers=h, params={"sort": "popularity desc"}),
          400, "Search Query Error")
    error(client.get("/api/3/action/package_search", headers=h, params={"rows": "-1"}), 409, "Validation Error")
    error(client.get("/api/3/action/package_search", headers=h, params={"facet.field": "organization"}),
          409, "Validation Error")


def test_organizations_are_departments_that_provide(client, entries):
    h = token_for(client, "tax")
    names = ok(client.get("/api/3/action/organization_list", headers=h))
    assert {"police", "market"} <= set(names) and "citizen" not in names
    full = ok(client.get("/api/3/action/organization_list", headers=h, params={"all_fields": "true"}))
    assert all(o["package_count"] >= 1 for o in full)
    org = ok(client.get("/api/3/action/organization_show", headers=h,
                        params={"id": "market", "include_datasets": "true"}))
    assert org["name"] == "market" and entries[1].slug in [p["name"] for p in org["packages"]]
    error(client.get("/api/3/action/organization_show", headers=h, params={"id": "nobody"}), 404, "Not Found Error")


def test_datastore_search_envelope_and_errors(client, db, entries):
    people, open_one = entries
    h = token_for(client, "tax")
    res = ok(client.get("/api/3/action/datastore_search", headers=h, params={
        "resource_id": open_one.resource_id, "filters": '{"household_size": [1, 2]}', "sort": "household_size desc",
        "fields": "_id,name,mobile,household_size", "limit": 1}))
    assert res["total"] == 2 and res["limit"] == 1 and res["offset"] == 0
    assert res["fields"] == [{"id": "_id", "type": "int"}, {"id": "name", "type": "text"},
                             {"id": "mobile", "type": "text"}, {"id": "household_size", "type": "int"}]
    assert res["records"][0]["mobile"] == "139****5678" and res["records"][0]["household_size"] == 2
    assert res["_links"]["next"].startswith("/api/3/action/datastore_search?resource_id=")
    assert "offset=1" in res["_links"]["next"]
    lists = ok(client.post("/api/action/datastore_search", headers=h, json={
        "resource_id": open_one.resource_id, "records_format": "lists", "fields": ["household_size"],
        "sort": "household_size", "include_total": False}))
    assert lists["records"] == [[0], [1], [2], [3], [4]] and "total" not in lists
    error(client.get("/api/3/action/datastore_search", headers=h, params={"resource_id": people.resource_id}),
          403, "Authorization Error")
    error(client.get("/api/3/action/datastore_search", params={"resource_id": open_one.resource_id}),
          403, "Authorization Error")
    error(client.get("/api/3/action/datastore_search", headers={"Authorization": "cb_bad.token"},
                     params={"resource_id": open_one.resource_id}), 403, "Authorization Error")
    error(client.get("/api/3/action/datastore_search", headers=h, params={"resource_id": "no-such"}),
          404, "Not Found Error")
    for bad in ({"limit": "40000"}, {"limit": "ten"}, {"offset": "-3"}, {"filters": "{"},
                {"filters": '{"salary": 1}'}, {"records_format": "csv"}, {"include_total": "perhaps"}):
        error(client.get("/api/3/action/datastore_search", headers=h,
                         params={"resource_id": open_one.resource_id, **bad}), 409, "Validation Error")
    error(client.get("/api/3/action/datastore_search", headers=h), 409, "Validation Error")


def test_unknown_action_and_bad_json_are_bad_requests(client):
    h = token_for(client, "tax")
    assert "Action name not known" in error(client.get("/api/3/action/package_delete", headers=h), 400, "Bad Request")
    r = client.post("/api/3/action/package_list", headers={**h, "Content-Type": "application/json"}, content=b"{oops")
    error(r, 400, "Bad Request")
    assert "datastore_search" not in ok(client.get("/api/3/action/help_show", params={"name": "package_show"}))
    error(client.get("/api/3/action/package_list"), 403, "Authorization Error")
