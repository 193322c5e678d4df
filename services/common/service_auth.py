"""Service identity for calls between services that act for no user (background work).

A call between services carries either the end user's access token (on behalf of the user,
services.common.clients forwards it) or, when there is no user, a short-lived service token
the calling service signs itself (a JWT client assertion, RFC 7523 style):

    header  {"alg": "EdDSA", "kid": "<service>"}
    claims  {"iss": "<service>", "sub": "<service>", "svc": "<service>",
             "aud": "openhr-internal", "iat": …, "exp": iat + 60, "jti": …}

Each service has its own Ed25519 key pair. Verifiers trust the directory OPENHR_SERVICE_KEYS:
one public JWK per service, `<service>.jwk` (kid = the service name), beside the service's own
private key `<service>.pem`. A token verifies only against the key of the service it names (kid,
iss, sub and svc must agree), so no service can speak for another, and no key is shared.
Locally each service creates its pair on first start (local mode only); in production the
directory is mounted: every service's public JWK (a ConfigMap) and the service's own private
key (its Secret).

Service tokens open internal RPCs only (services.common.surface.INTERNAL_CALLERS), and internal
RPCs take nothing else: each accepts the tokens of the services it names, never a user's token
(a user calling MergeEnrichedSkills could otherwise skip the public path's rules). The kit's
interceptor refuses service tokens on public RPCs, and Envoy refuses them at the edge (another
issuer, audience and key). A service principal carries no user id, so its transactions run
without a user in the RLS context unless the RPC names the user it acts for (UserDataService).
Envoy itself calls identity's RateLimitService with a token of its own ("envoy"), minted with
its key when its config is rendered."""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from jwt import PyJWK
from jwt.algorithms import OKPAlgorithm

from services.common import surface

ALGORITHM = "EdDSA"
AUDIENCE = "openhr-internal"
TTL_SECONDS = 60
# A token is re-minted when less than this is left (so a call never carries one about to expire).
RENEW_SECONDS = 20
MAX_LIFETIME = 300
# The edge's token to identity's RateLimitService is minted when its config is rendered
# (Envoy cannot sign): it lives until the next render, at most this long. Only "envoy" may.
EDGE_NAME = "envoy"
EDGE_MAX_LIFETIME = 400 * 86400
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


def is_internal(method: str) -> bool:
    """Whether a full method name ("/pkg.Service/Method") belongs to an internal service."""
    return method.strip("/").partition("/")[0] in surface.INTERNAL_CALLERS


def callers_of(method: str) -> frozenset[str]:
    """The services whose tokens an internal method accepts."""
    return surface.INTERNAL_CALLERS.get(method.strip("/").partition("/")[0], frozenset())


def _check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"invalid service name {name!r}")
    return name


def _write_private(path: Path, data: bytes) -> None:
    draft = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(draft, path)


def _write_public(path: Path, text: str) -> None:
    draft = path.with_name(f".{path.name}.{os.getpid()}")
    draft.write_text(text)
    os.replace(draft, path)


def ensure_service_key(key_dir: Path, name: str) -> Path:
    """Creates `name`'s key pair in `key_dir` unless it exists (local mode); returns the private
    key's path. Each service writes only its own two files, atomically: no race between
    services starting together."""
    _check_name(name)
    private_path, public_path = key_dir / f"{name}.pem", key_dir / f"{name}.jwk"
    if private_path.exists() and public_path.exists():
        return private_path
    key_dir.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    _write_private(
        private_path,
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    public = OKPAlgorithm.to_jwk(key.public_key(), as_dict=True)
    public.update({"kid": name, "use": "sig", "alg": ALGORITHM})
    _write_public(public_path, json.dumps(public, indent=2))
    return private_path


def load_private_key(key_dir: Path, name: str) -> Ed25519PrivateKey | None:
    """`name`'s private key from `key_dir`, or None when it is not there."""
    path = key_dir / f"{_check_name(name)}.pem"
    if not path.exists():
        return None
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key


class PublicKeys:
    """Every service's public key from the `<name>.jwk` files of a directory (reread when it
    changes): what service tokens (below) and signed events (services.common.event_auth) are
    verified with."""

    def __init__(self, key_dir: Path) -> None:
        self._dir = key_dir
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._mtime = -1.0

    def get(self, name: str) -> Ed25519PublicKey | None:
        try:
            mtime = self._dir.stat().st_mtime
        except OSError:
            return None
        if mtime != self._mtime:
            keys = {}
            for path in self._dir.glob("*.jwk"):
                try:
                    jwk = PyJWK(json.loads(path.read_text()))
                except (OSError, ValueError, jwt.PyJWTError):
                    continue
                if jwk.key_id == path.stem and isinstance(jwk.key, Ed25519PublicKey):
                    keys[path.stem] = jwk.key
            self._keys, self._mtime = keys, mtime
        return self._keys.get(name)


class ServiceTokenIssuer:
    """Mints this service's tokens (cached until RENEW_SECONDS before they expire)."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        self.name = _check_name(name)
        self._key = private_key
        self._token, self._expires_at = "", 0.0

    @classmethod
    def from_dir(cls, key_dir: Path, name: str) -> ServiceTokenIssuer | None:
        """This service's issuer, or None when its private key is not in `key_dir`."""
        key = load_private_key(key_dir, name)
        return cls(name, key) if key is not None else None

    def token(self, now: float | None = None) -> str:
        now = time.time() if now is None else now
        if self._expires_at - now > RENEW_SECONDS:
            return self._token
        self._token = self.mint(TTL_SECONDS, now)
        self._expires_at = int(now) + TTL_SECONDS
        return self._token

    def mint(self, lifetime: int, now: float | None = None) -> str:
        """A new token valid for `lifetime` seconds (verifiers accept at most MAX_LIFETIME, or
        EDGE_MAX_LIFETIME from the edge)."""
        issued = int(time.time() if now is None else now)
        claims = {
            "iss": self.name,
            "sub": self.name,
            "svc": self.name,
            "aud": AUDIENCE,
            "iat": issued,
            "exp": issued + lifetime,
            "jti": str(uuid.uuid4()),
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self.name})


class ServiceTokenVerifier:
    """Verifies service tokens against the public keys in a directory."""

    def __init__(self, key_dir: Path) -> None:
        self._keys = PublicKeys(key_dir)

    def verify(self, token: str) -> str:
        """The calling service's name; UNAUTHENTICATED unless the token is a valid service token."""
        # Here, not at the top: key handling and minting stay importable without the generated
        # code (the local stack and the Envoy renderer mint the edge's token before `make protos`
        # is on their path).
        from services.common import errors

        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise errors.unauthenticated("malformed service token") from None
        kid = header.get("kid")
        if header.get("alg") != ALGORITHM or not isinstance(kid, str) or not _NAME.match(kid):
            raise errors.unauthenticated("invalid service token")
        key = self._keys.get(kid)
        if key is None:
            raise errors.unauthenticated("unknown service")
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=kid,
                options={"require": ["exp", "iat", "iss", "sub", "aud", "svc"]},
                leeway=5,
            )
        except jwt.ExpiredSignatureError:
            raise errors.unauthenticated("service token expired") from None
        except jwt.PyJWTError:
            raise errors.unauthenticated("invalid service token") from None
        longest = EDGE_MAX_LIFETIME if kid == EDGE_NAME else MAX_LIFETIME
        if claims["sub"] != kid or claims["svc"] != kid or claims["exp"] - claims["iat"] > longest:
            raise errors.unauthenticated("invalid service token")
        return kid


def is_service_token(token: str) -> bool:
    """Whether a bearer token claims to be a service token (audience openhr-internal); says
    nothing about its validity."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return False
    audience = claims.get("aud")
    return audience == AUDIENCE or (isinstance(audience, list) and AUDIENCE in audience)
