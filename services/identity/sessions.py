"""Refresh-token families. A sign-in starts a family; each refresh spends the presented token
and issues its successor in the same family. Presenting a rotated token again means it was
copied: the whole family is revoked, the legitimate holder's newest token included, both
parties have to sign in again, and the audit log records `refresh_reused`. A token of a revoked
family is refused (its family is revoked again, a no-op) without a new audit row. Two refreshes
racing with one token count as reuse too (the loser finds it spent): clients must serialize
refreshes per session."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum

from services.common.db import Tx
from services.identity import store
from services.identity.tokens import REFRESH_TTL, digest, new_secret


@dataclass(frozen=True)
class IssuedRefresh:
    token: str
    family_id: str
    expires_at: datetime


class Outcome(Enum):
    ROTATED = "rotated"
    UNKNOWN = "unknown"  # never issued (or a typo): nothing to revoke
    EXPIRED = "expired"
    REVOKED = "revoked"  # its family ended before (sign-out, reuse, password change)
    REUSED = "reused"  # rotated before: the family is now revoked


@dataclass(frozen=True)
class Rotation:
    outcome: Outcome
    user_id: str = ""
    family_id: str = ""
    issued: IssuedRefresh | None = None


async def issue(tx: Tx, user_id: str, family_id: str | None = None) -> IssuedRefresh:
    """A new refresh token; a new family unless `family_id` continues one."""
    token = new_secret()
    family = family_id or str(uuid.uuid4())
    expires_at = datetime.now(UTC) + REFRESH_TTL
    await store.insert_refresh_token(tx, digest(token), user_id, family, expires_at)
    return IssuedRefresh(token, family, expires_at)


async def rotate(tx: Tx, token: str) -> Rotation:
    """Spends `token` and issues its successor. On reuse the family is revoked in `tx`: the
    caller must commit before it answers UNAUTHENTICATED."""
    token_hash = digest(token)
    await store.set_lookup(tx, token_hash)
    found = await store.refresh_token(tx, token_hash)
    if found is None:
        return Rotation(Outcome.UNKNOWN)
    await store.act_as(tx, found.user_id)
    if found.revoked:
        await store.revoke_family(tx, found.family_id)  # whatever of it may still live
        return Rotation(Outcome.REVOKED, found.user_id, found.family_id)
    if found.rotated or not await store.spend_refresh_token(tx, token_hash):
        await store.revoke_family(tx, found.family_id)
        return Rotation(Outcome.REUSED, found.user_id, found.family_id)
    if found.expires_at <= datetime.now(UTC):
        await store.revoke_family(tx, found.family_id)
        return Rotation(Outcome.EXPIRED, found.user_id, found.family_id)
    issued = await issue(tx, found.user_id, found.family_id)
    return Rotation(Outcome.ROTATED, found.user_id, found.family_id, issued)


async def revoke(tx: Tx, token: str) -> tuple[str, str] | None:
    """Revokes the family of `token` (spent or not); (user_id, family_id), or None if unknown."""
    token_hash = digest(token)
    await store.set_lookup(tx, token_hash)
    found = await store.refresh_token(tx, token_hash)
    if found is None:
        return None
    await store.act_as(tx, found.user_id)
    await store.revoke_family(tx, found.family_id)
    return found.user_id, found.family_id
