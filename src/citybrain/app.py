"""Application factory: engine, sessions, templates, routers, static files, error mapping."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from citybrain import __version__
from citybrain.cockpit.live import Aggregator
from citybrain.config import Settings
from citybrain.core.api import build_api_router
from citybrain.core.auth import LoginRequired
from citybrain.core.db import make_engine, make_sessionmaker
from citybrain.core.errors import DomainError
from citybrain.core.limits import BodySizeLimit, RateLimiter
from citybrain.core.logging import setup_logging
from citybrain.core.observability import AccessLogMiddleware, Metrics
from citybrain.core.observability import router as ops_router
from citybrain.core.pages import build_page_router
from citybrain.core.security import CookieSigner
from citybrain.data import api_loads as data_api_loads
from citybrain.data import ckan_api as data_ckan_api
from citybrain.events import flows as events_flows
from citybrain.events import open311
from citybrain.events import supervision as events_supervision
from citybrain.iot import ngsi_api
from citybrain.iot.runtime import IngestCollector, IotRuntime
from citybrain.web.pages import login_redirect
from citybrain.web.render import gettext_for, make_environment, render

log = logging.getLogger("citybrain")


def _is_api(request: Request) -> bool:
    return request.url.path.startswith(("/api/", "/open311/", "/ngsi-ld/"))


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Startup hooks: domains subscribe to the in-process bus while the app runs. The session
    # factory is looked up per delivery so a replaced sessionmaker (tests) is honoured.
    stop_events = events_flows.install(lambda: app.state.sessionmaker())
    # Time-limit supervision (督办) every minute, each round in its own session and transaction.
    stop_supervision = events_supervision.start(lambda: app.state.sessionmaker())
    # The cockpit's one aggregation, shared by every screen (recomputes on event.changed).
    app.state.cockpit = Aggregator(lambda: app.state.sessionmaker())
    stop_cockpit = app.state.cockpit.start()
    # The IoT hub: embedded MQTT broker, ingestion worker, outbox relay, rollups (if enabled).
    app.state.iot.start()
    try:
        yield
    finally:
        app.state.iot.stop()
        await stop_cockpit()
        await stop_supervision()
        stop_events()


def app_from_environment() -> FastAPI:
    """Factory for uvicorn worker processes (``CITYBRAIN_WORKERS`` > 1): the parent passes
    every setting down in ``CITYBRAIN_*`` environment variables (see ``cli._serve``)."""
    from citybrain.config import load_settings

    return create_app(load_settings())


def create_app(settings: Settings, *, engine=None) -> FastAPI:  # noqa: ANN001
    settings.check_serving()
    setup_logging(settings.log_level, settings.log_format)
    app = FastAPI(
        title="citybrain", version=__version__, docs_url=None, redoc_url=None, lifespan=_lifespan,
        description="District City Brain (城市智慧大脑区级中枢) API. Authenticate with "
        "`POST /api/auth/token` (OAuth2 password flow) or a token from `citybrain token create`.",
    )
    app.state.settings = settings
    app.state.engine = engine or make_engine(settings.effective_database_url)
    app.state.sessionmaker = make_sessionmaker(app.state.engine)
    app.state.signer = CookieSigner(settings.secret_key)
    app.state.jinja = make_environment()
    app.state.metrics = Metrics()
    app.add_middleware(AccessLogMiddleware)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_mb * 1024 * 1024,
                       path_limits=data_api_loads.upload_path_limits(settings))
    app.state.public_report_limiter = RateLimiter(settings.public_reports_per_hour, 3600)
    app.state.iot = IotRuntime(settings, lambda: app.state.sessionmaker())
    app.state.metrics.registry.register(IngestCollector(app.state.iot))

    static_dir = Path(str(resources.files("citybrain.web").joinpath("static")))
    app.mount("/static", StaticFiles(directory=static_dir, check_dir=True), name="static")
    app.include_router(ops_router)
    app.include_router(build_api_router())
    app.include_router(open311.router, prefix="/open311/v2", tags=["open311"])
    # CKAN Action API (/api/3/action/*, /api/action/*) and the DCAT-AP catalog: full paths inside.
    app.include_router(data_ckan_api.router, tags=["ckan"])
    app.include_router(ngsi_api.router, prefix="/ngsi-ld/v1", tags=["ngsi-ld"])
    app.include_router(build_page_router())

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        # Swagger UI from our own static files: nothing loads from a CDN.
        return get_swagger_ui_html(
            openapi_url="/openapi.json", title="citybrain API",
            swagger_js_url="/static/vendor/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url="/static/vendor/swagger-ui/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg",
        )

    _install_error_handlers(app)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, _exc: LoginRequired) -> Response:
        return login_redirect(request)

    @app.exception_handler(DomainError)
    async def _domain_error(request: Request, exc: DomainError) -> Response:
        headers = {}
        if exc.status_code == 401:
            headers["WWW-Authenticate"] = "Bearer"
        if "retry_after_s" in exc.details:
            headers["Retry-After"] = str(exc.details["retry_after_s"])
        if _is_api(request) or request.headers.get("authorization"):
            body = {"detail": exc.message, "code": exc.code}
            return JSONResponse(body, status_code=exc.status_code, headers=headers)
        _ = gettext_for(request)
        titles = {403: _("Not allowed"), 404: _("Not found"), 409: _("Conflict")}
        return render(request, "error.html", {"title": titles.get(exc.status_code, _("Request refused")),
                      "message": exc.message}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
                  for e in exc.errors()]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"] if p not in ("body", "query", "path"))
        return JSONResponse({"detail": f"{where}: {first['msg']}" if where else first["msg"],
                             "code": "invalid", "errors": errors}, status_code=422)
