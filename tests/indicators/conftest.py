"""Shared bits of the indicator tests: tiny evidence files made of magic bytes."""

from __future__ import annotations

import io
import zipfile

import pytest

TINY_PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def ooxml(main_part: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr(main_part, "<x/>")
    return out.getvalue()


def evidence_files(root) -> list:  # noqa: ANN001, ANN201
    folder = root / "evidence"
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


@pytest.fixture
def china_today(frozen_clock):  # noqa: ANN001, ANN201
    """The frozen clock's date in China (2026-11-26)."""
    from citybrain.indicators.computed import today

    return today()
