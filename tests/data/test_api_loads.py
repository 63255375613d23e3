"""The load API: multipart and raw uploads, refused loads recorded with 422, preview, permissions, size limits."""

from __future__ import annotations

import io
import secrets
import select as select_module
import socket
import threading
import time
from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import select

from citybrain.config import Settings
from citybrain.data import storage
from citybrain.data.models import DataLoad
from data_factories import make_entry
from helpers import token_for

LIMIT_MB = 2
CODE = "2120100/ecology-00009"
ITEMS = [{"code": "site", "name": "站点编号", "data_type": "string", "length": 20, "required": True},
         {"code": "measured_on", "name": "监测日期", "data_type": "date", "required": True},
         {"code": "aqi", "name": "空气质量指数", "data_type": "integer"}]
GOOD_CSV = "站点编号,监测日期,空气质量指数\nS1,2026-11-01,52\nS2,2026/11/1,61\n".encode()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, secret_key=secrets.token_urlsafe(40), log_format="text",
                    log_level="WARNING", ingest_enabled=False, data_max_upload_mb=LIMIT_MB)


@pytest.fixture
def entry(db):
    made = make_entry(db, code=CODE, name="空气质量日报", department="ecology", class_kind="thematic",
                      class_code="2-12-001", items=ITEMS, key_fields=["site", "measured_on"])
    db.commit()
    return made


def url(entry, what: str = "loads", **params: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"/api/data/entries/{entry.id}/{what}" + (f"?{query}" if query else "")


def snapshot(db, entry):
    db.expire_all()
    table = storage.table_for(entry)
    rows = [tuple(r) for r in db.execute(select(table).order_by(table.c._id))]
    db.refresh(entry)
    return rows, entry.version, entry.row_count


def uploads_left(settings: Settings) -> list[Path]:
    return [p for p in (settings.data_dir / "uploads").rglob("*") if p.is_file()]


def test_a_multipart_upload_loads_and_shows_in_the_history(client, db, entry, settings) -> None:
    headers = token_for(client, "ecology")
    response = client.post(url(entry, mode="append"), headers=headers,
                           files={"file": ("空气.csv", GOOD_CSV, "text/csv")})
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["status"], body["version"], body["rows_inserted"], body["filename"]) == ("loaded", 1, 2, "空气.csv")
    assert snapshot(db, entry)[1:] == (1, 2)
    history = client.get(url(entry), headers=token_for(client, "leader")).json()
    assert [h["id"] for h in history] == [body["id"]]
    one = client.get(f"/api/data/loads/{body['id']}", headers=headers)
    assert one.status_code == 200 and one.json()["report"]["header"][0] == {"column": "站点编号", "item": "site"}
    assert uploads_left(settings) == []


def test_a_raw_xlsx_body_with_a_filename_loads(client, db, entry) -> None:
    wb = Workbook()
    wb.active.append(["site", "measured_on", "aqi"])
    wb.active.append(["S9", "2026-11-02", 40])
    out = io.BytesIO()
    wb.save(out)
    response = client.post(url(entry, mode="replace", filename="day.xlsx"), content=out.getvalue(),
                           headers=token_for(client, "ecology"))
    assert response.status_code == 201, response.text
    assert response.json()["file_format"] == "xlsx" and snapshot(db, entry)[2] == 1


def test_a_refused_load_answers_422_and_stays_recorded_while_the_data_stays(client, db, entry, settings) -> None:
    headers = token_for(client, "ecology")
    assert client.post(url(entry), headers=headers, files={"file": ("a.csv", GOOD_CSV)}).status_code == 201
    before = snapshot(db, entry)
    bad = "站点编号,监测日期,空气质量指数\nS3,2026-11-31,x\nS1,2026-11-01,1\n".encode()
    response = client.post(url(entry, mode="append"), headers=headers, files={"file": ("b.csv", bad)})
    assert response.status_code == 422
    report = response.json()["report"]
    assert report["error_counts"] == {"not a real date": 1, "not an integer": 1,
                                      "key already stored (use upsert to update)": 1}
    assert snapshot(db, entry) == before
    recorded = db.get(DataLoad, response.json()["id"])
    assert recorded is not None and recorded.status == "refused"
    assert uploads_left(settings) == []


def test_preview_shows_the_mapping_and_typed_rows_and_stores_nothing(client, db, entry) -> None:
    response = client.post(url(entry, "preview"), headers=token_for(client, "ecology"),
                           files={"file": ("a.csv", GOOD_CSV)})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["acceptable"] and body["encoding"] == "utf-8"
    assert body["rows"][1] == {"site": "S2", "measured_on": "2026-11-01", "aqi": 61}
    assert snapshot(db, entry)[1:] == (0, 0)
    assert db.scalars(select(DataLoad).where(DataLoad.entry_id == entry.id)).all() == []


def test_other_departments_cannot_load_and_see_report_counts_without_values(client, db, entry) -> None:
    for user in ("cityadmin", "leader"):
        response = client.post(url(entry), headers=token_for(client, user), files={"file": ("a.csv", GOOD_CSV)})
        assert response.status_code == 403
    assert db.scalars(select(DataLoad).where(DataLoad.entry_id == entry.id)).all() == []
    bad = "站点编号,监测日期\nS3,never\n".encode()
    client.post(url(entry), headers=token_for(client, "ecology"), files={"file": ("b.csv", bad)})
    seen = client.get(url(entry), headers=token_for(client, "cityadmin")).json()[0]["report"]["errors"]
    assert seen == [{"row": 2, "column": "监测日期", "reason": "not a date"}]
    assert client.get(url(entry), headers=token_for(client, "citizen")).status_code == 403


def test_a_multipart_body_without_a_file_part_is_a_clear_422(client, entry) -> None:
    response = client.post(url(entry), headers=token_for(client, "ecology"), data={"other": "x"},
                           files={"attachment": ("a.csv", GOOD_CSV)})
    assert response.status_code == 422 and "no part named 'file'" in response.json()["detail"]


def test_uploads_over_the_data_limit_get_413_and_leave_no_file(client, db, entry, settings) -> None:
    headers = token_for(client, "ecology")
    too_big = b"a" * (LIMIT_MB * 1024 * 1024 + 10)
    assert client.post(url(entry, filename="big.csv"), headers=headers, content=too_big).status_code == 413
    response = client.post(url(entry), headers=headers, files={"file": ("big.csv", too_big)})
    assert response.status_code == 413 and response.json()["code"] == "too_large"
    declared = client.post(url(entry), content=b"x", headers={**headers, "content-length": str(2 << 30)})
    assert declared.status_code == 413
    assert uploads_left(settings) == []
    assert snapshot(db, entry)[1:] == (0, 0)


def test_the_upload_limit_replaces_the_smaller_global_body_limit_only_on_upload_routes(app) -> None:
    from citybrain.core.limits import BodySizeLimit

    middleware = next(m for m in app.user_middleware if m.cls is BodySizeLimit)
    limit = BodySizeLimit(app, **middleware.kwargs)
    assert limit.limit_for("/api/data/entries/7/loads") > LIMIT_MB * 1024 * 1024
    assert limit.limit_for("/api/data/entries/7/preview") > LIMIT_MB * 1024 * 1024
    assert limit.limit_for("/api/data/entries/7/loads/x") == 25 * 1024 * 1024
    assert limit.limit_for("/api/events") == 25 * 1024 * 1024


def test_a_2gb_streamed_upload_over_real_http_is_refused_early_without_filling_the_disk(app, db, entry,
                                                                                        settings) -> None:
    from citybrain.org import auth, service

    with app.state.sessionmaker() as s:
        user = service.get_user_by_username(s, username="ecology")
        token, _ = auth.issue_token(s, user=user, scopes=None, days=1, actor=auth.actor_for(user, via="session"),
                                    name="test")
        s.commit()
    received = [0]

    async def counting(scope, receive, send):  # noqa: ANN001, ANN202
        async def counted():  # noqa: ANN202
            message = await receive()
            received[0] += len(message.get("body", b""))
            return message

        await app(scope, counted, send)

    with _server(counting) as port:
        sent, status = _stream_chunked(port, url(entry, mode="replace", filename="huge.csv"), token,
                                       total=2 << 30, chunk=1 << 20)
    limit = LIMIT_MB * 1024 * 1024
    assert status in (413, None)  # None: the server closed before the client read its answer
    assert received[0] <= limit + (1 << 20), received[0]
    assert sent < 64 << 20, sent  # stopped near the limit, nowhere near 2 GB
    assert uploads_left(settings) == []
    assert snapshot(db, entry)[1:] == (0, 0)


class _server:
    def __init__(self, asgi) -> None:  # noqa: ANN001
        import uvicorn

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        self.server = uvicorn.Server(uvicorn.Config(asgi, host="127.0.0.1", port=self.port, lifespan="off",
                                                    log_level="warning"))

    def __enter__(self) -> int:
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        for _ in range(500):
            if self.server.started:
                return self.port
            time.sleep(0.01)
        raise RuntimeError("test server did not start")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def _stream_chunked(port: int, path: str, token: str, *, total: int, chunk: int) -> tuple[int, int | None]:
    """Send ``total`` bytes chunked, stopping as soon as the server answers or hangs up."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: text/csv\r\nTransfer-Encoding: chunked\r\n\r\n")
    sock.sendall(head.encode())
    piece = f"{chunk:x}\r\n".encode() + b"a" * chunk + b"\r\n"
    sent = 0
    try:
        while sent < total:
            if select_module.select([sock], [], [], 0)[0]:
                break
            sock.sendall(piece)
            sent += chunk
        answer = sock.recv(4096)
    except (BrokenPipeError, ConnectionResetError, TimeoutError):
        answer = b""
    finally:
        sock.close()
    status = int(answer.split()[1]) if answer.startswith(b"HTTP/1.1") else None
    return sent, status
