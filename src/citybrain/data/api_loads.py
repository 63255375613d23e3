"""JSON API for loading department files into catalog resources (mounted at /api/data).

``POST /entries/{entry_id}/loads`` takes the file as multipart (field ``file``) or as the raw
body (``?filename=``). The body is streamed to a temporary file under ``data_dir/uploads`` with
a running count that stops at ``data_max_upload_mb``, so an oversized upload never fills the
disk. A refused load answers 422 *and* stays recorded: the route returns the response rather
than raising, so the request's transaction commits the refused ``DataLoad``.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from python_multipart.multipart import FormParser, parse_options_header
from sqlalchemy.orm import Session

from citybrain.config import Settings
from citybrain.core.actor import Actor
from citybrain.core.auth import require
from citybrain.core.db import DbSession
from citybrain.core.errors import Forbidden, Invalid

from . import catalog, loading
from .enums import LoadMode
from .models import DataLoad

router = APIRouter()

Reader = Annotated[Actor, require("data:read")]
Publisher = Annotated[Actor, require("data:publish")]

PAGE_UPLOAD_PATH = r"^/data/upload$"  # the upload page's form (data/pages_manage.py)
UPLOAD_PATH = r"/api/data/entries/[0-9]+/(loads|preview)"
MULTIPART_SLACK = 1 << 20  # part headers and boundaries around the file
_CHUNK_LIMIT_NOTE = "the file is larger than the limit of {mb} MB"


def upload_path_limits(settings: Settings) -> list[tuple[str, int]]:
    """For the app's body-size middleware: the upload routes take files up to ``data_max_upload_mb``."""
    limit = settings.data_max_upload_mb * 1024 * 1024 + MULTIPART_SLACK
    return [(UPLOAD_PATH, limit), (PAGE_UPLOAD_PATH, limit)]


class LoadRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    entry_id: int
    version: int | None
    mode: str
    status: str
    filename: str
    file_format: str
    encoding: str
    size_bytes: int
    sha256: str
    rows_read: int
    rows_inserted: int
    rows_updated: int
    rows_deleted: int
    report: dict[str, Any]
    actor: str
    created_at: datetime


class _TooLarge(Exception):
    pass


@dataclass
class _Upload:
    path: Path
    filename: str


@router.post("/entries/{entry_id}/loads", status_code=201, response_model=LoadRead,
             responses={422: {"model": LoadRead, "description": "refused: the recorded load with its report"},
                        413: {"description": "the file is larger than data_max_upload_mb"}},
             summary="Load a CSV or XLSX file into a resource (append, replace or upsert by key)")
async def create_load(entry_id: int, request: Request, db: DbSession, actor: Publisher,
                      mode: Annotated[LoadMode, Query()] = LoadMode.APPEND,
                      filename: Annotated[str, Query(max_length=200)] = "") -> JSONResponse:
    return await _with_upload(request, db, actor, entry_id, filename, preview=False, mode=mode)


@router.post("/entries/{entry_id}/preview",
             summary="Read and check a file as a load would, storing nothing: encoding, header, typed rows, errors")
async def preview_load(entry_id: int, request: Request, db: DbSession, actor: Publisher,
                       mode: Annotated[LoadMode, Query()] = LoadMode.APPEND,
                       filename: Annotated[str, Query(max_length=200)] = "") -> JSONResponse:
    return await _with_upload(request, db, actor, entry_id, filename, preview=True, mode=mode)


@router.get("/entries/{entry_id}/loads", response_model=list[LoadRead], summary="A resource's load history")
def load_history(entry_id: int, db: DbSession, actor: Reader,
                 limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[dict[str, Any]]:
    loads = loading.list_loads(db, entry_id=entry_id, limit=limit)
    return [_read(db, load, actor) for load in loads]


@router.get("/loads/{load_id}", response_model=LoadRead, summary="One load with its report")
def get_load(load_id: int, db: DbSession, actor: Reader) -> dict[str, Any]:
    return _read(db, loading.get_load(db, load_id=load_id), actor)


def _read(db: Session, load: DataLoad, actor: Actor) -> dict[str, Any]:
    """Rows' values in a report are the provider's data: other departments see counts, not values."""
    data = LoadRead.model_validate(load).model_dump()
    try:
        catalog.check_can_publish(actor, catalog.get_entry(db, entry_id=load.entry_id))
    except Forbidden:
        report = dict(data["report"])
        for name in ("errors", "warnings"):
            report[name] = [{k: v for k, v in e.items() if k != "value"} for e in report.get(name, [])]
        data["report"] = report
    return data


async def _with_upload(request: Request, db: Session, actor: Actor, entry_id: int, filename: str, *,
                       preview: bool, mode: LoadMode) -> JSONResponse:
    settings: Settings = request.app.state.settings
    limit = settings.data_max_upload_mb * 1024 * 1024
    # Who may load is known before a byte of the file is read.
    await run_in_threadpool(_check_publisher, db, entry_id, actor)
    uploads = Path(settings.data_dir) / "uploads"
    uploads.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="load-", dir=uploads))
    try:
        try:
            upload = await _receive(request, workdir, filename, limit)
        except _TooLarge:
            mb = settings.data_max_upload_mb
            return JSONResponse(status_code=413, content={"detail": _CHUNK_LIMIT_NOTE.format(mb=mb),
                                                          "code": "too_large"})
        if preview:
            result = await run_in_threadpool(loading.preview_file, db, entry_id=entry_id, data=upload.path,
                                             filename=upload.filename, actor=actor, mode=mode, max_bytes=limit)
            return JSONResponse(content=jsonable_encoder(result))
        load = await run_in_threadpool(loading.load_file, db, entry_id=entry_id, data=upload.path,
                                       filename=upload.filename, mode=mode, actor=actor, max_bytes=limit)
        body = jsonable_encoder(LoadRead.model_validate(load))
        return JSONResponse(status_code=201 if load.status == "loaded" else 422, content=body)
    finally:
        loading.remove_tree(workdir)


def _check_publisher(db: Session, entry_id: int, actor: Actor) -> None:
    catalog.check_can_publish(actor, catalog.get_entry(db, entry_id=entry_id))


async def _receive(request: Request, workdir: Path, filename: str, limit: int) -> _Upload:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        return await _receive_multipart(request, workdir, content_type, limit)
    target = workdir / "body"
    seen = 0
    with target.open("wb") as out:
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > limit:
                raise _TooLarge()
            out.write(chunk)
    return _Upload(target, filename or "upload")


async def _receive_multipart(request: Request, workdir: Path, content_type: str, limit: int) -> _Upload:
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise Invalid("multipart body without a boundary")
    files: list[Any] = []
    parser = FormParser("multipart/form-data", on_field=lambda _field: None, on_file=files.append,
                        boundary=boundary, config={"UPLOAD_DIR": str(workdir), "MAX_MEMORY_FILE_SIZE": 0,
                                                   "UPLOAD_DELETE_TMP": False})
    seen = 0
    try:
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > limit + MULTIPART_SLACK:
                raise _TooLarge()
            parser.write(chunk)
        parser.finalize()
    except (ValueError, RuntimeError) as exc:
        raise Invalid(f"the multipart body cannot be read ({exc})") from None
    upload = next((f for f in files if f.field_name == b"file"), None)
    if upload is None:
        raise Invalid("the multipart body has no part named 'file'")
    upload.flush_to_disk()
    upload.close()
    path = Path(upload.actual_file_name.decode())
    if path.stat().st_size > limit:
        raise _TooLarge()
    name = (upload.file_name or b"").decode("utf-8", errors="replace")
    return _Upload(path, Path(name).name or "upload")
