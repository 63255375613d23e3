"""HTTP ingestion: a device POSTs its readings with its key and secret (HTTP Basic).

    curl -u aq-001:SECRET -H 'Content-Type: application/json' \\
         -d '{"ts": 1795996800000, "values": {"pm25": 41}}' http://host/api/iot/telemetry

The body is what the device would publish on MQTT: one reading, a list of readings, or — from
a gateway device — ``{"devices": [{"device": key, "ts": …, "values": {…}}, …]}``. The answer
says how many readings were stored and which were refused and why; nothing is stored unless
the whole request was processed.
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from .ingest import GATEWAY_SEGMENT, TOPIC_ROOT, Message
from .registry import GATEWAY_PRODUCT

router = APIRouter()

_UNAUTHORIZED = {"WWW-Authenticate": 'Basic realm="citybrain devices"'}


def _credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    key, sep, secret = decoded.partition(":")
    return (key, secret) if sep and key and secret else None


async def _ingest(request: Request, kind: str) -> JSONResponse:
    iot = request.app.state.iot
    body = await request.body()
    received = int(time.time() * 1000)
    creds = _credentials(request)
    device = iot.directory.authenticate(*creds) if creds else None
    if device is None:
        key = creds[0][:64] if creds else None
        reason = "missing or malformed HTTP Basic credentials" if creds is None else "unknown device, wrong secret " \
            "or device not active"
        await run_in_threadpool(iot.ingestor.refuse, Message(topic=f"http/{kind}", payload=body, received_ms=received,
                                                              source="http"), "bad_credentials", reason, key)
        return JSONResponse({"detail": reason, "code": "bad_credentials"}, status_code=401, headers=_UNAUTHORIZED)
    segment = GATEWAY_SEGMENT if device.product == GATEWAY_PRODUCT and kind == "telemetry" else device.product
    message = Message(topic=f"{TOPIC_ROOT}/{segment}/{device.key}/{kind}", payload=body, received_ms=received,
                      source="http", auth_key=device.key)
    [outcome] = await run_in_threadpool(iot.ingestor.process, [message])
    refused: list[dict[str, Any]] = [{"index": r.index, "device": r.device_key, "code": r.code, "reason": r.reason}
                                     for r in outcome.refused]
    if outcome.accepted == 0 and refused and kind == "telemetry":
        status = 413 if refused[0]["code"] == "too_large" else 422
        return JSONResponse({"detail": refused[0]["reason"], "code": refused[0]["code"], "accepted": 0,
                             "refused": refused}, status_code=status)
    if refused and kind != "telemetry":
        return JSONResponse({"detail": refused[0]["reason"], "code": refused[0]["code"], "refused": refused},
                            status_code=422)
    return JSONResponse({"accepted": outcome.accepted, "refused": refused})


@router.post("/telemetry", summary="Devices: post readings (HTTP Basic: device key and secret)")
async def post_telemetry(request: Request) -> JSONResponse:
    return await _ingest(request, "telemetry")


@router.post("/event", summary="Devices: post an event (HTTP Basic: device key and secret)")
async def post_event(request: Request) -> JSONResponse:
    return await _ingest(request, "event")


@router.post("/status", summary="Devices: post online/offline status (HTTP Basic: device key and secret)")
async def post_status(request: Request) -> JSONResponse:
    return await _ingest(request, "status")
