"""Access-token verification (EdDSA JWTs against a JWKS) and the caller of the current RPC.

The identity service signs tokens; until it runs, local mode signs them with a development
key (`services.common.devkeys`). Verification pins the algorithm to EdDSA and checks issuer,
audience, expiry and subject, so `alg: none`, HS256-with-the-public-key and foreign tokens fail."""

from __future__ import annotations

import asyncio
import contextvars
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
from cachetools import TLRUCache
from jwt import PyJWK

from services.common import errors

ALGORITHM = "EdDSA"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a signed-in user, with the raw token to forward on their behalf; or, on
    internal RPCs only, a peer service acting for no user (`service` set, `user_id` empty:
    its transactions carry no user, see services.common.service_auth)."""

    user_id: str
    token: str
    service: str = ""


_current: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("principal", default=None)


def optional_principal() -> Principal | None:
    """The caller, or None outside an authenticated RPC (background work)."""
    return _current.get()


def current_principal() -> Principal:
    principal = _current.get()
    if principal is None:
        raise errors.unauthenticated("missing access token")
    return principal


def set_principal(principal: Principal | None) -> None:
    _current.set(principal)


class _FileJwks:
    """Keys from a JWKS file, reloaded when the file changes (the local development key)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._keys: dict[str, PyJWK] = {}
        self._mtime = 0.0

    async def key(self, kid: str) -> PyJWK | None:
        mtime = self._path.stat().st_mtime if self._path.exists() else 0.0
        if mtime != self._mtime:
            document = json.loads(self._path.read_text())
            self._keys = {k["kid"]: PyJWK(k) for k in document.get("keys", [])}
            self._mtime = mtime
        return self._keys.get(kid)


class _HttpJwks:
    """Keys from the identity service's JWKS URL, fetched without blocking the event loop:
    cached for `lifespan` seconds, refetched (at most every `min_interval`) for an unknown kid."""

    def __init__(self, url: str, *, lifespan: float = 300.0, min_interval: float = 5.0) -> None:
        self._url, self._lifespan, self._min_interval = url, lifespan, min_interval
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()
        self._http = httpx.AsyncClient(timeout=2.0)

    async def _refresh(self) -> None:
        async with self._lock:
            if time.monotonic() - self._fetched_at < self._min_interval:
                return  # another caller just refreshed
            try:
                response = await self._http.get(self._url)
                response.raise_for_status()
                keys = response.json().get("keys", [])
            except (httpx.HTTPError, ValueError) as exc:
                raise errors.unavailable("cannot fetch the token signing keys, retry later") from exc
            self._keys = {k["kid"]: PyJWK(k) for k in keys if "kid" in k}
            self._fetched_at = time.monotonic()

    async def key(self, kid: str) -> PyJWK | None:
        stale = time.monotonic() - self._fetched_at > self._lifespan
        if stale or kid not in self._keys:
            try:
                await self._refresh()
            except errors.DomainError:
                if kid not in self._keys:
                    raise
        return self._keys.get(kid)


class TokenVerifier:
    """Verifies bearer tokens against a JWKS: an http(s) URL or a file."""

    def __init__(self, jwks: str, issuer: str, audience: str) -> None:
        self._issuer = issuer
        self._audience = audience
        self._jwks = _HttpJwks(jwks) if jwks.startswith(("http://", "https://")) else _FileJwks(Path(jwks))
        # token -> (principal, exp); each entry lives until its token's own expiry.
        self._verified: TLRUCache[str, tuple[Principal, float]] = TLRUCache(
            maxsize=10_000, ttu=lambda _token, value, _now: value[1], timer=time.time
        )

    async def verify(self, token: str) -> Principal:
        """The token's caller; verified tokens are remembered until they expire (an EdDSA
        verification costs more than the rest of a cached read, measured in bench/)."""
        cached = self._verified.get(token)
        if cached is not None:
            return cached[0]
        principal, expires_at = await self._verify(token)
        self._verified[token] = (principal, expires_at)
        return principal

    async def _verify(self, token: str) -> tuple[Principal, float]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise errors.unauthenticated("malformed access token") from None
        if header.get("alg") != ALGORITHM:
            raise errors.unauthenticated("access token must be signed with EdDSA")
        key = await self._jwks.key(str(header.get("kid", "")))
        if key is None:
            raise errors.unauthenticated("unknown signing key")
        try:
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
