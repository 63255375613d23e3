"""Event photos: checked by their content (not the name or the declared type), stored once
per content under the data directory, and served only to staff who may read the event.

Layout: ``<data_dir>/photos/<yyyy>/<mm>/<sha256>.<ext>``; the row keeps the path relative to
the data directory so the directory can move.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from citybrain.core import clock
from citybrain.core.errors import Invalid, NotFound
from citybrain.core.files import write_once

from .models import EventPhoto

MAX_PHOTO_BYTES = 5 * 1024 * 1024
MAX_PHOTOS = 3  # per report and per handling / verification step
STAGES = frozenset({"report", "handled", "verified"})
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\]+")


class PhotoRefused(Invalid):
    """An upload that is not a photo we accept; ``reason`` is ``empty``, ``too_large`` or ``not_image``."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message, field="photos", reason=reason)
        self.reason = reason


def sniff(data: bytes) -> tuple[str, str] | None:
    """(extension, content type) from the file's magic bytes, or None for anything else."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpg", "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png", "image/png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp", "image/webp"
    return None


def check_photo(data: bytes) -> tuple[str, str]:
    """Refuse empty, oversized and non-image uploads; returns (extension, content type)."""
    if not data:
        raise PhotoRefused("the photo is empty", reason="empty")
    if len(data) > MAX_PHOTO_BYTES:
        raise PhotoRefused(f"the photo is larger than {MAX_PHOTO_BYTES // (1024 * 1024)} MB", reason="too_large")
    kind = sniff(data)
    if kind is None:
        raise PhotoRefused("only JPEG, PNG and WebP photos are accepted", reason="not_image")
    return kind


async def read_uploads(form: Any, field: str = "photos") -> list[tuple[str, bytes]]:
    """(filename, content) of the files chosen in a multipart form's ``field``; a file input left
    empty arrives as a nameless, empty part and is skipped. Reads at most one byte past the
    size limit, so an oversized upload is refused by ``check_photo`` without reading it all."""
    found = []
    for item in form.getlist(field):
        if not isinstance(item, UploadFile):
            continue
        data = await item.read(MAX_PHOTO_BYTES + 1)
        if not data and not item.filename:
            continue
        found.append((item.filename or "", data))
    return found


def clean_filename(name: str) -> str:
    base = _UNSAFE_NAME.sub("_", (name or "").replace("\\", "/").rsplit("/", 1)[-1]).strip(" .")
    return base[:200] or "photo"


def save_photo(db: Session, *, event_id: int, stage: str, upload_bytes: bytes, filename: str,
               data_dir: Path | str) -> EventPhoto:
    """Check, store and record one photo of an event."""
    if stage not in STAGES:
        raise Invalid(f"unknown photo stage {stage!r}; stages: {', '.join(sorted(STAGES))}", field="stage")
    ext, content_type = check_photo(upload_bytes)
    digest = hashlib.sha256(upload_bytes).hexdigest()
    now = clock.now()
    relative = Path("photos", f"{now:%Y}", f"{now:%m}", f"{digest}.{ext}")
    write_once(Path(data_dir) / relative, upload_bytes)
    photo = EventPhoto(event_id=event_id, stage=stage, filename=clean_filename(filename),
                       content_type=content_type, size=len(upload_bytes), sha256=digest,
                       path=relative.as_posix(), created_at=now)
    db.add(photo)
    db.flush()
    return photo


def get_photo(db: Session, *, photo_id: int) -> EventPhoto:
    photo = db.get(EventPhoto, photo_id)
    if photo is None:
        raise NotFound(f"photo {photo_id} does not exist")
    return photo


def list_photos(db: Session, *, event_id: int) -> list[EventPhoto]:
    return list(db.scalars(select(EventPhoto).where(EventPhoto.event_id == event_id).order_by(EventPhoto.id)))


def photo_file(photo: EventPhoto, *, data_dir: Path | str) -> Path:
    """The stored file; refuses a path that would leave the data directory."""
    root = Path(data_dir).resolve()
    path = (root / photo.path).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise NotFound(f"the file of photo {photo.id} is missing")
    return path
