"""The identity service's two secrets and what they protect.

- The data key (OPENHR_DATA_KEY, base64 of 32 bytes): AES-256-GCM for emails and the private
  signing keys at rest. Each ciphertext is bound to its row by associated data, so a ciphertext
  copied into another row does not decrypt.
- The lookup key (OPENHR_LOOKUP_KEY, base64 of >= 32 bytes): HMAC-SHA256 of the normalized
  email, the only form in which an email is searchable (uniqueness, sign-in, audit of failed
  sign-ins). Without the key, the hash of a guessed address cannot be computed.

In local mode a missing key is generated once into DATA_DIR/identity-keys/ (mode 0600) so that
`make run` needs nothing set; in production the service refuses to start without both."""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

DATA_KEY_BYTES = 32
MIN_LOOKUP_KEY_BYTES = 32
NONCE_BYTES = 12


class MissingSecretError(RuntimeError):
    """A key is missing or malformed: the service cannot start."""


@dataclass(frozen=True)
class Secrets:
    data_key: bytes
    lookup_key: bytes


def _decode(name: str, value: str, minimum: int, exact: bool) -> bytes:
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise MissingSecretError(f"{name} is not valid base64") from None
    if (exact and len(raw) != minimum) or len(raw) < minimum:
        size = f"exactly {minimum}" if exact else f"at least {minimum}"
        raise MissingSecretError(f"{name} must be base64 of {size} bytes, got {len(raw)}")
    return raw


def _local_key(path: Path, size: int) -> str:
    """A key generated once into `path` (0600), read back on later starts."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o700)
        draft = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(base64.b64encode(secrets.token_bytes(size)).decode() + "\n")
        # Two processes starting at once: the first link wins and both read the same key.
        with contextlib.suppress(FileExistsError):
            os.link(draft, path)
        draft.unlink()
    return path.read_text()


def load_secrets(data_key: str, lookup_key: str, *, local: bool, key_dir: Path) -> Secrets:
    if not local:
        given = {"OPENHR_DATA_KEY": data_key, "OPENHR_LOOKUP_KEY": lookup_key}
        missing = [name for name, value in given.items() if not value]
        if missing:
            raise MissingSecretError(
                f"{' and '.join(missing)} must be set outside local mode "
                "(base64 of 32 random bytes each, e.g. `openssl rand -base64 32`)"
            )
    data = data_key or _local_key(key_dir / "data.key", DATA_KEY_BYTES)
    lookup = lookup_key or _local_key(key_dir / "lookup.key", MIN_LOOKUP_KEY_BYTES)
    return Secrets(
        data_key=_decode("OPENHR_DATA_KEY", data, DATA_KEY_BYTES, exact=True),
        lookup_key=_decode("OPENHR_LOOKUP_KEY", lookup, MIN_LOOKUP_KEY_BYTES, exact=False),
    )


class Box:
    """AES-256-GCM with a random 96-bit nonce per message: nonce || ciphertext+tag."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, plaintext: bytes, context: str) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, context.encode())

    def open(self, sealed: bytes, context: str) -> bytes:
        return self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], context.encode())


def email_context(user_id: str) -> str:
    return f"identity.users.email:{user_id}"


def signing_key_context(kid: str) -> str:
    return f"identity.signing_keys:{kid}"


def lookup_hash(lookup_key: bytes, normalized_email: str) -> bytes:
    return hmac.new(lookup_key, normalized_email.encode(), hashlib.sha256).digest()
