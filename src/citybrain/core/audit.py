"""Audit log: every write through the service layer records who did what, before and after.

Rows are hash-chained: each row's hash covers its own content (id included) and the previous
row's hash, and ``audit_head`` names the last row. Editing, deleting or reordering any row
breaks the chain at that row, which ``verify`` reports.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from . import clock
from .actor import Actor
from .models import AuditHead, AuditLog

GENESIS = "0" * 64
_PG_LOCK_KEY = 0x6369747962  # arbitrary constant: "cityb"


def _plain(value: Any) -> Any:
    """JSON-safe copy (dates and decimals become strings) so hashing is stable after a round trip."""
    if value is None:
        return None
    return json.loads(json.dumps(value, default=str, ensure_ascii=False))


def _digest(row: AuditLog | dict[str, Any]) -> str:
    get = row.get if isinstance(row, dict) else lambda k: getattr(row, k)
    at: datetime = get("at")
    body = {
        "id": get("id"),
        "at": at.isoformat(timespec="microseconds"),
        "actor": get("actor"),
        "actor_user_id": get("actor_user_id"),
        "action": get("action"),
        "object_type": get("object_type"),
        "object_id": get("object_id"),
        "before": get("before"),
        "after": get("after"),
        "prev_hash": get("prev_hash"),
    }
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def record(
    db: Session,
    *,
    actor: Actor,
    action: str,
    object_type: str,
    object_id: object | None = None,
    before: Any = None,
    after: Any = None,
) -> AuditLog:
    """Append one entry in the caller's transaction (it commits or rolls back with the change).

    The first entry of a transaction locks the chain head (an advisory lock on PostgreSQL, then
    ``SELECT … FOR UPDATE`` of ``audit_head``; on SQLite the flush takes the single writer lock)
    and flushes. Later entries of the same transaction reuse the head row it holds: no other
    appender can move the head until this transaction ends, so the lock and the read are not
    repeated, and the entry is written with the caller's next flush (or the commit).
    """
    head = _held_head(db)
    locked_now = head is None
    if locked_now:
        head = _lock_head(db)
    prev_id, prev_hash = (head.last_id, head.last_hash) if head else (0, GENESIS)
    entry = AuditLog(
        id=prev_id + 1,
        at=clock.now().astimezone(UTC),
        actor=actor.label,
        actor_user_id=actor.user_id,
        action=action,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id),
        before=_plain(before),
        after=_plain(after),
        prev_hash=prev_hash,
    )
    entry.hash = _digest(entry)
    db.add(entry)
    if head is None:
        head = AuditHead(id=1, last_id=entry.id, last_hash=entry.hash)
        db.add(head)
    else:
        head.last_id, head.last_hash = entry.id, entry.hash
    if locked_now:
        db.flush()
        if not isinstance(db.get_bind(), Connection):
            db.info[_HELD_KEY] = (_innermost_transaction(db), head)
    return entry


_HELD_KEY = "citybrain.audit.held_head"


def _lock_head(db: Session) -> AuditHead | None:
    if db.get_bind().dialect.name == "postgresql":
        # Serialise appenders so two transactions never chain onto the same previous row.
        db.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
    return db.get(AuditHead, 1, with_for_update=True)


def lock_chain(db: Session) -> None:
    """On PostgreSQL, take the chain's lock now rather than at the first ``record``.

    A writer that will append anyway (every event report) can take it before its own
    contended step: reports then queue here once, instead of computing the same next tracking
    number, blocking on each other's uncommitted row and retrying. The lock is held to the end
    of the transaction either way. On SQLite the first write takes the single writer lock, and
    a read cannot reserve it, so this does nothing there."""
    if db.get_bind().dialect.name != "postgresql" or _held_head(db) is not None:
        return
    head = _lock_head(db)
    if head is not None and not isinstance(db.get_bind(), Connection):
        db.info[_HELD_KEY] = (_innermost_transaction(db), head)


def _innermost_transaction(db: Session) -> Any:
    return db.get_nested_transaction() or db.get_transaction()


def _held_head(db: Session) -> AuditHead | None:
    """The head row this transaction has locked, while the (sub)transaction that took the lock
    is still open and encloses the current one. A rolled-back or released savepoint, a commit or
    a rollback ends it (PostgreSQL releases locks taken in a savepoint that is rolled back), and
    the next entry locks again."""
    held = db.info.get(_HELD_KEY)
    if held is None:
        return None
    if isinstance(db.get_bind(), Connection):
        # Bound to a caller's connection (tests, jobs joining an outer transaction): other
        # sessions may append on the same connection, inside the same lock. Read the head.
        db.info.pop(_HELD_KEY, None)
        return None
    locked_in, head = held
    if locked_in.is_active and head in db:
        current = _innermost_transaction(db)
        while current is not None:
            if current is locked_in:
                return head
            current = current.parent
    db.info.pop(_HELD_KEY, None)
    return None


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    bad_id: int | None = None
    reason: str = ""


def verify(db: Session, *, batch: int = 5000) -> VerifyResult:
    """Walk the chain in id order; report the first row whose link or content does not hold."""
    prev_hash, expected_id, checked = GENESIS, 1, 0
    last_id = 0
    while True:
        rows = db.scalars(
            select(AuditLog).where(AuditLog.id > last_id).order_by(AuditLog.id).limit(batch)
        ).all()
        if not rows:
            break
        for row in rows:
            if row.id != expected_id:
                return VerifyResult(False, checked, expected_id, f"row {expected_id} is missing (next row is {row.id})")
            if row.prev_hash != prev_hash:
                return VerifyResult(False, checked, row.id, "link to the previous row is broken")
            if _digest(row) != row.hash:
                return VerifyResult(False, checked, row.id, "content does not match its hash (edited)")
            prev_hash, expected_id, last_id = row.hash, row.id + 1, row.id
            checked += 1
        db.expunge_all()
    head = db.get(AuditHead, 1)
    if head is None and checked:
        return VerifyResult(False, checked, last_id, "the chain head record is missing")
    if head is not None and (head.last_id != last_id or head.last_hash != prev_hash):
        return VerifyResult(
            False, checked, last_id + 1, f"rows after {last_id} are missing (head names row {head.last_id})"
        )
    return VerifyResult(True, checked)


def list_entries(
    db: Session, *, limit: int = 100, before_id: int | None = None, object_type: str | None = None
) -> list[AuditLog]:
    q = select(AuditLog).order_by(AuditLog.id.desc()).limit(min(max(limit, 1), 1000))
    if before_id is not None:
        q = q.where(AuditLog.id < before_id)
    if object_type:
        q = q.where(AuditLog.object_type == object_type)
    return list(db.scalars(q))
