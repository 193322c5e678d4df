"""Helpers of the identity suites: fresh accounts over REST, links out of the mesh's Maildir,
token hashes for superuser SQL and JWT claims verified against the edge's JWKS."""

from __future__ import annotations

import hashlib
import mailbox
import re
import uuid
from dataclasses import dataclass, field

import httpx
import jwt
from jwt import PyJWKSet

from deploy.local.ephemeral import AUDIENCE, ISSUER, Mesh
from tests.users import PASSWORD
from tests.waiting import eventually

RPC_TIMEOUT = 10
_LINK = re.compile(r"/(verify-email|reset-password)\?token=([A-Za-z0-9_%-]+)")


def new_email(prefix: str = "id") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@Example.com"


@dataclass
class Account:
    email: str
    password: str
    user_id: str = ""
    access_token: str = field(default="", repr=False)
    refresh_token: str = field(default="", repr=False)

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.access_token}"}

    def take(self, tokens: dict) -> Account:
        """Keeps the tokens of a Tokens JSON object."""
        self.user_id = tokens["userId"]
        self.access_token = tokens["accessToken"]
        self.refresh_token = tokens["refreshToken"]
        return self


async def sign_up(rest: httpx.AsyncClient, email: str | None = None, password: str = PASSWORD) -> Account:
    account = Account(email or new_email(), password)
    response = await rest.post("/v1/auth/signup", json={"email": account.email, "password": password})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["verificationSent"] is True, body
    return account.take(body["tokens"])


async def login(rest: httpx.AsyncClient, account: Account, password: str | None = None) -> httpx.Response:
    return await rest.post("/v1/auth/login", json={"email": account.email, "password": password or account.password})


async def refresh(rest: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await rest.post("/v1/auth/refresh", json={"refreshToken": refresh_token})


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


# --- mail -----------------------------------------------------------------------------------------


def _body(message: mailbox.MaildirMessage) -> str:
    return message.get_payload(decode=True).decode()


def links(mesh: Mesh, address: str, page: str) -> list[str]:
    """Every link token of `page` ("verify-email", "reset-password") mailed to `address`."""
    if not mesh.maildir.exists():
        return []
    found = []
    for message in mailbox.Maildir(mesh.maildir, create=False):
        if message["To"] != address:
            continue
        found += [token for kind, token in _LINK.findall(_body(message)) if kind == page]
    return found


async def next_link(mesh: Mesh, address: str, page: str, seen: set[str] = frozenset()) -> str:
    """The first `page` link token mailed to `address` that is not in `seen` (waits for it)."""
    fresh = await eventually(
        lambda: [token for token in links(mesh, address, page) if token not in seen],
        message=f"no new {page} mail to {address}",
    )
    return fresh[0]


# --- tokens ---------------------------------------------------------------------------------------


async def claims(rest: httpx.AsyncClient, access_token: str) -> dict:
    """The access token's claims, verified against the JWKS the edge serves."""
    document = (await rest.get("/.well-known/jwks.json")).json()
    keys = {key.key_id: key for key in PyJWKSet.from_dict(document).keys}
    kid = jwt.get_unverified_header(access_token)["kid"]
    return jwt.decode(access_token, keys[kid].key, algorithms=["EdDSA"], issuer=ISSUER, audience=AUDIENCE)
