"""Access-token verification (EdDSA JWTs against a JWKS) and the caller of the current RPC.

The identity service signs tokens; until it runs, local mode signs them with a development
key (`services.common.devkeys`). Verification pins the algorithm to EdDSA and checks issuer,
audience, expiry and subject, so `alg: none`, HS256-with-the-public-key and foreign tokens fail."""

from __future__ import annotations

import contextvars
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import jwt
from cachetools import TLRUCache
from jwt import PyJWK, PyJWKClient

from services.common import errors

ALGORITHM = "EdDSA"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a signed-in user, with the raw token to forward on their behalf."""

    user_id: str
    token: str


_current: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("principal", default=None)


def optional_principal() -> Principal | None:
    """The caller, or None outside an authenticated RPC (background work)."""
    return _current.get()


def current_principal() -> Principal:
    principal = _current.get()
    if principal is None:
        raise errors.unauthenticated("missing access token")
    return principal


def set_principal(principal: Principal) -> None:
    _current.set(principal)


class TokenVerifier:
    """Verifies bearer tokens. `jwks` is an http(s) URL (cached, refetched on unknown kid) or a file."""

    def __init__(self, jwks: str, issuer: str, audience: str) -> None:
        self._issuer = issuer
        self._audience = audience
        self._client = PyJWKClient(jwks, cache_keys=True, lifespan=300) if jwks.startswith("http") else None
        self._file = None if self._client else Path(jwks)
        self._file_keys: dict[str, PyJWK] = {}
        self._file_mtime = 0.0
        # token -> (principal, exp); each entry lives until its token's own expiry.
        self._verified: TLRUCache[str, tuple[Principal, float]] = TLRUCache(
            maxsize=10_000, ttu=lambda _token, value, _now: value[1], timer=time.time
        )

    def _key_from_file(self, kid: str) -> PyJWK:
        mtime = self._file.stat().st_mtime if self._file.exists() else 0.0
        if mtime != self._file_mtime:
            document = json.loads(self._file.read_text())
            self._file_keys = {k["kid"]: PyJWK(k) for k in document.get("keys", [])}
            self._file_mtime = mtime
        try:
            return self._file_keys[kid]
        except KeyError:
            raise errors.unauthenticated("unknown signing key") from None

    def verify(self, token: str) -> Principal:
        """The token's caller; verified tokens are remembered until they expire (an EdDSA
        verification costs more than the rest of a cached read, measured in bench/)."""
        principal = self._verified.get(token)
        if principal is None:
            principal, expires_at = self._verify(token)
            self._verified[token] = (principal, expires_at)
            return principal
        return principal[0]

    def _verify(self, token: str) -> tuple[Principal, float]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise errors.unauthenticated("malformed access token") from None
        if header.get("alg") != ALGORITHM:
            raise errors.unauthenticated("access token must be signed with EdDSA")
        kid = header.get("kid", "")
        try:
            key = self._client.get_signing_key(kid) if self._client else self._key_from_file(kid)
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=[ALGORITHM],
                issuer=self._issuer,
                audience=self._audience,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
                leeway=5,
            )
        except jwt.ExpiredSignatureError:
            raise errors.unauthenticated("access token expired") from None
        except jwt.PyJWKClientError:
            raise errors.unauthenticated("unknown signing key") from None
        except jwt.PyJWTError:
            raise errors.unauthenticated("invalid access token") from None
        try:
            user_id = str(uuid.UUID(claims["sub"]))
        except ValueError:
            raise errors.unauthenticated("invalid access token subject") from None
        return Principal(user_id=user_id, token=token), float(claims["exp"])


def bearer_token(metadata: dict[str, str]) -> str | None:
    value = metadata.get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None
