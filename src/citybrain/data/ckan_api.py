"""CKAN-compatible Action API (``/api/3/action/<name>``, ``/api/action/<name>``) and the DCAT-AP catalog.

Answers use CKAN's envelope: ``{"help", "success": true, "result"}``, or ``{"help", "success":
false, "error": {"__type", "message"}}`` with CKAN's status codes (Validation Error 409, Not Found
Error 404, Authorization Error 403, Search Query Error and Bad Request 400), so ``ckanapi`` and
other CKAN tools work unchanged. Parameters come from the query string (GET) or a JSON object
(POST). Authentication: an API token in ``Authorization: <token>`` (CKAN style),
``Authorization: Bearer <token>`` or ``X-CKAN-API-Key``; a browser session also works for GET.
Catalog metadata needs any authenticated ``data:read`` user; ``datastore_search`` reads rows through
``access.read_rows`` (grants, masking, access log). The DCAT-AP export is public inside the
intranet: it holds catalog metadata only, no rows and no personal data.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from citybrain.core.actor import Actor
from citybrain.core.auth import session_id
from citybrain.core.db import DbSession
from citybrain.core.errors import Conflict, DomainError, Forbidden, Invalid, NotFound, Unauthorized

from . import access, catalog, ckan_package, dcat, masking

router = APIRouter()
PREFIXES = ("/api/3/action", "/api/action")
ERROR_TYPES: dict[type[DomainError], tuple[str, int]] = {
    ckan_package.SearchQueryError: ("Search Query Error", 400),
    Invalid: ("Validation Error", 409),
    NotFound: ("Not Found Error", 404),
    Forbidden: ("Authorization Error", 403),
    Unauthorized: ("Authorization Error", 403),
    Conflict: ("Validation Error", 409),
}


class BadRequest(DomainError):
    status_code = 400


@dataclass
class Call:
    request: Request
    db: Session
    params: dict[str, Any]
    prefix: str

    @property
    def base_url(self) -> str:
        return str(self.request.base_url).rstrip("/")

    def text(self, name: str, default: str = "") -> str:
        value = self.params.get(name, default)
        if value is None:
            return default
        if not isinstance(value, str | int | float):
            raise Invalid(f"{name}: expected text, got {type(value).__name__}")
        return str(value)

    def integer(self, name: str, default: int | None) -> int | None:
        value = self.params.get(name)
        if value is None or value == "":
            return default
        try:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        except (TypeError, ValueError):
            raise Invalid(f"{name}: {value!r} is not an integer") from None

    def flag(self, name: str, default: bool) -> bool:
        value = self.params.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1", "yes", "on"):
            return True
        if text in ("false", "0", "no", "off"):
            return False
        raise Invalid(f"{name}: {value!r} is not a boolean (true or false)")

    def json_value(self, name: str) -> Any:
        value = self.params.get(name)
        if isinstance(value, str) and value.strip():
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise Invalid(f"{name}: not valid JSON ({exc.msg})") from None
        return None if value == "" else value

    def actor(self) -> Actor:
        actor = ckan_actor(self.request, self.db)
        if actor is None:
            raise Forbidden("authentication required: send an API token in the Authorization header "
                            "(or X-CKAN-API-Key); create one with `citybrain token create` or POST /api/auth/token")
        actor.check("data:read")
        return actor


def request_token(request: Request) -> str | None:
    """The raw API token: ``X-CKAN-API-Key``, ``Authorization: <token>`` or ``Authorization: Bearer <token>``."""
    key = request.headers.get("x-ckan-api-key", "").strip()
    if key:
        return key
    header = request.headers.get("authorization", "").strip()
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip() or None
    return header or None


def ckan_actor(request: Request, db: Session) -> Actor | None:
    """The caller from an API token (any method) or a browser session (GET only: no CSRF token here)."""
    from citybrain.org import auth as org_auth  # org owns users and tokens

    token = request_token(request)
    if token is not None:
        result = org_auth.actor_from_token(db, token=token)
        if isinstance(result, org_auth.TokenProblem):
            raise Forbidden(f"invalid API token: {result.reason}")
        return result
    if request.method == "GET" and (sid := session_id(request)):
        return org_auth.actor_from_session(db, session_id=sid)
    return None


def package_list(call: Call) -> list[str]:
    """Names of all packages (catalog entries). Parameters: limit, offset."""
    call.actor()
    return ckan_package.package_list(call.db, limit=call.integer("limit", None), offset=_offset(call, "offset"))


def package_search(call: Call) -> dict[str, Any]:
    """Search packages. Parameters: q (Chinese words, all must match), fq (organization:, tags:,
    res_format:, sharing_type:, class_kind:, database:, update_cycle:, name:), rows (default 10,
    at most 1000), start, sort (score, name, title, metadata_modified, metadata_created with asc or
    desc), facet.field (JSON list), facet.limit (default 50), include_private (every package is
    visible to authenticated users)."""
    call.actor()
    fields = call.json_value("facet.field") or []
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise Invalid('facet.field must be a JSON list of field names, e.g. ["organization", "tags"]')
    call.flag("include_private", False)
    return ckan_package.package_search(
        call.db, q=call.text("q"), fq=call.text("fq"), rows=call.integer("rows", 10) or 0,
        start=_offset(call, "start"), sort=call.text("sort"), facet_fields=fields,
        facet_limit=call.integer("facet.limit", 50) or 0, base_url=call.base_url)


def package_show(call: Call) -> dict[str, Any]:
    """One package by id or name (also accepts the resource code or the resource id)."""
    call.actor()
    return ckan_package.show_package(call.db, ref=_required(call, "id"), base_url=call.base_url)


def organization_list(call: Call) -> list[Any]:
    """Departments that provide resources. Parameters: all_fields, sort (name|title|package_count
    asc|desc), limit, offset."""
    call.actor()
    return ckan_package.organization_list(call.db, all_fields=call.flag("all_fields", False),
                                          sort=call.text("sort", "name asc"), limit=call.integer("limit", None),
                                          offset=_offset(call, "offset"))


def organization_show(call: Call) -> dict[str, Any]:
    """One organization by id or name (department code). Parameter: include_datasets."""
    call.actor()
    return ckan_package.organization_show(call.db, ref=_required(call, "id"),
                                          include_datasets=call.flag("include_datasets", False),
                                          base_url=call.base_url)


def datastore_search(call: Call) -> dict[str, Any]:
    """Rows of a resource. Parameters: resource_id, filters (object), q (substring in the columns you
    see in clear), fields (comma list), sort ("col asc, col2 desc"), limit (default 100, at most
    32000), offset, include_total, records_format (objects or lists)."""
    resource_id = call.text("resource_id") or call.text("id")
    if not resource_id:
        raise Invalid("resource_id: Missing value")
    actor = call.actor()
    entry = catalog.find(call.db, ref=resource_id)
    q = call.params.get("q")
    if q is not None and not isinstance(q, str):
        raise Invalid("q: per-field full-text search (an object) is not supported; give a text")
    fields = call.params.get("fields")
    if isinstance(fields, str):
        fields = [f.strip() for f in fields.split(",") if f.strip()]
    elif fields is not None and not (isinstance(fields, list) and all(isinstance(f, str) for f in fields)):
        raise Invalid("fields: give a comma-separated text or a list of field names")
    fmt = call.text("records_format", "objects")
    if fmt not in ("objects", "lists"):
        raise Invalid(f"records_format: {fmt!r} is not supported; use objects or lists")
    limit, offset = call.integer("limit", 100), call.integer("offset", 0)
    include_total = call.flag("include_total", True)
    result = access.read_rows(call.db, entry=entry, actor=actor, via="ckan", filters=call.json_value("filters"),
                              q=q, fields=fields or None, sort=call.text("sort") or None, limit=limit,
                              offset=offset, include_total=include_total,
                              rules=masking.rules_for(call.request.app.state.settings))
    records: list[Any] = result.records
    if fmt == "lists":
        records = [[r[f["id"]] for f in result.fields] for r in result.records]
    out = {"resource_id": entry.resource_id, "fields": result.fields, "records_format": fmt, "records": records,
           "limit": result.limit, "offset": result.offset, "include_total": include_total,
           "_links": _links(call, entry.resource_id, result.offset, result.limit)}
    if result.total is not None:
        out |= {"total": result.total, "total_was_estimated": False}
    return out


def help_show(call: Call) -> str:
    """The help text of an action. Parameter: name."""
    name = _required(call, "name")
    if name not in ACTIONS:
        raise NotFound(f"action {name!r} not found")
    return " ".join((ACTIONS[name].__doc__ or "").split())


ACTIONS: dict[str, Callable[[Call], Any]] = {f.__name__: f for f in (
    package_list, package_search, package_show, organization_list, organization_show, datastore_search, help_show)}


def _required(call: Call, name: str) -> str:
    value = call.text(name).strip()
    if not value:
        raise Invalid(f"{name}: Missing value")
    return value


def _offset(call: Call, name: str) -> int:
    value = call.integer(name, 0) or 0
    if value < 0:
        raise Invalid(f"{name}: must be 0 or more")
    return value


def _links(call: Call, resource_id: str, offset: int, limit: int) -> dict[str, str]:
    keep = {k: v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for k, v in call.params.items()
            if k not in ("offset", "resource_id", "id") and v is not None}
    start = f"{call.prefix}/datastore_search?" + urlencode({"resource_id": resource_id, **keep})
    return {"start": start, "next": f"{start}&offset={offset + limit}"}


def _envelope(call_help: str, result: Any = None, error: DomainError | None = None) -> JSONResponse:
    if error is None:
        return JSONResponse({"help": call_help, "success": True, "result": result})
    if isinstance(error, BadRequest):
        kind, status = "Bad Request", 400
    else:
        kind, status = next((v for t, v in ERROR_TYPES.items() if isinstance(error, t)), ("Validation Error", 409))
    return JSONResponse({"help": call_help, "success": False, "error": {"__type": kind, "message": error.message}},
                        status_code=status)


def _run(action: str, call: Call) -> JSONResponse:
    help_url = f"{call.base_url}{call.prefix}/help_show?name={action}"
    try:
        handler = ACTIONS.get(action)
        if handler is None:
            raise BadRequest(f"Bad request - Action name not known: {action}")
        return _envelope(help_url, handler(call))
    except DomainError as exc:
        call.db.rollback()  # an error changes nothing, not even a token's last use
        return _envelope(help_url, error=exc)


async def _params(request: Request) -> dict[str, Any] | DomainError:
    if request.method == "GET":
        return dict(request.query_params)
    body = await request.body()
    if not body.strip():
        return dict(request.query_params)
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return dict(await request.form())
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return BadRequest("Bad request - JSON Error: the request body is not valid JSON")
    if not isinstance(data, dict):
        return BadRequest("Bad request - JSON Error: the request body must be a JSON object")
    return data


async def _action(action: str, request: Request, db: DbSession) -> Response:
    prefix = next(p for p in PREFIXES if request.url.path.startswith(p + "/"))
    params = await _params(request)
    call = Call(request=request, db=db, params=params if isinstance(params, dict) else {}, prefix=prefix)
    if isinstance(params, DomainError):
        return _envelope(f"{call.base_url}{prefix}/help_show?name={action}", error=params)
    return await run_in_threadpool(_run, action, call)


for _prefix in PREFIXES:
    router.add_api_route(_prefix + "/{action}", _action, methods=["GET", "POST"],
                         include_in_schema=_prefix == PREFIXES[0],
                         summary="CKAN Action API", name=f"ckan_action{_prefix.replace('/', '_')}")


@router.get("/catalog.ttl", summary="DCAT-AP 3 catalog (Turtle)")
def catalog_turtle(request: Request, db: DbSession) -> Response:
    """Public inside the intranet: catalog metadata only, no rows and no personal data."""
    body = dcat.turtle(db, base_url=str(request.base_url))
    return Response(body, media_type="text/turtle; charset=utf-8")


@router.get("/catalog.jsonld", summary="DCAT-AP 3 catalog (JSON-LD)")
def catalog_jsonld(request: Request, db: DbSession) -> Response:
    """Public inside the intranet: catalog metadata only, no rows and no personal data."""
    body = dcat.jsonld(db, base_url=str(request.base_url))
    return Response(body, media_type="application/ld+json")
