"""Admin pages of the IoT hub: bulk device import, products (thing models) and alarm rules.

Every change goes through the same service functions as the JSON API (``device_import``,
``registry.update_product``, ``rules_store``); a refused form is shown again with the reason
and nothing saved (each change runs in a savepoint that is rolled back on error).
"""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData, UploadFile

from citybrain.core.actor import Actor
from citybrain.core.auth import page_require
from citybrain.core.db import DbSession
from citybrain.core.errors import DomainError, Invalid, NotFound
from citybrain.events import catalog as events_catalog
from citybrain.web.render import gettext_for, render

from . import device_import, registry, rules_store
from .models import Product as ProductRow
from .rules import Kind, Severity
from .schemas import product_dict

router = APIRouter(include_in_schema=False)
Reader = Annotated[Actor, Depends(page_require("iot:read"))]
Manager = Annotated[Actor, Depends(page_require("iot:manage"))]
Admin = Annotated[Actor, Depends(page_require("iot:admin"))]

MAX_IMPORT_BYTES = 20 * 1024 * 1024


def N_(msgid: str) -> str:  # noqa: N802 - marks an English msgid; translated in templates
    return msgid


KIND_LABELS = {"threshold": N_("Threshold"), "range": N_("Range"), "rate_of_change": N_("Rate of change"),
               "held_for": N_("Held for"), "no_data": N_("No data")}
SEVERITY_LABELS = {"critical": N_("Critical"), "major": N_("Major"), "minor": N_("Minor"), "warning": N_("Warning")}
ROW_STATUS_LABELS = {"created": N_("Created"), "valid": N_("Would be created"), "refused": N_("Refused")}
# Form fields each rule kind reads; the others are ignored so a switch of kind leaves no stray params.
KIND_PARAMS = {
    "threshold": ("op", "value"),
    "range": ("min", "max", "mode"),
    "rate_of_change": ("value", "window_minutes", "direction"),
    "held_for": ("op", "value", "min", "max", "mode", "minutes"),
    "no_data": ("minutes",),
}
PARAM_FIELDS = ("op", "value", "min", "max", "mode", "minutes", "window_minutes", "direction")
_TEXT_PARAMS = ("op", "mode", "direction")


def _error(request: Request, exc: DomainError) -> str:
    return gettext_for(request)("Nothing was saved: %(reason)s") % {"reason": exc.message}


# --- import ------------------------------------------------------------------------------------------


@router.get("/iot/import")
def import_page(request: Request, actor: Manager) -> Response:
    return render(request, "iot/admin_import.html", _import_context(), actor=actor)


def _import_context(**extra: Any) -> dict[str, Any]:
    return {"columns": device_import.COLUMNS, "required": device_import.REQUIRED,
            "max_rows": device_import.MAX_ROWS, "default_crs": device_import.DEFAULT_CRS,
            "row_status_labels": ROW_STATUS_LABELS, "result": None, "error": "", **extra}


async def posted_form(request: Request) -> FormData:
    """The posted form, read on the event loop so the endpoints stay synchronous: their database
    work then runs in the thread pool, like every other page's."""
    return await request.form()


Posted = Annotated[FormData, Depends(posted_form)]


def fields(form: FormData) -> dict[str, str]:
    return {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}


@router.post("/iot/import")
def import_upload(request: Request, db: DbSession, actor: Manager, form: Posted) -> Response:
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        error = gettext_for(request)("Choose a CSV or XLSX file to import.")
        return render(request, "iot/admin_import.html", _import_context(error=error), actor=actor, status_code=422)
    data = upload.file.read(MAX_IMPORT_BYTES + 1)
    return _import(request, db, actor, data, upload.filename, form.get("dry_run") == "1")


def _import(request: Request, db: Session, actor: Actor, data: bytes, filename: str, dry_run: bool) -> Response:
    try:
        if len(data) > MAX_IMPORT_BYTES:
            raise Invalid(f"the file is larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MB")
        with db.begin_nested():
            result = device_import.import_devices(db, data=data, filename=filename, actor=actor, dry_run=dry_run)
    except DomainError as exc:
        error = gettext_for(request)("The file was refused: %(reason)s") % {"reason": exc.message}
        return render(request, "iot/admin_import.html", _import_context(error=error, filename=filename),
                      actor=actor, status_code=422)
    credentials = ""
    if result.credentials:
        # Shown on this page only: the secrets are stored nowhere but as hashes.
        credentials = "data:text/csv;charset=utf-8;base64," + base64.b64encode(
            ("\ufeff" + result.credentials_csv()).encode()).decode()
    return render(request, "iot/admin_import.html", _import_context(
        result=result, filename=filename, credentials_href=credentials,
        counts={s: result.count(s) for s in ROW_STATUS_LABELS}), actor=actor)


# --- products ----------------------------------------------------------------------------------------


@router.get("/iot/products")
def products_page(request: Request, db: DbSession, actor: Reader) -> Response:
    parsed = registry.products(db)
    rows = db.scalars(select(ProductRow).order_by(ProductRow.identifier)).all()
    return render(request, "iot/admin_products.html", {"rows": rows, "products": parsed}, actor=actor)


def _product_page(request: Request, db: Session, actor: Actor, identifier: str, *, definition: str | None = None,
                  error: str = "", status_code: int = 200, saved: bool = False) -> Response:
    row = db.get(ProductRow, identifier)
    if row is None:
        raise NotFound(f"no product {identifier!r}")
    product = registry.products(db)[identifier]
    return render(request, "iot/admin_product.html", {
        "row": row, "product": product_dict(product), "definition": row.definition if definition is None
        else definition, "error": error, "saved": saved, "can_edit": actor.can("iot:admin"),
        "rules": rules_store.list_rules(db, product=identifier)}, actor=actor, status_code=status_code)


@router.get("/iot/products/{identifier}")
def product_page(request: Request, db: DbSession, actor: Reader, identifier: str, saved: str = "") -> Response:
    return _product_page(request, db, actor, identifier, saved=saved == "1")


@router.post("/iot/products/{identifier}")
def product_update(request: Request, db: DbSession, actor: Admin, form: Posted, identifier: str) -> Response:
    definition = form.get("definition")
    definition = definition.replace("\r\n", "\n") if isinstance(definition, str) else ""
    try:
        with db.begin_nested():
            registry.update_product(db, identifier=identifier, definition=definition, actor=actor)
    except DomainError as exc:
        db.expire_all()
        return _product_page(request, db, actor, identifier, definition=definition, error=_error(request, exc),
                             status_code=422)
    return RedirectResponse(f"/iot/products/{identifier}?saved=1", status_code=303)


# --- rules -------------------------------------------------------------------------------------------


@router.get("/iot/rules")
def rules_page(request: Request, db: DbSession, actor: Reader, product: str = "", error: str = "") -> Response:
    return render(request, "iot/admin_rules.html", {
        "rules": rules_store.list_rules(db, product=product or None), "products": registry.products(db),
        "query": {"product": product}, "kind_labels": KIND_LABELS, "severity_labels": SEVERITY_LABELS,
        "can_edit": actor.can("iot:admin"), "error": error}, actor=actor)


def _rule_form_page(request: Request, db: Session, actor: Actor, form: dict[str, Any], *, rule_id: str | None,
                    error: str = "", status_code: int = 200) -> Response:
    return render(request, "iot/admin_rule_edit.html", {
        "form": form, "rule_id": rule_id, "error": error, "products": registry.products(db),
        "kind_labels": KIND_LABELS, "severity_labels": SEVERITY_LABELS, "kinds": list(Kind),
        "severities": list(Severity), "categories": events_catalog.list_categories(db)},
        actor=actor, status_code=status_code)


def form_of(row: Any) -> dict[str, Any]:
    """A stored rule in the shape the form posts."""
    data = rules_store.rule_dict(row)
    form = {k: ("" if v is None else v) for k, v in data.items() if k != "params"}
    form["dispatch"] = "1" if row.dispatch else ""
    form["enabled"] = "1" if row.enabled else ""
    for key in PARAM_FIELDS:
        value = (row.params or {}).get(key)
        form[key] = "" if value is None else _param_text(value)
    return form


def _param_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _param_value(text: str) -> Any:
    """A form value as the rule wants it: a number when it reads as one, true/false, else the text."""
    if text in ("true", "false"):
        return text == "true"
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() and "." not in text and "e" not in text.lower() else number


def rule_from_form(form: dict[str, str]) -> dict[str, Any]:
    """Form fields → the dict ``rules_store`` validates; only the fields of the chosen kind are read."""
    kind = form.get("kind", "")
    params: dict[str, Any] = {}
    for key in KIND_PARAMS.get(kind, ()):
        text = form.get(key, "").strip()
        if text:
            params[key] = text if key in _TEXT_PARAMS else _param_value(text)
    return {"id": form.get("id", "").strip(), "name": form.get("name", "").strip(),
            "product": form.get("product", "").strip(), "device": form.get("device", "").strip() or None,
            "property": form.get("property", "").strip(), "kind": kind, "params": params,
            "severity": form.get("severity", "major"), "dispatch": form.get("dispatch") == "1",
            "category_code": form.get("category_code", "").strip() or None, "enabled": form.get("enabled") == "1"}


@router.get("/iot/rules/new")
def rule_new_page(request: Request, db: DbSession, actor: Admin, product: str = "") -> Response:
    form = {"product": product, "kind": "threshold", "severity": "major", "enabled": "1", "op": ">"}
    return _rule_form_page(request, db, actor, form, rule_id=None)


@router.post("/iot/rules/new")
def rule_create(request: Request, db: DbSession, actor: Admin, posted: Posted) -> Response:
    form = fields(posted)
    try:
        with db.begin_nested():
            row = rules_store.create_rule(db, data=rule_from_form(form), actor=actor)
    except DomainError as exc:
        return _rule_form_page(request, db, actor, form, rule_id=None, error=_error(request, exc), status_code=422)
    return RedirectResponse(f"/iot/rules?product={row.product}", status_code=303)


@router.get("/iot/rules/{rule_id}")
def rule_edit_page(request: Request, db: DbSession, actor: Admin, rule_id: str) -> Response:
    return _rule_form_page(request, db, actor, form_of(rules_store.get_rule(db, rule_id)), rule_id=rule_id)


@router.post("/iot/rules/{rule_id}")
def rule_update(request: Request, db: DbSession, actor: Admin, posted: Posted, rule_id: str) -> Response:
    form = fields(posted)
    rules_store.get_rule(db, rule_id)  # 404 before anything else
    try:
        with db.begin_nested():
            row = rules_store.update_rule(db, rule_id=rule_id, data=rule_from_form(form) | {"id": rule_id},
                                          actor=actor)
    except DomainError as exc:
        db.expire_all()
        return _rule_form_page(request, db, actor, form | {"id": rule_id}, rule_id=rule_id,
                               error=_error(request, exc), status_code=422)
    return RedirectResponse(f"/iot/rules?product={row.product}", status_code=303)


@router.post("/iot/rules/{rule_id}/{action}")
def rule_action(request: Request, db: DbSession, actor: Admin, rule_id: str, action: str) -> Response:
    if action not in ("enable", "disable", "delete"):
        raise NotFound(f"no action {action!r}")
    row = rules_store.get_rule(db, rule_id)
    product = row.product
    try:
        with db.begin_nested():
            if action == "delete":
                rules_store.delete_rule(db, rule_id=rule_id, actor=actor)
            else:
                rules_store.set_enabled(db, rule_id=rule_id, enabled=action == "enable", actor=actor)
    except DomainError as exc:
        db.expire_all()
        return render(request, "iot/admin_rules.html", {
            "rules": rules_store.list_rules(db, product=product), "products": registry.products(db),
            "query": {"product": product}, "kind_labels": KIND_LABELS, "severity_labels": SEVERITY_LABELS,
            "can_edit": True, "error": _error(request, exc)}, actor=actor, status_code=422)
    return RedirectResponse(f"/iot/rules?product={product}", status_code=303)
