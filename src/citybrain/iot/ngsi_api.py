"""NGSI-LD context API (subset of ETSI GS CIM 009) at /ngsi-ld/v1: devices and their latest
state as entities, their telemetry as temporal evolution, and upsert as one more way in for
readings. What is and is not supported: docs/ngsi-ld.md.

Every failure answers with an NGSI-LD ProblemDetails body (``type``, ``title``, ``detail``):
``NgsiRoute`` catches errors from the handlers *and* their dependencies (authentication), so no
client ever sees the generic ``{"detail", "code"}`` shape here.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine, Mapping
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from citybrain.core import clock
from citybrain.core.actor import Actor
from citybrain.core.auth import require
from citybrain.core.db import DbSession
from citybrain.core.errors import DomainError, Forbidden, NotFound, Unauthorized

from . import ngsi, registry
from . import ngsi_params as ngp
from . import ngsi_query as nq
from .ingest import Message
from .models import Device, Telemetry

ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"
JSON, LD_JSON = "application/json", "application/ld+json"
CONTEXT_REL = "http://www.w3.org/ns/json-ld#context"
CONTEXT_PATH = "/context.jsonld"
MAX_BATCH = 1000
MAX_INSTANCES = 1000  # temporal instances per attribute in one answer
TITLES = {"BadRequestData": "Bad request data", "InvalidRequest": "Invalid request",
          "ResourceNotFound": "Resource not found", "LdContextNotAvailable": "LD context not available",
          "OperationNotSupported": "Operation not supported", "InternalError": "Internal error",
          "Unauthorized": "Authentication required", "Forbidden": "Not allowed",
          "NotAcceptable": "Not acceptable", "UnsupportedMediaType": "Unsupported media type"}


class NgsiError(Exception):
    def __init__(self, status: int, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.kind, self.detail = status, kind, detail


def problem(kind: str, detail: str) -> dict[str, str]:
    # 401/403/406/415 have no NGSI-LD error type; they get ours under the same scheme.
    return {"type": ERRORS + kind, "title": TITLES.get(kind, kind), "detail": detail}


def problem_response(status: int, kind: str, detail: str) -> Response:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return Response(orjson.dumps(problem(kind, detail)), status_code=status, media_type=JSON, headers=headers)


def _bad(detail: str) -> NgsiError:
    return NgsiError(400, "BadRequestData", detail)


class NgsiRoute(APIRoute):
    """Every error, wherever raised, becomes ProblemDetails with the matching status."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except NgsiError as exc:
                return problem_response(exc.status, exc.kind, exc.detail)
            except nq.QueryError as exc:
                return problem_response(400, "BadRequestData", str(exc))
            except Unauthorized as exc:
                return problem_response(401, "Unauthorized", exc.message)
            except Forbidden as exc:
                return problem_response(403, "Forbidden", exc.message)
            except NotFound as exc:
                return problem_response(404, "ResourceNotFound", exc.message)
            except DomainError as exc:
                return problem_response(400, "BadRequestData", exc.message)
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {}
                where = ".".join(str(p) for p in first.get("loc", ()))
                return problem_response(400, "BadRequestData", f"{where}: {first.get('msg', 'invalid request')}")

        return route


router = APIRouter(route_class=NgsiRoute)
Reader = Annotated[Actor, require("iot:read")]
Writer = Annotated[Actor, require("iot:admin")]


# --- content negotiation and @context ------------------------------------------------------------


def context_url(request: Request) -> str:
    return str(request.url_for("ngsi_context"))


def _accepted(request: Request) -> str:
    """The answer's media type from Accept: application/ld+json or application/json (406 otherwise)."""
    header = request.headers.get("accept", "").strip()
    if not header:
        return JSON
    ranked = []
    for index, part in enumerate(header.split(",")):
        media, *params = [p.strip() for p in part.split(";")]
        weight = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        if weight > 0:
            ranked.append((-weight, index, media.lower()))
    for _, _, media in sorted(ranked):
        if media == LD_JSON:
            return LD_JSON
        if media in (JSON, "application/*", "*/*"):
            return JSON
    raise NgsiError(406, "NotAcceptable", f"cannot answer in {header!r}: use {JSON} or {LD_JSON}")


def _known_context(url: str, request: Request) -> bool:
    return url == context_url(request) or url.endswith("/ngsi-ld/v1" + CONTEXT_PATH) or (
        url.startswith("https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context"))


def _check_link(request: Request) -> None:
    """A Link header naming an @context we do not hold is refused: we never fetch a context."""
    header = request.headers.get("link")
    if not header:
        return
    for part in header.split(","):
        target, *params = [p.strip() for p in part.split(";")]
        if not any(p.replace(" ", "") == f'rel="{CONTEXT_REL}"' for p in params):
            continue
        url = target.strip("<>")
        if not _known_context(url, request):
            raise NgsiError(503, "LdContextNotAvailable",
                            f"@context {url!r} is not held here and remote contexts are never fetched; "
                            f"use {context_url(request)} (or the NGSI-LD core context)")


def _answer(request: Request, body: Any, media: str, *, status: int = 200,
            headers: dict[str, str] | None = None) -> Response:
    headers = dict(headers or {})
    url = context_url(request)
    if media == LD_JSON:
        body = [{**i, "@context": url} for i in body] if isinstance(body, list) else {**body, "@context": url}
    else:
        headers["Link"] = f'<{url}>; rel="{CONTEXT_REL}"; type="{LD_JSON}"'
    return Response(orjson.dumps(body), status_code=status, media_type=media, headers=headers)


_TERMS: dict[str, str] | None = None


def _compact(name: str) -> str:
    """An expanded IRI from our @context back to its short term; anything else unchanged."""
    global _TERMS
    if _TERMS is None:
        _TERMS = {iri: term for term, iri in ngsi.context_terms().items()}
    return _TERMS.get(name, name)


def _representation(options: str | None, fmt: str | None) -> bool:
    """True for key-values (``options=keyValues`` or ``format=simplified``)."""
    opts = set(ngp.split_list(options))
    unknown = opts - {"keyValues", "normalized", "simplified", "concise", "temporalValues", "sysAttrs"}
    if unknown:
        raise _bad(f"unknown options {sorted(unknown)}")
    if fmt not in (None, "normalized", "simplified", "keyValues"):
        raise _bad(f"format {fmt!r} is not supported (normalized or simplified)")
    return bool(opts & {"keyValues", "simplified"}) or fmt in ("simplified", "keyValues")


# --- routes ------------------------------------------------------------------------------------


@router.get(CONTEXT_PATH, name="ngsi_context", summary="Our JSON-LD @context (public: vocabulary, no data)")
def get_context() -> Response:
    # Public on purpose: JSON-LD processors dereference a context without credentials.
    return Response(orjson.dumps(ngsi.context_document()), media_type=LD_JSON,
                    headers={"Cache-Control": "public, max-age=3600"})


def _maps(db: Session) -> dict[str, ngsi.TypeMap]:
    return ngsi.type_maps(registry.products(db))


def _now_ms() -> int:
    return int(clock.now().timestamp() * 1000)


@router.get("/entities", summary="Query entities: devices and their latest state")
def query_entities(
    request: Request, db: DbSession, actor: Reader,
    type: str | None = None, id: str | None = None, idPattern: str | None = None,  # noqa: A002, N803
    attrs: str | None = None, q: str | None = None, georel: str | None = None,
    geometry: str | None = None, coordinates: str | None = None, geoproperty: str | None = None,
    limit: str | None = None, offset: str | None = None, count: str | None = None,
    options: str | None = None, format: str | None = None,  # noqa: A002
) -> Response:
    media = _accepted(request)
    _check_link(request)
    key_values = _representation(options, format)
    size, start = ngp.parse_paging(limit, offset)
    if count not in (None, "true", "false"):
        raise _bad(f"count must be true or false, got {count!r}")
    if not any((type, id, idPattern, attrs, q, georel)):
        raise _bad("give at least one of type, id, idPattern, attrs, q or a geo-query "
                   f"(every device: type={','.join(ngsi.ALL_TYPES)})")
    types = {_compact(t) for t in type.replace("|", ",").split(",") if t.strip()} if type else None
    keys, wanted_ids = None, set()
    if id:
        parsed = [ngsi.split_id(i) for i in ngp.split_list(id)]
        keys = {p[1] for p in parsed if p is not None}
        wanted_ids = set(ngp.split_list(id))
    pattern = nq.compile_pattern(idPattern, "idPattern") if idPattern else None
    wanted_attrs = {_compact(a) for a in ngp.split_list(attrs)} or None
    q_node = nq.parse_q(q) if q else None
    geo = ngp.parse_geoquery(georel, geometry, coordinates, geoproperty)

    records = ngsi.load_records(db, actor=actor, maps=_maps(db), now_ms=_now_ms(), types=types, keys=keys)
    matched = []
    for rec in records:
        if id and rec.id not in wanted_ids:
            continue
        if pattern is not None and pattern.search(rec.id) is None:
            continue
        if wanted_attrs is not None and not any(rec.has(a) for a in wanted_attrs):
            continue
        if q_node is not None and not nq.evaluate(q_node, rec.lookup):
            continue
        if geo is not None and (rec.lon is None or rec.lat is None or not geo.matches(rec.lon, rec.lat)):
            continue
        matched.append(rec)
    page = [ngsi.to_entity(rec, attrs=wanted_attrs, key_values=key_values) for rec in matched[start:start + size]]
    headers = {"NGSILD-Results-Count": str(len(matched))} if count == "true" else None
    return _answer(request, page, media, headers=headers)


def _one(db: Session, actor: Actor, entity_id: str, *, include_retired: bool = False) -> ngsi.Record:
    if ":" not in entity_id or len(entity_id) > 256:
        raise _bad(f"entity id {entity_id!r} is not a URI")
    parsed = ngsi.split_id(entity_id)
    if parsed is not None:
        maps = _maps(db)
        for rec in ngsi.load_records(db, actor=actor, maps=maps, now_ms=_now_ms(), keys=[parsed[1]]):
            if rec.id == entity_id:
                return rec
        if include_retired:
            rec = _retired(db, actor, parsed[1], maps)
            if rec is not None and rec.id == entity_id:
                return rec
    raise NgsiError(404, "ResourceNotFound", f"no entity {entity_id!r}")


def _retired(db: Session, actor: Actor, key: str, maps: Mapping[str, ngsi.TypeMap]) -> ngsi.Record | None:
    """A retired device: gone from the context, but its history stays readable."""
    device = db.scalar(select(Device).where(Device.key == key, Device.state == "retired"))
    if device is None or device.product not in maps:
        return None
    if not actor.sees_all_departments and device.department_id != actor.department_id:
        return None
    return ngsi.Record(device.id, device.key, device.name, device.product, device.department_id, device.lon,
                       device.lat, device.address, device.state, None, {}, None, maps[device.product], _now_ms())


@router.get("/entities/{entity_id}", summary="One entity: a device and its latest state")
def get_entity(request: Request, entity_id: str, db: DbSession, actor: Reader, attrs: str | None = None,
               options: str | None = None, format: str | None = None) -> Response:  # noqa: A002
    media = _accepted(request)
    _check_link(request)
    key_values = _representation(options, format)
    rec = _one(db, actor, entity_id)
    wanted = {_compact(a) for a in ngp.split_list(attrs)} or None
    return _answer(request, ngsi.to_entity(rec, attrs=wanted, key_values=key_values), media)


# --- temporal --------------------------------------------------------------------------------------


@router.get("/temporal/entities/{entity_id}", summary="Temporal evolution of an entity (from the telemetry)")
def get_temporal(request: Request, entity_id: str, db: DbSession, actor: Reader,
                 timerel: str | None = None, timeAt: str | None = None,  # noqa: N803
                 endTimeAt: str | None = None, lastN: str | None = None,  # noqa: N803
                 timeproperty: str | None = None, attrs: str | None = None,
                 options: str | None = None) -> Response:
    media = _accepted(request)
    _check_link(request)
    opts = set(ngp.split_list(options))
    unknown = opts - {"temporalValues", "normalized"}
    if unknown:
        raise _bad(f"unknown options {sorted(unknown)} (temporal: temporalValues)")
    window = ngp.parse_timequery({"timerel": timerel, "timeAt": timeAt, "endTimeAt": endTimeAt, "lastN": lastN,
                                 "timeproperty": timeproperty})
    rec = _one(db, actor, entity_id, include_retired=True)
    wanted = {_compact(a) for a in ngp.split_list(attrs)} or None
    attr_maps = [a for a in rec.tmap.attrs if wanted is None or a.name in wanted]
    series, truncated = _instances(db, rec.device_id, attr_maps, window)
    body: dict[str, Any] = {"id": rec.id, "type": rec.type}
    for attr in attr_maps:
        points = series[attr.name]
        if not points:
            continue
        if "temporalValues" in opts:
            body[attr.name] = {"type": "Property", "values": [[attr.to_ngsi(v), ngsi.iso_ms(ts)] for ts, v in points]}
            continue
        unit = attr.unit_code
        body[attr.name] = [{"type": "Property", "value": attr.to_ngsi(v), "observedAt": ngsi.iso_ms(ts),
                            **({"unitCode": unit} if unit else {})} for ts, v in points]
    if truncated is None:
        return _answer(request, body, media)
    first, last = truncated
    return _answer(request, body, media, status=206,
                   headers={"Content-Range": f"date-time {ngsi.iso_ms(first)}-{ngsi.iso_ms(last)}/{MAX_INSTANCES}"})


def _instances(db: Session, device_id: int, attrs: list[ngsi.AttrMap], window: ngp.TimeQuery
               ) -> tuple[dict[str, list[tuple[int, Any]]], tuple[int, int] | None]:
    """Per attribute, (ts, our value) in time order; and the (first, last) ts read when the answer
    was cut at ``MAX_INSTANCES`` readings (None: complete)."""
    query = select(Telemetry.ts, Telemetry.data).where(Telemetry.device_id == device_id)
    if window.start_ms is not None:
        query = query.where(Telemetry.ts >= window.start_ms)
    if window.end_ms is not None:
        query = query.where(Telemetry.ts < window.end_ms)
    series: dict[str, list[tuple[int, Any]]] = {a.name: [] for a in attrs}
    if window.last_n is not None:
        # Newest first, in chunks, until every attribute has its N (or the window is exhausted).
        need = min(window.last_n, MAX_INSTANCES)
        seen, chunk = 0, 500
        while True:
            rows = db.execute(query.order_by(Telemetry.ts.desc()).limit(chunk).offset(seen)).all()
            for ts, data in rows:
                for a in attrs:
                    if a.prop.identifier in data and len(series[a.name]) < need:
                        series[a.name].append((ts, data[a.prop.identifier]))
            seen += len(rows)
            if len(rows) < chunk or all(len(v) >= need for v in series.values()) or seen >= 100 * need + 10_000:
                break
        return {k: v[::-1] for k, v in series.items()}, None
    rows = db.execute(query.order_by(Telemetry.ts).limit(MAX_INSTANCES + 1)).all()
    truncated = None
    if len(rows) > MAX_INSTANCES:
        rows = rows[:MAX_INSTANCES]
        truncated = (rows[0][0], rows[-1][0])
    for ts, data in rows:
        for a in attrs:
            if a.prop.identifier in data:
                series[a.name].append((ts, data[a.prop.identifier]))
    return series, truncated


# --- upsert -------------------------------------------------------------------------------------------


@router.post("/entityOperations/upsert", summary="Upsert a batch of entities: each becomes one reading",
             status_code=204)
async def upsert(request: Request, db: DbSession, actor: Writer) -> Response:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in (JSON, LD_JSON):
        raise NgsiError(415, "UnsupportedMediaType", f"Content-Type must be {JSON} or {LD_JSON}, "
                                                     f"not {content_type or 'missing'!r}")
    opts = set(ngp.split_list(request.query_params.get("options")))
    if opts - {"update", "replace"}:
        raise _bad(f"unknown options {sorted(opts - {'update', 'replace'})}")
    raw = await request.body()
    try:
        batch = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise NgsiError(400, "InvalidRequest", f"the body is not valid JSON: {exc}") from None
    if not isinstance(batch, list) or not batch:
        raise _bad("the body must be a non-empty JSON array of entities")
    if len(batch) > MAX_BATCH:
        raise _bad(f"at most {MAX_BATCH} entities per batch")
    _check_contexts(request, content_type, batch)
    return await run_in_threadpool(_upsert, request, db, actor, batch)


def _check_contexts(request: Request, content_type: str, batch: list[Any]) -> None:
    if content_type == LD_JSON:
        if request.headers.get("link"):
            raise _bad(f"with {LD_JSON} the @context goes in the body, not in a Link header")
        for item in batch:
            ctx = item.get("@context") if isinstance(item, dict) else None
            if ctx is None:
                raise _bad(f"with {LD_JSON} every entity carries an @context")
            urls = ctx if isinstance(ctx, list) else [ctx]
            for url in urls:
                if not isinstance(url, str):
                    raise NgsiError(503, "LdContextNotAvailable", "inline @context objects are not supported; "
                                                                  f"reference {context_url(request)}")
                if not _known_context(url, request):
                    raise NgsiError(503, "LdContextNotAvailable",
                                    f"@context {url!r} is not held here and remote contexts are never fetched")
        return
    _check_link(request)
    if any(isinstance(item, dict) and "@context" in item for item in batch):
        raise _bad(f"with {JSON} the @context goes in a Link header, not in the body (or send {LD_JSON})")


def _upsert(request: Request, db: Session, actor: Actor, batch: list[Any]) -> Response:
    runtime = getattr(request.app.state, "iot", None)
    if runtime is None:
        raise NgsiError(503, "InternalError", "ingestion is not running in this process")
    maps = _maps(db)
    now = _now_ms()
    keys = {p[1] for item in batch if isinstance(item, dict) and isinstance(item.get("id"), str)
            and (p := ngsi.split_id(item["id"])) is not None}
    visible = {rec.key: rec for rec in ngsi.load_records(db, actor=actor, maps=maps, now_ms=now, keys=keys)}
    errors: list[dict[str, Any]] = []
    pending: list[tuple[str, Message]] = []
    for item in batch:
        eid = item.get("id") if isinstance(item, dict) else None
        try:
            pending.append((str(eid), _message(item, visible, now)))
        except ngsi.EntityRefused as exc:
            errors.append({"entityId": eid, "error": problem("BadRequestData", str(exc))})
        except NgsiError as exc:
            errors.append({"entityId": eid, "error": problem(exc.kind, exc.detail)})
    success: list[str] = []
    if pending:
        outcomes = runtime.ingestor.process([m for _, m in pending])
        if inspect.isawaitable(outcomes):
            raise NgsiError(500, "InternalError", "the ingestor is asynchronous; upsert expects process() to return")
        for (eid, _), outcome in zip(pending, outcomes, strict=True):
            if outcome.refused:
                reasons = "; ".join(f"{r.code}: {r.reason}" for r in outcome.refused)
                errors.append({"entityId": eid, "error": problem("BadRequestData", reasons)})
            else:
                success.append(eid)
    if not errors:
        return Response(status_code=204)
    return Response(orjson.dumps({"success": success, "errors": errors}), status_code=207, media_type=JSON)


def _message(item: Any, visible: Mapping[str, ngsi.Record], now_ms: int) -> Message:
    if not isinstance(item, dict):
        raise ngsi.EntityRefused("each entity must be a JSON object")
    eid, kind = item.get("id"), item.get("type")
    if not isinstance(eid, str) or not isinstance(kind, str):
        raise ngsi.EntityRefused("an entity needs a string id and type")
    parsed = ngsi.split_id(eid)
    if parsed is None:
        raise ngsi.EntityRefused(f"id {eid!r} must be urn:ngsi-ld:<Type>:<device key>")
    kind = _compact(kind)
    if parsed[0] != kind:
        raise ngsi.EntityRefused(f"type {kind!r} does not match the id's type {parsed[0]!r}")
    rec = visible.get(parsed[1])
    if rec is None:
        raise NgsiError(404, "ResourceNotFound", f"no registered device {parsed[1]!r} (register it in /api/iot first)")
    if rec.type != kind:
        raise ngsi.EntityRefused(f"device {rec.key!r} is a {rec.product} and maps to {rec.type}, not {kind}")
    values, observed = ngsi.reading_from_entity(item, rec.tmap)
    payload = orjson.dumps({"ts": observed if observed is not None else now_ms, "values": values})
    return Message(topic=f"citybrain/{rec.product}/{rec.key}/telemetry", payload=payload, received_ms=now_ms,
                   source="ngsi", auth_key=rec.key)
