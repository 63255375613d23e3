"""Pages where a department puts data in: upload with a preview, then the load report.

A previewed file waits under ``<data_dir>/uploads`` (named by a random token and the uploader's
user id) so the department confirms the load without choosing the file again; it is deleted
when loaded, and files older than a day are swept at each upload.
"""

from __future__ import annotations

import secrets
import shutil
import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.datastructures import FormData, UploadFile

from citybrain.core.actor import Actor
from citybrain.core.auth import page_require
from citybrain.core.db import DbSession
from citybrain.core.errors import DomainError, Invalid, NotFound
from citybrain.web.render import gettext_for, render

from . import catalog, loading
from .enums import LoadMode
from .models import CatalogEntry
from .pages import common

router = APIRouter(include_in_schema=False)
Publisher = Annotated[Actor, Depends(page_require("data:read"))]  # narrowed per resource by check_can_publish

STALE_UPLOAD_S = 24 * 3600
_TOKEN_CHARS = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_")


async def posted_form(request: Request) -> FormData:
    # Read on the event loop so the endpoint stays synchronous (its database work runs in the pool).
    return await request.form()


Posted = Annotated[FormData, Depends(posted_form)]


def _uploads(request: Request) -> Path:
    path = Path(request.app.state.settings.data_dir) / "uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _sweep(folder: Path) -> None:
    cutoff = time.time() - STALE_UPLOAD_S
    for f in folder.glob("*.upload"):
        if f.stat().st_mtime < cutoff:
            f.unlink(missing_ok=True)


def _publishable(db: Any, actor: Actor) -> list[CatalogEntry]:
    if actor.can("data:admin"):
        return catalog.list_entries(db)
    if not actor.can("data:publish") or actor.department_id is None:
        return []
    return catalog.list_entries(db, department_id=actor.department_id)


def _max_bytes(request: Request) -> int:
    return request.app.state.settings.data_max_upload_mb * 1024 * 1024


def _mb(request: Request) -> int:
    return _max_bytes(request) // 2**20


def _context(db: Any, actor: Actor, max_mb: int = 0, **extra: Any) -> dict[str, Any]:
    return {**common(db), "entries": _publishable(db, actor), "modes": [m.value for m in LoadMode],
            "selected": None, "mode": "append", "preview": None, "load": None, "error": "", "token": "",
            "filename": "", "max_mb": max_mb, **extra}


@router.get("/data/upload")
def upload_page(request: Request, db: DbSession, actor: Publisher) -> Response:
    selected = request.query_params.get("entry", "")
    ctx = _context(db, actor, _mb(request), selected=int(selected) if selected.isdigit() else None)
    return render(request, "data/upload.html", ctx, actor=actor)


def _entry_and_mode(db: Any, actor: Actor, form: FormData) -> tuple[CatalogEntry, str]:
    raw = str(form.get("entry", ""))
    if not raw.isdigit():
        raise Invalid("choose the resource to load into")
    entry = catalog.get_entry(db, entry_id=int(raw))
    catalog.check_can_publish(actor, entry)
    mode = str(form.get("mode", "append"))
    if mode not in {m.value for m in LoadMode}:
        raise Invalid(f"unknown load mode {mode!r}")
    return entry, mode


@router.post("/data/upload")
def upload(request: Request, db: DbSession, actor: Publisher, form: Posted) -> Response:
    """``action=preview`` checks the chosen file and keeps it; ``action=load`` loads a kept file."""
    _ = gettext_for(request)
    folder = _uploads(request)
    try:
        entry, mode = _entry_and_mode(db, actor, form)
        if form.get("action") == "load":
            return _load_kept(request, db, actor, entry, mode, folder, str(form.get("token", "")),
                              str(form.get("filename", "")))
        upload = form.get("file")
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise Invalid(_("Choose a CSV or XLSX file."))
        _sweep(folder)
        token = secrets.token_urlsafe(16)
        kept = folder / f"{actor.user_id}-{token}.upload"
        with kept.open("wb") as out:
            shutil.copyfileobj(upload.file, out, 1024 * 1024)
        preview = loading.preview_file(db, entry_id=entry.id, data=kept, filename=upload.filename, actor=actor,
                                       mode=mode, max_bytes=_max_bytes(request))
        if not preview["acceptable"]:
            kept.unlink(missing_ok=True)
            token = ""
    except DomainError as exc:
        return render(request, "data/upload.html", _context(db, actor, _mb(request), error=exc.message,
                                                            selected=_int(form.get("entry"))),
                      actor=actor, status_code=422)
    ctx = _context(db, actor, _mb(request), selected=entry.id, mode=mode, preview=preview, token=token,
                   filename=upload.filename)
    return render(request, "data/upload.html", ctx, actor=actor)


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, str) and value.isdigit() else None


def _load_kept(request: Request, db: Any, actor: Actor, entry: CatalogEntry, mode: str, folder: Path, token: str,
               filename: str) -> Response:
    if not token or not set(token) <= _TOKEN_CHARS:
        raise Invalid("the previewed file is gone; choose it again")
    kept = folder / f"{actor.user_id}-{token}.upload"
    if not kept.is_file():
        raise Invalid("the previewed file is gone (kept for a day); choose it again")
    try:
        load = loading.load_file(db, entry_id=entry.id, data=kept, filename=filename[:200] or "upload", mode=mode,
                                 actor=actor, max_bytes=_max_bytes(request))
    finally:
        kept.unlink(missing_ok=True)
    return render(request, "data/load.html", {**common(db), "load": load, "entry": entry}, actor=actor,
                  status_code=201 if load.status == "loaded" else 422)


@router.get("/data/loads/{load_id}")
def load_page(request: Request, load_id: int, db: DbSession, actor: Publisher) -> Response:
    load = loading.get_load(db, load_id=load_id)
    entry = catalog.get_entry(db, entry_id=load.entry_id)
    if not (actor.can("data:admin") or actor.department_id == entry.provider_department_id):
        raise NotFound(f"load {load_id} not found")
    return render(request, "data/load.html", {**common(db), "load": load, "entry": entry}, actor=actor)
