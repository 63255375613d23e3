"""Open311 GeoReport v2 bodies in JSON and XML: pure functions, no database and no HTTP.

The router (``open311.py``) turns rows into the plain dicts built here and calls ``render``.
Element names follow the spec: ``<services><service>``, ``<service_definition>``,
``<service_requests><request>``, ``<errors><error>``, ``<discovery>``. Every body is UTF-8 and
every date/time is ISO 8601 with the district's offset (+08:00), as the spec requires.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any, Literal
from xml.etree import ElementTree as ET

Format = Literal["json", "xml"]
FORMATS: tuple[Format, ...] = ("json", "xml")
MEDIA_TYPES: dict[str, str] = {
    "json": "application/json; charset=utf-8",
    "xml": "text/xml; charset=utf-8",
}
SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
LOCAL_TZ = timezone(timedelta(hours=8), "CST")  # China Standard Time; no daylight saving

# Document kind -> (XML root element, XML element of each item; None for a single object).
_DOCUMENTS: dict[str, tuple[str, str | None]] = {
    "discovery": ("discovery", None),
    "services": ("services", "service"),
    "service_definition": ("service_definition", None),
    "requests": ("service_requests", "request"),
    "errors": ("errors", "error"),
}
# Nested lists: XML wraps each item in the singular element.
_ITEM_NAMES = {"endpoints": "endpoint", "formats": "format", "attributes": "attribute", "values": "value"}
# Characters XML 1.0 cannot carry at all; dropped rather than producing a body no parser reads.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_KEYWORD_SPLIT = re.compile(r"[,，;；、\s]+")


@dataclass(frozen=True)
class Body:
    content: bytes
    media_type: str


# --- values --------------------------------------------------------------------------------


def timestamp(value: datetime | None) -> str | None:
    """ISO 8601 in +08:00, whole seconds. Naive values are taken as UTC (the database's zone)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(LOCAL_TZ).isoformat(timespec="seconds")


def parse_timestamp(text: str) -> datetime:
    """Parse an ISO 8601 date or date-time from a client; no zone means +08:00 (local time).

    Raises ``ValueError`` with a message fit to show the client.
    """
    raw = text.strip()
    try:
        if len(raw) == 10:
            parsed = datetime.combine(date.fromisoformat(raw), time())
        else:
            parsed = datetime.fromisoformat(raw.replace("z", "Z"))
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 date-time (e.g. 2026-11-26T08:00:00+08:00)") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=LOCAL_TZ)


def keywords(text: str) -> str:
    """The spec's keywords are one comma-separated string; the catalog may use other separators."""
    return ",".join(k for k in _KEYWORD_SPLIT.split(text or "") if k)


# --- documents -----------------------------------------------------------------------------


def discovery(*, changeset: datetime, contact: str, key_service: str, url: str) -> dict[str, Any]:
    return {
        "changeset": timestamp(changeset),
        "contact": contact,
        "key_service": key_service,
        "endpoints": [{
            "specification": SPECIFICATION,
            "url": url,
            "changeset": timestamp(changeset),
            "type": "production",
            "formats": ["text/xml", "application/json"],
        }],
    }


def service(*, code: str, name: str, description: str, group: str, keyword_text: str,
            metadata: bool = False) -> dict[str, Any]:
    return {
        "service_code": str(code),  # a string, whatever the spec's own JSON example shows
        "service_name": name,
        "description": description,
        "metadata": metadata,
        "type": "realtime",
        "keywords": keywords(keyword_text),
        "group": group,
    }


def service_definition(*, code: str, attributes: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    return {"service_code": str(code), "attributes": [dict(a) for a in attributes]}


def request(
    *,
    service_request_id: str,
    status: Literal["open", "closed"],
    status_notes: str | None,
    service_name: str,
    service_code: str,
    description: str,
    agency_responsible: str | None,
    service_notice: str | None,
    requested_datetime: datetime,
    updated_datetime: datetime | None,
    expected_datetime: datetime | None,
    address: str | None,
    lat: float | None,
    long: float | None,
    media_url: str | None = None,
) -> dict[str, Any]:
    """One service request as GET requests returns it. Reporter details are never part of it."""
    return {
        "service_request_id": service_request_id,
        "status": status,
        "status_notes": status_notes or None,
        "service_name": service_name,
        "service_code": str(service_code),
        "description": description,
        "agency_responsible": agency_responsible or None,
        "service_notice": service_notice or None,
        "requested_datetime": timestamp(requested_datetime),
        "updated_datetime": timestamp(updated_datetime),
        "expected_datetime": timestamp(expected_datetime),
        "address": address or None,
        "address_id": None,
        "zipcode": None,
        "lat": lat,
        "long": long,
        "media_url": media_url or None,
    }


def created(*, service_request_id: str, service_notice: str | None, account_id: str | None = None) -> dict[str, Any]:
    """The answer to POST requests: an id (we never answer with a token, see docs/open311.md)."""
    return {"service_request_id": service_request_id, "service_notice": service_notice, "account_id": account_id}


def errors(items: Iterable[tuple[int, str]]) -> list[dict[str, Any]]:
    return [{"code": code, "description": description} for code, description in items]


# --- rendering -----------------------------------------------------------------------------


def render(fmt: Format, kind: str, data: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> Body:
    """Serialise a document built above. ``kind`` is a key of ``_DOCUMENTS``."""
    if fmt == "json":
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=_json_default)
        return Body(text.encode("utf-8"), MEDIA_TYPES["json"])
    if fmt == "xml":
        return Body(to_xml(kind, data), MEDIA_TYPES["xml"])
    raise ValueError(f"unknown format {fmt!r}")


def to_xml(kind: str, data: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> bytes:
    root_name, item_name = _DOCUMENTS[kind]
    root = ET.Element(root_name)
    if item_name is None:
        assert isinstance(data, Mapping)
        _fill(root, data)
    else:
        for item in data:
            _fill(ET.SubElement(root, item_name), item)
    body = ET.tostring(root, encoding="unicode", short_empty_elements=True)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + body).encode("utf-8")


def _fill(element: ET.Element, mapping: Mapping[str, Any]) -> None:
    for key, value in mapping.items():
        _append(element, key, value)


def _append(parent: ET.Element, name: str, value: Any) -> None:
    child = ET.SubElement(parent, name)
    if isinstance(value, Mapping):
        _fill(child, value)
    elif isinstance(value, list | tuple):
        item_name = _ITEM_NAMES.get(name, "item")
        for item in value:
            _append(child, item_name, item)
    elif value is not None:
        child.text = _xml_text(value)


def _xml_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return timestamp(value) or ""
    return _XML_ILLEGAL.sub("", str(value))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return timestamp(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")
