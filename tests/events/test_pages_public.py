"""The citizen pages: report without an account, follow by tracking number, rate once closed,
and photos that only staff can open. Bad input re-renders the form (422) and stores nothing."""

from __future__ import annotations

import io
import re

import pytest
from sqlalchemy import func, select

from citybrain.core.models import AuditLog
from citybrain.events import catalog, photos
from citybrain.events import service as events_service
from citybrain.events.models import Event, EventLog, EventPhoto
from helpers import csrf_from, sign_in

INSIDE = {"lon": "117.856", "lat": "36.797"}  # 丝绸路街道, WGS-84
OUTSIDE = {"lon": "116.3975", "lat": "39.9087"}  # Beijing
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64
WEBP = b"RIFF\x00\x00\x00\x00WEBPVP8 " + b"\x00" * 64
TRACKING_RE = re.compile(r'data-testid="tracking-no">(ZC\d{8}-\d{6})<')


@pytest.fixture(autouse=True)
def _catalog(db, admin_actor) -> None:
    catalog.sync_catalog(db, actor=admin_actor)  # adds only what is missing


@pytest.fixture
def code(db) -> str:
    return catalog.list_categories(db, public_only=True)[0].code


def _counts(db) -> tuple[int, int, int, int]:
    return (db.scalar(select(func.count()).select_from(Event)),
            db.scalar(select(func.count()).select_from(EventLog)),
            db.scalar(select(func.count()).select_from(EventPhoto)),
            db.scalar(select(func.count()).select_from(AuditLog)))


def _submit(client, *, files=None, **fields):
    token = csrf_from(client.get("/report").text)
    data = {"csrf_token": token, "description": "人行道上有一堆建筑垃圾", **INSIDE} | fields
    return client.post("/report", data=data, files=files or [("photos", ("", b"", "application/octet-stream"))])


def _tracking_no(response) -> str:
    match = TRACKING_RE.search(response.text)
    assert match, response.text[:2000]
    return match.group(1)


# --- the report page ------------------------------------------------------------------------


def test_report_page_needs_no_account_and_offers_only_public_categories_grouped(client, db):
    page = client.get("/report")
    assert page.status_code == 200
    assert "/login" not in str(page.url)
    assert 'enctype="multipart/form-data"' in page.text
    public = catalog.list_categories(db, public_only=True)
    assert all(f'value="{c.code}"' in page.text for c in public)
    hidden = [c for c in catalog.list_categories(db) if not c.public]
    assert all(f'value="{c.code}"' not in page.text for c in hidden)
    assert "<optgroup" in page.text and public[0].major_name in page.text
    assert "上报问题" in page.text  # Chinese by default


def test_district_outlines_are_public_and_hold_only_district_and_townships(client):
    response = client.get("/report/district.geojson")
    assert response.status_code == 200
    features = response.json()["features"]
    assert {f["properties"]["level"] for f in features} == {"district", "township"}
    assert sum(f["properties"]["level"] == "township" for f in features) == 10
    assert set(features[0]["properties"]) == {"code", "name", "level"}
    assert client.get("/api/geo/divisions").status_code == 401  # the full endpoint stays closed


def test_citizen_reports_with_a_map_point_and_photos_and_gets_a_tracking_number(client, db, code, settings):
    files = [("photos", ("a.png", PNG, "image/png")), ("photos", ("b.jpg", JPEG, "image/jpeg")),
             ("photos", ("c.webp", WEBP, "image/webp"))]
    response = _submit(client, files=files, category_code=code, reporter_name="张三",
                       reporter_phone="13800005678")
    assert response.status_code == 200, response.text[:2000]
    number = _tracking_no(response)
    assert f'href="/track/{number}"' in response.text
    event = events_service.get_by_tracking(db, tracking_no=number)
    assert (event.channel, event.category_code, event.township_code) == ("citizen", code, "370306001000")
    assert event.reporter_user_id is None and event.reporter_phone == "13800005678"
    stored = photos.list_photos(db, event_id=event.id)
    assert [p.content_type for p in stored] == ["image/png", "image/jpeg", "image/webp"]
    for photo in stored:
        assert re.fullmatch(r"photos/\d{4}/\d{2}/[0-9a-f]{64}\.(png|jpg|webp)", photo.path)
        assert (settings.data_dir / photo.path).read_bytes()[:4] in (PNG[:4], JPEG[:4], WEBP[:4])


def test_a_typed_address_without_a_point_waits_for_manual_location(client, db, code):
    response = _submit(client, category_code=code, lon="", lat="", address="王村镇政府东边路口")
    number = _tracking_no(response)
    event = events_service.get_by_tracking(db, tracking_no=number)
    assert (event.location_state, event.township_code, event.lon) == ("manual", "370306102000", None)


def _refused(client, db, **kwargs) -> str:
    before = _counts(db)
    response = _submit(client, **kwargs)
    assert response.status_code == 422, response.text[:2000]
    assert _counts(db) == before
    assert 'data-testid="report-errors"' in response.text
    return response.text


def test_unknown_category_is_refused_in_chinese(client, db):
    assert "该类别不存在" in _refused(client, db, category_code="X9999")


def test_a_category_closed_to_the_public_is_refused(client, db):
    hidden = next((c for c in catalog.list_categories(db) if not c.public), None)
    if hidden is None:
        pytest.skip("the shipped catalog has no non-public class")
    assert "该类别不存在" in _refused(client, db, category_code=hidden.code)


def test_missing_category_is_refused(client, db):
    assert "请选择问题类别" in _refused(client, db, category_code="")


def test_a_point_outside_the_district_is_refused(client, db, code):
    assert "不在周村区" in _refused(client, db, category_code=code, **OUTSIDE)


@pytest.mark.parametrize("lon, lat, message", [
    ("abc", "36.8", "坐标无效"), ("117.8", "nan", "坐标无效"), ("200", "36.8", "坐标无效"), ("117.8", "", "请在地图上"),
])
def test_bad_coordinates_are_refused(client, db, code, lon, lat, message):
    assert message in _refused(client, db, category_code=code, lon=lon, lat=lat)


def test_no_location_at_all_is_refused(client, db, code):
    assert "请在地图上" in _refused(client, db, category_code=code, lon="", lat="", address="")


def test_too_long_description_is_refused(client, db, code):
    assert "4000" in _refused(client, db, category_code=code, description="路" * 4001)


def test_html_in_the_description_is_refused(client, db, code):
    assert "纯文本" in _refused(client, db, category_code=code, description="<script>alert(1)</script>")


def test_a_non_image_photo_is_refused_even_with_an_image_content_type(client, db, code):
    files = [("photos", ("evil.png", b"MZ\x90\x00 not a picture", "image/png"))]
    assert "只能附加照片" in _refused(client, db, category_code=code, files=files)


def test_an_oversized_photo_is_refused(client, db, code):
    big = PNG + b"\x00" * (photos.MAX_PHOTO_BYTES + 1 - len(PNG))
    assert "5 MB" in _refused(client, db, category_code=code, files=[("photos", ("big.png", big, "image/png"))])


def test_more_than_three_photos_are_refused(client, db, code):
    files = [("photos", (f"{i}.png", PNG, "image/png")) for i in range(4)]
    assert "最多" in _refused(client, db, category_code=code, files=files)


def test_a_report_without_the_csrf_token_is_refused(client, db, code):
    before = _counts(db)
    client.get("/report")
    response = client.post("/report", data={"category_code": code, "description": "x", **INSIDE})
    assert response.status_code == 403
    assert _counts(db) == before


def test_the_form_keeps_what_was_typed_after_an_error(client, db):
    text = _refused(client, db, category_code="X9999", description="路灯不亮", address="正阳路")
    assert "路灯不亮</textarea>" in text and 'value="正阳路"' in text


# --- photos ---------------------------------------------------------------------------------


def test_photo_storage_refuses_bad_content(db, tmp_path):
    for data, reason in ((b"", "empty"), (b"GIF89a....", "not_image"),
                         (PNG + b"\x00" * photos.MAX_PHOTO_BYTES, "too_large")):
        with pytest.raises(photos.PhotoRefused) as caught:
            photos.save_photo(db, event_id=1, stage="report", upload_bytes=data, filename="x", data_dir=tmp_path)
        assert caught.value.reason == reason
    assert not (tmp_path / "photos").exists()


def test_photos_are_served_to_staff_who_may_read_the_event_never_to_the_public(client, db, code):
    number = _tracking_no(_submit(client, category_code=code, files=[("photos", ("a.png", PNG, "image/png"))]))
    event = events_service.get_by_tracking(db, tracking_no=number)
    photo = photos.list_photos(db, event_id=event.id)[0]
    anonymous = client.get(f"/events/photos/{photo.id}", follow_redirects=False)
    assert anonymous.status_code == 303 and "/login" in anonymous.headers["location"]
    sign_in(client, "citizen")
    assert client.get(f"/events/photos/{photo.id}").status_code == 403
    client.cookies.clear()
    sign_in(client, "admin")
    served = client.get(f"/events/photos/{photo.id}")
    assert served.status_code == 200 and served.content == PNG
    assert served.headers["content-type"] == "image/png"
    assert served.headers["x-content-type-options"] == "nosniff"


# --- tracking -------------------------------------------------------------------------------


def test_progress_page_shows_status_and_public_steps_but_nothing_personal(client, db, code):
    number = _tracking_no(_submit(client, category_code=code, reporter_name="李四",
                                  reporter_phone="13912345678", reporter_email="li@example.cn",
                                  description="井盖丢失很危险"))
    event = events_service.get_by_tracking(db, tracking_no=number)
    db.add(EventLog(event_id=event.id, at=event.created_at, actor="staff:wang", action="note",
                    from_status="reported", to_status="reported", note="内部备注：联系了王科长"))
    db.flush()
    page = client.get(f"/track/{number}")
    assert page.status_code == 200
    assert 'data-status="reported"' in page.text and "已上报，待受理" in page.text
    assert "丝绸路街道" in page.text and "收到上报" in page.text
    for secret in ("李四", "13912345678", "li@example.cn", "井盖丢失很危险", "内部备注", "staff:wang", "117.856"):
        assert secret not in page.text
    assert client.get(f"/track?no={number.lower()}", follow_redirects=False).headers["location"] == f"/track/{number}"


def test_unknown_tracking_number_is_a_404_with_a_clear_message(client):
    page = client.get("/track/ZC20990101-000001")
    assert page.status_code == 404
    assert "没有跟踪号为 ZC20990101-000001 的上报" in page.text


def _closed(client, db, code) -> Event:
    number = _tracking_no(_submit(client, category_code=code))
    event = events_service.get_by_tracking(db, tracking_no=number)
    event.status = "closed"  # the workflow to get here is tested elsewhere
    db.flush()
    return event


def _rate(client, number: str, score: str):
    token = csrf_from(client.get(f"/track/{number}").text)
    return client.post(f"/track/{number}/rating", data={"score": score, "csrf_token": token}, follow_redirects=False)


def test_a_closed_report_can_be_rated_once_and_it_is_audited(client, db, code):
    event = _closed(client, db, code)
    assert "满意" in client.get(f"/track/{event.tracking_no}").text
    assert _rate(client, event.tracking_no, "4").status_code == 303
    db.refresh(event)
    assert event.rating == 4
    entry = db.scalar(select(AuditLog).where(AuditLog.action == "event.rate").order_by(AuditLog.id.desc()))
    assert entry.after == {"rating": 4}
    page = client.get(f"/track/{event.tracking_no}").text
    assert 'data-testid="rating"' in page and 'name="score"' not in page
    token = csrf_from(page)
    again = client.post(f"/track/{event.tracking_no}/rating", data={"score": "1", "csrf_token": token})
    assert again.status_code == 409
    db.refresh(event)
    assert event.rating == 4


def test_rating_is_refused_before_closing_out_of_range_and_without_csrf(client, db, code):
    number = _tracking_no(_submit(client, category_code=code))
    assert _rate(client, number, "5").status_code == 422
    event = _closed(client, db, code)
    assert _rate(client, event.tracking_no, "9").status_code == 422
    assert _rate(client, event.tracking_no, "x").status_code == 422
    assert client.post(f"/track/{event.tracking_no}/rating", data={"score": "3"}).status_code == 403
    db.refresh(event)
    assert event.rating is None


def test_login_page_links_to_the_report_page(client):
    assert 'href="/report"' in client.get("/login").text


def test_photo_bytes_are_checked_by_magic_not_by_name():
    assert photos.sniff(PNG) == ("png", "image/png")
    assert photos.sniff(JPEG) == ("jpg", "image/jpeg")
    assert photos.sniff(WEBP) == ("webp", "image/webp")
    assert photos.sniff(io.BytesIO(b"<svg/>").getvalue()) is None
