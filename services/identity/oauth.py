"""Sign-in with GitHub and Google: OAuth 2.0 authorization code with PKCE (S256) and a
single-use `state`.

StartOAuth creates a random state (256 bits) and code verifier (512 bits), stores the state's
SHA-256 with the provider, the redirect URI, the verifier encrypted with the data key, and an
expiry 10 minutes ahead, and answers the provider's authorization URL. The browser signs in
there and comes back to the redirect URI with `code` and `state`; the page posts both to
CompleteOAuth, which

1. spends the state in one UPDATE (first presentation wins, whatever follows: a replayed, raced
   or unknown state, one issued for the other provider or an expired one answers
   UNAUTHENTICATED, HTTP 401, "start the sign-in again");
2. exchanges the code with the verifier and the same redirect URI at the provider's token URL;
3. reads who signed in (GitHub: /user and /user/emails; Google: the userinfo endpoint);
4. signs in, links or creates the account (Accounts.sign_in_with_provider has the rules);
5. the first time a GitHub identity joins an account, creates the profile from GitHub's data
   by calling ProfileService.CreateProfile as the user (ProfileImport below).

The provider's answers map to statuses, never to a stack trace: a refused code or access token
(a mismatched PKCE verifier, a spent or foreign code) is UNAUTHENTICATED; a provider that does
not answer, answers 5xx or garbage, or refuses our client credentials is UNAVAILABLE. Nothing
of the exchange (code, verifier, tokens, emails) is logged: only the provider and the OAuth
error code it returned.

Binding the state to the browser that started the flow (login CSRF) is the page's job: it keeps
the state StartOAuth returned (e.g. in sessionStorage) and posts the callback only if the
`state` query parameter equals it."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlparse

import grpc
import httpx
import structlog

from openhr.profile.v1 import profile_pb2, profile_pb2_grpc
from services.common import clients, errors
from services.common.auth import TokenVerifier
from services.common.db import Database
from services.common.errors import FieldViolation
from services.identity import store
from services.identity.accounts import GITHUB, GOOGLE, LABELS, Accounts, ProviderSignIn, ProviderUser
from services.identity.crypto import Box
from services.identity.tokens import digest
from services.identity.validation import MAX_TOKEN, email_problem

log = structlog.get_logger("oauth")

SCOPES = {GITHUB: "read:user user:email", GOOGLE: "openid email profile"}
STATE_TTL = timedelta(minutes=10)
MAX_CODE = 1024
MAX_REDIRECT_URI = 2048
MAX_SUBJECT = 255  # identity.oauth_identities.provider_user_id
# Seconds per request to a provider; CompleteOAuth makes at most three, inside Envoy's 15 s.
PROVIDER_TIMEOUT = 4.0
PROFILE_TIMEOUT = 3.0
USER_AGENT = "openhr-identity"
STATE_PROBLEM = "start the sign-in again"
# OAuth error codes that mean our client is misconfigured at the provider, not a bad code.
_CLIENT_ERRORS = frozenset(
    {"invalid_client", "unauthorized_client", "incorrect_client_credentials", "redirect_uri_mismatch"}
)
_ERROR_CODE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

# The profile contract's limits (openhr.profile.v1.Profile): what GitHub gives is cut to fit.
PROFILE_DISPLAY_NAME = 80
PROFILE_HEADLINE = 140
PROFILE_CITY = 100
PROFILE_URL = 300
_GITHUB_LOGIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$")
PROFILE_SERVICE = profile_pb2.DESCRIPTOR.services_by_name["ProfileService"].full_name
# CreateProfile's idempotency key for the import of a user (a retried import creates one profile).
_IMPORT_NAMESPACE = uuid.UUID("6f1d3c52-8a0e-4d8e-9a57-2f4f3b0c9e11")


@dataclass(frozen=True)
class Provider:
    """One provider's endpoints and our client registration there (from settings)."""

    name: str
    client_id: str
    client_secret: str
    authorize_url: str
    token_url: str
    # GitHub: the REST API's base URL; Google: the userinfo endpoint.
    user_url: str

    @property
    def label(self) -> str:
        return LABELS[self.name]


def code_challenge(verifier: str) -> str:
    """RFC 7636 S256: BASE64URL(SHA256(verifier)) without padding."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def verifier_context(state_hash: bytes) -> str:
    """The associated data that binds an encrypted verifier to its state row."""
    return f"identity.oauth_states.code_verifier:{state_hash.hex()}"


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _usable_email(value: Any) -> str | None:
    email = _text(value)
    return email if email and email_problem(email) is None else None


def _error_code(body: dict) -> str:
    code = body.get("error")
    return code if isinstance(code, str) and _ERROR_CODE.match(code) else "error"


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


class ProviderClient:
    """HTTP to the providers (httpx, one pooled client, a timeout on every request)."""

    def __init__(self, timeout: float = PROVIDER_TIMEOUT) -> None:
        self._timeout = timeout
        self._http: httpx.AsyncClient | None = None

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                timeout=self._timeout, headers={"user-agent": USER_AGENT}, follow_redirects=False
            )
        return self._http

    async def _request(self, provider: Provider, method: str, url: str, **kwargs) -> httpx.Response:
        try:
            return await self._client().request(method, url, **kwargs)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            log.warning("provider unreachable", provider=provider.name, error=type(exc).__name__)
            raise errors.unavailable(f"{provider.label} did not answer: try again later") from None

    async def exchange(self, provider: Provider, code: str, verifier: str, redirect_uri: str) -> str:
        """The access token for an authorization code (RFC 6749 4.1.3 with RFC 7636's verifier)."""
        response = await self._request(
            provider,
            "POST",
            provider.token_url,
            data={
                "grant_type": "authorization_code",
                "client_id": provider.client_id,
                "client_secret": provider.client_secret,
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": verifier,
            },
            headers={"accept": "application/json"},
        )
        body = _json(response)
        body = body if isinstance(body, dict) else {}
        # GitHub reports a refused code with HTTP 200 and an `error` member; Google with 400.
        if body.get("error") is not None or 400 <= response.status_code < 500:
            error = _error_code(body)
            if error in _CLIENT_ERRORS or response.status_code == 401:
                log.error("provider refused our client credentials", provider=provider.name, oauth_error=error)
                raise errors.unavailable(f"sign-in with {provider.label} is misconfigured: try again later")
            log.warning("provider refused the authorization code", provider=provider.name, oauth_error=error)
            raise errors.unauthenticated(f"{provider.label} refused the authorization code ({error}): {STATE_PROBLEM}")
        token = body.get("access_token")
        if response.status_code != 200 or not isinstance(token, str) or not token:
            log.warning("unexpected token response", provider=provider.name, status=response.status_code)
            raise errors.unavailable(f"{provider.label} answered unexpectedly: try again later")
        return token

    async def _get_json(self, provider: Provider, url: str, token: str, accept: str) -> Any:
        response = await self._request(
            provider, "GET", url, headers={"authorization": f"Bearer {token}", "accept": accept}
        )
        if response.status_code in (401, 403):
            log.warning("provider refused its access token", provider=provider.name, status=response.status_code)
            raise errors.unauthenticated(f"{provider.label} refused the sign-in: {STATE_PROBLEM}")
        body = _json(response)
        if response.status_code != 200 or body is None:
            log.warning("unexpected user response", provider=provider.name, status=response.status_code)
            raise errors.unavailable(f"{provider.label} answered unexpectedly: try again later")
        return body

    async def user(self, provider: Provider, token: str) -> ProviderUser:
        if provider.name == GITHUB:
            who = await self._github_user(provider, token)
        else:
            who = await self._google_user(provider, token)
        if len(who.subject) > MAX_SUBJECT:
            raise errors.unavailable(f"{provider.label} answered unexpectedly: try again later")
        return who

    async def _github_user(self, provider: Provider, token: str) -> ProviderUser:
        api = provider.user_url.rstrip("/")
        accept = "application/vnd.github+json"
        user = await self._get_json(provider, f"{api}/user", token, accept)
        if not isinstance(user, dict) or not isinstance(user.get("id"), int | str) or not _text(str(user["id"])):
            raise errors.unavailable("GitHub answered unexpectedly: try again later")
        emails = await self._get_json(provider, f"{api}/user/emails", token, accept)
        email, verified = _github_email(emails if isinstance(emails, list) else [])
        login = _text(user.get("login"))
        return ProviderUser(
            provider=GITHUB,
            subject=str(user["id"]),
            email=email,
            email_verified=verified,
            name=_text(user.get("name")) or login,
            login=login,
            avatar_url=_text(user.get("avatar_url")),
            bio=_text(user.get("bio")),
            location=_text(user.get("location")),
        )

    async def _google_user(self, provider: Provider, token: str) -> ProviderUser:
        info = await self._get_json(provider, provider.user_url, token, "application/json")
        if not isinstance(info, dict) or not _text(info.get("sub")):
            raise errors.unavailable("Google answered unexpectedly: try again later")
        email = _usable_email(info.get("email"))
        verified = info.get("email_verified")
        return ProviderUser(
            provider=GOOGLE,
            subject=_text(info["sub"]),
            email=email,
            # Google sends a boolean; some older endpoints sent the string "true".
            email_verified=email is not None and (verified is True or verified == "true"),
            name=_text(info.get("name")),
            avatar_url=_text(info.get("picture")),
        )

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()


def _github_email(entries: list) -> tuple[str | None, bool]:
    """The primary address if verified, else the first verified one, else the (unverified)
    primary; with whether GitHub verified it."""
    usable = [
        (e, _usable_email(e.get("email"))) for e in entries if isinstance(e, dict) and _usable_email(e.get("email"))
    ]
    for wanted in (
        lambda e: e.get("primary") is True and e.get("verified") is True,
        lambda e: e.get("verified") is True,
        lambda e: e.get("primary") is True,
    ):
        for entry, email in usable:
            if wanted(entry):
                return email, entry.get("verified") is True
    return None, False


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _url(value: str) -> str:
    parsed = urlparse(value)
    ok = len(value) <= PROFILE_URL and parsed.scheme in ("http", "https") and bool(parsed.netloc)
    return value if ok else ""


def github_profile(who: ProviderUser) -> profile_pb2.Profile:
    """The profile a first GitHub sign-in starts with: name (else the login), bio as headline,
    location as city, avatar and GitHub username, each cut or dropped to fit the contract."""
    profile = profile_pb2.Profile(
        display_name=_cut(who.name or who.login, PROFILE_DISPLAY_NAME),
        headline=_cut(who.bio, PROFILE_HEADLINE),
        avatar_url=_url(who.avatar_url),
    )
    if who.location:
        profile.location.city = _cut(who.location, PROFILE_CITY)
    if _GITHUB_LOGIN.match(who.login):
        profile.links.github_username = who.login
    return profile


class ProfileImport:
    """Creates a first GitHub sign-in's profile through the profile service's public
    CreateProfile, authenticated as the user with the access token just issued to them.

    Best effort: if the profile service is down or refuses, the sign-in still succeeds (logged;
    the user creates the profile later). An existing profile is left as it is."""

    def __init__(self, target: str, timeout: float = PROFILE_TIMEOUT) -> None:
        self._target, self._timeout = target, timeout
        self._channel: grpc.aio.Channel | None = None

    def _stub(self) -> profile_pb2_grpc.ProfileServiceStub:
        if self._channel is None:
            self._channel = clients.channel(self._target, idempotent_services=[PROFILE_SERVICE])
        return profile_pb2_grpc.ProfileServiceStub(self._channel)

    async def create(self, who: ProviderUser, user_id: str, access_token: str) -> bool:
        """Whether a profile was created."""
        request = profile_pb2.CreateProfileRequest(
            profile=github_profile(who), request_id=str(uuid.uuid5(_IMPORT_NAMESPACE, user_id))
        )
        try:
            await self._stub().CreateProfile(
                request, timeout=self._timeout, metadata=(("authorization", f"Bearer {access_token}"),)
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.ALREADY_EXISTS:
                log.info("profile exists, GitHub data not imported", user_id=user_id)
            else:
                log.warning("profile not created from GitHub", user_id=user_id, code=exc.code().name)
            return False
        except Exception as exc:  # never fail a sign-in over its profile
            log.warning("profile not created from GitHub", user_id=user_id, error=type(exc).__name__)
            return False
        log.info("profile created from GitHub", user_id=user_id)
        return True

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()


class OAuth:
    """StartOAuth and CompleteOAuth (see the module's docstring)."""

    def __init__(
        self,
        db: Database,
        box: Box,
        accounts: Accounts,
        verifier: TokenVerifier,
        providers: dict[str, Provider],
        redirect_uris: list[str],
        *,
        client: ProviderClient | None = None,
        profiles: ProfileImport | None = None,
    ) -> None:
        if not redirect_uris:
            raise ValueError("at least one OAuth redirect URI is required")
        self._db, self._box, self._accounts, self._verifier = db, box, accounts, verifier
        self._providers, self._redirect_uris = providers, redirect_uris
        self._client = client or ProviderClient()
        self._profiles = profiles

    def _provider(self, name: str) -> Provider:
        key = name.strip().lower()
        if key not in LABELS:
            shown = name[:40]
            raise errors.invalid_field("provider", f"unknown provider {shown!r}: use github or google")
        provider = self._providers.get(key)
        if provider is None or not provider.client_id:
            raise errors.failed_precondition(f"sign-in with {LABELS[key]} is not configured")
        return provider

    def _redirect_uri(self, requested: str) -> str:
        uri = requested.strip() or self._redirect_uris[0]
        if len(uri) > MAX_REDIRECT_URI or uri not in self._redirect_uris:
            raise errors.invalid_field("redirect_uri", "must be one of the configured redirect URIs")
        return uri

    async def start(self, provider_name: str, redirect_uri: str) -> tuple[str, str]:
        """(authorization URL, state)."""
        provider = self._provider(provider_name)
        uri = self._redirect_uri(redirect_uri)
        state, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(64)
        state_hash = digest(state)
        sealed = self._box.seal(verifier.encode(), verifier_context(state_hash))
        async with self._db.transaction(None) as tx:
            await store.set_lookup(tx, state_hash)
            await store.insert_oauth_state(tx, state_hash, provider.name, sealed, uri, datetime.now(UTC) + STATE_TTL)
        query = urlencode(
            {
                "response_type": "code",
                "client_id": provider.client_id,
                "redirect_uri": uri,
                "scope": SCOPES[provider.name],
                "state": state,
                "code_challenge": code_challenge(verifier),
                "code_challenge_method": "S256",
            }
        )
        separator = "&" if "?" in provider.authorize_url else "?"
        return f"{provider.authorize_url}{separator}{query}", state

    async def _caller(self, bearer: str | None) -> str | None:
        """The signed-in caller of a CompleteOAuth (links instead of signing in), if any."""
        if bearer is None:
            return None
        return (await self._verifier.verify(bearer)).user_id

    async def _spend_state(self, provider: Provider, state: str) -> tuple[str, str]:
        """(code verifier, redirect URI) of a live state of `provider`, now spent."""
        state_hash = digest(state)
        async with self._db.transaction(None) as tx:
            await store.set_lookup(tx, state_hash)
            pending = await store.spend_oauth_state(tx, state_hash)
            used_before = pending is None and await store.oauth_state_exists(tx, state_hash)
        if pending is None:
            problem = "was used already" if used_before else "is unknown"
            raise errors.unauthenticated(f"state {problem}: {STATE_PROBLEM}")
        if pending.provider != provider.name:
            raise errors.unauthenticated(
                f"state was issued for {LABELS[pending.provider]}, not {provider.label}: {STATE_PROBLEM}"
            )
        if pending.expires_at <= datetime.now(UTC):
            raise errors.unauthenticated(f"state expired: {STATE_PROBLEM}")
        verifier = self._box.open(pending.code_verifier_ciphertext, verifier_context(state_hash)).decode()
        return verifier, pending.redirect_uri

    async def complete(self, provider_name: str, code: str, state: str, bearer: str | None) -> ProviderSignIn:
        provider = self._provider(provider_name)
        violations = []
        for field, value, limit in (("code", code, MAX_CODE), ("state", state, MAX_TOKEN)):
            if not value:
                violations.append(FieldViolation(field, "is required"))
            elif len(value) > limit:
                violations.append(FieldViolation(field, f"must be at most {limit} characters"))
        if violations:
            raise errors.invalid_argument(*violations)
        caller = await self._caller(bearer)  # before the state is spent: a bad token spends nothing
        verifier, redirect_uri = await self._spend_state(provider, state)
        access_token = await self._client.exchange(provider, code, verifier, redirect_uri)
        who = await self._client.user(provider, access_token)
        result = await self._accounts.sign_in_with_provider(who, caller)
        log.info(
            "signed in with provider",
            provider=provider.name,
            user_id=result.session.user_id,
            created=result.created,
            linked=result.linked,
        )
        if provider.name == GITHUB and result.linked and self._profiles is not None:
            await self._profiles.create(who, result.session.user_id, result.session.access_token)
        return result

    async def close(self) -> None:
        await self._client.close()
        if self._profiles is not None:
            await self._profiles.close()


def build_oauth(settings: Any, db: Database, box: Box, accounts: Accounts) -> OAuth:
    """The flow from IdentitySettings (services/identity/app.py: OPENHR_GITHUB_*, OPENHR_GOOGLE_*,
    OPENHR_OAUTH_REDIRECT_URIS, PROFILE_ADDR). A provider without a client id is not configured."""
    providers = {
        GITHUB: Provider(
            GITHUB,
            settings.github_client_id,
            settings.github_client_secret.get_secret_value(),
            settings.github_authorize_url,
            settings.github_token_url,
            settings.github_api_url,
        ),
        GOOGLE: Provider(
            GOOGLE,
            settings.google_client_id,
            settings.google_client_secret.get_secret_value(),
            settings.google_authorize_url,
            settings.google_token_url,
            settings.google_userinfo_url,
        ),
    }
    uris = [uri.strip() for uri in settings.oauth_redirect_uris.split(",") if uri.strip()]
    # The kit's verifier on identity's own JWKS file: CompleteOAuth's optional bearer token.
    verifier = TokenVerifier(settings.jwks, settings.jwt_issuer, settings.jwt_audience)
    return OAuth(
        db,
        box,
        accounts,
        verifier,
        providers,
        uris or [settings.public_url.rstrip("/") + "/auth/callback"],
        profiles=ProfileImport(settings.profile_addr),
    )
