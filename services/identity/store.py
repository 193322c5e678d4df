"""SQL for the identity schema, on the transaction `Database.transaction(user_id)` opened.

Row-level security sees the acting user (`app.user_id`) or the one row of a presented secret
(`app.lookup`, the hex of an email lookup hash or a token's SHA-256). A flow that starts from a
secret sets the lookup, finds the row, then acts for its user (`act_as`) to change anything."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from asyncpg import Record

from services.common.db import Tx, rows_affected

SCHEMA = "identity"


@dataclass(frozen=True)
class User:
    user_id: str
    email_ciphertext: bytes
    email_verified: bool
    password_hash: str | None


def _user(row: Record | None) -> User | None:
    if row is None:
        return None
    return User(str(row["user_id"]), row["email_ciphertext"], row["email_verified"], row["password_hash"])


async def set_lookup(tx: Tx, secret_hash: bytes) -> None:
    await tx.execute("SELECT set_config('app.lookup', $1, true)", secret_hash.hex())


async def act_as(tx: Tx, user_id: str) -> None:
    await tx.execute("SELECT set_config('app.user_id', $1, true)", str(uuid.UUID(user_id)))


# --- users --------------------------------------------------------------------------------------

_USER = "SELECT user_id, email_ciphertext, email_verified, password_hash FROM identity.users"


async def insert_user(
    tx: Tx,
    user_id: str,
    email_ciphertext: bytes,
    email_lookup: bytes,
    password_hash: str | None,
    display_name: str,
    *,
    email_verified: bool = False,
) -> bool:
    """False when the email is taken (the unique lookup hash). No password: a provider's
    account (GitHub, Google); `email_verified` when the provider vouched for the address."""
    inserted = await tx.fetchval(
        "INSERT INTO identity.users"
        " (user_id, email_ciphertext, email_lookup, password_hash, display_name, email_verified, email_verified_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $6 THEN now() END)"
        " ON CONFLICT (email_lookup) DO NOTHING RETURNING true",
        uuid.UUID(user_id),
        email_ciphertext,
        email_lookup,
        password_hash,
        display_name,
        email_verified,
    )
    return bool(inserted)


async def user_by_lookup(tx: Tx, email_lookup: bytes) -> User | None:
    """Needs `set_lookup(email_lookup)` first (RLS)."""
    return _user(
        await tx.fetchrow(f"{_USER} WHERE email_lookup = $1 AND deleted_at IS NULL", email_lookup),
    )


async def user_by_id(tx: Tx, user_id: str) -> User | None:
    return _user(await tx.fetchrow(f"{_USER} WHERE user_id = $1 AND deleted_at IS NULL", uuid.UUID(user_id)))


async def set_password(tx: Tx, user_id: str, password_hash: str) -> None:
    await tx.execute(
        "UPDATE identity.users SET password_hash = $2, password_changed_at = now(), updated_at = now()"
        " WHERE user_id = $1",
        uuid.UUID(user_id),
        password_hash,
    )


async def rehash_password(tx: Tx, user_id: str, old_hash: str, new_hash: str) -> None:
    """Upgrades a hash made with older parameters, unless the password changed meanwhile."""
    await tx.execute(
        "UPDATE identity.users SET password_hash = $3 WHERE user_id = $1 AND password_hash = $2",
        uuid.UUID(user_id),
        old_hash,
        new_hash,
    )


async def mark_email_verified(tx: Tx, user_id: str) -> None:
    await tx.execute(
        "UPDATE identity.users SET email_verified = true, email_verified_at = coalesce(email_verified_at, now()),"
        " updated_at = now() WHERE user_id = $1",
        uuid.UUID(user_id),
    )


# --- refresh tokens -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RefreshToken:
    user_id: str
    family_id: str
    expires_at: datetime
    rotated: bool  # spent by a refresh: presenting it again is reuse
    revoked: bool  # its family was revoked (sign-out, reuse, password change)


async def insert_refresh_token(tx: Tx, token_hash: bytes, user_id: str, family_id: str, expires_at: datetime) -> None:
    await tx.execute(
        "INSERT INTO identity.refresh_tokens (token_hash, user_id, family_id, expires_at) VALUES ($1, $2, $3, $4)",
        token_hash,
        uuid.UUID(user_id),
        uuid.UUID(family_id),
        expires_at,
    )


async def refresh_token(tx: Tx, token_hash: bytes) -> RefreshToken | None:
    """Needs `set_lookup(token_hash)` first (RLS)."""
    row = await tx.fetchrow(
        "SELECT user_id, family_id, expires_at, rotated_at IS NOT NULL AS rotated, revoked_at IS NOT NULL AS revoked"
        " FROM identity.refresh_tokens WHERE token_hash = $1",
        token_hash,
    )
    if row is None:
        return None
    return RefreshToken(str(row["user_id"]), str(row["family_id"]), row["expires_at"], row["rotated"], row["revoked"])


async def spend_refresh_token(tx: Tx, token_hash: bytes) -> bool:
    """Marks a live token rotated; False when it was already spent (by a concurrent call too:
    the second UPDATE waits for the first to commit and then matches nothing)."""
    spent = await tx.fetchval(
        "UPDATE identity.refresh_tokens SET rotated_at = now()"
        " WHERE token_hash = $1 AND rotated_at IS NULL AND revoked_at IS NULL RETURNING true",
        token_hash,
    )
    return bool(spent)


async def revoke_family(tx: Tx, family_id: str) -> None:
    await tx.execute(
        "UPDATE identity.refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL",
        uuid.UUID(family_id),
    )


async def revoke_families_of_user(tx: Tx, user_id: str, keep_family: str | None = None) -> None:
    await tx.execute(
        "UPDATE identity.refresh_tokens SET revoked_at = now()"
        " WHERE user_id = $1 AND revoked_at IS NULL AND family_id IS DISTINCT FROM $2",
        uuid.UUID(user_id),
        uuid.UUID(keep_family) if keep_family else None,
    )


# --- one-time link tokens -------------------------------------------------------------------------


async def insert_one_time_token(tx: Tx, token_hash: bytes, user_id: str, purpose: str, expires_at: datetime) -> None:
    await tx.execute(
        "INSERT INTO identity.one_time_tokens (token_hash, user_id, purpose, expires_at) VALUES ($1, $2, $3, $4)",
        token_hash,
        uuid.UUID(user_id),
        purpose,
        expires_at,
    )


async def one_time_token_owner(tx: Tx, token_hash: bytes, purpose: str) -> str | None:
    """Needs `set_lookup(token_hash)` first (RLS)."""
    owner = await tx.fetchval(
        "SELECT user_id FROM identity.one_time_tokens WHERE token_hash = $1 AND purpose = $2", token_hash, purpose
    )
    return str(owner) if owner else None


async def use_one_time_token(tx: Tx, token_hash: bytes, purpose: str) -> bool:
    """Spends a live token; False when it was used already or has expired."""
    used = await tx.fetchval(
        "UPDATE identity.one_time_tokens SET used_at = now()"
        " WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > now() RETURNING true",
        token_hash,
        purpose,
    )
    return bool(used)


async def spend_open_tokens(tx: Tx, user_id: str, purpose: str) -> None:
    """Every outstanding link of this purpose stops working (after a password change or reset)."""
    await tx.execute(
        "UPDATE identity.one_time_tokens SET used_at = now() WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL",
        uuid.UUID(user_id),
        purpose,
    )


# --- OAuth: pending states and linked provider identities ---------------------------------------


@dataclass(frozen=True)
class OAuthState:
    provider: str
    code_verifier_ciphertext: bytes
    redirect_uri: str
    expires_at: datetime


# How long past its expiry each kind of secret is kept (the RLS purge policies of migrations
# 0002 and 0004 allow deleting exactly these; a migration keeps its own copy as of its revision).
PURGE_AFTER = {
    "refresh_tokens": timedelta(days=30),
    "one_time_tokens": timedelta(days=1),
    "oauth_states": timedelta(days=1),
}


async def purge_expired(tx: Tx) -> dict[str, int]:
    """Deletes the secrets expired for longer than PURGE_AFTER, whoever they belonged to;
    returns the number of rows deleted per table."""
    deleted = {}
    for table, grace in PURGE_AFTER.items():
        status = await tx.execute(f"DELETE FROM identity.{table} WHERE expires_at < now() - $1::interval", grace)
        deleted[table] = rows_affected(status)
    return deleted


async def insert_oauth_state(
    tx: Tx, state_hash: bytes, provider: str, code_verifier_ciphertext: bytes, redirect_uri: str, expires_at: datetime
) -> None:
    """Needs `set_lookup(state_hash)` first (RLS)."""
    await tx.execute(
        "INSERT INTO identity.oauth_states (state_hash, provider, code_verifier_ciphertext, redirect_uri, expires_at)"
        " VALUES ($1, $2, $3, $4, $5)",
        state_hash,
        provider,
        code_verifier_ciphertext,
        redirect_uri,
        expires_at,
    )


async def spend_oauth_state(tx: Tx, state_hash: bytes) -> OAuthState | None:
    """Marks an unused state used and returns it (expired or not: the caller checks); None when
    it is unknown or was used before. Needs `set_lookup(state_hash)` first (RLS). A concurrent
    second spend waits for the first to commit and then matches nothing."""
    row = await tx.fetchrow(
        "UPDATE identity.oauth_states SET used_at = now() WHERE state_hash = $1 AND used_at IS NULL"
        " RETURNING provider, code_verifier_ciphertext, redirect_uri, expires_at",
        state_hash,
    )
    if row is None:
        return None
    return OAuthState(row["provider"], row["code_verifier_ciphertext"], row["redirect_uri"], row["expires_at"])


async def oauth_state_exists(tx: Tx, state_hash: bytes) -> bool:
    """Needs `set_lookup(state_hash)` first (RLS)."""
    return bool(await tx.fetchval("SELECT true FROM identity.oauth_states WHERE state_hash = $1", state_hash))


def identity_lookup(provider: str, provider_user_id: str) -> bytes:
    """What `set_lookup` takes to see the identity row of (provider, provider_user_id)."""
    return hashlib.sha256(f"{provider}:{provider_user_id}".encode()).digest()


async def identity_owner(tx: Tx, provider: str, provider_user_id: str) -> str | None:
    """The account a provider identity is linked to. Needs `set_lookup(identity_lookup(...))`."""
    owner = await tx.fetchval(
        "SELECT user_id FROM identity.oauth_identities WHERE provider = $1 AND provider_user_id = $2",
        provider,
        provider_user_id,
    )
    return str(owner) if owner else None


async def has_identity_of(tx: Tx, user_id: str, provider: str) -> bool:
    """Whether the (acting) user has an identity of `provider` linked already."""
    return bool(
        await tx.fetchval(
            "SELECT true FROM identity.oauth_identities WHERE user_id = $1 AND provider = $2",
            uuid.UUID(user_id),
            provider,
        )
    )


async def insert_identity(tx: Tx, provider: str, provider_user_id: str, user_id: str) -> bool:
    """Links the identity to the acting user; False when it (or an identity of the same provider
    for this user) was linked meanwhile."""
    inserted = await tx.fetchval(
        "INSERT INTO identity.oauth_identities (provider, provider_user_id, user_id) VALUES ($1, $2, $3)"
        " ON CONFLICT DO NOTHING RETURNING true",
        provider,
        provider_user_id,
        uuid.UUID(user_id),
    )
    return bool(inserted)


# --- signing keys -------------------------------------------------------------------------------


async def signing_keys(tx: Tx) -> list[Record]:
    return await tx.fetch(
        "SELECT kid, public_jwk, private_key_ciphertext, activates_at, retired_at"
        " FROM identity.signing_keys ORDER BY activates_at"
    )


async def lock_signing_keys(tx: Tx) -> None:
    """Serializes key rotation across replicas until the transaction ends."""
    await tx.execute("SELECT pg_advisory_xact_lock(hashtext('identity.signing_keys'))")


async def insert_signing_key(
    tx: Tx, kid: str, public_jwk: dict, private_key_ciphertext: bytes, activates_at: datetime
) -> None:
    await tx.execute(
        "INSERT INTO identity.signing_keys (kid, public_jwk, private_key_ciphertext, activates_at)"
        " VALUES ($1, $2, $3, $4)",
        kid,
        public_jwk,
        private_key_ciphertext,
        activates_at,
    )


async def retire_signing_key(tx: Tx, kid: str, retired_at: datetime) -> None:
    await tx.execute("UPDATE identity.signing_keys SET retired_at = $2 WHERE kid = $1", kid, retired_at)


# --- audit log ----------------------------------------------------------------------------------


async def audit(
    tx: Tx,
    event: str,
    *,
    user_id: str | None = None,
    email_lookup: bytes | None = None,
    request_id: str = "",
    provider: str | None = None,
) -> None:
    """`provider`: the sign-in provider (github, google) of an OAuth event, None otherwise."""
    await tx.execute(
        "INSERT INTO identity.audit_log (event, user_id, email_lookup, request_id, provider)"
        " VALUES ($1, $2, $3, $4, $5)",
        event,
        uuid.UUID(user_id) if user_id else None,
        email_lookup,
        request_id[:128],
        provider,
    )


# --- privacy: export and erasure (services/identity/privacy.py) ------------------------------------


async def account_of(tx: Tx, user_id: str) -> Record | None:
    """The acting user's live account row, for an export."""
    return await tx.fetchrow(
        "SELECT email_ciphertext, email_verified, email_verified_at, display_name, created_at, password_changed_at,"
        " password_hash IS NOT NULL AS has_password FROM identity.users WHERE user_id = $1 AND deleted_at IS NULL",
        uuid.UUID(user_id),
    )


async def identities_of(tx: Tx, user_id: str) -> list[Record]:
    return await tx.fetch(
        "SELECT provider, provider_user_id, created_at FROM identity.oauth_identities WHERE user_id = $1"
        " ORDER BY created_at",
        uuid.UUID(user_id),
    )


async def sessions_of(tx: Tx, user_id: str) -> list[Record]:
    """One row per refresh family (a sign-in): no token hashes."""
    return await tx.fetch(
        "SELECT family_id, min(created_at) AS created_at, max(expires_at) AS expires_at, max(revoked_at) AS revoked_at,"
        " count(*) AS refreshes FROM identity.refresh_tokens WHERE user_id = $1"
        " GROUP BY family_id ORDER BY min(created_at)",
        uuid.UUID(user_id),
    )


async def audit_of(tx: Tx, user_id: str) -> list[Record]:
    return await tx.fetch(
        "SELECT occurred_at, event, provider, request_id FROM identity.audit_log WHERE user_id = $1 ORDER BY id",
        uuid.UUID(user_id),
    )


async def erase_user(tx: Tx, user_id: str) -> bool:
    """Erases the acting user's personal data and keeps the row (the id is never reused) with
    deleted_at set; refresh families end, links and provider identities go, and the audit rows
    lose their email lookup hash. True when the account was live (False: unknown or erased)."""
    uid = uuid.UUID(user_id)
    erased = await tx.fetchval(
        "UPDATE identity.users SET email_ciphertext = NULL, email_lookup = NULL, password_hash = NULL,"
        " display_name = '', email_verified = false, email_verified_at = NULL, password_changed_at = NULL,"
        " deleted_at = now(), updated_at = now() WHERE user_id = $1 AND deleted_at IS NULL RETURNING true",
        uid,
    )
    await revoke_families_of_user(tx, user_id)
    await tx.execute("DELETE FROM identity.one_time_tokens WHERE user_id = $1", uid)
    await tx.execute("DELETE FROM identity.oauth_identities WHERE user_id = $1", uid)
    await tx.execute(
        "UPDATE identity.audit_log SET email_lookup = NULL WHERE user_id = $1 AND email_lookup IS NOT NULL", uid
    )
    return bool(erased)
