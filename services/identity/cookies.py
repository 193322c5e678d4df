"""The browser transport of refresh tokens: an HttpOnly cookie, with a CSRF token bound to it.

A client asks for it with the request header `x-openhr-token-transport: cookie` (SignUp,
Login, Refresh). The answer then sets two cookies and leaves `refresh_token` empty in the body:

- `__Host-openhr_refresh`: the refresh token; HttpOnly (no script reads it), Secure,
  SameSite=Strict, Max-Age 7 days.
- `__Host-openhr_csrf`: the CSRF token, HMAC-SHA256 of that refresh token under a server key,
  which the page's script reads and echoes in `x-csrf-token` on Refresh and Logout; Secure,
  SameSite=Strict, not HttpOnly.

A Refresh or Logout without a token in its body reads the refresh cookie and requires
`x-csrf-token` to be the HMAC of that very refresh token (PERMISSION_DENIED otherwise): another
site can make the browser send the cookies but can neither read them nor set the header, and a
CSRF cookie planted by a sibling subdomain is worth nothing (it is not what is checked, and a
token made for another session does not fit this one). A request carrying either cookie twice
is refused. The `__Host-` prefix makes browsers refuse these cookies from any other host or
path, which is why their Path is `/` (the prefix requires it): the refresh cookie thus travels
with every request to the site's origin; it is HttpOnly and SameSite=Strict, and neither Envoy's
access log nor any service reads or logs cookies. A refresh that came by cookie answers by
cookie. Bearer clients (token in the body) are unaffected.

Through Envoy, HTTP request headers reach the service as gRPC metadata and the `set-cookie`
entries of the initial metadata become HTTP response headers (REST and grpc-web alike)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from services.common import errors
from services.identity.tokens import REFRESH_TTL

TRANSPORT_HEADER = "x-openhr-token-transport"
CSRF_HEADER = "x-csrf-token"
REFRESH_COOKIE = "__Host-openhr_refresh"
CSRF_COOKIE = "__Host-openhr_csrf"
MAX_AGE = int(REFRESH_TTL.total_seconds())
_CSRF_CONTEXT = b"openhr-csrf\n"


def csrf_token(key: bytes, refresh_token: str) -> str:
    """The CSRF token of a refresh token: HMAC-SHA256 under `key`, base64url."""
    digest = hmac.new(key, _CSRF_CONTEXT + refresh_token.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass(frozen=True)
class Request:
    """What the transport needs from an RPC's metadata: every value of each cookie."""

    wants_cookie: bool
    cookies: dict[str, list[str]]
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
                        cookies.setdefault(name, []).append(content.strip().strip('"'))
        return cls(wants, cookies, csrf)

    def refresh_from_cookie(self, key: bytes) -> str:
        """The cookie's refresh token, after checking the CSRF token bound to it."""
        tokens = self.cookies.get(REFRESH_COOKIE, [])
        if not tokens or not tokens[0]:
            raise errors.unauthenticated(
                f"missing refresh token: send it in the body or as the {REFRESH_COOKIE} cookie"
            )
        if len(tokens) > 1 or len(self.cookies.get(CSRF_COOKIE, [])) > 1:
            raise errors.permission_denied("the request carries a session cookie twice: sign in again")
        if not self.csrf_header or not hmac.compare_digest(csrf_token(key, tokens[0]), self.csrf_header):
            raise errors.permission_denied(f"x-csrf-token must be the {CSRF_COOKIE} cookie of this session")
        return tokens[0]


def _cookie(name: str, value: str, *, max_age: int, http_only: bool) -> str:
    parts = [f"{name}={value}", "Path=/", f"Max-Age={max_age}", "Secure", "SameSite=Strict"]
    if http_only:
        parts.insert(3, "HttpOnly")
    return "; ".join(parts)


def issue(refresh_token: str, key: bytes) -> list[tuple[str, str]]:
    """set-cookie metadata for a new refresh token and its CSRF token."""
    return [
        ("set-cookie", _cookie(REFRESH_COOKIE, refresh_token, max_age=MAX_AGE, http_only=True)),
        ("set-cookie", _cookie(CSRF_COOKIE, csrf_token(key, refresh_token), max_age=MAX_AGE, http_only=False)),
    ]


def clear() -> list[tuple[str, str]]:
    return [
        ("set-cookie", _cookie(REFRESH_COOKIE, "", max_age=0, http_only=True)),
        ("set-cookie", _cookie(CSRF_COOKIE, "", max_age=0, http_only=False)),
    ]
