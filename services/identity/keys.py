"""Ed25519 signing keys: stored in Postgres (private half encrypted with the data key), rotated
lazily, published as the JWKS.

Life of a key: it is published in the JWKS from its creation, signs from `activates_at`,
is retired when its successor activates, and stays published for ACCESS_TTL + LEEWAY after
that, until the last token it signed has expired. A successor is created when the signing key
is older than OPENHR_SIGNING_KEY_DAYS and activates PUBLISH_AHEAD later, so every verifier's
cached JWKS (the services' PyJWKClient, Envoy's jwt_authn, each identity replica's key cache)
knows the new key before the first token signed with it arrives.

Rotation is lazy: every load of the keys (the JWKS, a stale signing-key cache, the refresh
loop) checks whether a successor is due and creates it under a Postgres advisory lock, so
replicas starting or rotating at once create one key, not several.

Each replica also writes its JWKS to a file (IDENTITY_JWKS_FILE) that its own interceptor
verifies ChangePassword tokens with: fetching the JWKS over HTTP would go through Envoy back to
this very process, whose event loop the synchronous fetch would be blocking."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

from services.common.cancellation import raise_if_cancelled
from services.common.db import Database
from services.identity import store
from services.identity.crypto import Box, signing_key_context
from services.identity.tokens import ACCESS_TTL, ALGORITHM, SigningKey

log = structlog.get_logger("keys")

PUBLISH_AHEAD = timedelta(minutes=10)
LEEWAY = timedelta(minutes=1)
# How long a replica signs with the keys it loaded before it looks again.
REFRESH_SECONDS = 30.0
JWKS_MAX_AGE = 1.0


@dataclass(frozen=True)
class KeyRow:
    kid: str
    public_jwk: dict
    private_key_ciphertext: bytes
    activates_at: datetime
    retired_at: datetime | None


def signing_row(rows: Sequence[KeyRow], now: datetime) -> KeyRow | None:
    """The key that signs at `now`: the latest one activated."""
    active = [r for r in rows if r.activates_at <= now]
    return max(active, key=lambda r: r.activates_at) if active else None


def published_rows(rows: Sequence[KeyRow], now: datetime) -> list[KeyRow]:
    """Keys a verifier may meet: pending, signing, or retired less than ACCESS_TTL + LEEWAY ago."""
    return [r for r in rows if r.retired_at is None or r.retired_at + ACCESS_TTL + LEEWAY > now]


def successor_due(rows: Sequence[KeyRow], now: datetime, rotate_after: timedelta) -> datetime | None:
    """When a new key should activate, if one must be created now; None otherwise."""
    if any(r.activates_at > now for r in rows):
        return None  # a successor is already published
    current = signing_row(rows, now)
    if current is None:
        return now  # the very first key signs at once
    if now - current.activates_at >= rotate_after:
        return now + PUBLISH_AHEAD
    return None


def new_key(box: Box, now: datetime) -> tuple[str, dict, bytes]:
    """(kid, public JWK, encrypted private key) of a fresh Ed25519 key."""
    private = Ed25519PrivateKey.generate()
    kid = f"{now:%Y%m%d}-{secrets.token_hex(6)}"
    public = OKPAlgorithm.to_jwk(private.public_key(), as_dict=True)
    public.update({"kid": kid, "use": "sig", "alg": ALGORITHM})
    raw = private.private_bytes_raw()
    return kid, public, box.seal(raw, signing_key_context(kid))


def _row(record) -> KeyRow:
    return KeyRow(
        record["kid"],
        record["public_jwk"],
        record["private_key_ciphertext"],
        record["activates_at"],
        record["retired_at"],
    )


def _now() -> datetime:
    return datetime.now(UTC)


class KeyRing:
    def __init__(
        self,
        db: Database,
        box: Box,
        *,
        rotate_after: timedelta,
        jwks_file: Path,
        development_jwks: Path | None = None,
    ) -> None:
        self._db, self._box, self._rotate_after = db, box, rotate_after
        self._jwks_file, self._development_jwks = jwks_file, development_jwks
        self._rows: list[KeyRow] = []
        self._loaded_at = float("-inf")
        self._private: dict[str, SigningKey] = {}
        self._lock = asyncio.Lock()

    async def _read(self) -> list[KeyRow]:
        async with self._db.transaction(None) as tx:
            rows = [_row(r) for r in await store.signing_keys(tx)]
        if successor_due(rows, _now(), self._rotate_after) is None:
            return rows
        async with self._db.transaction(None) as tx:
            await store.lock_signing_keys(tx)
            rows = [_row(r) for r in await store.signing_keys(tx)]  # another replica may have rotated
            now = _now()
            activates_at = successor_due(rows, now, self._rotate_after)
            if activates_at is not None:
                kid, public, sealed = new_key(self._box, now)
                await store.insert_signing_key(tx, kid, public, sealed, activates_at)
                current = signing_row(rows, now)
                if current is not None:
                    await store.retire_signing_key(tx, current.kid, activates_at)
                log.info("signing key created", kid=kid, activates_at=activates_at.isoformat())
                rows = [_row(r) for r in await store.signing_keys(tx)]
        return rows

    async def load(self) -> None:
        """Reads the keys (rotating if due) and rewrites the replica's JWKS file if it changed."""
        async with self._lock:
            await self._load_locked()

    async def _load_locked(self) -> None:
        self._rows = await self._read()
        self._loaded_at = time.monotonic()
        self._write_file(self._document())

    async def _rows_at_most(self, max_age: float) -> list[KeyRow]:
        """The keys, reloaded first if older than `max_age` seconds; the cached ones (if any)
        when the database cannot be read."""
        if time.monotonic() - self._loaded_at > max_age:
            async with self._lock:
                if time.monotonic() - self._loaded_at > max_age:  # else reloaded while this waited
                    try:
                        await self._load_locked()
                    except Exception as exc:
                        if not self._rows:
                            raise
                        log.warning("signing keys not reloaded, using the cached ones", error=type(exc).__name__)
        return self._rows

    async def signing_key(self) -> SigningKey:
        row = signing_row(await self._rows_at_most(REFRESH_SECONDS), _now())
        if row is None:
            raise RuntimeError("no signing key is active")  # a load always leaves one
        key = self._private.get(row.kid)
        if key is None:
            raw = self._box.open(row.private_key_ciphertext, signing_key_context(row.kid))
            key = self._private[row.kid] = SigningKey(row.kid, Ed25519PrivateKey.from_private_bytes(raw))
        return key

    async def jwks(self) -> dict:
        """The JWKS document, from keys at most a second old: it is fetched rarely, and a fresh
        read shows a new key (and runs a due rotation) at once; a burst costs one read."""
        await self._rows_at_most(JWKS_MAX_AGE)
        return self._document()

    def _document(self) -> dict:
        keys = [dict(r.public_jwk) for r in published_rows(self._rows, _now())]
        keys += self._development_keys()
        return {"keys": keys}

    def _development_keys(self) -> list[dict]:
        """The local development key (`make token`), in local mode only."""
        if self._development_jwks is None or not self._development_jwks.exists():
            return []
        try:
            return list(json.loads(self._development_jwks.read_text()).get("keys", []))
        except (OSError, ValueError):
            log.warning("development JWKS unreadable", path=str(self._development_jwks))
            return []

    def _write_file(self, document: dict) -> None:
        text = json.dumps(document, indent=2, sort_keys=True)
        path = self._jwks_file
        if path.exists() and path.read_text() == text:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{os.getpid()}")
        draft.write_text(text)
        os.replace(draft, path)

    async def run(self) -> None:
        """Keeps the cache and the JWKS file current (and rotates when due) until cancelled."""
        while True:
            raise_if_cancelled()
            try:
                await self.load()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("signing keys not reloaded, will retry", error=type(exc).__name__)
            await asyncio.sleep(REFRESH_SECONDS)
