"""Admin pages of the IoT hub: import with a per-row report and the credentials download,
products with their thing model and TOML editing, alarm rules. Refused forms save nothing."""

from __future__ import annotations

import base64
import csv
import html
import io
import re

import pytest
from sqlalchemy import func, select

from citybrain.core.models import AuditLog
from citybrain.iot import registry
from citybrain.iot.models import AlarmRule, Device
from citybrain.iot.models import Product as ProductRow
from event_helpers import SILULU, make_categories, point_in
from helpers import csrf_from, sign_in

HEADER = "设备编号,名称,产品,部门编码,经度,纬度,坐标系,地址,安装日期,网关\n"


@pytest.fixture
def iot(db, admin_actor):
    registry.sync_products(db, actor=admin_actor)
    make_categories(db)
    db.commit()


def state(db) -> tuple[int, int, int]:
    db.expire_all()
    return tuple(db.scalar(select(func.count()).select_from(t)) for t in (Device, AlarmRule, AuditLog))


def csrf(client, path: str) -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text[:300]
    return csrf_from(page.text)


def rows_of(page: str) -> dict[int, str]:
    return {int(n): s for n, s in re.findall(r'data-row="(\d+)" data-status="(\w+)"', page)}


def test_import_page_dry_run_then_import_with_credentials_once(client, db, iot):
    sign_in(client, "cityadmin")
    lon, lat = point_in(db, SILULU)
    body = HEADER + f"wl-p1,积水一号,waterlogging_gauge,cityadmin,{lon},{lat},wgs84,丝绸路,2026-05-01,\n" \
                    f"wl-p2,积水二号,toaster,cityadmin,{lon},{lat},wgs84,,,\n"
    token = csrf(client, "/iot/import")
    before = state(db)
    dry = client.post("/iot/import", data={"csrf_token": token, "dry_run": "1"},
                      files={"file": ("devices.csv", body.encode("utf-8-sig"), "text/csv")})
    assert dry.status_code == 200, dry.text[:500]
    assert rows_of(dry.text) == {2: "valid", 3: "refused"} and "unknown product" in dry.text
    assert "credentials-download" not in dry.text and state(db) == before
    done = client.post("/iot/import", data={"csrf_token": token},
                       files={"file": ("devices.csv", body.encode("gb18030"), "text/csv")})
    assert done.status_code == 200 and rows_of(done.text) == {2: "created", 3: "refused"}
    href = html.unescape(re.search(r'href="(data:text/csv[^"]+)"', done.text).group(1))
    text = base64.b64decode(href.split("base64,", 1)[1]).decode("utf-8-sig")
    (key, secret), = [tuple(r) for r in csv.reader(io.StringIO(text))][1:]
    device = db.scalar(select(Device).where(Device.key == "wl-p1"))
    assert key == "wl-p1" and registry.secret_matches(device.secret_salt, device.secret_hash, secret)
    # The secret lives on that page only: nothing else ever shows it again.
    for path in ("/iot/import", "/iot/devices", "/iot/devices/wl-p1"):
        assert secret not in client.get(path).text


@pytest.mark.parametrize(("files", "words"), [
    ({"file": ("d.xls", b"\xd0\xcf\x11\xe0" + b"\x00" * 64, "application/vnd.ms-excel")}, "only CSV and XLSX"),
    ({"file": ("d.csv", b"colour,shape\nred,round\n", "text/csv")}, "unknown column"),
    (None, "请选择要导入的 CSV 或 XLSX 文件"),  # the UI speaks Chinese by default
])
def test_import_page_refuses_bad_files(client, db, iot, files, words):
    sign_in(client, "cityadmin")
    token = csrf(client, "/iot/import")
    before = state(db)
    refused = client.post("/iot/import", data={"csrf_token": token}, files=files or {"x": ("", b"", "text/plain")})
    assert refused.status_code == 422 and words in html.unescape(refused.text)
    assert state(db) == before


def test_import_page_needs_csrf_and_permission(client, db, iot):
    sign_in(client, "cityadmin")
    before = state(db)
    no_token = client.post("/iot/import", files={"file": ("d.csv", HEADER.encode(), "text/csv")})
    assert no_token.status_code == 403 and state(db) == before
    sign_in(client, "leader")
    assert client.get("/iot/import").status_code == 403
    client.cookies.clear()
    assert client.get("/iot/import", follow_redirects=False).status_code in (302, 303)


def test_products_pages_show_the_thing_model(client, iot):
    sign_in(client, "leader")
    listed = client.get("/iot/products")
    assert listed.status_code == 200 and 'data-product="air_quality_station"' in listed.text
    detail = client.get("/iot/products/air_quality_station")
    assert 'data-property="pm25"' in detail.text and "μg/m³" in detail.text
    assert "product-form" not in detail.text  # leaders read, admins edit
    assert client.get("/iot/products/toaster").status_code == 404


def test_admin_edits_a_thing_model_and_errors_save_nothing(client, db, iot):
    sign_in(client, "admin")
    page = client.get("/iot/products/rain_gauge")
    assert "product-form" in page.text
    token = csrf_from(page.text)
    original = db.get(ProductRow, "rain_gauge").definition
    before = state(db)
    broken = client.post("/iot/products/rain_gauge", data={"csrf_token": token, "definition": "[[product]]\nname ="})
    assert broken.status_code == 422 and 'data-testid="product-error"' in broken.text
    assert "[[product]]\nname =" in html.unescape(broken.text)  # the text typed is kept for fixing
    other = db.get(ProductRow, "smoke_detector").definition
    wrong = client.post("/iot/products/rain_gauge", data={"csrf_token": token, "definition": other})
    assert wrong.status_code == 422 and "exactly one product" in html.unescape(wrong.text)
    db.expire_all()
    assert db.get(ProductRow, "rain_gauge").definition == original and state(db) == before
    timeout = re.search(r"online_timeout_s = (\d+)", original).group(1)
    edited = original.replace(f"online_timeout_s = {timeout}", "online_timeout_s = 777")
    saved = client.post("/iot/products/rain_gauge", data={"csrf_token": token, "definition": edited},
                        follow_redirects=False)
    assert saved.status_code == 303 and saved.headers["location"] == "/iot/products/rain_gauge?saved=1"
    assert registry.products(db)["rain_gauge"].online_timeout_s == 777
    sign_in(client, "ecology")
    token = csrf(client, "/iot/products/rain_gauge")
    refused = client.post("/iot/products/rain_gauge", data={"csrf_token": token, "definition": original})
    assert refused.status_code == 403


RULE_FORM = {"id": "wl-high", "name": "积水超警戒", "product": "waterlogging_gauge", "property": "level_cm",
             "kind": "threshold", "op": ">", "value": "30", "min": "1", "minutes": "5", "severity": "major",
             "enabled": "1"}


def test_rules_pages_create_edit_toggle_delete(client, db, iot):
    sign_in(client, "admin")
    token = csrf(client, "/iot/rules/new?product=waterlogging_gauge")
    created = client.post("/iot/rules/new", data=RULE_FORM | {"csrf_token": token}, follow_redirects=False)
    assert created.status_code == 303, created.text[:800]
    rule = db.get(AlarmRule, "wl-high")
    assert rule.params == {"op": ">", "value": 30.0} and rule.enabled  # fields of other kinds are ignored
    listed = client.get("/iot/rules?product=waterlogging_gauge")
    assert 'data-rule="wl-high"' in listed.text
    edit = client.get("/iot/rules/wl-high")
    assert 'value="30"' in edit.text and 'name="id"' not in edit.text
    changed = client.post("/iot/rules/wl-high", data=RULE_FORM | {
        "csrf_token": token, "kind": "held_for", "value": "50", "minutes": "10", "dispatch": "1",
        "category_code": "TE0101"}, follow_redirects=False)
    assert changed.status_code == 303
    db.expire_all()
    rule = db.get(AlarmRule, "wl-high")
    assert rule.kind == "held_for" and rule.params["minutes"] == 10 and rule.dispatch and rule.category_code == "TE0101"
    assert client.post("/iot/rules/wl-high/disable", data={"csrf_token": token},
                       follow_redirects=False).status_code == 303
    db.expire_all()
    assert db.get(AlarmRule, "wl-high").enabled is False
    client.post("/iot/rules/wl-high/enable", data={"csrf_token": token})
    db.expire_all()
    assert db.get(AlarmRule, "wl-high").enabled is True
    assert client.post("/iot/rules/wl-high/delete", data={"csrf_token": token},
                       follow_redirects=False).status_code == 303
    db.expire_all()
    assert db.get(AlarmRule, "wl-high") is None


@pytest.mark.parametrize(("change", "words"), [
    ({"property": "depth"}, "has no property 'depth'"),
    ({"value": ""}, "missing parameter 'value'"),
    ({"value": "deep"}, "must be a number"),
    ({"id": "bad id"}, "rule id"),
    ({"dispatch": "1"}, "needs a 'category_code'"),
    ({"dispatch": "1", "category_code": "TE0301"}, "inactive"),
    ({"kind": "range", "min": "10", "max": "1"}, "greater than max"),
    ({"device": "nope"}, "no device"),
])
def test_rule_form_errors_are_shown_and_nothing_saved(client, db, iot, change, words):
    sign_in(client, "admin")
    token = csrf(client, "/iot/rules/new")
    before = state(db)
    refused = client.post("/iot/rules/new", data=RULE_FORM | change | {"csrf_token": token})
    assert refused.status_code == 422 and words in html.unescape(refused.text)
    assert 'data-testid="rule-error"' in refused.text and state(db) == before


def test_rule_edit_errors_keep_the_stored_rule(client, db, iot):
    sign_in(client, "admin")
    token = csrf(client, "/iot/rules/new")
    client.post("/iot/rules/new", data=RULE_FORM | {"csrf_token": token})
    before = state(db)
    refused = client.post("/iot/rules/wl-high", data=RULE_FORM | {"csrf_token": token, "property": "depth"})
    assert refused.status_code == 422 and "depth" in refused.text
    db.expire_all()
    assert db.get(AlarmRule, "wl-high").property == "level_cm" and state(db) == before
    assert client.post("/iot/rules/nope", data=RULE_FORM | {"csrf_token": token}).status_code == 404
    assert client.post("/iot/rules/wl-high/explode", data={"csrf_token": token}).status_code == 404


def test_only_admins_edit_rules(client, db, iot):
    sign_in(client, "admin")
    token = csrf(client, "/iot/rules/new")
    client.post("/iot/rules/new", data=RULE_FORM | {"csrf_token": token})
    sign_in(client, "ecology")
    listed = client.get("/iot/rules")
    assert listed.status_code == 200 and 'data-rule="wl-high"' in listed.text and "/iot/rules/new" not in listed.text
    token = csrf_from(listed.text)
    before = state(db)
    assert client.get("/iot/rules/new").status_code == 403
    assert client.post("/iot/rules/new", data=RULE_FORM | {"id": "x", "csrf_token": token}).status_code == 403
    assert client.post("/iot/rules/wl-high/disable", data={"csrf_token": token}).status_code == 403
    assert client.post("/iot/rules/wl-high/delete", data={"csrf_token": token}).status_code == 403
    assert state(db) == before
