"""Emails are personal data: encrypted at rest, found only by a keyed hash, never logged. The
identity schema's row-level security and the append-only audit log, as the app role sees them."""

from __future__ import annotations

import base64
import hashlib
import hmac

import asyncpg
import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from deploy.local.ephemeral import Mesh
from tests.identity.support import Account, login, new_email, next_link, sign_up
from tests.logs import caught_up
from tests.users import PASSWORD

IDENTITY_TABLES = ("users", "refresh_tokens", "one_time_tokens", "audit_log", "signing_keys", "outbox")


def _local_key(mesh: Mesh, name: str) -> bytes:
    """The mesh runs in local mode: identity generated its keys into the data dir."""
    return base64.b64decode((mesh.config.data_dir / "identity-keys" / name).read_text())


async def _exercise(mesh: Mesh, rest) -> Account:
    """An account through every flow that handles its address."""
    account = await sign_up(rest, email=new_email("Privacy"))
    await rest.post("/v1/auth/email:verify", json={"token": await next_link(mesh, account.email, "verify-email")})
    await login(rest, account, "wrong-password-123")
    await login(rest, account)
    await rest.post("/v1/auth/signup", json={"email": account.email, "password": PASSWORD})  # taken
    await rest.post("/v1/auth/password:forgot", json={"email": account.email})
    await next_link(mesh, account.email, "reset-password")
    await rest.post("/v1/auth/login", json={"email": "unknown-" + account.email, "password": PASSWORD})
    await rest.post("/v1/auth/signup", json={"email": account.email + "x", "password": "short"})  # 400
    return account


async def test_emails_never_reach_a_log(mesh: Mesh, rest) -> None:
    account = await _exercise(mesh, rest)
    await caught_up(mesh, rest)
    local_part = account.email.split("@")[0]
    logs = sorted((mesh.config.data_dir / "logs").glob("*.log"))
    assert {"identity", "envoy", "mail"} <= {path.stem for path in logs}
    for path in logs:
        text = path.read_text(errors="replace").lower()
        assert local_part.lower() not in text, f"{path.name} logged an email address"


async def test_no_plaintext_email_at_rest(mesh: Mesh, rest, db) -> None:
    account = await _exercise(mesh, rest)
    needles = {account.email.lower(), account.email.encode().hex(), account.email.lower().encode().hex()}
    for table in IDENTITY_TABLES:
        rows = await db.fetch(f"SELECT t::text AS row FROM identity.{table} t")
        for row in rows:
            text = row["row"].lower()
            assert not any(needle in text for needle in needles), f"identity.{table} holds the address"

    user = await db.fetchrow("SELECT * FROM identity.users WHERE user_id = $1", account.user_id)
    # Encrypted (AES-256-GCM, bound to the row by associated data), not lost: it decrypts.
    sealed = user["email_ciphertext"]
    context = f"identity.users.email:{account.user_id}".encode()
    assert AESGCM(_local_key(mesh, "data.key")).decrypt(sealed[:12], sealed[12:], context).decode() == account.email
    with pytest.raises(InvalidTag):
        AESGCM(_local_key(mesh, "data.key")).decrypt(sealed[:12], sealed[12:], b"identity.users.email:another")
    # Found by a keyed hash of the normalized address: without the key, no guess can be checked.
    lookup = hmac.new(_local_key(mesh, "lookup.key"), account.email.lower().encode(), hashlib.sha256).digest()
    assert user["email_lookup"] == lookup
    assert user["email_lookup"] != hashlib.sha256(account.email.lower().encode()).digest()
    # Passwords: argon2id, never the password.
    assert user["password_hash"].startswith("$argon2id$v=19$m=65536,t=3,p=4$")


async def test_local_keys_are_private_files(mesh: Mesh) -> None:
    key_dir = mesh.config.data_dir / "identity-keys"
    for name in ("data.key", "lookup.key"):
        assert (key_dir / name).stat().st_mode & 0o777 == 0o600
    assert len(_local_key(mesh, "data.key")) == 32 and len(_local_key(mesh, "lookup.key")) >= 32


async def test_audit_log_rows_carry_no_personal_data(mesh: Mesh, rest, db) -> None:
    account = await _exercise(mesh, rest)
    columns = [
        row["column_name"]
        for row in await db.fetch(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = 'identity' AND table_name = 'audit_log' ORDER BY ordinal_position"
        )
    ]
    assert columns == ["id", "occurred_at", "event", "user_id", "email_lookup", "request_id", "provider"]
    rows = await db.fetch("SELECT * FROM identity.audit_log WHERE user_id = $1 ORDER BY id", account.user_id)
    assert [row["event"] for row in rows] == [
        "sign_up",
        "email_verified",
        "sign_in_failed",
        "sign_in_succeeded",
    ]
    assert all(row["request_id"] for row in rows), "every event names the request that caused it"


async def _as_app(db, sql: str, *args, user_id: str = "", lookup: bytes = b""):
    """Runs `sql` as the identity app role with the given RLS context, like the service does."""
    async with db.acquire() as connection, connection.transaction():
        await connection.execute("SET LOCAL ROLE identity_app")
        await connection.execute("SELECT set_config('app.user_id', $1, true)", user_id)
        await connection.execute("SELECT set_config('app.lookup', $1, true)", lookup.hex())
        return await connection.fetch(sql, *args)


async def test_row_level_security_scopes_every_query(rest, db) -> None:
    alice, bob = await sign_up(rest), await sign_up(rest)
    everyone = "SELECT user_id FROM identity.users"
    assert await _as_app(db, everyone) == []
    assert [str(r["user_id"]) for r in await _as_app(db, everyone, user_id=alice.user_id)] == [alice.user_id]
    bob_lookup = await db.fetchval("SELECT email_lookup FROM identity.users WHERE user_id = $1", bob.user_id)
    assert [str(r["user_id"]) for r in await _as_app(db, everyone, lookup=bob_lookup)] == [bob.user_id]

    tokens = "SELECT DISTINCT user_id FROM identity.refresh_tokens"
    assert [str(r["user_id"]) for r in await _as_app(db, tokens, user_id=alice.user_id)] == [alice.user_id]
    changed = await _as_app(
        db,
        "UPDATE identity.users SET display_name = 'owned' WHERE user_id = $1 RETURNING user_id",
        bob.user_id,
        user_id=alice.user_id,
    )
    assert changed == []
    # Found by its lookup hash is not owned: writing needs the acting user.
    changed = await _as_app(
        db,
        "UPDATE identity.users SET display_name = 'owned' WHERE user_id = $1 RETURNING user_id",
        bob.user_id,
        lookup=bob_lookup,
    )
    assert changed == []
    assert await db.fetchval("SELECT display_name FROM identity.users WHERE user_id = $1", bob.user_id) == ""


async def test_audit_log_is_append_only_and_private(rest, db) -> None:
    alice, bob = await sign_up(rest), await sign_up(rest)
    own = await _as_app(db, "SELECT DISTINCT user_id FROM identity.audit_log", user_id=alice.user_id)
    assert [str(r["user_id"]) for r in own] == [alice.user_id]
    for statement in ("UPDATE identity.audit_log SET event = 'sign_up'", "DELETE FROM identity.audit_log"):
        # Not granted at all (SQLSTATE 42501), whoever's rows.
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match=r"^permission denied for table audit_log$"):
            await _as_app(db, statement, user_id=alice.user_id)
    # Granted, but RLS refuses a row in another user's name (42501 too, its own message).
    with pytest.raises(
        asyncpg.InsufficientPrivilegeError, match=r'^new row violates row-level security policy for table "audit_log"$'
    ):
        await _as_app(
            db,
            "INSERT INTO identity.audit_log (event, user_id) VALUES ('signed_out', $1)",
            bob.user_id,
            user_id=alice.user_id,
        )
