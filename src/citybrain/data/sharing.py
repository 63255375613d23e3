"""Conditional sharing (有条件共享): requests, the provider's decisions, grants, and who may read what.

* 无条件共享 (unconditional): every department reads the rows, masked, without asking. A
  department asks only to read personal fields in clear (a request with ``unmasked``).
* 有条件共享 (conditional): a consumer department files a request with a purpose; the provider
  department (its staff with ``data:publish``, or a ``data:admin``) approves it — a ``Grant`` per
  consumer department, resource and field set, until an expiry — or refuses it with a reason.
* 不予共享 (none): requests are refused at filing; the rows are served to the provider only.

The provider's own department reads its own rows in clear. One grant is in force per consumer
department and resource: approving a new request supersedes (revokes) the previous grant.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from citybrain.core import audit, clock
from citybrain.core.actor import Actor
from citybrain.core.errors import Conflict, Forbidden, Invalid, NotFound

from . import catalog
from .enums import RequestStatus, SharingType
from .models import CatalogEntry, Grant, ShareRequest

MAX_DAYS = 3650
MAX_PURPOSE = 2000


@dataclass(frozen=True)
class Access:
    """What one reader may see of one resource: fields (None = all), in clear or masked."""

    fields: frozenset[str] | None
    unmasked: bool
    grant: Grant | None
    own: bool


def _label(entry: CatalogEntry) -> str:
    return f"{entry.name} ({entry.code})"


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _check_fields(entry: CatalogEntry, fields: list[str] | None) -> list[str]:
    codes = [i.code for i in entry.items]
    fields = list(dict.fromkeys(f.strip() for f in fields or [] if f and f.strip()))
    unknown = [f for f in fields if f not in codes]
    if unknown:
        raise Invalid(f"field(s) {', '.join(unknown)} are not information items of {_label(entry)}; "
                      f"known: {', '.join(codes)}")
    return fields


def _check_days(days: int) -> int:
    if not 1 <= days <= MAX_DAYS:
        raise Invalid(f"days must be between 1 and {MAX_DAYS}")
    return days


def check_can_decide(actor: Actor, entry: CatalogEntry) -> None:
    """The provider department's staff (``data:publish``) or a ``data:admin`` decide its requests."""
    if actor.can("data:admin"):
        return
    actor.check("data:publish")
    if actor.department_id != entry.provider_department_id:
        raise Forbidden(f"{_label(entry)} belongs to another department: only its provider decides its requests")


def file_request(db: Session, *, entry_id: int, actor: Actor, purpose: str, fields: list[str] | None = None,
                 unmasked: bool = False, days: int = 365) -> ShareRequest:
    actor.check("data:read")
    entry = catalog.get_entry(db, entry_id=entry_id)
    if actor.department_id is None:
        raise Forbidden("only a department's staff can request access; grants are held by departments")
    if actor.department_id == entry.provider_department_id:
        raise Invalid(f"{_label(entry)} is your own department's resource; you read it without a request")
    if entry.sharing_type == SharingType.NONE:
        raise Forbidden(f"{_label(entry)} is 不予共享 (not shared): it is never served to other departments"
                        + (f" ({entry.sharing_conditions})" if entry.sharing_conditions else ""))
    if entry.sharing_type == SharingType.UNCONDITIONAL and not unmasked:
        raise Invalid(f"{_label(entry)} is 无条件共享: every department reads it (masked) without a request; "
                      "request only to read personal fields unmasked")
    purpose = (purpose or "").strip()
    if not purpose:
        raise Invalid("state the purpose (用途) of the request")
    if len(purpose) > MAX_PURPOSE:
        raise Invalid(f"the purpose is longer than {MAX_PURPOSE} characters")
    fields = _check_fields(entry, fields)
    pending = db.scalar(select(ShareRequest.id).where(
        ShareRequest.entry_id == entry.id, ShareRequest.consumer_department_id == actor.department_id,
        ShareRequest.status == RequestStatus.PENDING))
    if pending is not None:
        raise Conflict(f"your department already has a pending request ({pending}) for {_label(entry)}")
    req = ShareRequest(entry_id=entry.id, consumer_department_id=actor.department_id,
                       requested_by_user_id=actor.user_id, purpose=purpose, fields=fields, unmasked=unmasked,
                       days=_check_days(days), status=RequestStatus.PENDING, created_at=clock.now())
    db.add(req)
    db.flush()
    audit.record(db, actor=actor, action="data.share.request", object_type="data_share_request", object_id=req.id,
                 after={"entry": entry.code, "fields": fields, "unmasked": unmasked, "days": req.days})
    return req


def get_request(db: Session, *, request_id: int) -> ShareRequest:
    req = db.get(ShareRequest, request_id)
    if req is None:
        raise NotFound(f"share request {request_id} not found")
    return req


def _pending(db: Session, request_id: int) -> tuple[ShareRequest, CatalogEntry]:
    req = get_request(db, request_id=request_id)
    if req.status != RequestStatus.PENDING:
        raise Conflict(f"share request {req.id} is already {req.status}")
    return req, catalog.get_entry(db, entry_id=req.entry_id)


def approve(db: Session, *, request_id: int, actor: Actor, days: int | None = None, fields: list[str] | None = None,
            unmasked: bool | None = None) -> Grant:
    """Grant what was asked, or less: fewer fields, fewer days, masked instead of unmasked."""
    req, entry = _pending(db, request_id)
    check_can_decide(actor, entry)
    if entry.sharing_type == SharingType.NONE:
        raise Forbidden(f"{_label(entry)} is 不予共享 (not shared); refuse the request instead")
    granted_fields = _check_fields(entry, fields) if fields is not None else list(req.fields)
    if req.fields and not set(granted_fields) <= set(req.fields):
        extra = sorted(set(granted_fields) - set(req.fields))
        raise Invalid(f"field(s) {', '.join(extra)} were not requested; a grant gives at most what was asked")
    if unmasked and not req.unmasked:
        raise Invalid("the request did not ask for unmasked reads; a grant gives at most what was asked")
    now = clock.now()
    for old in db.scalars(_active(entry.id, req.consumer_department_id, now)):
        old.revoked_at = now  # superseded: one grant in force per department and resource
    grant = Grant(entry_id=entry.id, consumer_department_id=req.consumer_department_id, request_id=req.id,
                  fields=granted_fields, unmasked=req.unmasked if unmasked is None else unmasked,
                  expires_at=now + timedelta(days=_check_days(days if days is not None else req.days)),
                  granted_by=actor.label, created_at=now)
    req.status, req.decided_by, req.decided_at = RequestStatus.APPROVED, actor.label, now
    db.add(grant)
    db.flush()
    audit.record(db, actor=actor, action="data.share.approve", object_type="data_share_request", object_id=req.id,
                 after={"grant": grant.id, "fields": granted_fields, "unmasked": grant.unmasked,
                        "expires_at": grant.expires_at.isoformat()})
    return grant


def refuse(db: Session, *, request_id: int, actor: Actor, reason: str) -> ShareRequest:
    req, entry = _pending(db, request_id)
    check_can_decide(actor, entry)
    reason = (reason or "").strip()
    if not reason:
        raise Invalid("a refusal must give its reason")
    req.status, req.decided_by, req.decided_at, req.decision_reason = (
        RequestStatus.REFUSED, actor.label, clock.now(), reason[:MAX_PURPOSE])
    db.flush()
    audit.record(db, actor=actor, action="data.share.refuse", object_type="data_share_request", object_id=req.id,
                 after={"reason": req.decision_reason})
    return req


def withdraw(db: Session, *, request_id: int, actor: Actor) -> ShareRequest:
    req, _entry = _pending(db, request_id)
    if actor.department_id != req.consumer_department_id and not actor.can("data:admin"):
        raise Forbidden("only the requesting department withdraws its request")
    req.status, req.decided_by, req.decided_at = RequestStatus.WITHDRAWN, actor.label, clock.now()
    db.flush()
    audit.record(db, actor=actor, action="data.share.withdraw", object_type="data_share_request", object_id=req.id)
    return req


def get_grant(db: Session, *, grant_id: int) -> Grant:
    grant = db.get(Grant, grant_id)
    if grant is None:
        raise NotFound(f"grant {grant_id} not found")
    return grant


def revoke(db: Session, *, grant_id: int, actor: Actor) -> Grant:
    grant = get_grant(db, grant_id=grant_id)
    check_can_decide(actor, catalog.get_entry(db, entry_id=grant.entry_id))
    if grant.revoked_at is not None:
        raise Conflict(f"grant {grant.id} was already revoked on {_when(grant.revoked_at)}")
    grant.revoked_at = clock.now()
    db.flush()
    audit.record(db, actor=actor, action="data.share.revoke", object_type="data_grant", object_id=grant.id)
    return grant


def _active(entry_id: int, department_id: int, now: datetime) -> Select[tuple[Grant]]:
    return select(Grant).where(Grant.entry_id == entry_id, Grant.consumer_department_id == department_id,
                               Grant.revoked_at.is_(None), Grant.expires_at > now).order_by(Grant.id.desc())


def _role_filter(q: Select, model: type, role: str, actor: Actor) -> Select:
    if role == "consumer":
        return q.where(model.consumer_department_id == actor.department_id)
    if role == "provider":
        if actor.can("data:admin"):
            return q
        return q.join(CatalogEntry, CatalogEntry.id == model.entry_id).where(
            CatalogEntry.provider_department_id == actor.department_id)
    raise Invalid(f"role must be provider or consumer, not {role!r}")


def list_requests(db: Session, *, actor: Actor, role: str, status: str | None = None,
                  entry_id: int | None = None) -> list[ShareRequest]:
    actor.check("data:read")
    q = _role_filter(select(ShareRequest), ShareRequest, role, actor).order_by(ShareRequest.id.desc())
    if status:
        if status not in set(RequestStatus):
            raise Invalid(f"status must be one of {', '.join(RequestStatus)}")
        q = q.where(ShareRequest.status == status)
    if entry_id is not None:
        q = q.where(ShareRequest.entry_id == entry_id)
    return list(db.scalars(q))


def list_grants(db: Session, *, actor: Actor, role: str, active_only: bool = False) -> list[Grant]:
    actor.check("data:read")
    q = _role_filter(select(Grant), Grant, role, actor).order_by(Grant.id.desc())
    if active_only:
        q = q.where(Grant.revoked_at.is_(None), Grant.expires_at > clock.now())
    return list(db.scalars(q))


def access_for(db: Session, *, entry: CatalogEntry, actor: Actor) -> Access:
    """What ``actor`` may read of ``entry``'s rows, or ``Forbidden`` saying why not."""
    actor.check("data:read")
    if actor.department_id is not None and actor.department_id == entry.provider_department_id:
        return Access(fields=None, unmasked=True, grant=None, own=True)
    if entry.sharing_type == SharingType.NONE:
        raise Forbidden(f"{_label(entry)} is 不予共享 (not shared): its rows are served to its provider "
                        "department only")
    grant = None
    if actor.department_id is not None:
        grant = db.scalars(_active(entry.id, actor.department_id, clock.now())).first()
    if grant is not None:
        return Access(fields=frozenset(grant.fields) or None, unmasked=grant.unmasked, grant=grant, own=False)
    if entry.sharing_type == SharingType.UNCONDITIONAL:
        return Access(fields=None, unmasked=False, grant=None, own=False)
    raise Forbidden(_no_grant_reason(db, entry, actor))


def _no_grant_reason(db: Session, entry: CatalogEntry, actor: Actor) -> str:
    if actor.department_id is None:
        raise Forbidden(f"{_label(entry)} is 有条件共享: grants are held by departments and you belong to none")
    last = db.scalars(select(Grant).where(Grant.entry_id == entry.id,
                                          Grant.consumer_department_id == actor.department_id)
                      .order_by(Grant.id.desc())).first()
    if last is not None and last.revoked_at is not None:
        return (f"your department's grant for {_label(entry)} was revoked on {_when(last.revoked_at)}; "
                "file a new request")
    if last is not None:
        return f"your grant for {_label(entry)} expired on {_when(last.expires_at)}; file a new request"
    return f"{_label(entry)} is 有条件共享: your department has no grant; request access first"
