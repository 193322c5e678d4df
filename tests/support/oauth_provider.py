"""A local stand-in for GitHub's and Google's OAuth 2.0 servers and the user APIs identity reads,
speaking their real HTTP protocols, for the suites (GitHub and Google cannot be reached here).

One stdlib `ThreadingHTTPServer` on a free loopback port, in a daemon thread, serves:

GitHub (github.com / api.github.com)
  GET  /github/login/oauth/authorize     the consent step: 302 to redirect_uri?code=…&state=…
  POST /github/login/oauth/access_token  code (+ PKCE verifier) -> access token; errors the way
                                         GitHub reports them: HTTP 200 with an `error` member
  GET  /github-api/user                  the user (needs a User-Agent, like GitHub)
  GET  /github-api/user/emails           their addresses: email, primary, verified, visibility
  GET  /github-api/users/…, /repos/…     the public REST API an import reads, with pagination,
                                         ETags and rate limits (tests/support/github_api.py)
Google (accounts.google.com / oauth2.googleapis.com / openidconnect.googleapis.com)
  GET  /google/o/oauth2/v2/auth          the consent step, as above
  POST /google/token                     code (+ PKCE verifier) -> access token; errors with
                                         HTTP 400 (invalid_grant) / 401 (invalid_client)
  GET  /google/v1/userinfo               sub, email, email_verified, name, picture

The token endpoints check the client id and secret (form body, or HTTP Basic at Google), that
the code was issued to that client, is unexpired and unused, the redirect_uri it was issued
for, and the PKCE verifier against the S256 challenge of the authorization request.

Who is signed in at the provider is the "browser's" session cookie there (`session=…`): a
test creates a provider user (`github_user`, `google_user`) and passes it to `consent`, which
does what a browser does (GET the authorization URL with that cookie) and returns the code
and state the provider sends back to the redirect URI. The stand-in skips the id_token Google
adds for the `openid` scope (identity reads the userinfo endpoint instead)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from tests.support.github_api import GitHubApi

CODE_TTL = 600.0
_ids = itertools.count(7_000_001)


@dataclass
class GitHubUser:
    login: str
    name: str | None = None
    # [{"email": …, "primary": bool, "verified": bool, "visibility": "public" | None}]
    emails: list[dict] = field(default_factory=list)
    bio: str | None = None
    location: str | None = None
    avatar_url: str = ""
    id: int = field(default_factory=lambda: next(_ids))
    broken: bool = False  # its API calls answer 502 (GitHub having a bad day)
    session: str = field(default_factory=lambda: secrets.token_hex(16))

    @property
    def provider(self) -> str:
        return "github"


@dataclass
class GoogleUser:
    email: str
    email_verified: bool = True
    name: str = ""
    picture: str = ""
    sub: str = field(default_factory=lambda: str(10**20 + secrets.randbelow(10**20)))
    broken: bool = False
    session: str = field(default_factory=lambda: secrets.token_hex(16))

    @property
    def provider(self) -> str:
        return "google"


@dataclass
class Client:
    """Our application's registration at a provider."""

    client_id: str
    client_secret: str


@dataclass
class _Grant:
    provider: str
    client_id: str
    redirect_uri: str
    challenge: str
    scope: str
    user: GitHubUser | GoogleUser
    expires_at: float
    used: bool = False


@dataclass
class TokenRequest:
    """What a token endpoint received (tests check none of it reaches a log)."""

    provider: str
    code: str
    code_verifier: str
    access_token: str = ""
    error: str = ""


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


class OAuthProvider:
    def __init__(self) -> None:
        self.clients = {
            "github": Client(f"Iv1.{secrets.token_hex(8)}", secrets.token_hex(20)),
            "google": Client(f"{secrets.randbelow(10**12)}-test.apps.googleusercontent.com", secrets.token_urlsafe(24)),
        }
        self.token_requests: list[TokenRequest] = []
        # The public REST API (accounts and repositories a test sets up).
        self.github_api = GitHubApi()
        self._sessions: dict[str, GitHubUser | GoogleUser] = {}
        self._grants: dict[str, _Grant] = {}
        self._tokens: dict[str, tuple[GitHubUser | GoogleUser, str]] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="oauth-provider", daemon=True)

    # --- lifecycle and configuration ------------------------------------------------------------

    def start(self) -> OAuthProvider:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def env(self) -> dict[str, str]:
        """Identity's settings for this stand-in (see the README's configuration table)."""
        return {
            "OPENHR_GITHUB_CLIENT_ID": self.clients["github"].client_id,
            "OPENHR_GITHUB_CLIENT_SECRET": self.clients["github"].client_secret,
            "OPENHR_GITHUB_AUTHORIZE_URL": f"{self.url}/github/login/oauth/authorize",
            "OPENHR_GITHUB_TOKEN_URL": f"{self.url}/github/login/oauth/access_token",
            "OPENHR_GITHUB_API_URL": f"{self.url}/github-api",
            "OPENHR_GOOGLE_CLIENT_ID": self.clients["google"].client_id,
            "OPENHR_GOOGLE_CLIENT_SECRET": self.clients["google"].client_secret,
            "OPENHR_GOOGLE_AUTHORIZE_URL": f"{self.url}/google/o/oauth2/v2/auth",
            "OPENHR_GOOGLE_TOKEN_URL": f"{self.url}/google/token",
            "OPENHR_GOOGLE_USERINFO_URL": f"{self.url}/google/v1/userinfo",
        }

    def github_user(self, login: str, **kwargs) -> GitHubUser:
        user = GitHubUser(login, **kwargs)
        with self._lock:
            self._sessions[user.session] = user
        return user

    def google_user(self, email: str, **kwargs) -> GoogleUser:
        user = GoogleUser(email, **kwargs)
        with self._lock:
            self._sessions[user.session] = user
        return user

    # --- the browser's part ---------------------------------------------------------------------

    async def consent(self, authorization_url: str, user: GitHubUser | GoogleUser) -> tuple[str, str, str]:
        """Opens the authorization URL as `user`'s browser: (code, state, redirect_uri) of the
        provider's redirect back. Raises AssertionError when the provider refuses."""
        async with httpx.AsyncClient(timeout=5) as browser:
            response = await browser.get(authorization_url, headers={"cookie": f"session={user.session}"})
        assert response.status_code == 302, f"{response.status_code}: {response.text}"
        location = urlsplit(response.headers["location"])
        query = {k: v[0] for k, v in parse_qs(location.query).items()}
        redirect_uri = f"{location.scheme}://{location.netloc}{location.path}"
        return query["code"], query["state"], redirect_uri

    # --- the protocol ---------------------------------------------------------------------------

    def _authorize(self, provider: str, query: dict[str, str], cookies: dict[str, str]) -> tuple[int, dict, str]:
        """(status, headers, body) of the consent step."""
        client = self.clients[provider]
        if query.get("client_id") != client.client_id:
            return 404, {}, "unknown client_id"
        redirect_uri = query.get("redirect_uri", "")
        if not redirect_uri.startswith(("http://", "https://")):
            return 400, {}, "redirect_uri is required"
        problems = []
        if query.get("response_type") != "code":
            problems.append("unsupported_response_type")
        if not query.get("state"):
            problems.append("state is required")
        if query.get("code_challenge_method") != "S256" or len(query.get("code_challenge", "")) != 43:
            problems.append("code_challenge (S256) is required")
        if problems:  # RFC 6749 4.1.2.1: errors go back to the client's redirect URI
            params = {"error": "invalid_request", "error_description": "; ".join(problems)}
            return 302, {"location": f"{redirect_uri}?{urlencode({**params, 'state': query.get('state', '')})}"}, ""
        with self._lock:
            user = self._sessions.get(cookies.get("session", ""))
            if user is None or user.provider != provider:
                return 401, {}, "sign in first"
            code = secrets.token_hex(10) if provider == "github" else "4/0A" + secrets.token_urlsafe(50)
            self._grants[code] = _Grant(
                provider,
                client.client_id,
                redirect_uri,
                query["code_challenge"],
                query.get("scope", ""),
                user,
                time.monotonic() + CODE_TTL,
            )
        location = f"{redirect_uri}?{urlencode({'code': code, 'state': query['state']})}"
        return 302, {"location": location}, ""

    def _token(self, provider: str, form: dict[str, str], authorization: str) -> tuple[int, dict]:
        """(status, JSON body) of the token endpoint, errors as each provider reports them."""
        client = self.clients[provider]
        client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
        if authorization.lower().startswith("basic "):
            decoded = base64.b64decode(authorization[6:]).decode()
            client_id, _, client_secret = decoded.partition(":")
        code, verifier = form.get("code", ""), form.get("code_verifier", "")
        record = TokenRequest(provider, code, verifier)

        def refuse(error: str, description: str, status: int) -> tuple[int, dict]:
            record.error = error
            body = {"error": error, "error_description": description}
            if provider == "github":  # GitHub answers 200 with the error in the body
                return 200, {**body, "error_uri": "https://docs.github.com/apps/oauth"}
            return status, body

        with self._lock:
            self.token_requests.append(record)
            if client_id != client.client_id or not hmac.compare_digest(client_secret, client.client_secret):
                name = "incorrect_client_credentials" if provider == "github" else "invalid_client"
                return refuse(name, "The client_id and/or client_secret passed are incorrect.", 401)
            if provider == "google" and form.get("grant_type") != "authorization_code":
                return refuse("unsupported_grant_type", "Invalid grant_type.", 400)
            grant = self._grants.get(code)
            bad_code = "bad_verification_code" if provider == "github" else "invalid_grant"
            if grant is None or grant.client_id != client_id or grant.used or grant.expires_at < time.monotonic():
                return refuse(bad_code, "The code passed is incorrect or expired.", 400)
            grant.used = True  # a code is presented once, whatever the outcome
            if form.get("redirect_uri", "") != grant.redirect_uri:
                name = "redirect_uri_mismatch" if provider == "github" else "invalid_grant"
                return refuse(name, "The redirect_uri does not match the authorization request.", 400)
            if not verifier or not hmac.compare_digest(s256(verifier), grant.challenge):
                return refuse("invalid_grant", "Invalid code verifier.", 400)
            prefix = "gho_" if provider == "github" else "ya29."
            record.access_token = token = prefix + secrets.token_urlsafe(27)
            self._tokens[token] = (grant.user, grant.scope)
        if provider == "github":
            return 200, {"access_token": token, "token_type": "bearer", "scope": grant.scope.replace(" ", ",")}
        return 200, {"access_token": token, "expires_in": 3599, "scope": grant.scope, "token_type": "Bearer"}

    def _api(self, path: str, headers: dict[str, str]) -> tuple[int, object]:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        with self._lock:
            found = self._tokens.get(token) if scheme.lower() in ("bearer", "token") else None
        if path.startswith("/github-api/"):
            if not headers.get("user-agent"):
                return 403, {
                    "message": "Request forbidden by administrative rules. Please make sure your request "
                    "has a User-Agent header."
                }
            if found is None or found[0].provider != "github":
                return 401, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}
            user, scope = found
            if user.broken:
                return 502, {"message": "Server Error"}
            if path == "/github-api/user":
                public = next((e["email"] for e in user.emails if e.get("visibility") == "public"), None)
                return 200, {
                    "login": user.login,
                    "id": user.id,
                    "node_id": f"U_{user.id}",
                    "avatar_url": user.avatar_url,
                    "html_url": f"https://github.com/{user.login}",
                    "type": "User",
                    "site_admin": False,
                    "name": user.name,
                    "company": None,
                    "blog": "",
                    "location": user.location,
                    "email": public,
                    "bio": user.bio,
                    "public_repos": 8,
                    "followers": 3,
                    "following": 1,
                    "created_at": "2014-02-03T12:00:00Z",
                }
            if path == "/github-api/user/emails":
                if "user:email" not in scope.split():
                    return 404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}
                return 200, [
                    {
                        "email": e["email"],
                        "primary": e.get("primary", False),
                        "verified": e.get("verified", False),
                        "visibility": e.get("visibility"),
                    }
                    for e in user.emails
                ]
        if path == "/google/v1/userinfo":
            if found is None or found[0].provider != "google":
                return 401, {"error": "invalid_request", "error_description": "Invalid Credentials"}
            user = found[0]
            if user.broken:
                return 503, {"error": "backendError"}
            given = user.name.split(" ")[0] if user.name else ""
            return 200, {
                "sub": user.sub,
                "name": user.name,
                "given_name": given,
                "picture": user.picture,
                "email": user.email,
                "email_verified": user.email_verified,
            }
        return 404, {"message": "Not Found"}


def _handler(provider: OAuthProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args) -> None:
            """Quiet: the tests read the mesh's logs, not the stand-in's."""

        def _headers(self) -> dict[str, str]:
            return {k.lower(): v for k, v in self.headers.items()}

        def _send(self, status: int, body: object, headers: dict | None = None, form: bool = False) -> None:
            if body is None:  # 304
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("content-length", "0")
                self.end_headers()
                return
            if isinstance(body, str):
                data, kind = body.encode(), "text/plain; charset=utf-8"
            elif form:
                data, kind = urlencode(body).encode(), "application/x-www-form-urlencoded; charset=utf-8"
            else:
                data, kind = json.dumps(body).encode(), "application/json; charset=utf-8"
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("content-type", kind)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            if GitHubApi.serves(url.path):
                status, headers, body = provider.github_api.handle(url.path, query, self._headers())
                self._send(status, body, headers)
                return
            authorize = {"/github/login/oauth/authorize": "github", "/google/o/oauth2/v2/auth": "google"}
            if url.path in authorize:
                cookies = {}
                for pair in self.headers.get("cookie", "").split(";"):
                    name, _, value = pair.strip().partition("=")
                    cookies[name] = value
                status, headers, body = provider._authorize(authorize[url.path], query, cookies)
                self._send(status, body, headers)
                return
            status, body = provider._api(url.path, self._headers())
            self._send(status, body)

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length).decode()
            form = {k: v[0] for k, v in parse_qs(raw).items()}
            token = {"/github/login/oauth/access_token": "github", "/google/token": "google"}
            if url.path not in token:
                self._send(404, {"message": "Not Found"})
                return
            status, body = provider._token(token[url.path], form, self.headers.get("authorization", ""))
            # GitHub answers form-encoded unless asked for JSON; Google always JSON.
            wants_form = token[url.path] == "github" and "application/json" not in self.headers.get("accept", "")
            self._send(status, body, form=wants_form)

    return Handler
