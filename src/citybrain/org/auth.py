"""Logging in, browser sessions, API tokens, and turning any of them into an ``Actor``."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citybrain.core import audit, clock
from citybrain.core.actor import Actor
from citybrain.core.errors import Forbidden, Invalid, NotFound, TooManyAttempts
from citybrain.core.permissions import ROLE_PERMISSIONS, Role, parse_scopes
from citybrain.core.security import new_session_id, new_token, sha256, split_token, verify_password

from .models import ApiToken, LoginAttempt, User, UserSession
from .service import get_user_by_username

THROTTLED = "throttled"  # login_attempt.reason of an attempt refused while locked out


@dataclass(frozen=True)
class Throttle:
    max_failures: int = 5
    window_s: int = 900
    lockout_s: int = 60


def actor_for(user: User, *, scopes: frozenset[str] | None = None, via: str) -> Actor:
    perms = ROLE_PERMISSIONS.get(Role(user.role), frozenset())
    if scopes is not None:
        perms = perms & scopes
    return Actor(user_id=user.id, username=user.username, role=user.role,
                 department_id=user.department_id, permissions=frozenset(perms), via=via)


def _retry_after(db: Session, *, username: str, ip: str, throttle: Throttle) -> int:
    """Seconds the caller must wait, doubling with each failure past the limit; 0 if none."""
    now = clock.now()
    since = now - timedelta(seconds=throttle.window_s)
    last_ok = db.scalar(
        select(func.max(LoginAttempt.at)).where(LoginAttempt.username == username, LoginAttempt.success.is_(True))
    )
    if last_ok is not None and last_ok > since:
        since = last_ok
    # Attempts refused while locked out are recorded but do not count: otherwise a client that
    # retries after the announced wait is locked out again, for twice as long.
    counted = (LoginAttempt.success.is_(False), LoginAttempt.reason != THROTTLED, LoginAttempt.at > since)
    fails = select(LoginAttempt).where(*counted)
    by_user = db.scalar(select(func.count()).select_from(fails.where(LoginAttempt.username == username).subquery()))
    by_ip = db.scalar(select(func.count()).select_from(fails.where(LoginAttempt.ip == ip).subquery()))
    # An address gets more room than a username: several people can share one NAT gateway.
    excess = max(by_user - throttle.max_failures, by_ip - 4 * throttle.max_failures)
    if excess < 0:
        return 0
    latest = db.scalar(select(func.max(LoginAttempt.at)).where(
        *counted, (LoginAttempt.username == username) | (LoginAttempt.ip == ip)))
    wait = min(throttle.lockout_s * 2**excess, throttle.window_s)
    remaining = wait - (now - latest).total_seconds() if latest else 0
    return max(int(remaining + 0.999), 0)


def authenticate(
    db: Session, *, username: str, password: str, ip: str, throttle: Throttle
) -> User:
    """Check a username and password; every attempt is recorded, repeated failures are throttled.

    Raises ``TooManyAttempts`` or ``Invalid``. The caller must commit even on failure so the
    attempt is kept (see ``org.api`` and ``org.pages``).
    """
    # Usernames match case-insensitively, so the throttle counts them that way too.
    username = username.strip()[:64].lower()
    if wait := _retry_after(db, username=username, ip=ip, throttle=throttle):
        _note_attempt(db, username=username, ip=ip, success=False, reason=THROTTLED)
        raise TooManyAttempts(f"too many failed logins; try again in {wait} s", retry_after_s=wait)
    user = get_user_by_username(db, username=username) if username else None
    ok = verify_password(user.password_hash if user else None, password)
    if not ok or user is None:
        _note_attempt(db, username=username, ip=ip, success=False, reason="bad credentials")
        raise Invalid("wrong username or password")
    if not user.active:
        _note_attempt(db, username=username, ip=ip, success=False, reason="inactive")
        raise Invalid("this account is disabled")
    _note_attempt(db, username=username, ip=ip, success=True)
    user.last_login_at = clock.now()
    return user


def _note_attempt(db: Session, *, username: str, ip: str, success: bool, reason: str = "") -> None:
    db.add(LoginAttempt(username=username, ip=ip[:64], at=clock.now(), success=success, reason=reason))
    db.flush()


def recent_failed_logins(db: Session, *, limit: int = 50) -> list[LoginAttempt]:
    q = select(LoginAttempt).where(LoginAttempt.success.is_(False)).order_by(LoginAttempt.id.desc())
    return list(db.scalars(q.limit(limit)))


# --- browser sessions --------------------------------------------------------------------


def open_session(db: Session, *, user: User, ip: str, max_age_s: int) -> UserSession:
    now = clock.now()
    sess = UserSession(id=new_session_id(), user_id=user.id, created_at=now,
                       expires_at=now + timedelta(seconds=max_age_s), ip=ip[:64])
    db.add(sess)
    db.flush()
    audit.record(db, actor=actor_for(user, via="session"), action="auth.login",
                 object_type="user", object_id=user.id, after={"ip": ip})
    return sess


def close_session(db: Session, *, session_id: str) -> None:
    sess = db.get(UserSession, session_id)
    if sess is not None and sess.revoked_at is None:
        sess.revoked_at = clock.now()
        db.flush()


def actor_from_session(db: Session, *, session_id: str) -> Actor | None:
    sess = db.get(UserSession, session_id)
    if sess is None or sess.revoked_at is not None or sess.expires_at <= clock.now():
        return None
    user = db.get(User, sess.user_id)
    if user is None or not user.active:
        return None
    return actor_for(user, via="session")


# --- API tokens --------------------------------------------------------------------------


def issue_token(
    db: Session, *, user: User, scopes: str | list[str] | None, days: int, actor: Actor, name: str = ""
) -> tuple[str, ApiToken]:
    """Create a bearer token; scopes beyond what the user's role allows are refused."""
    if not 1 <= days <= 3650:
        raise Invalid("days must be between 1 and 3650")
    if not user.active:
        raise Invalid("this account is disabled")
    requested = parse_scopes(scopes) if scopes else ROLE_PERMISSIONS[Role(user.role)]
    beyond = sorted(requested - ROLE_PERMISSIONS[Role(user.role)])
    if beyond:
        raise Forbidden(f"role {user.role!r} may not hold scope(s): {', '.join(beyond)}")
    if actor.user_id is not None and actor.user_id != user.id:
        actor.check("org:write")  # only admins issue tokens for other users
    token, key_id, secret_hash = new_token()
    now = clock.now()
    row = ApiToken(key_id=key_id, secret_hash=secret_hash, user_id=user.id, name=name[:100],
                   scopes=" ".join(sorted(requested)), created_at=now, expires_at=now + timedelta(days=days))
    db.add(row)
    db.flush()
    audit.record(db, actor=actor, action="token.create", object_type="api_token", object_id=row.id,
                 after={"user": user.username, "key_id": key_id, "scopes": row.scopes,
                        "expires_at": row.expires_at.isoformat()})
    return token, row


def revoke_token(db: Session, *, token_id: int, actor: Actor) -> ApiToken:
    row = db.get(ApiToken, token_id)
    if row is None:
        raise NotFound(f"token {token_id} does not exist")
    if row.user_id != actor.user_id:
        actor.check("org:write")
    if row.revoked_at is None:
        row.revoked_at = clock.now()
        db.flush()
        audit.record(db, actor=actor, action="token.revoke", object_type="api_token", object_id=row.id,
                     after={"key_id": row.key_id})
    return row


def list_tokens(db: Session, *, actor: Actor) -> list[ApiToken]:
    q = select(ApiToken).order_by(ApiToken.id.desc())
    if not actor.can("org:write"):
        q = q.where(ApiToken.user_id == actor.user_id)
    return list(db.scalars(q))


@dataclass(frozen=True)
class TokenProblem:
    reason: str


def actor_from_token(db: Session, *, token: str) -> Actor | TokenProblem:
    parts = split_token(token)
    if parts is None:
        return TokenProblem("malformed token")
    row = db.scalar(select(ApiToken).where(ApiToken.key_id == parts[0]))
    if row is None or not hmac.compare_digest(row.secret_hash, sha256(parts[1])):
        return TokenProblem("unknown token")
    now = clock.now()
    if row.revoked_at is not None:
        return TokenProblem("token revoked")
    if row.expires_at <= now:
        return TokenProblem("token expired")
    if not row.user.active:
        return TokenProblem("account disabled")
    if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
        row.last_used_at = now  # coarse, so a busy client does not write on every request
    return actor_for(row.user, scopes=frozenset(row.scopes.split()), via="token")
