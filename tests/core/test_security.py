"""Password hashes, password rules, API token strings, signed cookies and CSRF tokens."""

from __future__ import annotations

import pytest

from citybrain.core.security import (
    TOKEN_PREFIX,
    CookieSigner,
    hash_password,
    new_token,
    password_problem,
    sha256,
    split_token,
    verify_password,
)

SECRET = "k" * 40


def test_password_hash_is_argon2id_and_salted():
    first, second = hash_password("Zc-secret-1"), hash_password("Zc-secret-1")
    assert first.startswith("$argon2id$") and "Zc-secret-1" not in first
    assert first != second


def test_right_password_verifies_and_wrong_one_does_not():
    stored = hash_password("Zc-secret-1")
    assert verify_password(stored, "Zc-secret-1") is True
    assert verify_password(stored, "Zc-secret-2") is False
    assert verify_password(stored, "") is False


def test_unknown_user_or_garbage_hash_never_verifies():
    assert verify_password(None, "citybrain-dummy-password") is False
    assert verify_password("not-a-hash", "anything-1") is False


@pytest.mark.parametrize(("password", "problem"), [
    ("Ab-1234", "at least 8"),
    ("x1" * 129, "at most 256"),
    ("1234567890", "mix letters"),
    ("abcdefghij", "mix letters"),
    ("密码密码密码密码", "mix letters"),
])
def test_weak_passwords_are_refused_with_a_reason(password, problem):
    assert problem in (password_problem(password) or "")


@pytest.mark.parametrize("password", ["abcdefg1", "Zc-3f9a2b7c1d", "密码密码-2026", "x1" * 128])
def test_acceptable_passwords_have_no_problem(password):
    assert password_problem(password) is None


def test_new_token_splits_into_key_id_and_a_secret_whose_hash_is_stored():
    token, key_id, secret_hash = new_token()
    assert token.startswith(f"{TOKEN_PREFIX}_{key_id}_")
    parts = split_token(token)
    assert parts is not None and parts[0] == key_id
    assert sha256(parts[1]) == secret_hash and parts[1] not in secret_hash


def test_new_tokens_are_unique():
    assert len({new_token()[0] for _ in range(20)}) == 20


def test_token_secret_may_contain_underscores():
    assert split_token("cbt_abc123_se_cr_et") == ("abc123", "se_cr_et")


@pytest.mark.parametrize("token", ["", "cbt", "cbt_abc", "cbt__secret", "cbt_abc_", "xyz_abc_secret",
                                   "CBT_abc_secret", "garbage"])
def test_malformed_tokens_do_not_split(token):
    assert split_token(token) is None


def test_signed_cookie_round_trips_and_refuses_tampering():
    signer = CookieSigner(SECRET)
    signed = signer.sign("session-id-1")
    assert signer.unsign(signed) == "session-id-1"
    assert signer.unsign(signed[:-2] + ("A" if signed[-2] != "A" else "B") + signed[-1]) is None
    assert signer.unsign("session-id-1") is None
    assert signer.unsign(None) is None and signer.unsign("") is None


def test_a_cookie_signed_with_another_secret_is_refused():
    assert CookieSigner("o" * 40).unsign(CookieSigner(SECRET).sign("sid")) is None


def test_signed_non_string_payload_is_refused():
    from itsdangerous import URLSafeSerializer

    forged = URLSafeSerializer(SECRET, salt="citybrain.session").dumps({"sid": 1})
    assert CookieSigner(SECRET).unsign(forged) is None


def test_csrf_token_is_derived_from_seed_and_secret():
    signer = CookieSigner(SECRET)
    token = signer.csrf_token("seed-a")
    assert token == signer.csrf_token("seed-a") and len(token) == 64
    assert token != signer.csrf_token("seed-b")
    assert token != CookieSigner("o" * 40).csrf_token("seed-a")
    assert "seed-a" not in token


def test_csrf_check_accepts_only_the_token_for_that_seed():
    signer = CookieSigner(SECRET)
    token = signer.csrf_token("seed-a")
    assert signer.csrf_ok("seed-a", token)
    assert not signer.csrf_ok("seed-b", token)
    assert not signer.csrf_ok("seed-a", token[:-1] + ("0" if token[-1] != "0" else "1"))
    assert not signer.csrf_ok("seed-a", None) and not signer.csrf_ok("seed-a", "")
    assert not signer.csrf_ok(None, token) and not signer.csrf_ok(None, signer.csrf_token(""))
