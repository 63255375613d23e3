"""Bulk device registration from CSV/XLSX: every row reported, refused rows change nothing, the
whole file refused when the file itself is wrong."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select

from citybrain.core.errors import Invalid
from citybrain.core.models import AuditLog
from citybrain.geo import service as geo_service
from citybrain.iot import device_import, registry
from citybrain.iot.models import Device
from event_helpers import SILULU, actor, point_in
from helpers import token_for

HEADER = ["key", "name", "product", "department_code", "lon", "lat", "crs", "address", "install_date",
          "gateway_key"]
CHINESE = ["设备编号", "名称", "产品", "部门编码", "经度", "纬度", "坐标系", "地址", "安装日期", "网关"]


@pytest.fixture
def iot(db, admin_actor):
    registry.sync_products(db, actor=admin_actor)
    db.commit()


@pytest.fixture
def here(db) -> tuple[str, str]:
    lon, lat = point_in(db, SILULU)
    return str(lon), str(lat)


def to_csv(rows: list[list[str]], *, header: list[str] = HEADER, encoding: str = "utf-8-sig") -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode(encoding)


def to_xlsx(rows: list[list[object]], *, header: list[str] = HEADER) -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def row(key: str, here: tuple[str, str], **over: str) -> list[str]:
    values = {"key": key, "name": f"设备{key}", "product": "waterlogging_gauge", "department_code": "cityadmin",
              "lon": here[0], "lat": here[1], "crs": "wgs84", "address": "丝绸路", "install_date": "2026-05-01",
              "gateway_key": ""}
    values.update(over)
    return [values[c] for c in HEADER]


def state(db) -> tuple[int, int]:
    db.expire_all()
    return (db.scalar(select(func.count()).select_from(Device)),
            db.scalar(select(func.count()).select_from(AuditLog)))


def run(db, data: bytes, *, who: str = "admin", dry_run: bool = False, filename: str = "devices.csv"):
    return device_import.import_devices(db, data=data, filename=filename, actor=actor(db, who), dry_run=dry_run)


def test_valid_rows_are_created_with_secrets_shown_once(db, iot, here, frozen_clock):
    before = state(db)
    result = run(db, to_csv([row("wl-1", here), row("wl-2", here, crs="", install_date="")]))
    assert [(r.row, r.key, r.status) for r in result.rows] == [(2, "wl-1", "created"), (3, "wl-2", "created")]
    assert [k for k, _ in result.credentials] == ["wl-1", "wl-2"]
    devices = {d.key: d for d in db.scalars(select(Device).where(Device.key.in_(["wl-1", "wl-2"])))}
    for key, secret in result.credentials:
        assert registry.secret_matches(devices[key].secret_salt, devices[key].secret_hash, secret)
        assert devices[key].township_code == SILULU and devices[key].state == "active"
    assert devices["wl-1"].install_date == date(2026, 5, 1) and devices["wl-2"].install_date is None
    assert state(db) == (before[0] + 2, before[1] + 2)  # one audit entry per device
    text = result.credentials_csv()
    assert text.splitlines()[0] == "key,secret" and result.credentials[1][1] in text


def test_default_crs_is_gcj02(db, iot, here):
    lon, lat = float(here[0]), float(here[1])
    result = run(db, to_csv([row("wl-gcj", here, crs="")]))
    assert result.rows[0].status == "created"
    device = db.scalar(select(Device).where(Device.key == "wl-gcj"))
    expected = geo_service.locate(db, lon=lon, lat=lat, crs="gcj02")["wgs84"]
    assert (device.lon, device.lat) == tuple(expected) and abs(device.lon - lon) > 1e-4


def test_dry_run_reports_and_creates_nothing(db, iot, here):
    before = state(db)
    result = run(db, to_csv([row("wl-1", here), row("bad key", here)]), dry_run=True)
    assert [r.status for r in result.rows] == ["valid", "refused"] and result.credentials == []
    assert state(db) == before


def test_chinese_headers_and_gb18030_from_excel(db, iot, here):
    data = to_csv([row("wl-gb", here, name="积水点一号", address="丝绸路与新建路路口")], header=CHINESE,
                  encoding="gb18030")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    result = run(db, data)
    assert result.rows[0].status == "created", result.rows[0].reason
    device = db.scalar(select(Device).where(Device.key == "wl-gb"))
    assert device.name == "积水点一号" and device.address == "丝绸路与新建路路口"


def test_xlsx_with_numbers_and_dates_in_cells(db, iot, here):
    lon, lat = float(here[0]), float(here[1])
    data = to_xlsx([[1001, "数字编号", "rain_gauge", "cityadmin", lon, lat, "wgs84", "", datetime(2026, 1, 2), None],
                    ["r-2", "文本日期", "rain_gauge", "cityadmin", None, None, None, None, "2026/1/3", None]])
    result = run(db, data, filename="devices.xlsx")
    assert [(r.key, r.status, r.reason) for r in result.rows] == [("1001", "created", ""), ("r-2", "created", "")]
    assert db.scalar(select(Device).where(Device.key == "1001")).install_date == date(2026, 1, 2)
    assert db.scalar(select(Device).where(Device.key == "r-2")).install_date == date(2026, 1, 3)


def test_every_bad_row_is_refused_with_its_reason_and_the_rest_created(db, iot, here, frozen_clock):
    run(db, to_csv([row("wl-old", here)]))
    before = state(db)
    rows = [
        row("wl-ok", here),  # 2
        row("", here),  # 3
        row("bad key!", here),  # 4
        row("dup", here), row("dup", here),  # 5, 6
        row("wl-old", here),  # 7
        row("wl-p", here, product="toaster"),  # 8
        row("wl-d", here, department_code="nope"),  # 9
        row("wl-c", here, lon="east", lat="north"),  # 10
        row("wl-o", here, lon="120.0", lat="30.0"),  # 11
        row("wl-h", here, lat=""),  # 12
        row("wl-f", here, install_date="2099-01-01"),  # 13
        row("wl-m", here, install_date="01/05/2026"),  # 14
        row("wl-x", here, install_date="2026-02-30"),  # 15
        row("wl-crs", here, crs="mars"),  # 16
        row("wl-gw", here, gateway_key="no-gw"),  # 17
        row("wl-n", here, name=""),  # 18
        row("wl-r", here, lon="200", lat="36.8"),  # 19
        row("wl-e", here, install_date="1899-12-30"),  # 20
    ]
    result = run(db, to_csv(rows))
    report = {r.row: (r.key, r.status, r.reason) for r in result.rows}
    assert report[2][1] == "created"
    expected = {3: "key is empty", 4: "device key", 5: "rows 5, 6", 6: "rows 5, 6", 7: "already registered",
                8: "unknown product", 9: "unknown department", 10: "not a number", 11: "outside",
                12: "both lon and lat", 13: "future", 14: "not a date", 15: "not a date", 16: "",
                17: "gateway", 18: "name is empty", 19: "", 20: "before 2000"}
    for number, words in expected.items():
        key, status, reason = report[number]
        assert status == "refused" and words in reason, (number, report[number])
    assert state(db) == (before[0] + 1, before[1] + 1)


def test_staff_import_only_into_their_department(db, iot, here):
    before = state(db)
    result = run(db, to_csv([row("wl-mine", here), row("wl-eco", here, department_code="ecology")]),
                 who="cityadmin")
    assert [(r.key, r.status) for r in result.rows] == [("wl-mine", "created"), ("wl-eco", "refused")]
    assert "not yours" in result.rows[1].reason
    assert state(db) == (before[0] + 1, before[1] + 1)


def test_gateway_rows_first_then_their_devices(db, iot, here):
    rows = [row("gw-1", here, product="gateway"), row("wl-a", here, gateway_key="gw-1"),
            row("wl-b", here, gateway_key="wl-a")]
    result = run(db, to_csv(rows))
    assert [r.status for r in result.rows] == ["created", "created", "refused"]
    assert db.scalar(select(Device).where(Device.key == "wl-a")).gateway_key == "gw-1"


def test_extra_cells_blank_lines_and_row_numbers(db, iot, here):
    text = to_csv([row("wl-1", here)]).decode("utf-8-sig") + "\n,,,,,,,,,\n" + ",".join(row("wl-2", here)) + ",x\n"
    result = run(db, text.encode())
    assert [(r.row, r.status) for r in result.rows] == [(2, "created"), (5, "refused")]
    assert "outside the named columns" in result.rows[1].reason


@pytest.mark.parametrize(("data", "filename", "words"), [
    (b"", "d.csv", "empty"),
    (b"\n\n", "d.csv", "empty"),
    (b"key,name,product,department_code,colour\n", "d.csv", "unknown column"),
    (b"key,name,product\n", "d.csv", "missing column(s): department_code"),
    (b"key,name,product,department_code,key\n", "d.csv", "appears twice"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "d.xls", "only CSV and XLSX"),
    (b"anything", "d.ods", "only CSV and XLSX"),
    ("key,name\n".encode("utf-16"), "d.csv", "UTF-16"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00", "photo.png", "not a CSV"),
    (b"key,name,product,department_code\n\x81\x20\xff\n", "d.csv", "neither UTF-8 nor GB18030"),
    (b"PK\x03\x04 this is no zip", "d.xlsx", "workbook cannot be read"),
])
def test_bad_files_are_refused_whole(db, iot, data, filename, words):
    before = state(db)
    with pytest.raises(Invalid) as refused:
        run(db, data, filename=filename)
    assert words in refused.value.message
    assert state(db) == before


def test_a_zip_that_is_not_a_workbook(db, iot):
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(Invalid, match="workbook cannot be read"):
        run(db, out.getvalue(), filename="d.xlsx")


def test_too_many_rows(db, iot, here):
    before = state(db)
    rows = [row(f"k{i}", here) for i in range(device_import.MAX_ROWS + 1)]
    with pytest.raises(Invalid, match="too many rows"):
        run(db, to_csv(rows))
    assert state(db) == before


# --- through the API --------------------------------------------------------------------------------


def test_import_over_the_api(client, db, iot, here):
    headers = token_for(client, "cityadmin")
    before = state(db)
    data = to_csv([row("wl-api", here), row("wl-api2", here, product="toaster")])
    dry = client.post("/api/iot/devices/import", files={"file": ("d.csv", data, "text/csv")},
                      data={"dry_run": "true"}, headers=headers)
    assert dry.status_code == 200, dry.text
    assert dry.json()["dry_run"] is True and dry.json()["valid"] == 1 and dry.json()["credentials"] == []
    assert state(db) == before
    real = client.post("/api/iot/devices/import", files={"file": ("d.csv", data, "text/csv")}, headers=headers)
    body = real.json()
    assert body["created"] == 1 and body["refused"] == 1 and body["total"] == 2
    assert body["rows"][1] == {"row": 3, "key": "wl-api2", "status": "refused", "reason": "unknown product 'toaster'"}
    assert [c["key"] for c in body["credentials"]] == ["wl-api"]
    assert state(db)[0] == before[0] + 1


def test_api_import_refusals(client, db, iot, here):
    headers = token_for(client, "cityadmin")
    before = state(db)
    bad = client.post("/api/iot/devices/import", files={"file": ("d.csv", b"foo,bar\n1,2\n", "text/csv")},
                      headers=headers)
    assert bad.status_code == 422 and "unknown column" in bad.json()["detail"]
    missing = client.post("/api/iot/devices/import", data={"dry_run": "true"}, headers=headers)
    assert missing.status_code == 422
    leader = client.post("/api/iot/devices/import", files={"file": ("d.csv", to_csv([row("x1", here)]), "text/csv")},
                         headers=token_for(client, "leader"))
    assert leader.status_code == 403
    assert state(db)[0] == before[0]
