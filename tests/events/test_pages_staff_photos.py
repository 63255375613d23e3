"""Photos at handling and verification, through the staff detail page's multipart forms: stored
with their stage and shown as thumbnails; a bad upload is refused with 422 and changes nothing."""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

import pytest
from sqlalchemy import func, select

from citybrain.events import catalog, photos, service
from citybrain.events.models import Event, EventPhoto
from event_helpers import SILULU, counts, report
from helpers import csrf_from, sign_in


def tiny_png() -> bytes:
    """A valid 1×1 PNG, made here (no binary files in the repository)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00\x20\x80\x20"))
            + chunk(b"IEND", b""))


PNG = tiny_png()


@pytest.fixture(autouse=True)
def _catalog(db, admin_actor) -> None:
    catalog.sync_catalog(db, actor=admin_actor)


def _version(html: str, action: str) -> str:
    form = re.search(rf'data-action="{action}".*?name="expected_version" value="(\d+)"', html, re.S)
    assert form, f"no {action} form on the page"
    return form.group(1)


def _dispatched(db, admin_actor) -> Event:  # noqa: ANN001
    event = report(db, who=None, township=SILULU, category_code="TE0101")
    service.transition(db, event_id=event.id, action="accept", actor=admin_actor)
    db.flush()
    assert event.status == "dispatched"
    return event


def _post(client, event_id: int, action: str, files, **fields):  # noqa: ANN001, ANN201
    page = client.get(f"/events/{event_id}")
    assert page.status_code == 200, page.text[:300]
    data = {"csrf_token": csrf_from(page.text), "expected_version": _version(page.text, action), **fields}
    return client.post(f"/events/{event_id}/actions/{action}", data=data, files=files, follow_redirects=False)


def _photo_rows(db, event_id: int) -> list[EventPhoto]:  # noqa: ANN001
    db.expire_all()
    return photos.list_photos(db, event_id=event_id)


def _files(data_dir: Path) -> list[Path]:
    return [p for p in (data_dir / "photos").rglob("*") if p.is_file()] if (data_dir / "photos").exists() else []


def test_handle_form_is_multipart_with_a_photo_input(client, db, categories, admin_actor) -> None:
    event = _dispatched(db, admin_actor)
    sign_in(client, "cityadmin")
    page = client.get(f"/events/{event.id}").text
    form = re.search(r'<form[^>]*data-action="handle"[^>]*>', page)
    assert form and 'enctype="multipart/form-data"' in form.group(0)
    assert 'name="photos"' in page
    start = re.search(r'<form[^>]*data-action="start"[^>]*>', page)
    assert start and "multipart" not in start.group(0)  # other actions stay plain forms


def test_handle_with_a_png_photo_stores_it_and_shows_it(client, db, categories, admin_actor, settings) -> None:
    event = _dispatched(db, admin_actor)
    sign_in(client, "cityadmin")
    response = _post(client, event.id, "handle", [("photos", ("after.png", PNG, "image/png"))], result="垃圾已清运")
    assert response.status_code == 303, response.text[:500]
    db.expire_all()
    assert db.get(Event, event.id).status == "handled"
    stored = _photo_rows(db, event.id)
    assert [(p.stage, p.filename, p.content_type) for p in stored] == [("handled", "after.png", "image/png")]
    assert (settings.data_dir / stored[0].path).read_bytes() == PNG

    page = client.get(f"/events/{event.id}").text
    group = re.search(r'data-testid="photos-handled".*?</ul>', page, re.S)
    assert group and f'<img src="/events/photos/{stored[0].id}"' in group.group(0)
    served = client.get(f"/events/photos/{stored[0].id}")
    assert served.status_code == 200 and served.content == PNG


def test_verification_with_a_photo_is_stored_as_verified(client, db, categories, admin_actor) -> None:
    event = _dispatched(db, admin_actor)
    service.transition(db, event_id=event.id, action="handle", actor=admin_actor, result="done")
    db.flush()
    sign_in(client, "gridworker")
    response = _post(client, event.id, "verify_pass", [("photos", ("site.png", PNG, "image/png"))])
    assert response.status_code == 303, response.text[:500]
    assert [p.stage for p in _photo_rows(db, event.id)] == ["verified"]
    assert 'data-testid="photos-verified"' in client.get(f"/events/{event.id}").text


def test_urlencoded_handle_without_photos_still_works(client, db, categories, admin_actor) -> None:
    event = _dispatched(db, admin_actor)
    sign_in(client, "cityadmin")
    page = client.get(f"/events/{event.id}").text
    response = client.post(f"/events/{event.id}/actions/handle", follow_redirects=False, data={
        "csrf_token": csrf_from(page), "expected_version": _version(page, "handle"), "result": "已处理"})
    assert response.status_code == 303
    assert _photo_rows(db, event.id) == []


def test_an_empty_file_input_is_ignored(client, db, categories, admin_actor) -> None:
    event = _dispatched(db, admin_actor)
    sign_in(client, "cityadmin")
    response = _post(client, event.id, "handle", [("photos", ("", b"", "application/octet-stream"))], result="好了")
    assert response.status_code == 303
    assert _photo_rows(db, event.id) == []


def _refused(client, db, event: Event, files, settings) -> str:  # noqa: ANN001
    sign_in(client, "cityadmin")
    before = counts(db, event.id)
    version = event.version
    response = _post(client, event.id, "handle", files, result="垃圾已清运")
    assert response.status_code == 422
    assert 'data-testid="action-error"' in response.text
    db.expire_all()
    after = db.get(Event, event.id)
    assert after.status == "dispatched" and after.version == version and after.result in (None, "")
    assert counts(db, event.id) == before
    assert db.scalar(select(func.count()).select_from(EventPhoto).where(EventPhoto.event_id == event.id)) == 0
    assert _files(settings.data_dir) == []
    assert "垃圾已清运" in response.text  # the result typed stays in the form
    return response.text


def test_a_text_file_disguised_as_jpeg_is_refused_and_changes_nothing(client, db, categories, admin_actor,
                                                                       settings) -> None:
    event = _dispatched(db, admin_actor)
    text = _refused(client, db, event, [("photos", ("after.jpg", b"just some text, not a photo", "image/jpeg"))],
                    settings)
    assert "after.jpg" in text and ("JPEG, PNG" in text or "JPEG、PNG" in text)


def test_four_photos_are_refused(client, db, categories, admin_actor, settings) -> None:
    event = _dispatched(db, admin_actor)
    files = [("photos", (f"{i}.png", PNG, "image/png")) for i in range(4)]
    text = _refused(client, db, event, files, settings)
    assert "3" in re.search(r'data-testid="action-error">(.*?)</div>', text, re.S).group(1)


def test_one_bad_photo_among_good_ones_stores_none(client, db, categories, admin_actor, settings) -> None:
    event = _dispatched(db, admin_actor)
    files = [("photos", ("good.png", PNG, "image/png")), ("photos", ("bad.png", b"MZ\x90\x00", "image/png"))]
    _refused(client, db, event, files, settings)


def test_an_oversized_photo_is_refused(client, db, categories, admin_actor, settings) -> None:
    event = _dispatched(db, admin_actor)
    big = PNG + b"\x00" * (photos.MAX_PHOTO_BYTES + 1 - len(PNG))
    text = _refused(client, db, event, [("photos", ("big.png", big, "image/png"))], settings)
    assert "5 MB" in text


def test_a_refused_transition_stores_no_photo(client, db, categories, admin_actor, settings) -> None:
    event = _dispatched(db, admin_actor)
    sign_in(client, "cityadmin")
    response = _post(client, event.id, "handle", [("photos", ("after.png", PNG, "image/png"))], result="")
    assert response.status_code == 422  # handle needs a result
    assert _photo_rows(db, event.id) == [] and _files(settings.data_dir) == []
    db.expire_all()
    assert db.get(Event, event.id).status == "dispatched"
