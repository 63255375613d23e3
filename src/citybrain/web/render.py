"""Rendering pages: language, navigation by role, CSRF token and cookies in one place."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from citybrain.core.actor import Actor
from citybrain.core.auth import CSRF_COOKIE, csrf_token, resolve_actor
from citybrain.core.i18n import LANG_COOKIE, html_lang, pick_language, translations


@dataclass(frozen=True)
class NavItem:
    path: str
    label: str  # English msgid
    permission: str | None  # None: every logged-in user
    staff_only: bool = False  # hidden from citizens even when they hold the permission


# Domains append their entries here when they land; each role sees only what it may use.
NAV: list[NavItem] = [
    NavItem("/", "Overview", None),
    NavItem("/map", "District map", "geo:read"),
    NavItem("/events", "Events", "events:read"),
    NavItem("/inbox", "Inbox", "events:handle"),
    NavItem("/tasks", "Verification tasks", "events:verify"),
    NavItem("/evaluation", "Evaluation", "events:read"),
    NavItem("/cockpit", "Cockpit", "cockpit:read"),
    NavItem("/indicators", "Plan indicators", "indicators:read"),
    NavItem("/iot/devices", "IoT devices", "iot:read", staff_only=True),
    NavItem("/data", "Data pool", "data:read", staff_only=True),
    NavItem("/events/new", "New report", "events:report", staff_only=True),
    NavItem("/admin/departments", "Departments", "org:read"),
    NavItem("/admin/users", "Users", "org:read"),
    NavItem("/admin/categories", "Event catalog", "events:admin"),
    NavItem("/admin/audit", "Audit log", "audit:read"),
    NavItem("/account/tokens", "API tokens", "token:write"),
]


# English msgids for enumerations shown in the UI.
ROLE_LABELS = {
    "admin": "Administrator",
    "leader": "Leader",
    "staff": "Department staff",
    "grid_worker": "Grid worker",
    "citizen": "Citizen",
}
KIND_LABELS = {"bureau": "Bureau", "township": "Township office", "other": "Other"}


def _formatter(gettext: Callable[[str], str]) -> Callable[..., str]:
    def translate(message: str, **values: Any) -> str:
        text = gettext(message)
        return text % values if values else text

    return translate


def make_environment() -> Environment:
    path = str(resources.files("citybrain.web").joinpath("templates"))
    env = Environment(
        loader=FileSystemLoader(path),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env


def language(request: Request) -> str:
    return pick_language(request.cookies.get(LANG_COOKIE), request.app.state.settings.default_language)


def gettext_for(request: Request):  # noqa: ANN201 - returns the bound gettext function
    return translations(language(request)).gettext


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    actor: Actor | None = None,
) -> HTMLResponse:
    env: Environment = request.app.state.jinja
    lang = language(request)
    trans = translations(lang)
    if actor is None:
        actor = getattr(request.state, "actor", None) or None
    token = csrf_token(request)
    ctx = {
        "request": request,
        "actor": actor,
        "nav": [n for n in NAV if actor and (n.permission is None or actor.can(n.permission))
                and not (n.staff_only and actor.role == "citizen")],
        "csrf_token": token,
        "lang": lang,
        "html_lang": html_lang(lang),
        "path": request.url.path,
        "_": _formatter(trans.gettext),
        "role_labels": ROLE_LABELS,
        "kind_labels": KIND_LABELS,
        "ngettext": trans.ngettext,
    }
    ctx.update(context or {})
    tpl = env.get_template(template)
    response = HTMLResponse(tpl.render(ctx), status_code=status_code)
    new_seed = getattr(request.state, "new_csrf_seed", None)
    if new_seed:
        settings = request.app.state.settings
        response.set_cookie(
            CSRF_COOKIE, request.app.state.signer.sign(new_seed), httponly=True,
            samesite="lax", secure=settings.cookie_secure, path="/",
        )
    return response


__all__ = ["NAV", "NavItem", "gettext_for", "make_environment", "render", "resolve_actor"]
