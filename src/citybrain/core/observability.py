"""Health, readiness and Prometheus metrics, plus the access-log middleware."""

from __future__ import annotations

import logging
import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from sqlalchemy import text
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

log = logging.getLogger("citybrain.http")
router = APIRouter(tags=["ops"])


class Metrics:
    """One registry per app, so several apps (tests) never collide on global collectors."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("citybrain_http_requests_total", "HTTP requests",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("citybrain_http_request_duration_seconds", "HTTP request duration",
                                 ["method", "route"], registry=self.registry)
        self.logins = Counter("citybrain_login_attempts_total", "Login attempts by outcome",
                              ["outcome"], registry=self.registry)


def route_template(request: Request) -> str:
    """The full route template (``/api/geo/grids/{code}``) so metrics do not explode per id.

    Included routers only know their own part of the path, so the mount prefix is recovered
    from the request path: the shortest prefix after which the route's pattern matches.
    """
    route = request.scope.get("route")
    regex, fmt = getattr(route, "path_regex", None), getattr(route, "path_format", None)
    if regex is None or fmt is None:
        return "unmatched"
    path = request.scope.get("path", "")
    for i, ch in enumerate(path):
        if ch == "/" and regex.match(path[i:]):
            return path[:i] + fmt
    return fmt


class AccessLogMiddleware(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        start = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            elapsed = time.perf_counter() - start
            template = route_template(request)
            metrics: Metrics = request.app.state.metrics
            metrics.requests.labels(request.method, template, str(status)).inc()
            metrics.latency.labels(request.method, template).observe(elapsed)
            log.info("request", extra={"method": request.method, "path": request.url.path,
                                       "status": status, "ms": round(elapsed * 1000, 1)})


@router.get("/healthz", summary="Process is up")
def healthz() -> dict[str, str]:
    # Unauthenticated by design: load balancers and supervisors call it.
    return {"status": "ok"}


@router.get("/readyz", summary="Database is reachable")
def readyz(request: Request) -> JSONResponse:
    # Unauthenticated by design: it reveals only whether the database answers.
    try:
        with request.app.state.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        return JSONResponse({"status": "unavailable", "database": type(exc).__name__}, status_code=503)
    return JSONResponse({"status": "ok", "database": request.app.state.engine.dialect.name})


@router.get("/metrics", summary="Prometheus metrics")
def metrics(request: Request) -> Response:
    # Unauthenticated like most exporters; bind to an internal interface in production.
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
