"""Evidence files of indicator reports: checked by their content (magic bytes, and for DOCX and
XLSX the package's main part), never by the name or the declared type.

Layout: ``<data_dir>/evidence/<yyyy>/<mm>/<sha256>.<ext>``; the report row keeps the path
relative to the data directory so the directory can move. Same content, same file.
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from citybrain.core.errors import Invalid, NotFound

MAX_EVIDENCE_BYTES = 10 * 1024 * 1024
ACCEPTED = "PDF, DOCX, XLSX, PNG, JPEG"
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\]+")
_OOXML = {  # main part of the package -> (extension, content type)
    "word/document.xml": ("docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    "xl/workbook.xml": ("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
}


class EvidenceRefused(Invalid):
    """An upload we do not accept as evidence; ``reason`` is ``missing``, ``too_large`` or ``not_document``."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message, field="evidence", reason=reason)
        self.reason = reason


@dataclass(frozen=True)
class EvidenceKind:
    ext: str
    content_type: str


def _ooxml(data: bytes) -> EvidenceKind | None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, ValueError, OSError):
        return None
    if "[Content_Types].xml" not in names:
        return None
    for part, (ext, content_type) in _OOXML.items():
        if part in names:
            return EvidenceKind(ext, content_type)
    return None


def sniff(data: bytes) -> EvidenceKind | None:
    """The document kind from the content, or None for anything else (text, executables, zips…)."""
    if data.startswith(b"%PDF-"):
        return EvidenceKind("pdf", "application/pdf")
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return EvidenceKind("png", "image/png")
    if data.startswith(b"\xff\xd8\xff"):
        return EvidenceKind("jpg", "image/jpeg")
    if data.startswith(b"PK\x03\x04"):
        return _ooxml(data)
    return None


def check_evidence(data: bytes | None) -> EvidenceKind:
    if not data:
        raise EvidenceRefused("evidence is required: attach a PDF, DOCX, XLSX, PNG or JPEG file", reason="missing")
    if len(data) > MAX_EVIDENCE_BYTES:
        raise EvidenceRefused(f"the evidence file is larger than {MAX_EVIDENCE_BYTES // (1024 * 1024)} MB",
                              reason="too_large")
    kind = sniff(data)
    if kind is None:
        raise EvidenceRefused(f"the evidence file is not a document; accepted: {ACCEPTED}", reason="not_document")
    return kind


def clean_filename(name: str, ext: str) -> str:
    base = _UNSAFE_NAME.sub("_", (name or "").replace("\\", "/").rsplit("/", 1)[-1]).strip(" .")
    return base[:200] or f"evidence.{ext}"


def relative_path(data: bytes, kind: EvidenceKind, now: datetime) -> Path:
    digest = hashlib.sha256(data).hexdigest()
    return Path("evidence", f"{now:%Y}", f"{now:%m}", f"{digest}.{kind.ext}")


def stored_file(relative: str, *, data_dir: Path | str) -> Path:
    """The stored file; refuses a path that would leave the data directory."""
    root = Path(data_dir).resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise NotFound("the evidence file is missing")
    return path
