"""Alarm rules stored in ``iot_rule``: loading them for the engine, and editing them."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import AlarmRule
from .rules import InvalidRule, Rule, parse_rule

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
