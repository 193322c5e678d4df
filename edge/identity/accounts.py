"""The account flows: sign-up, sign-in, refresh, sign-out, email verification, password reset
and change. Each flow validates first, hashes passwords outside any transaction (an argon2 hash
must not hold a pooled connection), writes its change and its audit row in one transaction,
and sends mail only after that committed.

Choices that matter to an attacker:
- Sign-in: an unknown email and a wrong password get the same UNAUTHENTICATED message after
  the same work (an unknown email is verified against a dummy hash) and the same audit row.
- Sign-up of a taken email answers ALREADY_EXISTS: the person signing up must learn it, so
  sign-up does reveal whether an address has an account (as on most sites); rate limits at the
  edge are what keeps that from being used in bulk.
- Password reset requests always answer OK and send in the background, so neither the answer
  nor its timing tells whether the address has an account.
- Unverified accounts may sign in; the access token says `email_verified` and services that
  need a verified address check that claim.
- A link token is spent atomically (UPDATE ... WHERE used_at IS NULL): used twice, raced or
  expired, it answers INVALID_ARGUMENT on `token`."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from edge.identity import sessions, store
from edge.identity.crypto import Box, email_context, lookup_hash
from edge.identity.keys import KeyRing
from edge.identity.mail import Mailer
from edge.identity.passwords import Passwords
from edge.identity.sessions import IssuedRefresh, Outcome
from edge.identity.tokens import (
    ACCESS_TTL,
    RESET_PASSWORD_TTL,
    VERIFY_EMAIL_TTL,
    SigningKey,
    digest,
    mint_access_token,
    new_secret,
)
from edge.identity.validation import (
    MAX_PASSWORD,
    normalize_email,
    password_problem,
    validate_credentials,
    validate_email,
    validate_new_password,
    validate_sign_up,
    validate_token,
)
from services.common import errors
from services.common.db import Database
from services.common.errors import FieldViolation

log = structlog.get_logger("accounts")

VERIFY_EMAIL = "verify_email"
RESET_PASSWORD = "reset_password"
BAD_CREDENTIALS = "wrong email or password"
BAD_REFRESH = "refresh token is invalid, expired or revoked: sign in again"
BAD_LINK = "is invalid, expired or already used: ask for a new link"


@dataclass(frozen=True)
class Session:
    user_id: str
    access_token: str
    expires_in: int
    refresh: IssuedRefresh


def _request_id() -> str:
    return structlog.contextvars.get_contextvars().get("request_id", "")


class Accounts:
    def __init__(
        self,
        db: Database,
        passwords: Passwords,
        box: Box,
        lookup_key: bytes,
        keys: KeyRing,
        mailer: Mailer,
        common_passwords: frozenset[str],
        *,
        issuer: str,
        audience: str,
    ) -> None:
        self._db, self._passwords, self._box, self._lookup_key = db, passwords, box, lookup_key
        self._keys, self._mailer, self._common = keys, mailer, common_passwords
        self._issuer, self._audience = issuer, audience

    def _lookup(self, email: str) -> bytes:
        return lookup_hash(self._lookup_key, normalize_email(email))

    def _session(self, key: SigningKey, user_id: str, email_verified: bool, refresh: IssuedRefresh) -> Session:
        access = mint_access_token(
            key,
            user_id=user_id,
            session_id=refresh.family_id,
            email_verified=email_verified,
            issuer=self._issuer,
            audience=self._audience,
            now=time.time(),
        )
        return Session(user_id, access, int(ACCESS_TTL.total_seconds()), refresh)

    async def sign_up(self, email: str, password: str, display_name: str) -> tuple[Session, bool]:
        """The new account's session, and whether the verification mail went out."""
        name = validate_sign_up(email, password, display_name, self._common)
        address = email.strip()
        lookup = self._lookup(address)
        password_hash = await self._passwords.hash(password)
        key = await self._keys.signing_key()  # before the transaction: it may read the keys
        user_id, link = str(uuid.uuid4()), new_secret()
        async with self._db.transaction(user_id) as tx:
            sealed = self._box.seal(address.encode(), email_context(user_id))
            if not await store.insert_user(tx, user_id, sealed, lookup, password_hash, name):
                raise errors.already_exists("an account with this email")
            refresh = await sessions.issue(tx, user_id)
            expires = datetime.now(UTC) + VERIFY_EMAIL_TTL
            await store.insert_one_time_token(tx, digest(link), user_id, VERIFY_EMAIL, expires)
            await store.audit(tx, "sign_up", user_id=user_id, request_id=_request_id())
        session = self._session(key, user_id, False, refresh)
        return session, await self._mailer.send_verification(address, link)

    async def login(self, email: str, password: str) -> Session:
        validate_credentials(email, password)
        lookup = self._lookup(email)
        key = await self._keys.signing_key()
        async with self._db.transaction(None) as tx:
            await store.set_lookup(tx, lookup)
            user = await store.user_by_lookup(tx, lookup)
        if user is None or not await self._passwords.verify(user.password_hash, password):
            if user is None:
                await self._passwords.verify(None, password)  # the same work as a wrong password
            async with self._db.transaction(user.user_id if user else None) as tx:
                await store.audit(
                    tx,
                    "sign_in_failed",
                    user_id=user.user_id if user else None,
                    email_lookup=lookup,
                    request_id=_request_id(),
                )
            raise errors.unauthenticated(BAD_CREDENTIALS)
        rehashed = await self._passwords.hash(password) if self._passwords.needs_rehash(user.password_hash) else None
        async with self._db.transaction(user.user_id) as tx:
            if rehashed:
                await store.rehash_password(tx, user.user_id, user.password_hash, rehashed)
            refresh = await sessions.issue(tx, user.user_id)
            await store.audit(tx, "sign_in_succeeded", user_id=user.user_id, request_id=_request_id())
        return self._session(key, user.user_id, user.email_verified, refresh)

    async def refresh(self, token: str) -> Session:
        validate_token(token, "refresh_token")
        key = await self._keys.signing_key()
        async with self._db.transaction(None) as tx:
            rotation = await sessions.rotate(tx, token)
            user = None
            if rotation.outcome is Outcome.ROTATED:
                user = await store.user_by_id(tx, rotation.user_id)
                if user is None:  # the account was deleted meanwhile
                    await store.revoke_family(tx, rotation.family_id)
            elif rotation.outcome is Outcome.REUSED:
                await store.audit(tx, "refresh_reused", user_id=rotation.user_id, request_id=_request_id())
        # Committed: a reuse's revocation stands although the caller is refused.
        if user is None or rotation.issued is None:
            if rotation.outcome is Outcome.REUSED:
                log.warning("refresh token reused: family revoked", user_id=rotation.user_id)
            raise errors.unauthenticated(BAD_REFRESH)
        return self._session(key, user.user_id, user.email_verified, rotation.issued)

    async def logout(self, token: str) -> None:
        """Revokes the token's family; an unknown token is no error (sign-out is idempotent)."""
        validate_token(token, "refresh_token")
        async with self._db.transaction(None) as tx:
            revoked = await sessions.revoke(tx, token)
            if revoked is not None:
                await store.audit(tx, "signed_out", user_id=revoked[0], request_id=_request_id())

    async def _link_owner(self, token: str, purpose: str) -> str:
        """The user a live link token belongs to (read only); INVALID_ARGUMENT otherwise."""
        validate_token(token)
        token_hash = digest(token)
        async with self._db.transaction(None) as tx:
            await store.set_lookup(tx, token_hash)
            owner = await store.one_time_token_owner(tx, token_hash, purpose)
        if owner is None:
            raise errors.invalid_field("token", BAD_LINK)
        return owner

    async def verify_email(self, token: str) -> None:
        owner = await self._link_owner(token, VERIFY_EMAIL)
        async with self._db.transaction(owner) as tx:
            used = await store.use_one_time_token(tx, digest(token), VERIFY_EMAIL)
            if used:
                await store.mark_email_verified(tx, owner)
                await store.audit(tx, "email_verified", user_id=owner, request_id=_request_id())
        if not used:
            raise errors.invalid_field("token", BAD_LINK)

    async def resend_verification(self, user_id: str) -> bool:
        """A new verification link for the signed-in caller; whether the mail went out."""
        link = new_secret()
        async with self._db.transaction(user_id) as tx:
            user = await store.user_by_id(tx, user_id)
            if user is None:
                raise errors.unauthenticated("no account for this access token")
            if user.email_verified:
                raise errors.failed_precondition("the email address is already verified")
            expires = datetime.now(UTC) + VERIFY_EMAIL_TTL
            await store.insert_one_time_token(tx, digest(link), user_id, VERIFY_EMAIL, expires)
        address = self._box.open(user.email_ciphertext, email_context(user_id)).decode()
        return await self._mailer.send_verification(address, link)

    async def request_password_reset(self, email: str) -> None:
        """Answers the same whether or not the address has an account."""
        validate_email(email)
        lookup = self._lookup(email)
        link = new_secret()
        async with self._db.transaction(None) as tx:
            await store.set_lookup(tx, lookup)
            user = await store.user_by_lookup(tx, lookup)
            if user is not None:
                await store.act_as(tx, user.user_id)
                expires = datetime.now(UTC) + RESET_PASSWORD_TTL
                await store.insert_one_time_token(tx, digest(link), user.user_id, RESET_PASSWORD, expires)
        if user is not None:
            # The address as the user wrote it at sign-up, not as typed in this request.
            address = self._box.open(user.email_ciphertext, email_context(user.user_id)).decode()
            self._mailer.in_background(self._mailer.send_password_reset(address, link))

    async def reset_password(self, token: str, new_password: str) -> None:
        """Sets the password, spends every open reset link and signs out every session."""
        validate_new_password(new_password, self._common)
        owner = await self._link_owner(token, RESET_PASSWORD)
        password_hash = await self._passwords.hash(new_password)
        async with self._db.transaction(owner) as tx:
            used = await store.use_one_time_token(tx, digest(token), RESET_PASSWORD)
            if used:
                await store.set_password(tx, owner, password_hash)
                await store.spend_open_tokens(tx, owner, RESET_PASSWORD)
                await store.revoke_families_of_user(tx, owner)
                await store.audit(tx, "password_reset", user_id=owner, request_id=_request_id())
        if not used:
            raise errors.invalid_field("token", BAD_LINK)

    async def change_password(self, user_id: str, session_id: str, current: str, new_password: str) -> None:
        """Needs the current password; signs out every other session. The caller's own session
        (the `sid` of its access token) stays signed in; a token without `sid` (e.g. a
        development token) keeps none."""
        violations = []
        if not current:
            violations.append(FieldViolation("current_password", "is required"))
        elif len(current) > MAX_PASSWORD:
            violations.append(FieldViolation("current_password", f"must be at most {MAX_PASSWORD} characters"))
        if problem := password_problem(new_password, self._common):
            violations.append(FieldViolation("new_password", problem))
        if violations:
            raise errors.invalid_argument(*violations)
        async with self._db.transaction(user_id) as tx:
            user = await store.user_by_id(tx, user_id)
        if user is None:
            raise errors.unauthenticated("no account for this access token")
        if not await self._passwords.verify(user.password_hash, current):
            raise errors.permission_denied("current_password is not the account's password")
        password_hash = await self._passwords.hash(new_password)
        keep = session_id if _is_uuid(session_id) else None
        async with self._db.transaction(user_id) as tx:
            await store.set_password(tx, user_id, password_hash)
            await store.spend_open_tokens(tx, user_id, RESET_PASSWORD)
            await store.revoke_families_of_user(tx, user_id, keep_family=keep)
            await store.audit(tx, "password_changed", user_id=user_id, request_id=_request_id())


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
