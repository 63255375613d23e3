"""Password hashing (argon2id), API token strings, signed session cookies and CSRF tokens."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, URLSafeSerializer

_hasher = PasswordHasher()
# A real hash verified when the username is unknown, so timing does not reveal which usernames exist.
_DUMMY_HASH = _hasher.hash("citybrain-dummy-password")

TOKEN_PREFIX = "cbt"
MIN_PASSWORD_LENGTH = 8


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def password_problem(password: str) -> str | None:
    """Why a new password is refused, or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"password must be at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > 256:
        return "password must be at most 256 characters"
    if password.isdigit() or password.isalpha():
        return "password must mix letters with digits or symbols"
    return None


def new_token() -> tuple[str, str, str]:
    """Return (token, key_id, secret_hash). Only the hash of the secret is stored."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return f"{TOKEN_PREFIX}_{key_id}_{secret}", key_id, sha256(secret)


def split_token(token: str) -> tuple[str, str] | None:
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def new_session_id() -> str:
    return secrets.token_urlsafe(32)


class CookieSigner:
    def __init__(self, secret_key: str) -> None:
        self._secret = secret_key.encode()
        self._ser = URLSafeSerializer(secret_key, salt="citybrain.session")

    def sign(self, value: str) -> str:
        return self._ser.dumps(value)

    def unsign(self, signed: str | None) -> str | None:
        if not signed:
            return None
        try:
            value = self._ser.loads(signed)
        except BadSignature:
            return None
        return value if isinstance(value, str) else None

    def csrf_token(self, seed: str) -> str:
        return hmac.new(self._secret, f"csrf:{seed}".encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, seed: str | None, token: str | None) -> bool:
        return bool(seed and token) and hmac.compare_digest(self.csrf_token(seed or ""), token or "")
