"""The development signing key (local mode only): identity's JWKS carries it locally, so tests,
benchmarks and `make token` (services/identity/devtoken.py) can mint access tokens without
signing in. A stand-alone development user's id is derived from an email address."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

from services.common.settings import DATA_DIR

KEY_DIR = DATA_DIR / "dev-keys"
# Fixed namespace so that the same email always maps to the same local user id.
_USER_NAMESPACE = uuid.UUID("6f1b0f5e-8a43-4c1e-9a57-3a1f1d0e2b7c")


def user_id_for(email: str) -> str:
    return str(uuid.uuid5(_USER_NAMESPACE, email.strip().lower()))


def ensure_keys(key_dir: Path = KEY_DIR) -> Path:
    """Creates the key pair and its JWKS once; returns the JWKS path."""
    private_path, jwks_path = key_dir / "signing-key.pem", key_dir / "jwks.json"
    if private_path.exists() and jwks_path.exists():
        return jwks_path
    key_dir.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    kid = f"dev-{int(time.time())}"
    private_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    private_path.chmod(0o600)
    public = json.loads(OKPAlgorithm.to_jwk(key.public_key()))
    public.update({"kid": kid, "use": "sig", "alg": "EdDSA"})
    jwks_path.write_text(json.dumps({"keys": [public]}, indent=2))
    (key_dir / "kid").write_text(kid)
    return jwks_path


def mint_token(
    user_id: str,
    *,
    issuer: str,
    audience: str,
    ttl_seconds: int = 900,
    key_dir: Path = KEY_DIR,
    now: float | None = None,
) -> str:
    ensure_keys(key_dir)
    key = serialization.load_pem_private_key((key_dir / "signing-key.pem").read_bytes(), password=None)
    issued = int(now if now is not None else time.time())
    claims = {"sub": user_id, "iss": issuer, "aud": audience, "iat": issued, "exp": issued + ttl_seconds}
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": (key_dir / "kid").read_text()})
