"""The event workflow as data: one table of actions and one function that applies a row of it.

GB/T 30428: 信息收集 → 案卷建立 → 任务派遣 → 任务处理 → 处理反馈 → 核查结案. Each action names the
statuses it may start from, the status it leads to, the permission it needs, whose events the
actor may touch, the data it requires and the time-limit stage it enters. Side effects that are
more than a status change (choosing a department, counting rework, moving a deadline) are small
functions keyed by action. ``apply`` checks everything before it changes anything, so a refused
action leaves the event exactly as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from citybrain.core.actor import Actor
from citybrain.core.errors import Forbidden, Invalid
from citybrain.org import service as org_service

from .enums import Stage, Status, TimeUnit
from .models import Event, EventAssignment, EventCategory

S = Status


class InvalidTransition(Invalid):
    """The action is not possible from the event's current status."""


class _Keep:
    def __repr__(self) -> str:
        return "KEEP"


KEEP = _Keep()  # status or stage unchanged
RESTORE = "restore"  # status taken from the suspension record (resume)

# Who may act, beyond holding the permission:
ANYONE = "any"  # permission is enough (command centre actions)
OWN_DEPARTMENT = "department"  # staff of the event's lead department (actor.check_department)
VERIFIER = "verifier"  # grid workers of the event's township; the command centre anywhere


@dataclass(frozen=True)
class Action:
    name: str
    sources: frozenset[Status]
    target: Status | _Keep | str
    permission: str
    stage: Stage | None | _Keep
    scope: str = ANYONE
    needs: tuple[str, ...] = ()
    label: str = ""


def _a(name: str, sources: set[Status], target: Status | _Keep | str, permission: str,
       stage: Stage | None | _Keep, *, scope: str = ANYONE, needs: tuple[str, ...] = (),
       label: str = "") -> Action:
    return Action(name, frozenset(sources), target, permission, stage, scope, needs, label)


_WORKING = {S.DISPATCHED, S.IN_PROGRESS}
_SUSPENDABLE = {S.ACCEPTED, S.REGISTERED, S.DISPATCHED, S.IN_PROGRESS}
CMD, HANDLE, VERIFY = "events:command", "events:handle", "events:verify"

ACTIONS: dict[str, Action] = {a.name: a for a in [
    _a("accept", {S.REPORTED}, S.ACCEPTED, CMD, KEEP, label="受理"),
    _a("reject", {S.REPORTED}, S.NOT_ACCEPTED, CMD, None, needs=("reason",), label="不予受理"),
    _a("locate", {S.REPORTED, S.ACCEPTED, S.REGISTERED}, KEEP, CMD, KEEP, needs=("point",),
       label="人工定位"),
    _a("register", {S.ACCEPTED}, S.REGISTERED, CMD, Stage.DISPATCH, label="立案"),
    _a("dispatch", {S.REGISTERED}, S.DISPATCHED, CMD, Stage.HANDLE, label="派遣"),
    _a("reassign", _WORKING, S.DISPATCHED, CMD, Stage.HANDLE, needs=("reason", "department"),
       label="改派"),
    _a("return", {S.DISPATCHED}, S.REGISTERED, HANDLE, Stage.DISPATCH, scope=OWN_DEPARTMENT,
       needs=("reason",), label="退回"),
    _a("assist", _WORKING, KEEP, CMD, KEEP, needs=("departments",), label="协办"),
    _a("start", {S.DISPATCHED}, S.IN_PROGRESS, HANDLE, KEEP, scope=OWN_DEPARTMENT, label="开始处置"),
    _a("handle", _WORKING, S.HANDLED, HANDLE, Stage.VERIFY, scope=OWN_DEPARTMENT,
       needs=("result",), label="处置完成"),
    _a("verify_pass", {S.HANDLED}, S.VERIFIED, VERIFY, Stage.CLOSE, scope=VERIFIER, label="核查通过"),
    _a("verify_fail", {S.HANDLED}, S.DISPATCHED, VERIFY, Stage.HANDLE, scope=VERIFIER,
       needs=("reason",), label="核查不通过（返工）"),
    _a("close", {S.VERIFIED}, S.CLOSED, CMD, None, label="结案"),
    _a("request_extension", _WORKING, KEEP, HANDLE, KEEP, scope=OWN_DEPARTMENT,
       needs=("reason", "extension"), label="申请延期"),
    _a("approve_extension", _WORKING, KEEP, CMD, KEEP, needs=("pending_extension",), label="批准延期"),
    _a("refuse_extension", _WORKING, KEEP, CMD, KEEP, needs=("reason", "pending_extension"),
       label="驳回延期"),
    _a("suspend", _SUSPENDABLE, S.SUSPENDED, CMD, None, needs=("reason",), label="挂账"),
    _a("resume", {S.SUSPENDED}, RESTORE, CMD, KEEP, label="恢复"),
]}


def allowed_actions(status: str) -> list[str]:
    return [name for name, a in ACTIONS.items() if status in a.sources]


@dataclass
class Context:
    """Everything an effect needs; ``log_data`` ends up in the timeline entry."""

    db: Session
    event: Event
    category: EventCategory
    actor: Actor
    now: datetime
    reason: str
    data: dict[str, Any]
    log_data: dict[str, Any] = field(default_factory=dict)
    # (department, reason) already chosen by the rules for this event (automatic dispatch).
    choice: tuple[Any, str] | None = None


# --- checks (before any change) -------------------------------------------------------------


def check(db: Session, *, event: Event, action: str, actor: Actor, reason: str, data: dict[str, Any]) -> Action:
    step = ACTIONS.get(action)
    if step is None:
        raise Invalid(f"unknown action {action!r}; actions: {', '.join(ACTIONS)}")
    actor.check(step.permission)
    if event.status not in step.sources:
        allowed = ", ".join(allowed_actions(event.status)) or "none (final status)"
        raise InvalidTransition(
            f"cannot {action} an event that is {event.status}; allowed now: {allowed}",
            status=event.status, action=action)
    _check_scope(db, step, event, actor)
    for need in step.needs:
        _check_need(db, need, event, reason, data)
    return step


def _check_scope(db: Session, step: Action, event: Event, actor: Actor) -> None:
    if step.scope == OWN_DEPARTMENT:
        actor.check_department(event.department_id)
    elif step.scope == VERIFIER and not actor.sees_all_departments:
        dept = org_service.get_department(db, department_id=actor.department_id) if actor.department_id else None
        if dept is None or not dept.division_code or dept.division_code != event.township_code:
            raise Forbidden("only grid workers of the event's township may verify it")


def _check_need(db: Session, need: str, event: Event, reason: str, data: dict[str, Any]) -> None:
    if need == "reason" and not reason.strip():
        raise Invalid("a reason is required for this action")
    elif need == "result" and not str(data.get("result") or "").strip():
        raise Invalid("the handling result is required")
    elif need == "department":
        if not data.get("department_code"):
            raise Invalid("department_code is required")
        _active_department(db, data["department_code"])
    elif need == "departments":
        codes = data.get("department_codes") or []
        if not codes:
            raise Invalid("department_codes (the assisting departments) are required")
        for code in codes:
            if _active_department(db, code).id == event.department_id:
                raise Invalid(f"{code} is already the lead department")
    elif need == "point":
        if data.get("lon") is None or data.get("lat") is None:
            raise Invalid("lon and lat are required to locate the event")
    elif need == "extension":
        if event.extension_request:
            raise Invalid("an extension request is already pending")
        extension_of(data)
    elif need == "pending_extension" and not event.extension_request:
        raise Invalid("there is no pending extension request")


def _active_department(db: Session, code: str) -> Any:
    dept = org_service.get_department_by_code(db, code=code)
    if not dept.active:
        raise Invalid(f"department {code} is not active")
    return dept


def extension_of(data: dict[str, Any]) -> tuple[float, str]:
    try:
        value = float(data.get("value"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise Invalid("value (the extension length) must be a number") from None
    unit = str(data.get("unit") or TimeUnit.WORKING_DAYS)
    if value <= 0 or value > 365:
        raise Invalid("value (the extension length) must be between 0 and 365")
    if unit not in set(TimeUnit):
        raise Invalid(f"unit must be one of {', '.join(TimeUnit)}")
    return value, unit


# --- applying ---------------------------------------------------------------------------------


def apply(ctx: Context, step: Action) -> tuple[str, str]:
    """Change the event as ``step`` says; returns (from_status, to_status)."""
    event = ctx.event
    before = event.status
    if step.name in EFFECTS:
        EFFECTS[step.name](ctx)
    if step.target is RESTORE:
        saved = event.suspension or {}
        event.status = saved.get("status", S.REGISTERED)
        _restore_stage(ctx, saved)
        event.suspension = None
    else:
        if not isinstance(step.target, _Keep):
            event.status = str(step.target)
        if not isinstance(step.stage, _Keep):
            _record_stage_left(ctx)
            enter_stage(event, ctx.category, step.stage, ctx.now)
    event.updated_at = ctx.now
    return before, event.status


def _record_stage_left(ctx: Context) -> None:
    """Note in the timeline how the stage being left went: its deadline, whether it was missed
    and the working time spent. Evaluation (evaluation.py) aggregates these in SQL instead of
    replaying every timeline in Python."""
    event = ctx.event
    if event.stage is None or event.stage_started_at is None:
        return
    from . import timelimits

    ctx.log_data["stage_left"] = event.stage
    ctx.log_data["working_s"] = round(timelimits.working_time_between(
        event.stage_started_at, max(ctx.now, event.stage_started_at)).total_seconds())
    if event.due_at is not None:
        ctx.log_data["stage_due_at"] = event.due_at.isoformat()
        ctx.log_data["late"] = bool(event.overdue or ctx.now > event.due_at)


def enter_stage(event: Event, category: EventCategory, stage: Stage | None, now: datetime) -> None:
    event.stage = None if stage is None else str(stage)
    event.stage_started_at = None if stage is None else now
    event.due_at = None if stage is None else stage_due(category, stage, now)
    event.overdue = False


def stage_due(category: EventCategory, stage: Stage | str, start: datetime) -> datetime | None:
    limit = (category.time_limits or {}).get(str(stage))
    if not limit:
        return None
    return due(start, float(limit["value"]), str(limit["unit"]))


def due(start: datetime, value: float, unit: str) -> datetime:
    from . import timelimits

    return timelimits.due_at(start, value, unit)


def _restore_stage(ctx: Context, saved: dict[str, Any]) -> None:
    event = ctx.event
    event.stage = saved.get("stage")
    event.stage_started_at = ctx.now if event.stage else None
    remaining = saved.get("remaining_s")
    # The clock stood still while suspended (挂账): the stage gets back the time it had left.
    event.due_at = ctx.now + timedelta(seconds=remaining) if remaining is not None else None
    event.overdue = remaining is not None and remaining < 0


# --- effects ----------------------------------------------------------------------------------


def _set_lead(ctx: Context, department: Any, reason: str) -> None:
    event = ctx.event
    event.department_id = department.id
    event.dispatch_reason = reason[:300]
    # No autoflush: the event's pending changes would otherwise be written (and its version
    # bumped) once here and once more by the caller's flush. The DELETE only concerns flushed
    # assignment rows; the caller flushes after every action.
    with ctx.db.no_autoflush:
        ctx.db.execute(delete(EventAssignment).where(EventAssignment.event_id == event.id))
    ctx.db.add(EventAssignment(event_id=event.id, department_id=department.id, role="lead",
                               assigned_at=ctx.now))
    ctx.log_data |= {"department": department.code, "department_name": department.name,
                     "dispatch_reason": event.dispatch_reason}


def _dispatch(ctx: Context) -> None:
    code = ctx.data.get("department_code")
    if code:
        dept = _active_department(ctx.db, code)
        why = f"manual: → {dept.name}" + (f" ({ctx.reason})" if ctx.reason else "")
    elif ctx.choice is not None:
        dept, why = ctx.choice
    else:
        from . import dispatch

        dept, why = dispatch.choose_department(ctx.db, event=ctx.event)
    _set_lead(ctx, dept, why)


def _reassign(ctx: Context) -> None:
    dept = _active_department(ctx.db, ctx.data["department_code"])
    _set_lead(ctx, dept, f"reassigned by {ctx.actor.label}: → {dept.name} ({ctx.reason})")


def _return(ctx: Context) -> None:
    event = ctx.event
    ctx.log_data["returned_by_department_id"] = event.department_id
    event.department_id = None
    event.dispatch_reason = f"returned: {ctx.reason}"[:300]
    ctx.db.execute(delete(EventAssignment).where(EventAssignment.event_id == event.id))


def _assist(ctx: Context) -> None:
    existing = set(ctx.db.scalars(select(EventAssignment.department_id)
                                  .where(EventAssignment.event_id == ctx.event.id)))
    added = []
    for code in ctx.data["department_codes"]:
        dept = _active_department(ctx.db, code)
        if dept.id not in existing:
            ctx.db.add(EventAssignment(event_id=ctx.event.id, department_id=dept.id, role="assist",
                                       assigned_at=ctx.now))
            existing.add(dept.id)
            added.append(dept.code)
    ctx.log_data["assisting"] = added


def _handle(ctx: Context) -> None:
    ctx.event.result = str(ctx.data["result"]).strip()


def _verify_fail(ctx: Context) -> None:
    ctx.event.rework_count += 1
    ctx.log_data["rework_count"] = ctx.event.rework_count


def _close(ctx: Context) -> None:
    ctx.event.closed_at = ctx.now


def _request_extension(ctx: Context) -> None:
    value, unit = extension_of(ctx.data)
    ctx.event.extension_request = {"value": value, "unit": unit, "reason": ctx.reason,
                                   "by": ctx.actor.label, "at": ctx.now.isoformat()}
    ctx.log_data["extension"] = {"value": value, "unit": unit}


def _approve_extension(ctx: Context) -> None:
    event, req = ctx.event, ctx.event.extension_request or {}
    old = event.due_at
    event.due_at = due(old or ctx.now, float(req["value"]), str(req["unit"]))
    event.overdue = event.due_at < ctx.now
    event.extension_request = None
    ctx.log_data |= {"extension": {"value": req["value"], "unit": req["unit"]},
                     "due_at_before": old.isoformat() if old else None,
                     "due_at": event.due_at.isoformat()}


def _refuse_extension(ctx: Context) -> None:
    ctx.log_data["extension"] = ctx.event.extension_request
    ctx.event.extension_request = None


def _suspend(ctx: Context) -> None:
    event = ctx.event
    remaining = (event.due_at - ctx.now).total_seconds() if event.due_at else None
    event.suspension = {"status": event.status, "stage": event.stage, "remaining_s": remaining}


def _locate(ctx: Context) -> None:
    from . import service

    service.apply_location(ctx.db, event=ctx.event, lon=ctx.data["lon"], lat=ctx.data["lat"],
                           crs=str(ctx.data.get("crs") or "wgs84"))
    ctx.log_data |= {"township_code": ctx.event.township_code, "grid_code": ctx.event.grid_code}


EFFECTS: dict[str, Callable[[Context], None]] = {
    "dispatch": _dispatch, "reassign": _reassign, "return": _return, "assist": _assist,
    "handle": _handle, "verify_fail": _verify_fail, "close": _close,
    "request_extension": _request_extension, "approve_extension": _approve_extension,
    "refuse_extension": _refuse_extension, "suspend": _suspend, "locate": _locate,
}
