"""Access tokens and opaque secrets.

An access token is an EdDSA (Ed25519) JWT with `kid` in its header and iss, aud, sub (the user
id), iat, exp, jti, `email_verified` and `sid` (the refresh-token family of the sign-in that
issued it, so that a password change can keep the caller's own session). Refresh tokens and
link tokens are 256-bit random strings; only their SHA-256 is stored, so a database leak
yields no usable token."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ALGORITHM = "EdDSA"
ACCESS_TTL = timedelta(minutes=15)
REFRESH_TTL = timedelta(days=7)
VERIFY_EMAIL_TTL = timedelta(hours=24)
RESET_PASSWORD_TTL = timedelta(minutes=30)


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: Ed25519PrivateKey


def mint_access_token(
    key: SigningKey,
    *,
    user_id: str,
    session_id: str,
    email_verified: bool,
    issuer: str,
    audience: str,
    now: float,
) -> str:
    issued = int(now)
    claims = {
        "iss": issuer,
        "aud": audience,
        "sub": user_id,
        "iat": issued,
        "exp": issued + int(ACCESS_TTL.total_seconds()),
        "jti": str(uuid.uuid4()),
        "sid": session_id,
        "email_verified": email_verified,
    }
    return jwt.encode(claims, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid})


def session_of(access_token: str) -> str:
    """The `sid` claim of a token the interceptor has already verified ('' when absent)."""
    claims = jwt.decode(access_token, options={"verify_signature": False})
    return str(claims.get("sid", ""))


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()
