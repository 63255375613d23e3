"""Alarm rules stored in ``iot_rule``: loading them for the engine, and editing them."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citybrain.core import audit, clock
from citybrain.core.actor import Actor
from citybrain.core.errors import Conflict, NotFound
from citybrain.events import catalog as events_catalog

from . import registry
from .models import AlarmRecord, AlarmRule, Device
from .rules import ANY_PROPERTY, InvalidRule, Kind, Rule, parse_rule
from .thingmodel import Property, PropertyType

log = logging.getLogger("citybrain.iot.rules")


def rule_dict(row: AlarmRule) -> dict:
    return {"id": row.id, "name": row.name, "product": row.product, "device": row.device_key,
            "property": row.property, "kind": row.kind, "params": dict(row.params or {}),
            "severity": row.severity, "dispatch": row.dispatch, "category_code": row.category_code}


def load_rules(db: Session) -> list[Rule]:
    """Every enabled rule, parsed; a stored rule that no longer parses is logged and skipped."""
    rules = []
    for row in db.scalars(select(AlarmRule).where(AlarmRule.enabled.is_(True)).order_by(AlarmRule.id)):
        try:
            rules.append(parse_rule(rule_dict(row)))
        except InvalidRule as exc:
            log.error("stored rule %s skipped: %s", row.id, exc)
    return rules


# --- editing (admins, through the API and the rules page) --------------------------------------

RULE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_NUMERIC = (PropertyType.INT, PropertyType.FLOAT)
ACTIVE_ALARM = ("active_unack", "active_ack")


def list_rules(db: Session, *, product: str | None = None) -> list[AlarmRule]:
    query = select(AlarmRule).order_by(AlarmRule.product, AlarmRule.id)
    if product:
        query = query.where(AlarmRule.product == product)
    return list(db.scalars(query))


def get_rule(db: Session, rule_id: str) -> AlarmRule:
    row = db.get(AlarmRule, rule_id)
    if row is None:
        raise NotFound(f"no rule {rule_id!r}")
    return row


def _check_value(rule_id: str, prop: Property, value: Any) -> None:
    """An equality threshold must compare with a value the property can take."""
    kind = prop.type
    ok = (isinstance(value, bool) if kind is PropertyType.BOOL
          else isinstance(value, int | float) and not isinstance(value, bool) if kind in _NUMERIC
          else isinstance(value, str) and (kind is not PropertyType.ENUM or value in dict(prop.values)))
    if not ok:
        raise InvalidRule(f"rule {rule_id!r}: {value!r} is not a value {prop.identifier} ({kind.value}) can take")


def check_rule(db: Session, data: Mapping[str, Any]) -> Rule:
    """Parse a rule and check it against the registry and the event catalog; Invalid says why not."""
    rule_id = str(data.get("id") or "").strip()
    if rule_id and not RULE_ID_RE.match(rule_id):
        raise InvalidRule(f"rule id {rule_id!r} must be 1-64 letters, digits, '_', '.', '-'")
    rule = parse_rule(data)
    if len(rule.name) > 120:
        raise InvalidRule(f"rule {rule.id!r}: name must be at most 120 characters")
    product = registry.products(db).get(rule.product)
    if product is None:
        raise InvalidRule(f"rule {rule.id!r}: unknown product {rule.product!r}")
    if rule.property == ANY_PROPERTY:
        if rule.kind is not Kind.NO_DATA:
            raise InvalidRule(f"rule {rule.id!r}: property '*' (any message) is only for no_data rules")
    else:
        prop = product.get_property(rule.property)
        if prop is None:
            known = ", ".join(p.identifier for p in product.properties)
            raise InvalidRule(f"rule {rule.id!r}: product {rule.product!r} has no property {rule.property!r} "
                              f"(it has {known})")
        numeric = rule.kind in (Kind.RANGE, Kind.RATE_OF_CHANGE) or "min" in rule.params or (
            rule.params.get("op") in (">", ">=", "<", "<="))
        if numeric and prop.type not in _NUMERIC:
            raise InvalidRule(f"rule {rule.id!r}: {rule.kind.value} needs a number, but {rule.property} is "
                              f"{prop.type.value}")
        if rule.params.get("op") in ("==", "!="):
            _check_value(rule.id, prop, rule.params["value"])
    if rule.device is not None:
        device = db.scalar(select(Device).where(Device.key == rule.device))
        if device is None:
            raise InvalidRule(f"rule {rule.id!r}: no device {rule.device!r}")
        if device.product != rule.product:
            raise InvalidRule(f"rule {rule.id!r}: device {rule.device!r} is a {device.product}, "
                              f"not a {rule.product}")
    if rule.category_code is not None:
        try:
            category = events_catalog.get_category(db, code=rule.category_code)
        except NotFound:
            raise InvalidRule(f"rule {rule.id!r}: event category {rule.category_code!r} does not exist") from None
        if not category.active:
            raise InvalidRule(f"rule {rule.id!r}: event category {rule.category_code!r} is inactive")
    return rule


def _store(row: AlarmRule, rule: Rule, *, enabled: bool) -> None:
    row.name, row.product, row.device_key, row.property = rule.name, rule.product, rule.device, rule.property
    row.kind, row.params, row.severity = rule.kind.value, dict(rule.params), rule.severity.value
    row.dispatch, row.category_code, row.enabled = rule.dispatch, rule.category_code, enabled
    row.updated_at = clock.now()


def _snapshot(row: AlarmRule) -> dict[str, Any]:
    return rule_dict(row) | {"enabled": row.enabled}


def create_rule(db: Session, *, data: Mapping[str, Any], actor: Actor) -> AlarmRule:
    actor.check("iot:admin")
    rule = check_rule(db, data)
    if db.get(AlarmRule, rule.id) is not None:
        raise Conflict(f"rule {rule.id!r} already exists")
    row = AlarmRule(id=rule.id)
    _store(row, rule, enabled=bool(data.get("enabled", True)))
    db.add(row)
    db.flush()
    audit.record(db, actor=actor, action="iot.rule_created", object_type="iot_rule", object_id=row.id,
                 after=_snapshot(row))
    return row


def update_rule(db: Session, *, rule_id: str, data: Mapping[str, Any], actor: Actor) -> AlarmRule:
    """Replace a rule's definition; the id cannot change (create another rule instead)."""
    actor.check("iot:admin")
    row = get_rule(db, rule_id)
    if data.get("id") not in (None, "", rule_id):
        raise InvalidRule(f"the rule id cannot change ({rule_id!r} → {data['id']!r})")
    rule = check_rule(db, {**data, "id": rule_id})
    before = _snapshot(row)
    _store(row, rule, enabled=bool(data.get("enabled", row.enabled)))
    db.flush()
    audit.record(db, actor=actor, action="iot.rule_updated", object_type="iot_rule", object_id=rule_id,
                 before=before, after=_snapshot(row))
    return row


def set_enabled(db: Session, *, rule_id: str, enabled: bool, actor: Actor) -> AlarmRule:
    actor.check("iot:admin")
    row = get_rule(db, rule_id)
    if row.enabled == enabled:
        return row
    if enabled:
        check_rule(db, rule_dict(row))  # the product or catalog may have changed while it was off
    row.enabled, row.updated_at = enabled, clock.now()
    db.flush()
    audit.record(db, actor=actor, action="iot.rule_enabled" if enabled else "iot.rule_disabled",
                 object_type="iot_rule", object_id=rule_id, before={"enabled": not enabled},
                 after={"enabled": enabled})
    return row


def delete_rule(db: Session, *, rule_id: str, actor: Actor) -> None:
    """Delete a rule with no active alarm (clear them, or disable the rule, first)."""
    actor.check("iot:admin")
    row = get_rule(db, rule_id)
    active = db.scalar(select(func.count()).select_from(AlarmRecord).where(
        AlarmRecord.rule_id == rule_id, AlarmRecord.status.in_(ACTIVE_ALARM))) or 0
    if active:
        raise Conflict(f"rule {rule_id!r} has {active} active alarm(s); clear them or disable the rule instead")
    before = _snapshot(row)
    db.delete(row)
    db.flush()
    audit.record(db, actor=actor, action="iot.rule_deleted", object_type="iot_rule", object_id=rule_id,
                 before=before)
