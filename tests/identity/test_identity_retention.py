"""Expired secrets are purged: refresh tokens 30 days after expiry (until then a replay still
revokes the family), one-time link tokens and OAuth states a day after; nothing live is touched
and the app role cannot delete a live secret of anyone's."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from deploy.local.ephemeral import Mesh
from services.common.db import Database
from services.identity.retention import ExpiredSecretsPurge
from tests.identity.support import sign_up
from tests.waiting import eventually

NOW = datetime.now(UTC)


def _hash() -> bytes:
    return hashlib.sha256(os.urandom(16)).digest()


async def _secrets(db, user_id: str, ages: dict[str, timedelta]) -> dict[str, tuple[str, bytes]]:
    """One row per name, expired `age` ago (negative: still valid): name -> (table, hash)."""
    rows = {}
    for name, age in ages.items():
        digest, expires_at = _hash(), NOW - age
        if name.startswith("refresh"):
            await db.execute(
                "INSERT INTO identity.refresh_tokens (token_hash, user_id, family_id, expires_at)"
                " VALUES ($1, $2, $3, $4)",
                digest,
                uuid.UUID(user_id),
                uuid.uuid4(),
                expires_at,
            )
            rows[name] = ("refresh_tokens", digest)
        elif name.startswith("link"):
            await db.execute(
                "INSERT INTO identity.one_time_tokens (token_hash, user_id, purpose, expires_at)"
                " VALUES ($1, $2, 'reset_password', $3)",
                digest,
                uuid.UUID(user_id),
                expires_at,
            )
            rows[name] = ("one_time_tokens", digest)
        else:
            await db.execute(
                "INSERT INTO identity.oauth_states (state_hash, provider, code_verifier_ciphertext, redirect_uri,"
                " expires_at) VALUES ($1, 'github', '\\x00', 'http://localhost/cb', $2)",
                digest,
                expires_at,
            )
            rows[name] = ("oauth_states", digest)
    return rows


async def _left(db, rows: dict[str, tuple[str, bytes]]) -> set[str]:
    left = set()
    for name, (table, digest) in rows.items():
        column = "state_hash" if table == "oauth_states" else "token_hash"
        if await db.fetchval(f"SELECT count(*) FROM identity.{table} WHERE {column} = $1", digest):
            left.add(name)
    return left


AGES = {
    "refresh_expired_31_days": timedelta(days=31),
    "refresh_expired_29_days": timedelta(days=29),
    "refresh_live": -timedelta(days=6),
    "link_expired_2_days": timedelta(days=2),
    "link_expired_an_hour": timedelta(hours=1),
    "link_live": -timedelta(minutes=30),
    "state_expired_2_days": timedelta(days=2),
    "state_live": -timedelta(minutes=5),
}
KEPT = {"refresh_expired_29_days", "refresh_live", "link_expired_an_hour", "link_live", "state_live"}


@pytest.fixture
async def app_db(mesh: Mesh):
    database = Database(mesh.config.database_url, app_role="identity_app", pool_size=1)
    yield database
    await database.close()


async def test_only_secrets_past_their_grace_are_purged(mesh: Mesh, rest, db, app_db: Database) -> None:
    account = await sign_up(rest)
    rows = await _secrets(db, account.user_id, AGES)
    deleted = await ExpiredSecretsPurge(app_db).purge_once()
    assert await _left(db, rows) == KEPT
    assert deleted["refresh_tokens"] >= 1 and deleted["one_time_tokens"] >= 1 and deleted["oauth_states"] >= 1
    # The account's own sign-in still works on its refresh token.
    answer = await rest.post("/v1/auth/refresh", json={"refreshToken": account.refresh_token})
    assert answer.status_code == 200, answer.text


async def test_the_app_role_cannot_delete_a_live_secret(mesh: Mesh, rest, db, app_db: Database) -> None:
    account = await sign_up(rest)
    rows = await _secrets(db, account.user_id, {"refresh_live": -timedelta(days=6), "link_live": -timedelta(hours=1)})
    async with app_db.transaction(None) as tx:
        for table, digest in rows.values():
            assert await tx.execute(f"DELETE FROM identity.{table} WHERE token_hash = $1", digest) == "DELETE 0"
    assert await _left(db, rows) == set(rows)


async def test_the_purge_runs_in_the_background(mesh: Mesh, rest, db, app_db: Database) -> None:
    account = await sign_up(rest)
    rows = await _secrets(db, account.user_id, {"link_expired_2_days": timedelta(days=2)})
    task = asyncio.create_task(ExpiredSecretsPurge(app_db, every=0.1).run())
    try:

        async def purged() -> bool:
            return not await _left(db, rows)

        await eventually(purged, message="expired secrets still there")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
