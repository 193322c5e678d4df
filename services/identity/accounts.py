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
  expired, it answers INVALID_ARGUMENT on `token`.
- Sign-in with a provider (GitHub, Google; the protocol is in oauth.py) never lets a provider's
  word about an email take over an account: an existing account is joined by its email only
  when the provider verified the address and the account verified it too (see
  sign_in_with_provider)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from services.common import errors
from services.common.db import Database, Tx
from services.common.errors import FieldViolation
from services.common.logging import current_request_id
from services.identity import sessions, store
from services.identity.crypto import Box, email_context, lookup_hash
from services.identity.keys import KeyRing
from services.identity.mail import Mailer
from services.identity.passwords import Passwords
from services.identity.ratelimit import LoginGuard
from services.identity.sessions import IssuedRefresh, Outcome
from services.identity.tokens import (
    ACCESS_TTL,
    RESET_PASSWORD_TTL,
    VERIFY_EMAIL_TTL,
    SigningKey,
    digest,
    mint_access_token,
    new_secret,
)
from services.identity.validation import (
    MAX_DISPLAY_NAME,
    MAX_PASSWORD,
    normalize_email,
    password_problem,
    validate_credentials,
    validate_email,
    validate_new_password,
    validate_sign_up,
    validate_token,
)

log = structlog.get_logger("accounts")

# Sign-in providers (services/identity/oauth.py speaks their protocols).
GITHUB, GOOGLE = "github", "google"
LABELS = {GITHUB: "GitHub", GOOGLE: "Google"}


@dataclass(frozen=True)
class ProviderUser:
    """Who signed in at the provider, as the provider says."""

    provider: str
    subject: str  # GitHub's numeric id, Google's `sub`: stable, unlike logins and emails
    email: str | None  # None: none shared, or not a usable address
    email_verified: bool
    name: str = ""
    login: str = ""  # GitHub only
    avatar_url: str = ""
    bio: str = ""
    location: str = ""

    @property
    def label(self) -> str:
        return LABELS[self.provider]


VERIFY_EMAIL = "verify_email"
RESET_PASSWORD = "reset_password"
BAD_CREDENTIALS = "wrong email or password"
BAD_REFRESH = "refresh token is invalid, expired or revoked: sign in again"
BAD_LINK = "is invalid, expired or already used: ask for a new link"
EMAIL_TAKEN = "an account with this email exists; sign in and link"
# Attempts of a provider sign-in that lost a race (the same identity or email created meanwhile).
PROVIDER_ATTEMPTS = 3


@dataclass(frozen=True)
class Session:
    user_id: str
    access_token: str
    expires_in: int
    refresh: IssuedRefresh


@dataclass(frozen=True)
class ProviderSignIn:
    session: Session
    created: bool  # the account was created by this sign-in
    linked: bool  # the provider identity joined an account in this call (created or linked)
    email_verified: bool


class _Raced(Exception):
    """Another request linked the identity or took the email meanwhile: resolve again."""


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
        login_guard: LoginGuard | None = None,
    ) -> None:
        self._db, self._passwords, self._box, self._lookup_key = db, passwords, box, lookup_key
        self._keys, self._mailer, self._common = keys, mailer, common_passwords
        self._issuer, self._audience = issuer, audience
        # Failed sign-ins per account (services.identity.ratelimit); None: unlimited.
        self._login_guard = login_guard

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
            await store.audit(tx, "sign_up", user_id=user_id, request_id=current_request_id())
        session = self._session(key, user_id, False, refresh)
        return session, await self._mailer.send_verification(address, link)

    async def login(self, email: str, password: str) -> Session:
        """Signs in, within the per-account limit of failed attempts (services.identity.ratelimit:
        RESOURCE_EXHAUSTED past it, UNAVAILABLE while its counter cannot be read)."""
        validate_credentials(email, password)
        if self._login_guard is None:
            return await self._login(email, password)
        async with self._login_guard.attempt(self._lookup(email)):
            return await self._login(email, password)

    async def _login(self, email: str, password: str) -> Session:
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
                    request_id=current_request_id(),
                )
            raise errors.unauthenticated(BAD_CREDENTIALS)
        rehashed = await self._passwords.hash(password) if self._passwords.needs_rehash(user.password_hash) else None
        async with self._db.transaction(user.user_id) as tx:
            if rehashed:
                await store.rehash_password(tx, user.user_id, user.password_hash, rehashed)
            refresh = await sessions.issue(tx, user.user_id)
            await store.audit(tx, "sign_in_succeeded", user_id=user.user_id, request_id=current_request_id())
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
                await store.audit(tx, "refresh_reused", user_id=rotation.user_id, request_id=current_request_id())
        # Committed: a reuse's revocation stands although the caller is refused.
        if user is None or rotation.issued is None:
            if rotation.outcome is Outcome.REUSED:
                log.warning("refresh token reused: family revoked", user_id=rotation.user_id)
            raise errors.unauthenticated(BAD_REFRESH)
        return self._session(key, user.user_id, user.email_verified, rotation.issued)

    async def logout(self, token: str, everywhere: bool = False) -> None:
        """Revokes the token's family (`everywhere`: every family of its user); an unknown token
        is no error (sign-out is idempotent)."""
        validate_token(token, "refresh_token")
        async with self._db.transaction(None) as tx:
            revoked = await sessions.revoke(tx, token)
            if revoked is None:
                return
            user_id = revoked[0]
            if everywhere:
                await store.revoke_families_of_user(tx, user_id)
            await store.audit(tx, "signed_out", user_id=user_id, request_id=current_request_id())

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
                await store.audit(tx, "email_verified", user_id=owner, request_id=current_request_id())
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
                await store.audit(tx, "password_reset", user_id=owner, request_id=current_request_id())
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
            await store.audit(tx, "password_changed", user_id=user_id, request_id=current_request_id())

    async def sign_in_with_provider(self, who: ProviderUser, caller: str | None) -> ProviderSignIn:
        """Signs in the account of a provider identity (GitHub, Google) the provider vouched for:

        1. an identity linked before signs in its account; when the request is also signed in
           as another account, FAILED_PRECONDITION (an identity belongs to one account);
        2. else, a signed-in caller (`caller`, verified from the request's bearer token) gets
           the identity linked to their account (at most one identity per provider);
        3. else, an account with the provider's email is joined only if the provider verified
           the address AND the account verified it; otherwise FAILED_PRECONDITION (no account
           takeover through an unverified email: sign in to that account and link);
        4. else an account is created: no password, the provider's email (verified only if the
           provider verified it; if not, a verification link is mailed as after sign-up).

        Audit: `sign_up` (created), `provider_linked` (cases 2 and 3) and `sign_in_succeeded`
        (all but created), each with the provider."""
        key = await self._keys.signing_key()  # before the transaction: it may read the keys
        for _ in range(PROVIDER_ATTEMPTS):
            link = new_secret()
            try:
                async with self._db.transaction(None) as tx:
                    user_id, created, linked, verified = await self._resolve_provider(tx, who, caller, link)
                    refresh = await sessions.issue(tx, user_id)
                    request_id = current_request_id()
                    if linked and not created:
                        await store.audit(
                            tx, "provider_linked", user_id=user_id, request_id=request_id, provider=who.provider
                        )
                    event = "sign_up" if created else "sign_in_succeeded"
                    await store.audit(tx, event, user_id=user_id, request_id=request_id, provider=who.provider)
            except _Raced:
                continue
            if created and not verified and who.email:
                self._mailer.in_background(self._mailer.send_verification(who.email, link))
            session = self._session(key, user_id, verified, refresh)
            return ProviderSignIn(session, created, linked, verified)
        raise errors.unavailable("the sign-in collided with another one for the same account: try again")

    async def _resolve_provider(
        self, tx: Tx, who: ProviderUser, caller: str | None, link: str
    ) -> tuple[str, bool, bool, bool]:
        """(user_id, created, linked, email_verified) of the account `who` signs in to."""
        await store.set_lookup(tx, store.identity_lookup(who.provider, who.subject))
        owner = await store.identity_owner(tx, who.provider, who.subject)
        if owner is not None:  # 1. linked before
            if caller is not None and caller != owner:
                raise errors.failed_precondition(f"this {who.label} account is linked to another OpenHR account")
            await store.act_as(tx, owner)
            user = await store.user_by_id(tx, owner)
            if user is None:
                raise errors.unauthenticated(f"the account of this {who.label} sign-in no longer exists")
            return owner, False, False, user.email_verified
        if caller is not None:  # 2. a signed-in caller links this provider
            await store.act_as(tx, caller)
            user = await store.user_by_id(tx, caller)
            if user is None:
                raise errors.unauthenticated("no account for this access token")
            await self._link(tx, who, caller)
            return caller, False, True, user.email_verified
        if not who.email:
            raise errors.failed_precondition(
                f"{who.label} shares no usable email address for this account: add one there, or sign up with email"
            )
        lookup = self._lookup(who.email)
        await store.set_lookup(tx, lookup)
        existing = await store.user_by_lookup(tx, lookup)
        if existing is not None:  # 3. the email's account: both sides must have verified it
            if not (who.email_verified and existing.email_verified):
                raise errors.failed_precondition(EMAIL_TAKEN)
            await store.act_as(tx, existing.user_id)
            await self._link(tx, who, existing.user_id, refuse=EMAIL_TAKEN)
            return existing.user_id, False, True, True
        user_id = str(uuid.uuid4())  # 4. a new account
        await store.act_as(tx, user_id)
        sealed = self._box.seal(who.email.encode(), email_context(user_id))
        name = " ".join(who.name.split())[:MAX_DISPLAY_NAME]
        if not await store.insert_user(tx, user_id, sealed, lookup, None, name, email_verified=who.email_verified):
            raise _Raced
        if not await store.insert_identity(tx, who.provider, who.subject, user_id):
            raise _Raced
        if not who.email_verified:
            expires = datetime.now(UTC) + VERIFY_EMAIL_TTL
            await store.insert_one_time_token(tx, digest(link), user_id, VERIFY_EMAIL, expires)
        return user_id, True, True, who.email_verified

    @staticmethod
    async def _link(tx: Tx, who: ProviderUser, user_id: str, refuse: str | None = None) -> None:
        """Links `who` to the acting user, who must not have another identity of that provider."""
        if await store.has_identity_of(tx, user_id, who.provider):
            raise errors.failed_precondition(refuse or f"another {who.label} account is linked to this account already")
        if not await store.insert_identity(tx, who.provider, who.subject, user_id):
            raise _Raced


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
