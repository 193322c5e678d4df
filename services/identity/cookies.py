"""The browser transport of refresh tokens: an HttpOnly cookie, with a double-submit CSRF token.

A client asks for it with the request header `x-openhr-token-transport: cookie` (SignUp,
Login, Refresh). The answer then sets two cookies and leaves `refresh_token` empty in the body:

- `openhr_refresh`: the refresh token; HttpOnly (no script reads it), Secure, SameSite=Strict,
  Path=/v1/auth (sent only to the REST auth routes), Max-Age 7 days.
- `openhr_csrf`: a random value the page's script reads and echoes in `x-csrf-token` on
  Refresh and Logout; Secure, SameSite=Strict, not HttpOnly.

A Refresh or Logout without a token in its body reads the refresh cookie and requires
`x-csrf-token` to equal the CSRF cookie (PERMISSION_DENIED otherwise): another site can make
the browser send the cookies but can neither read them nor set the header. A refresh that came
by cookie answers by cookie. Bearer clients (token in the body) are unaffected.

Through Envoy, HTTP request headers reach the service as gRPC metadata and the `set-cookie`
entries of the initial metadata become HTTP response headers (REST and grpc-web alike)."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from services.common import errors
from services.identity.tokens import REFRESH_TTL

TRANSPORT_HEADER = "x-openhr-token-transport"
CSRF_HEADER = "x-csrf-token"
REFRESH_COOKIE = "openhr_refresh"
CSRF_COOKIE = "openhr_csrf"
REFRESH_PATH = "/v1/auth"
MAX_AGE = int(REFRESH_TTL.total_seconds())


@dataclass(frozen=True)
class Request:
    """What the transport needs from an RPC's metadata."""

    wants_cookie: bool
    cookies: dict[str, str]
    csrf_header: str

    @classmethod
    def from_metadata(cls, metadata: Iterable[tuple[str, str | bytes]]) -> Request:
        wants, cookies, csrf = False, {}, ""
        for key, value in metadata:
            if isinstance(value, bytes):
                continue
            if key == TRANSPORT_HEADER:
                wants = value.strip().lower() == "cookie"
            elif key == CSRF_HEADER:
                csrf = value.strip()
            elif key == "cookie":  # one header, or one entry per cookie after HTTP/2 splitting
                for pair in value.split(";"):
                    name, sep, content = pair.strip().partition("=")
                    if sep and name:
                        cookies.setdefault(name, content.strip().strip('"'))
        return cls(wants, cookies, csrf)

    def refresh_from_cookie(self) -> str:
        """The cookie's refresh token, after the double-submit check."""
        token = self.cookies.get(REFRESH_COOKIE, "")
        if not token:
            raise errors.unauthenticated("missing refresh token: send it in the body or as the openhr_refresh cookie")
        expected = self.cookies.get(CSRF_COOKIE, "")
        if not expected or not self.csrf_header or not hmac.compare_digest(expected, self.csrf_header):
            raise errors.permission_denied("x-csrf-token must equal the openhr_csrf cookie")
        return token


def _cookie(name: str, value: str, *, path: str, max_age: int, http_only: bool) -> str:
    parts = [f"{name}={value}", f"Path={path}", f"Max-Age={max_age}", "Secure", "SameSite=Strict"]
    if http_only:
        parts.insert(3, "HttpOnly")
    return "; ".join(parts)


def issue(refresh_token: str) -> list[tuple[str, str]]:
    """set-cookie metadata for a new refresh token and a new CSRF token."""
    return [
        ("set-cookie", _cookie(REFRESH_COOKIE, refresh_token, path=REFRESH_PATH, max_age=MAX_AGE, http_only=True)),
        ("set-cookie", _cookie(CSRF_COOKIE, secrets.token_urlsafe(24), path="/", max_age=MAX_AGE, http_only=False)),
    ]


def clear() -> list[tuple[str, str]]:
    return [
        ("set-cookie", _cookie(REFRESH_COOKIE, "", path=REFRESH_PATH, max_age=0, http_only=True)),
        ("set-cookie", _cookie(CSRF_COOKIE, "", path="/", max_age=0, http_only=False)),
    ]
