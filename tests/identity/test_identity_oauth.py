"""Sign-in with GitHub and Google (OAuth 2.0 authorization code + PKCE S256, single-use state)
end to end: StartOAuth through the REST edge, the browser's consent step against the local
provider stand-in (tests/support/oauth_provider.py, which checks client credentials, code,
redirect_uri and the PKCE verifier like the real servers), CompleteOAuth through the edge, and
what it left in Postgres, in the profile service and in the logs."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import sys
import uuid
from contextlib import asynccontextmanager
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import grpc
import httpx
import pytest

from deploy.local.ephemeral import Mesh, serving
from deploy.local.infra import free_port
from openhr.identity.v1 import identity_pb2, identity_pb2_grpc
from tests.grpcweb import DATA, HEADERS, TRAILERS, frame, frames
from tests.identity.support import RPC_TIMEOUT, claims, login, new_email, next_link, sign_up, token_hash
from tests.logs import caught_up
from tests.support.oauth_provider import GitHubUser, GoogleUser, OAuthProvider, s256
from tests.users import PASSWORD, rest_violations
from tests.waiting import eventually

FAILED_PRECONDITION, UNAUTHENTICATED, UNAVAILABLE = 9, 16, 14
EMAIL_TAKEN = "an account with this email exists; sign in and link"


# --- the flow -------------------------------------------------------------------------------------


async def _start(rest: httpx.AsyncClient, provider: str, **params: str) -> dict:
    response = await rest.get(f"/v1/auth/oauth/{provider}:start", params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def _callback(
    rest: httpx.AsyncClient, provider: str, code: str, state: str, headers: dict | None = None
) -> httpx.Response:
    return await rest.post(
        f"/v1/auth/oauth/{provider}:callback", json={"code": code, "state": state}, headers=headers or {}
    )


async def _consent(rest, stand_in: OAuthProvider, user: GitHubUser | GoogleUser) -> tuple[str, str]:
    """StartOAuth, then the browser at the provider: the (code, state) sent back."""
    started = await _start(rest, user.provider)
    code, state, _ = await stand_in.consent(started["authorizationUrl"], user)
    assert state == started["state"]
    return code, state


async def _sign_in(rest, stand_in: OAuthProvider, user, headers: dict | None = None) -> httpx.Response:
    code, state = await _consent(rest, stand_in, user)
    return await _callback(rest, user.provider, code, state, headers)


def _ok(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


def _refused(response: httpx.Response, http: int, code: int, message: str = "") -> dict:
    assert response.status_code == http, response.text
    body = response.json()
    assert body["code"] == code and message in body["message"], body
    return body


def _bearer(body: dict) -> dict[str, str]:
    return {"authorization": f"Bearer {body['tokens']['accessToken']}"}


def _github(stand_in: OAuthProvider, *, verified: bool = True, email: str | None = None, **kwargs) -> GitHubUser:
    address = email or new_email("gh")
    login = kwargs.pop("login", f"octo-{uuid.uuid4().hex[:8]}")
    emails = [{"email": address, "primary": True, "verified": verified, "visibility": "public"}]
    return stand_in.github_user(login, emails=emails, **kwargs)


def _google(stand_in: OAuthProvider, *, verified: bool = True, email: str | None = None, **kwargs) -> GoogleUser:
    return stand_in.google_user(email or new_email("gg"), email_verified=verified, **kwargs)


# --- what it left behind ----------------------------------------------------------------------------


def _lookup(mesh: Mesh, email: str) -> bytes:
    """The email's lookup hash (the mesh runs in local mode: identity's keys are files)."""
    key = base64.b64decode((mesh.config.data_dir / "identity-keys" / "lookup.key").read_text())
    return hmac.new(key, email.strip().lower().encode(), hashlib.sha256).digest()


async def _identities(db, user_id: str) -> list[tuple[str, str]]:
    rows = await db.fetch(
        "SELECT provider, provider_user_id FROM identity.oauth_identities WHERE user_id = $1 ORDER BY provider",
        user_id,
    )
    return [(row["provider"], row["provider_user_id"]) for row in rows]


async def _audit(db, user_id: str) -> list[tuple[str, str | None]]:
    rows = await db.fetch("SELECT event, provider FROM identity.audit_log WHERE user_id = $1 ORDER BY id", user_id)
    return [(row["event"], row["provider"]) for row in rows]


async def _nothing_for(mesh: Mesh, db, user: GitHubUser | GoogleUser, email: str) -> None:
    subject = str(user.id) if isinstance(user, GitHubUser) else user.sub
    assert not await db.fetchval(
        "SELECT count(*) FROM identity.oauth_identities WHERE provider = $1 AND provider_user_id = $2",
        user.provider,
        subject,
    )
    assert not await db.fetchval("SELECT count(*) FROM identity.users WHERE email_lookup = $1", _lookup(mesh, email))


# --- GitHub -----------------------------------------------------------------------------------------


async def test_github_first_sign_in_creates_account_and_profile(mesh: Mesh, rest, db, oauth_provider) -> None:
    email = new_email("Ada")
    bio = "Compilers, type systems and payments infrastructure. Looking for a business co-founder. " * 3
    user = _github(
        oauth_provider,
        email=email,
        name="Ada  Lovelace",
        bio=bio,
        location="London, United Kingdom",
        avatar_url="https://avatars.githubusercontent.com/u/583231?v=4",
    )
    user.emails.insert(0, {"email": new_email("old"), "primary": False, "verified": True, "visibility": None})

    started = await _start(rest, "github")
    url = urlsplit(started["authorizationUrl"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{oauth_provider.url}/github/login/oauth/authorize"
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    challenge = query.pop("code_challenge")
    assert query == {
        "response_type": "code",
        "client_id": oauth_provider.clients["github"].client_id,
        "redirect_uri": f"{mesh.edge_url}/auth/callback",
        "scope": "read:user user:email",
        "state": started["state"],
        "code_challenge_method": "S256",
    }
    assert len(challenge) == 43 and len(started["state"]) >= 43  # SHA-256 / 256 random bits, base64url
    pending = await db.fetchrow(
        "SELECT * FROM identity.oauth_states WHERE state_hash = $1", token_hash(started["state"])
    )
    assert pending["provider"] == "github" and pending["used_at"] is None
    assert pending["redirect_uri"] == f"{mesh.edge_url}/auth/callback"
    assert abs((pending["expires_at"] - pending["created_at"]).total_seconds() - 600) < 5

    code, state, redirect_uri = await oauth_provider.consent(started["authorizationUrl"], user)
    assert (state, redirect_uri) == (started["state"], f"{mesh.edge_url}/auth/callback")
    body = _ok(await _callback(rest, "github", code, state))
    assert body["created"] is True
    tokens = body["tokens"]
    assert tokens["tokenType"] == "Bearer" and tokens["expiresIn"] == 900 and tokens["refreshToken"]
    user_id = tokens["userId"]
    claimed = await claims(rest, tokens["accessToken"])
    assert claimed["sub"] == user_id and claimed["email_verified"] is True

    # The stand-in received the verifier whose S256 is the challenge; only its ciphertext was stored.
    exchange = oauth_provider.token_requests[-1]
    assert exchange.code == code and exchange.access_token and s256(exchange.code_verifier) == challenge
    spent = await db.fetchrow("SELECT * FROM identity.oauth_states WHERE state_hash = $1", token_hash(state))
    assert spent["used_at"] is not None
    assert exchange.code_verifier.encode() not in spent["code_verifier_ciphertext"]

    account = await db.fetchrow("SELECT * FROM identity.users WHERE user_id = $1", user_id)
    assert account["password_hash"] is None and account["email_verified"] is True
    assert account["email_lookup"] == _lookup(mesh, email)  # the primary address, not the other one
    assert account["display_name"] == "Ada Lovelace"
    assert await _identities(db, user_id) == [("github", str(user.id))]
    assert await _audit(db, user_id) == [("sign_up", "github")]

    me = await rest.get("/v1/profiles/me", headers=_bearer(body))
    assert me.status_code == 200, me.text
    profile = me.json()["profile"]
    assert profile["userId"] == user_id
    assert profile["displayName"] == "Ada Lovelace"
    assert profile["links"]["githubUsername"] == user.login
    assert profile["avatarUrl"] == "https://avatars.githubusercontent.com/u/583231?v=4"
    assert profile["location"]["city"] == "London, United Kingdom"
    headline = profile["headline"]
    assert len(headline) == 140 and headline.endswith("…") and " ".join(bio.split()).startswith(headline[:-1])


async def test_github_second_sign_in_is_the_same_user(rest, db, oauth_provider) -> None:
    user = _github(oauth_provider, name=None, location="Q" * 150)
    first = _ok(await _sign_in(rest, oauth_provider, user))
    user_id = first["tokens"]["userId"]
    second = _ok(await _sign_in(rest, oauth_provider, user))
    assert second["created"] is False and second["tokens"]["userId"] == user_id
    assert second["tokens"]["refreshToken"] != first["tokens"]["refreshToken"]
    assert await _audit(db, user_id) == [("sign_up", "github"), ("sign_in_succeeded", "github")]
    assert await _identities(db, user_id) == [("github", str(user.id))]

    profile = (await rest.get("/v1/profiles/me", headers=_bearer(second))).json()["profile"]
    assert profile["displayName"] == user.login  # no name at GitHub: the login
    assert profile["location"]["city"] == "Q" * 99 + "…"  # cut to the profile's 100 characters
    # Both sessions are real: each refresh token rotates.
    for body in (first, second):
        refreshed = await rest.post("/v1/auth/refresh", json={"refreshToken": body["tokens"]["refreshToken"]})
        assert refreshed.status_code == 200 and refreshed.json()["tokens"]["userId"] == user_id


async def test_unverified_github_email_creates_an_unverified_account(mesh: Mesh, rest, db, oauth_provider) -> None:
    email = new_email("unverified")
    user = _github(oauth_provider, email=email, verified=False)
    body = _ok(await _sign_in(rest, oauth_provider, user))
    assert body["created"] is True
    assert (await claims(rest, body["tokens"]["accessToken"]))["email_verified"] is False
    # As after a sign-up: a verification link goes to the address.
    link = await next_link(mesh, email, "verify-email")
    assert (await rest.post("/v1/auth/email:verify", json={"token": link})).status_code == 200
    again = _ok(await _sign_in(rest, oauth_provider, user))
    assert (await claims(rest, again["tokens"]["accessToken"]))["email_verified"] is True


# --- Google -----------------------------------------------------------------------------------------


async def test_google_sign_in(mesh: Mesh, rest, db, oauth_provider) -> None:
    user = _google(oauth_provider, name="Grace Hopper", picture="https://lh3.googleusercontent.com/a/x")
    started = await _start(rest, "google")
    url = urlsplit(started["authorizationUrl"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{oauth_provider.url}/google/o/oauth2/v2/auth"
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert query["scope"] == "openid email profile" and query["code_challenge_method"] == "S256"
    assert query["client_id"] == oauth_provider.clients["google"].client_id
    code, state, _ = await oauth_provider.consent(started["authorizationUrl"], user)

    # A browser asks for the refresh token as an HttpOnly cookie, as with a password sign-in.
    response = await _callback(rest, "google", code, state, headers={"x-openhr-token-transport": "cookie"})
    body = _ok(response)
    assert body["created"] is True and not body["tokens"].get("refreshToken")
    assert any(c.startswith("__Host-openhr_refresh=") for c in response.headers.get_list("set-cookie"))
    user_id = body["tokens"]["userId"]
    assert (await claims(rest, body["tokens"]["accessToken"]))["email_verified"] is True
    account = await db.fetchrow("SELECT * FROM identity.users WHERE user_id = $1", user_id)
    assert account["display_name"] == "Grace Hopper" and account["password_hash"] is None
    assert account["email_lookup"] == _lookup(mesh, user.email)
    assert await _identities(db, user_id) == [("google", user.sub)]
    # Only a GitHub sign-in imports a profile.
    assert (await rest.get("/v1/profiles/me", headers=_bearer(body))).status_code == 404

    again = _ok(await _sign_in(rest, oauth_provider, user))
    assert again["created"] is False and again["tokens"]["userId"] == user_id
    assert await _audit(db, user_id) == [("sign_up", "google"), ("sign_in_succeeded", "google")]


async def test_github_sign_in_over_grpc_web(rest, oauth_provider) -> None:
    """A browser's grpc-web client, refresh token by cookie."""
    service = "/openhr.identity.v1.IdentityService"

    async def call(method: str, request, headers: dict[str, str]) -> tuple[httpx.Response, list]:
        response = await rest.post(f"{service}/{method}", content=frame(request.SerializeToString()), headers=headers)
        assert response.status_code == 200, response.text
        received = [f async for f in frames(response)]
        assert received[-1].flag == TRAILERS and received[-1].trailers["grpc-status"] == "0", received
        return response, received

    user = _github(oauth_provider)
    _, received = await call("StartOAuth", identity_pb2.StartOAuthRequest(provider="github"), dict(HEADERS))
    started = identity_pb2.StartOAuthResponse.FromString(received[0].payload)
    code, state, _ = await oauth_provider.consent(started.authorization_url, user)
    response, received = await call(
        "CompleteOAuth",
        identity_pb2.CompleteOAuthRequest(provider="github", code=code, state=state),
        {**HEADERS, "x-openhr-token-transport": "cookie"},
    )
    assert received[0].flag == DATA
    done = identity_pb2.CompleteOAuthResponse.FromString(received[0].payload)
    assert done.created and done.tokens.access_token and done.tokens.refresh_token == ""
    assert any(c.startswith("__Host-openhr_refresh=") for c in response.headers.get_list("set-cookie"))


# --- linking ----------------------------------------------------------------------------------------


async def test_link_google_to_a_signed_in_github_user(rest, db, oauth_provider) -> None:
    octo = _github(oauth_provider)
    github = _ok(await _sign_in(rest, oauth_provider, octo))
    user_id = github["tokens"]["userId"]
    gmail = _google(oauth_provider)  # another address than GitHub's

    linked = _ok(await _sign_in(rest, oauth_provider, gmail, headers=_bearer(github)))
    assert linked["created"] is False and linked["tokens"]["userId"] == user_id
    assert await _identities(db, user_id) == [("github", str(octo.id)), ("google", gmail.sub)]
    assert await _audit(db, user_id) == [
        ("sign_up", "github"),
        ("provider_linked", "google"),
        ("sign_in_succeeded", "google"),
    ]
    # Either provider now signs in to the one account.
    for user in (gmail, octo):
        body = _ok(await _sign_in(rest, oauth_provider, user))
        assert body["created"] is False and body["tokens"]["userId"] == user_id

    # One identity per provider and account; an identity belongs to one account.
    second_gmail = _google(oauth_provider)
    _refused(
        await _sign_in(rest, oauth_provider, second_gmail, headers=_bearer(github)),
        400,
        FAILED_PRECONDITION,
        "another Google account is linked to this account already",
    )
    other_octo = _github(oauth_provider)
    other = _ok(await _sign_in(rest, oauth_provider, other_octo))
    _refused(
        await _sign_in(rest, oauth_provider, gmail, headers=_bearer(other)),
        400,
        FAILED_PRECONDITION,
        "this Google account is linked to another OpenHR account",
    )
    assert await _identities(db, other["tokens"]["userId"]) == [("github", str(other_octo.id))]
    assert await _identities(db, user_id) == [("github", str(octo.id)), ("google", gmail.sub)]


async def test_link_github_to_a_password_account(rest, db, oauth_provider) -> None:
    account = await sign_up(rest)
    octo = _github(oauth_provider)  # another address than the account's
    linked = _ok(await _sign_in(rest, oauth_provider, octo, headers=account.headers))
    assert linked["created"] is False and linked["tokens"]["userId"] == account.user_id
    assert await _identities(db, account.user_id) == [("github", str(octo.id))]
    # Linking GitHub to an account without a profile creates it from GitHub.
    profile = (await rest.get("/v1/profiles/me", headers=account.headers)).json()["profile"]
    assert profile["links"]["githubUsername"] == octo.login
    assert (await login(rest, account)).status_code == 200  # the password still signs in too
    body = _ok(await _sign_in(rest, oauth_provider, octo))
    assert body["tokens"]["userId"] == account.user_id


async def test_a_bad_bearer_token_is_refused_before_the_state_is_spent(rest, oauth_provider) -> None:
    user = _github(oauth_provider)
    code, state = await _consent(rest, oauth_provider, user)
    _refused(
        await _callback(rest, "github", code, state, headers={"authorization": "Bearer not-a-token"}),
        401,
        UNAUTHENTICATED,
    )
    assert _ok(await _callback(rest, "github", code, state))["created"] is True


# --- no account takeover ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider_verified", "account_verified"),
    [(False, False), (False, True), (True, False)],
)
async def test_an_email_of_an_existing_account_is_not_taken_over(
    mesh: Mesh, rest, db, oauth_provider, provider_verified: bool, account_verified: bool
) -> None:
    account = await sign_up(rest, email=new_email("victim"))
    if account_verified:
        link = await next_link(mesh, account.email, "verify-email")
        assert (await rest.post("/v1/auth/email:verify", json={"token": link})).status_code == 200
    for attacker in (
        _github(oauth_provider, email=account.email, verified=provider_verified),
        _google(oauth_provider, email=account.email.upper(), verified=provider_verified),
    ):
        _refused(await _sign_in(rest, oauth_provider, attacker), 400, FAILED_PRECONDITION, EMAIL_TAKEN)
    assert await _identities(db, account.user_id) == []
    assert [event for event, _ in await _audit(db, account.user_id)] == (
        ["sign_up", "email_verified"] if account_verified else ["sign_up"]
    )


async def test_verified_on_both_sides_links_the_existing_account(mesh: Mesh, rest, db, oauth_provider) -> None:
    account = await sign_up(rest, email=new_email("both"))
    link = await next_link(mesh, account.email, "verify-email")
    assert (await rest.post("/v1/auth/email:verify", json={"token": link})).status_code == 200
    user = _google(oauth_provider, email=account.email.lower(), verified=True)
    body = _ok(await _sign_in(rest, oauth_provider, user))
    assert body["created"] is False and body["tokens"]["userId"] == account.user_id
    assert await _identities(db, account.user_id) == [("google", user.sub)]
    assert await _audit(db, account.user_id) == [
        ("sign_up", None),
        ("email_verified", None),
        ("provider_linked", "google"),
        ("sign_in_succeeded", "google"),
    ]


# --- attacks and mistakes -----------------------------------------------------------------------------


async def test_replayed_state_is_refused(rest, db, oauth_provider) -> None:
    user = _github(oauth_provider)
    code, state = await _consent(rest, oauth_provider, user)
    body = _ok(await _callback(rest, "github", code, state))
    _refused(await _callback(rest, "github", code, state), 401, UNAUTHENTICATED, "state was used already")
    # Even with a fresh code from the provider: the state is spent.
    fresh_code, _ = await _consent(rest, oauth_provider, user)
    _refused(await _callback(rest, "github", fresh_code, state), 401, UNAUTHENTICATED, "state was used already")
    assert await _audit(db, body["tokens"]["userId"]) == [("sign_up", "github")]


async def test_concurrent_callbacks_with_one_state_sign_in_once(rest, db, oauth_provider) -> None:
    user = _github(oauth_provider)
    code, state = await _consent(rest, oauth_provider, user)
    answers = await asyncio.gather(*(_callback(rest, "github", code, state) for _ in range(5)))
    assert sorted(a.status_code for a in answers) == [200, 401, 401, 401, 401]
    user_id = next(a.json() for a in answers if a.status_code == 200)["tokens"]["userId"]
    assert await _audit(db, user_id) == [("sign_up", "github")]


async def test_unknown_state_is_refused(rest, oauth_provider) -> None:
    code, _ = await _consent(rest, oauth_provider, _github(oauth_provider))
    _refused(await _callback(rest, "github", code, "A" * 43), 401, UNAUTHENTICATED, "state is unknown")


def _with_challenge(authorization_url: str, challenge: str) -> str:
    url = urlsplit(authorization_url)
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    return urlunsplit(url._replace(query=urlencode({**query, "code_challenge": challenge})))


@pytest.mark.parametrize("provider", ["github", "google"])
async def test_mismatched_pkce_verifier_is_refused_and_creates_nothing(
    mesh: Mesh, rest, db, oauth_provider, provider: str
) -> None:
    """The code was issued for another challenge (an attacker's injected code): the provider
    refuses identity's verifier, and nothing is created."""
    email = new_email("pkce")
    user = _github(oauth_provider, email=email) if provider == "github" else _google(oauth_provider, email=email)
    started = await _start(rest, provider)
    forged = _with_challenge(started["authorizationUrl"], s256("an-attackers-own-verifier-" + "x" * 30))
    code, state, _ = await oauth_provider.consent(forged, user)
    _refused(
        await _callback(rest, provider, code, state),
        401,
        UNAUTHENTICATED,
        "refused the authorization code (invalid_grant): start the sign-in again",
    )
    assert oauth_provider.token_requests[-1].error == "invalid_grant"
    await _nothing_for(mesh, db, user, email)
    assert _ok(await _sign_in(rest, oauth_provider, user))["created"] is True  # a clean retry works


async def test_state_of_one_provider_is_refused_by_the_other(mesh: Mesh, rest, db, oauth_provider) -> None:
    email = new_email("cross")
    github_code, github_state = await _consent(rest, oauth_provider, _github(oauth_provider, email=email))
    google_user = _google(oauth_provider, email=email)
    google_code, _ = await _consent(rest, oauth_provider, google_user)
    _refused(
        await _callback(rest, "google", google_code, github_state),
        401,
        UNAUTHENTICATED,
        "state was issued for GitHub, not Google",
    )
    # Presented once, the state is spent for its own provider too.
    _refused(await _callback(rest, "github", github_code, github_state), 401, UNAUTHENTICATED, "used already")
    await _nothing_for(mesh, db, google_user, email)


async def test_expired_state_is_refused(mesh: Mesh, rest, db, oauth_provider) -> None:
    email = new_email("late")
    user = _github(oauth_provider, email=email)
    code, state = await _consent(rest, oauth_provider, user)
    await db.execute(
        "UPDATE identity.oauth_states SET created_at = created_at - interval '11 minutes',"
        " expires_at = expires_at - interval '11 minutes' WHERE state_hash = $1",
        token_hash(state),
    )
    _refused(await _callback(rest, "github", code, state), 401, UNAUTHENTICATED, "state expired")
    await _nothing_for(mesh, db, user, email)


async def test_provider_outage_is_unavailable_and_creates_nothing(mesh: Mesh, rest, db, oauth_provider) -> None:
    email = new_email("outage")
    for user in (_github(oauth_provider, email=email, broken=True), _google(oauth_provider, email=email, broken=True)):
        body = _refused(await _sign_in(rest, oauth_provider, user), 503, UNAVAILABLE, "answered unexpectedly")
        assert "Traceback" not in str(body)
        await _nothing_for(mesh, db, user, email)


async def test_unknown_provider(rest) -> None:
    for response in (
        await rest.get("/v1/auth/oauth/gitlab:start"),
        await rest.post("/v1/auth/oauth/gitlab:callback", json={"code": "c", "state": "s"}),
    ):
        body = _refused(response, 400, 3, "unknown provider 'gitlab': use github or google")
        assert rest_violations(body) == ["provider"]


async def test_callback_input_is_checked(rest) -> None:
    body = _refused(await rest.post("/v1/auth/oauth/github:callback", json={}), 400, 3)
    assert rest_violations(body) == ["code", "state"]
    body = _refused(await _callback(rest, "github", "c" * 1025, "s" * 257), 400, 3)
    assert rest_violations(body) == ["code", "state"]


async def test_redirect_uri_must_be_configured(mesh: Mesh, rest) -> None:
    callback = f"{mesh.edge_url}/auth/callback"
    allowed = await _start(rest, "github", redirectUri=callback)
    assert parse_qs(urlsplit(allowed["authorizationUrl"]).query)["redirect_uri"] == [callback]
    response = await rest.get("/v1/auth/oauth/github:start", params={"redirectUri": "https://evil.example/cb"})
    body = _refused(response, 400, 3, "must be one of the configured redirect URIs")
    assert rest_violations(body) == ["redirectUri"]


@asynccontextmanager
async def _identity_replica(mesh: Mesh, name: str, env: dict[str, str]):
    """Another identity process on the mesh's database, with `env` on top of the mesh's: a stub."""
    port = free_port()
    env = {"IDENTITY_PORT": str(port), "IDENTITY_METRICS_PORT": str(free_port()), **env}
    mesh.start_process(name, [sys.executable, "-m", "services.identity"], env=env)
    try:
        await eventually(lambda: asyncio.to_thread(serving, port), message=lambda: mesh.log(name)[-2000:])
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield identity_pb2_grpc.IdentityServiceStub(channel)
    finally:
        mesh.stop_process(name)


async def test_provider_not_configured(mesh: Mesh) -> None:
    """A replica without client ids (OPENHR_GITHUB_CLIENT_ID / OPENHR_GOOGLE_CLIENT_ID unset)."""
    unset = {"OPENHR_GITHUB_CLIENT_ID": "", "OPENHR_GOOGLE_CLIENT_ID": ""}
    async with _identity_replica(mesh, "identity-no-oauth", unset) as stub:
        for provider, label in (("github", "GitHub"), ("google", "Google")):
            for call in (
                stub.StartOAuth(identity_pb2.StartOAuthRequest(provider=provider), timeout=RPC_TIMEOUT),
                stub.CompleteOAuth(
                    identity_pb2.CompleteOAuthRequest(provider=provider, code="c", state="s"), timeout=RPC_TIMEOUT
                ),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await call
                assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
                assert refused.value.details() == f"sign-in with {label} is not configured"
        # Email + password is unaffected.
        signed_up = await stub.SignUp(
            identity_pb2.SignUpRequest(email=new_email("plain"), password=PASSWORD), timeout=RPC_TIMEOUT
        )
        assert signed_up.tokens.access_token


async def test_sign_in_succeeds_while_the_profile_service_is_down(mesh: Mesh, rest, db, oauth_provider) -> None:
    """A replica whose PROFILE_ADDR leads nowhere: the GitHub sign-in still creates the account
    (the user creates the profile later), and says why in its log."""
    name = "identity-no-profile"
    async with _identity_replica(mesh, name, {"PROFILE_ADDR": f"127.0.0.1:{free_port()}"}) as stub:
        user = _github(oauth_provider)
        started = await stub.StartOAuth(identity_pb2.StartOAuthRequest(provider="github"), timeout=RPC_TIMEOUT)
        code, state, _ = await oauth_provider.consent(started.authorization_url, user)
        done = await stub.CompleteOAuth(
            identity_pb2.CompleteOAuthRequest(provider="github", code=code, state=state), timeout=RPC_TIMEOUT
        )
    assert done.created is True and done.tokens.access_token
    assert await _identities(db, done.tokens.user_id) == [("github", str(user.id))]
    headers = {"authorization": f"Bearer {done.tokens.access_token}"}
    assert (await rest.get("/v1/profiles/me", headers=headers)).status_code == 404
    assert "profile not created from GitHub" in mesh.log(name)


# --- privacy ------------------------------------------------------------------------------------------


async def test_no_secret_reaches_a_log(mesh: Mesh, rest, db, oauth_provider) -> None:
    """Codes, states, verifiers, provider and OpenHR tokens and emails of every OAuth flow of
    this session (this module's tests included) appear in no process's log and no identity
    table in the clear."""
    github_email, google_email = new_email("Secret"), new_email("Secret2")
    needles = [github_email.split("@")[0], google_email.split("@")[0]]
    for user in (_github(oauth_provider, email=github_email), _google(oauth_provider, email=google_email)):
        code, state = await _consent(rest, oauth_provider, user)
        body = _ok(await _callback(rest, user.provider, code, state))
        needles += [code, state, body["tokens"]["accessToken"], body["tokens"]["refreshToken"]]
    await _sign_in(rest, oauth_provider, _github(oauth_provider, email=github_email, broken=True))
    for request in oauth_provider.token_requests:
        needles += [s for s in (request.code, request.code_verifier, request.access_token) if s]
    await caught_up(mesh, rest)
    logs = sorted((mesh.config.data_dir / "logs").glob("*.log"))
    assert {"identity", "envoy", "profile"} <= {path.stem for path in logs}
    for path in logs:
        text = path.read_text(errors="replace").lower()
        leaked = [s for s in needles if s.lower() in text]
        assert not leaked, f"{path.name} logged {len(leaked)} secret(s)"
    for table in ("oauth_states", "oauth_identities", "users", "audit_log"):
        rows = "\n".join(r["row"] for r in await db.fetch(f"SELECT t::text AS row FROM identity.{table} t")).lower()
        assert not [s for s in needles if s.lower() in rows], f"identity.{table} holds a secret in the clear"
