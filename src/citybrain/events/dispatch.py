"""Who handles an event: category × area rules, then the category's default, with the reason.

A ``DispatchRule`` matches an event when each of its filled fields (small class, large class,
township) equals the event's. The most specific matching rule wins — small class counts more
than large class, which counts more than township — then the higher ``priority``, then the
older rule. A rule may send the event to the township office (镇/街道) of the event's township
instead of a named department. Without a matching rule the category decides: its township
office when ``township_handles`` is set, else its default department.
"""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from citybrain.core.errors import Invalid
from citybrain.geo import service as geo_service
from citybrain.org import service as org_service
from citybrain.org.models import Department

from .models import DispatchRule, Event, EventCategory


def specificity(rule: DispatchRule) -> int:
    return (4 if rule.category_code else 0) + (2 if rule.major_code else 0) + (1 if rule.township_code else 0)


def matching_rules(db: Session, *, category: EventCategory, township_code: str | None) -> list[DispatchRule]:
    """Active rules that match, best first."""
    q = select(DispatchRule).where(
        DispatchRule.active.is_(True),
        or_(DispatchRule.category_code.is_(None), DispatchRule.category_code == category.code),
        or_(DispatchRule.major_code.is_(None), DispatchRule.major_code == category.major_code),
        or_(DispatchRule.township_code.is_(None), DispatchRule.township_code == township_code),
    )
    rules = list(db.scalars(q))
    return sorted(rules, key=lambda r: (-specificity(r), -r.priority, r.id))


def township_office(db: Session, *, township_code: str | None) -> Department | None:
    if not township_code:
        return None
    for dept in org_service.list_departments(db, include_inactive=False):
        if dept.division_code == township_code:
            return dept
    return None


def _township_name(db: Session, code: str | None) -> str:
    if not code:
        return "an unknown township"
    try:
        # From the cached map index: loading the Division row would read its whole polygon.
        return geo_service.division_name(db, code=code) or code
    except Exception:  # noqa: BLE001 - a missing division only makes the reason less readable
        return code


def _department(db: Session, code: str) -> Department | None:
    try:
        dept = org_service.get_department_by_code(db, code=code)
    except Exception:  # noqa: BLE001 - NotFound: the rule names a department that is gone
        return None
    return dept if dept.active else None


def choose_department(db: Session, *, event: Event) -> tuple[Department, str]:
    """The responsible department and a sentence saying why ("why this department")."""
    category = db.get(EventCategory, event.category_code)
    if category is None:
        raise Invalid(f"event category {event.category_code!r} does not exist")
    where = _township_name(db, event.township_code)
    for rule in matching_rules(db, category=category, township_code=event.township_code):
        dept = (township_office(db, township_code=event.township_code) if rule.to_township_office
                else _department(db, rule.department_code))
        if dept is not None:
            scope = f" in {where}" if rule.township_code else ""
            what = category.name if rule.category_code else (
                category.major_name if rule.major_code else "any event")
            note = f" ({rule.note})" if rule.note else ""
            return dept, f"rule #{rule.id}: {what}{scope} → {dept.name}{note}"
    if category.township_handles:
        dept = township_office(db, township_code=event.township_code)
        if dept is not None:
            return dept, f"category default: {category.name} is handled by the township office of {where} → {dept.name}"
    dept = _department(db, category.department_code)
    if dept is None:
        raise Invalid(f"no active department for {category.name}: the category names "
                      f"{category.department_code!r} and no dispatch rule matches")
    return dept, f"category default: {category.name} → {dept.name}"
