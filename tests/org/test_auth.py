"""Logging in, throttling repeated failures, and API tokens (expiry, revocation, scopes)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from citybrain.core.actor import Actor
from citybrain.core.errors import Forbidden, Invalid, TooManyAttempts
from citybrain.core.permissions import ROLE_PERMISSIONS, Role
from citybrain.org import auth, service
from citybrain.org.models import LoginAttempt, User
from citybrain.org.schemas import UserUpdate
from helpers import QUICK_PASSWORD, bearer, demo_password, quick_user

IP = "198.51.100.7"
THROTTLE = auth.Throttle(max_failures=3, window_s=900, lockout_s=60)


def _user(db: Session, username: str) -> User:
    user = service.get_user_by_username(db, username=username)
    assert user is not None
    return user


@pytest.fixture
def quick(db: Session) -> User:
    """A leader whose password is cheap to check, for tests that log in many times."""
    return quick_user(db, "quick", role="leader")


def _password(username: str) -> str:
    return QUICK_PASSWORD if username.lower() == "quick" else demo_password(username.lower())


def _login(db: Session, username: str, password: str | None = None, ip: str = IP) -> User:
    return auth.authenticate(db, username=username, password=password or _password(username), ip=ip,
                             throttle=THROTTLE)


def _fail(db: Session, username: str = "quick", times: int = 1, ip: str = IP) -> None:
    for _ in range(times):
        with pytest.raises(Invalid):
            _login(db, username, "Wrong-pass-0", ip=ip)


def _throttled(db: Session, username: str = "quick", ip: str = IP) -> int:
    """Try the right password; it must be refused. Returns the announced wait in seconds."""
    with pytest.raises(TooManyAttempts) as info:
        _login(db, username, ip=ip)
    return info.value.retry_after_s


def _attempts(db: Session, username: str) -> list[LoginAttempt]:
    return list(db.scalars(select(LoginAttempt).where(LoginAttempt.username == username)
                           .order_by(LoginAttempt.id)))


# --- authenticate ------------------------------------------------------------------------


def test_right_password_authenticates_and_records_a_successful_attempt(db, quick, frozen_clock):
    user = _login(db, "quick")
    assert user.username == "quick" and user.last_login_at == frozen_clock[0]
    [attempt] = _attempts(db, "quick")
    assert attempt.success and attempt.ip == IP and attempt.at == frozen_clock[0]


def test_username_is_matched_case_insensitively(db, quick, frozen_clock):
    assert _login(db, "QUICK", QUICK_PASSWORD).username == "quick"


def test_wrong_password_is_refused_and_recorded(db, quick, frozen_clock):
    with pytest.raises(Invalid, match="wrong username or password"):
        _login(db, "quick", "Wrong-pass-0")
    [attempt] = _attempts(db, "quick")
    assert not attempt.success and attempt.reason == "bad credentials"


def test_unknown_user_gets_the_same_answer_as_a_wrong_password(db, frozen_clock):
    with pytest.raises(Invalid, match="wrong username or password"):
        _login(db, "nobody-here", "Wrong-pass-0")
    assert len(_attempts(db, "nobody-here")) == 1


def test_inactive_account_is_refused_even_with_the_right_password(db, admin_actor, frozen_clock):
    user = _user(db, "citizen")
    service.update_user(db, user_id=user.id, data=UserUpdate(active=False), actor=admin_actor)
    with pytest.raises(Invalid, match="disabled"):
        _login(db, "citizen")
    assert [a.reason for a in _attempts(db, "citizen")] == ["inactive"]


# --- throttling --------------------------------------------------------------------------


def test_after_max_failures_even_the_right_password_is_refused(db, quick, frozen_clock):
    _fail(db, times=THROTTLE.max_failures)
    assert _throttled(db) == THROTTLE.lockout_s
    assert _attempts(db, "quick")[-1].reason == "throttled"


def test_fewer_failures_than_the_limit_do_not_throttle(db, quick, frozen_clock):
    _fail(db, times=THROTTLE.max_failures - 1)
    assert _login(db, "quick").username == "quick"


def test_waiting_out_the_lockout_lets_the_right_password_in(db, quick, frozen_clock):
    _fail(db, times=THROTTLE.max_failures)
    assert _throttled(db) == 60
    frozen_clock[0] += timedelta(seconds=25)
    assert _throttled(db) == 35  # retrying while locked out does not extend the wait
    frozen_clock[0] += timedelta(seconds=35)
    assert _login(db, "quick").username == "quick"


def test_the_wait_doubles_with_each_further_failure(db, quick, frozen_clock):
    _fail(db, times=THROTTLE.max_failures)
    waits = []
    for _ in range(3):
        waits.append(_throttled(db))
        frozen_clock[0] += timedelta(seconds=waits[-1])
        _fail(db)
    assert waits == [60, 120, 240]
    assert _throttled(db) == 480
    frozen_clock[0] += timedelta(seconds=480)
    assert _login(db, "quick").username == "quick"


def test_the_wait_never_exceeds_the_window(db, quick, frozen_clock):
    for _ in range(THROTTLE.max_failures + 6):  # 60 s * 2**6 would be 3840 s
        db.add(LoginAttempt(username="quick", ip=IP, at=frozen_clock[0], success=False,
                            reason="bad credentials"))
    db.flush()
    assert _throttled(db) == THROTTLE.window_s


def test_a_successful_login_clears_earlier_failures(db, quick, frozen_clock):
    _fail(db, times=THROTTLE.max_failures - 1)
    _login(db, "quick")
    _fail(db, times=THROTTLE.max_failures - 1)
    assert _login(db, "quick").username == "quick"


def test_failures_older_than_the_window_no_longer_count(db, quick, frozen_clock):
    _fail(db, times=THROTTLE.max_failures)
    frozen_clock[0] += timedelta(seconds=THROTTLE.window_s + 1)
    _fail(db, times=THROTTLE.max_failures - 1)
    assert _login(db, "quick").username == "quick"


def test_changing_the_case_of_the_username_does_not_escape_the_throttle(db, quick, frozen_clock):
    for name in ("quick", "Quick", "QUICK"):
        _fail(db, name)
    assert _throttled(db, "qUiCk") == 60


def test_throttling_one_user_does_not_lock_out_another(db, quick, frozen_clock):
    _fail(db, "quick", times=THROTTLE.max_failures)
    assert _login(db, "citizen").username == "citizen"


def test_many_failures_from_one_address_throttle_every_username_there(db, quick, frozen_clock):
    for i in range(4 * THROTTLE.max_failures):
        db.add(LoginAttempt(username=f"guess{i}", ip=IP, at=frozen_clock[0], success=False,
                            reason="bad credentials"))
    db.flush()
    assert _throttled(db, "citizen") > 0
    assert _login(db, "citizen", ip="203.0.113.9").username == "citizen"


def test_every_attempt_is_recorded_in_login_attempt(db, quick, frozen_clock):
    _fail(db, times=THROTTLE.max_failures)
    _throttled(db)
    frozen_clock[0] += timedelta(seconds=60)
    _login(db, "quick")
    rows = _attempts(db, "quick")
    assert [(r.success, r.reason) for r in rows] == [(False, "bad credentials")] * 3 + [
        (False, "throttled"), (True, "")]
    assert {r.ip for r in rows} == {IP}
    assert [r.id for r in auth.recent_failed_logins(db, limit=4)] == [r.id for r in reversed(rows[:4])]


# --- tokens ------------------------------------------------------------------------------


def _token(db: Session, username: str, scopes: str | None = None, days: int = 30) -> str:
    user = _user(db, username)
    token, _row = auth.issue_token(db, user=user, scopes=scopes, days=days,
                                   actor=auth.actor_for(user, via="session"))
    return token


def test_a_fresh_token_resolves_to_its_user_with_the_role_permissions(db, frozen_clock):
    actor = auth.actor_from_token(db, token=_token(db, "leader"))
    assert isinstance(actor, Actor)
    assert actor.username == "leader" and actor.via == "token"
    assert actor.permissions == ROLE_PERMISSIONS[Role.LEADER]


def test_an_expired_token_is_rejected(db, frozen_clock):
    token = _token(db, "leader", days=1)
    frozen_clock[0] += timedelta(days=1) - timedelta(seconds=1)
    assert not isinstance(auth.actor_from_token(db, token=token), auth.TokenProblem)
    frozen_clock[0] += timedelta(seconds=1)
    assert auth.actor_from_token(db, token=token) == auth.TokenProblem("token expired")


def test_a_revoked_token_is_rejected(db, frozen_clock):
    user = _user(db, "leader")
    token, row = auth.issue_token(db, user=user, scopes=None, days=30, actor=auth.actor_for(user, via="session"))
    auth.revoke_token(db, token_id=row.id, actor=auth.actor_for(user, via="session"))
    assert auth.actor_from_token(db, token=token) == auth.TokenProblem("token revoked")


def test_a_token_of_a_disabled_account_is_rejected(db, admin_actor, frozen_clock):
    token = _token(db, "leader")
    service.update_user(db, user_id=_user(db, "leader").id, data=UserUpdate(active=False), actor=admin_actor)
    assert auth.actor_from_token(db, token=token) == auth.TokenProblem("account disabled")


@pytest.mark.parametrize(("token", "reason"), [
    ("garbage", "malformed token"),
    ("cbt_000000000000_nosuchsecret", "unknown token"),
])
def test_malformed_or_unknown_tokens_are_rejected(db, token, reason):
    assert auth.actor_from_token(db, token=token) == auth.TokenProblem(reason)


def test_a_token_with_the_right_key_id_but_wrong_secret_is_rejected(db, frozen_clock):
    token = _token(db, "leader")
    prefix, key_id, _secret = token.split("_", 2)
    assert auth.actor_from_token(db, token=f"{prefix}_{key_id}_wrong") == auth.TokenProblem("unknown token")


def test_scopes_beyond_the_role_are_forbidden(db, frozen_clock):
    with pytest.raises(Forbidden, match="org:write"):
        _token(db, "gridworker", scopes="geo:read org:write")


def test_unknown_scopes_are_invalid(db, frozen_clock):
    with pytest.raises(Invalid, match="unknown scope"):
        _token(db, "leader", scopes="geo:read world:domination")


@pytest.mark.parametrize("days", [0, -1, 3651])
def test_token_lifetime_outside_limits_is_invalid(db, frozen_clock, days):
    with pytest.raises(Invalid, match="days"):
        _token(db, "leader", days=days)


def test_only_admins_issue_tokens_for_other_users(db, frozen_clock):
    leader, citizen = _user(db, "leader"), _user(db, "citizen")
    with pytest.raises(Forbidden):
        auth.issue_token(db, user=citizen, scopes=None, days=1, actor=auth.actor_for(leader, via="session"))


def test_a_token_narrows_its_users_permissions_to_its_scopes(db, frozen_clock):
    actor = auth.actor_from_token(db, token=_token(db, "leader", scopes="geo:read,org:read"))
    assert actor.permissions == {"geo:read", "org:read"}
    assert actor.can("geo:read") and not actor.can("audit:read")


def test_a_token_cannot_outgrow_a_role_that_was_reduced_after_issue(db, admin_actor, frozen_clock):
    token = _token(db, "leader", scopes="audit:read geo:read")
    service.update_user(db, user_id=_user(db, "leader").id, data=UserUpdate(role="citizen"), actor=admin_actor)
    assert auth.actor_from_token(db, token=token).permissions == frozenset()


def test_an_under_scoped_token_gets_403_on_an_endpoint_needing_another_permission(client, frozen_clock):
    headers = bearer(client, "admin", demo_password("admin"), scope="geo:read")
    refused = client.get("/api/org/users", headers=headers)
    assert refused.status_code == 403 and "org:read" in refused.json()["detail"]
    assert client.get("/api/geo/divisions", headers=headers).status_code == 200


def test_an_expired_token_gets_401_over_http(client, frozen_clock):
    headers = bearer(client, "leader", demo_password("leader"))
    assert client.get("/api/org/me", headers=headers).status_code == 200
    frozen_clock[0] += timedelta(days=31)
    r = client.get("/api/org/me", headers=headers)
    assert r.status_code == 401 and r.json()["detail"] == "invalid bearer token: token expired"


def test_a_revoked_token_gets_401_over_http(client, frozen_clock):
    headers = bearer(client, "leader", demo_password("leader"))
    token_id = _token_id(client, headers)
    assert client.post(f"/api/org/tokens/{token_id}/revoke", headers=headers).status_code == 204
    r = client.get("/api/org/me", headers=headers)
    assert r.status_code == 401 and "revoked" in r.json()["detail"]


def _token_id(client, headers: dict[str, str]) -> int:  # noqa: ANN001
    from citybrain.core.security import split_token
    from citybrain.org.models import ApiToken

    key_id = split_token(headers["Authorization"].split()[1])[0]
    with client.app.state.sessionmaker() as db:
        return db.scalar(select(ApiToken.id).where(ApiToken.key_id == key_id))


def test_password_flow_refuses_scopes_beyond_the_role(client):
    r = client.post("/api/auth/token", data={"username": "gridworker", "password": demo_password("gridworker"),
                                             "scope": "org:write"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"


def test_password_flow_is_throttled_with_retry_after(client, quick, settings, frozen_clock):
    for _ in range(settings.login_max_failures):
        r = client.post("/api/auth/token", data={"username": "quick", "password": "Wrong-pass-0"})
        assert r.status_code == 400
    r = client.post("/api/auth/token", data={"username": "quick", "password": QUICK_PASSWORD})
    assert r.status_code == 429 and r.headers["Retry-After"] == str(settings.login_lockout_s)
    assert r.json()["error"] == "invalid_grant"
