"""Read-only display tokens for wall screens, and who may watch the cockpit.

A display token is an ordinary API token (``org.auth.issue_token``) with the single scope
``cockpit:read``, issued on the creating administrator's own account and named with
``DISPLAY_PREFIX`` so the display-token page lists only these. The wall screen opens
``/cockpit?display=<token>`` once; the token is checked, put in an HttpOnly, SameSite=Strict
cookie (signed, so it is never read back unless we wrote it) and the screen is redirected to
``/cockpit`` so the token does not stay in the address bar or the history. Every cockpit
request then checks the token again: revoked or expired means 401 at once.

Only the cockpit's routes read this cookie, and the token's scope is ``cockpit:read`` alone,
so a display token reaches nothing else (not even as a bearer token).
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from sqlalchemy.orm import Session

from citybrain.core.actor import Actor
from citybrain.core.auth import resolve_actor, signer
from citybrain.core.errors import DomainError, Invalid, Unauthorized
from citybrain.org import auth as org_auth
from citybrain.org import service as org_service
from citybrain.org.models import ApiToken

DISPLAY_COOKIE = "cb_display"
DISPLAY_SCOPE = "cockpit:read"
DISPLAY_PREFIX = "display: "
MAX_DAYS = 366


class DisplayTokenInvalid(Unauthorized):
    """The wall screen's display token was revoked, expired or is unknown."""


@dataclass(frozen=True)
class DisplayToken:
    id: int
    label: str
    key_id: str
    created_at: str
    expires_at: str
    last_used_at: str | None
    revoked: bool
    expired: bool


def issue(db: Session, *, actor: Actor, label: str, days: int) -> tuple[str, ApiToken]:
    """A new display token on ``actor``'s own account with the scope ``cockpit:read`` only."""
    actor.check("org:write")
    label = " ".join(label.split())[:80]
    if not label:
        raise Invalid("give the screen a name, e.g. 指挥中心大屏", field="label")
    if not 1 <= days <= MAX_DAYS:
        raise Invalid(f"days must be between 1 and {MAX_DAYS}", field="days")
    if actor.user_id is None:
        raise Invalid("display tokens are issued by a logged-in administrator")
    user = org_service.get_user(db, user_id=actor.user_id)
    return org_auth.issue_token(db, user=user, scopes=DISPLAY_SCOPE, days=days, actor=actor,
                                name=DISPLAY_PREFIX + label)


def is_display(row: ApiToken) -> bool:
    return row.name.startswith(DISPLAY_PREFIX) and row.scopes == DISPLAY_SCOPE


def listing(db: Session, *, actor: Actor, now) -> list[DisplayToken]:  # noqa: ANN001
    actor.check("org:write")
    return [DisplayToken(id=t.id, label=t.name[len(DISPLAY_PREFIX):], key_id=t.key_id,
                         created_at=t.created_at.isoformat(timespec="minutes"),
                         expires_at=t.expires_at.isoformat(timespec="minutes"),
                         last_used_at=t.last_used_at.isoformat(timespec="minutes") if t.last_used_at else None,
                         revoked=t.revoked_at is not None, expired=t.expires_at <= now)
            for t in org_auth.list_tokens(db, actor=actor) if is_display(t)]


def revoke(db: Session, *, actor: Actor, token_id: int) -> None:
    actor.check("org:write")
    org_auth.revoke_token(db, token_id=token_id, actor=actor)


def check_token(db: Session, token: str) -> Actor:
    """The display actor of ``token``; ``DisplayTokenInvalid`` unless it is a live display token."""
    result = org_auth.actor_from_token(db, token=token)
    if isinstance(result, org_auth.TokenProblem):
        raise DisplayTokenInvalid(f"the display token is no longer valid ({result.reason})")
    if result.permissions != frozenset({DISPLAY_SCOPE}):
        raise DisplayTokenInvalid("this token is not a display token")
    return Actor(user_id=None, username="display", role="display", permissions=result.permissions, via="display")


def cookie_token(request: Request) -> str | None:
    return signer(request).unsign(request.cookies.get(DISPLAY_COOKIE))


def cockpit_actor(request: Request, db: Session) -> Actor | None:
    """A logged-in user or bearer-token holder first; else the wall screen's display cookie.

    Returns None when nobody is identified; raises ``DisplayTokenInvalid`` for a display cookie
    whose token no longer works. The caller checks ``cockpit:read``.
    """
    actor = resolve_actor(request, db)
    if actor is not None:
        return actor
    token = cookie_token(request)
    if token is None:
        return None
    return check_token(db, token)


def revalidate(request: Request, db: Session) -> bool:
    """Whether the holder of a long-lived stream may still watch (logout, revocation, expiry)."""
    request.state.actor = False  # forget the actor resolved when the stream opened
    try:
        actor = cockpit_actor(request, db)
    except DomainError:
        return False
    finally:
        request.state.actor = False
    return actor is not None and actor.can(DISPLAY_SCOPE)
