"""Dispatch: category × area rules, most specific first, with the reason recorded."""

from __future__ import annotations

import pytest

from citybrain.core.errors import Invalid
from citybrain.events import dispatch, service
from citybrain.events.models import DispatchRule
from event_helpers import SILULU, WANGCUN, report  # noqa: F401


def rule(db, **fields) -> DispatchRule:
    row = DispatchRule(**{"department_code": "cityadmin", "to_township_office": False, "priority": 0,
                          "note": "", "active": True} | fields)
    db.add(row)
    db.flush()
    return row


def choose(db, **report_fields):
    event = report(db, who=None, **report_fields)
    dept, why = dispatch.choose_department(db, event=event)
    return dept.code, why


def test_without_rules_the_category_default_department_is_chosen(db, categories, frozen_clock):
    assert choose(db) == ("cityadmin", "category default: 测试暴露垃圾 → 区综合行政执法局")


def test_a_township_handled_category_goes_to_the_township_office(db, categories, frozen_clock):
    code, why = choose(db, category_code="TE0102", township=WANGCUN)
    assert code == "ts-wangcun"
    assert why == "category default: 测试道路不洁 is handled by the township office of 王村镇 → 王村镇人民政府"


def test_the_most_specific_rule_wins_and_says_why(db, categories, frozen_clock):
    rule(db, major_code="TE01", department_code="housing", priority=100)
    district = rule(db, category_code="TE0101", department_code="ecology")
    here = rule(db, category_code="TE0101", township_code=SILULU, to_township_office=True,
                department_code="-", note="街道包干")
    rule(db, category_code="TE0101", township_code=SILULU, department_code="water", active=False)
    assert choose(db) == ("ts-silulu", f"rule #{here.id}: 测试暴露垃圾 in 丝绸路街道 → 丝绸路街道办事处 (街道包干)")
    assert choose(db, township=WANGCUN) == ("ecology", f"rule #{district.id}: 测试暴露垃圾 → 市生态环境局周村分局")
    code, why = choose(db, category_code="TE0102", township=WANGCUN)
    assert code == "housing" and why.startswith("rule #") and "大类TE01" in why


def test_priority_breaks_ties_between_equally_specific_rules(db, categories, frozen_clock):
    rule(db, category_code="TE0101", department_code="ecology", priority=1)
    best = rule(db, category_code="TE0101", department_code="water", priority=5)
    code, why = choose(db)
    assert code == "water" and why.startswith(f"rule #{best.id}:")


def test_a_rule_naming_a_missing_department_falls_through(db, categories, frozen_clock):
    rule(db, category_code="TE0101", department_code="no-such-dept")
    assert choose(db)[0] == "cityadmin"


def test_no_department_at_all_is_an_error_and_auto_dispatch_leaves_it_registered(
        db, categories, frozen_clock, admin_actor):
    categories["TE0101"].department_code = "gone"
    db.flush()
    event = report(db, who=None)
    with pytest.raises(Invalid, match="no active department"):
        dispatch.choose_department(db, event=event)
    service.transition(db, event_id=event.id, action="accept", actor=admin_actor)
    assert event.status == "registered" and event.department_id is None
    assert "not possible" in service.timeline(db, event_id=event.id)[-1].note


def test_auto_dispatch_records_the_reason_on_the_event_and_the_timeline(db, categories, frozen_clock,
                                                                         admin_actor):
    here = rule(db, category_code="TE0101", township_code=SILULU, to_township_office=True, department_code="-")
    event = report(db, who=None)
    service.transition(db, event_id=event.id, action="accept", actor=admin_actor)
    assert event.dispatch_reason == f"rule #{here.id}: 测试暴露垃圾 in 丝绸路街道 → 丝绸路街道办事处"
    log = service.timeline(db, event_id=event.id)[-1]
    assert log.action == "dispatch" and log.data["department"] == "ts-silulu"
    assert log.data["dispatch_reason"] == event.dispatch_reason
