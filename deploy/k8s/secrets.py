"""Prints the Secrets the manifests reference, with fresh keys, for `kubectl apply -f -`. Nothing
is written to disk; the repository never holds a secret value.

    python -m deploy.k8s.secrets --env dev | kubectl apply -n openhr -f -
    python -m deploy.k8s.secrets --env prod --database-url postgresql://… --redis-url rediss://… \\
        | kubectl apply -n openhr -f -
    python -m deploy.k8s.secrets --only service-keys | kubectl apply -n openhr -f -   # rotate

Secrets: openhr-secrets (DATABASE_URL, REDIS_URL, OPENHR_DATA_KEY, OPENHR_LOOKUP_KEY, the OAuth
client secrets, empty until set), openhr-service-public-keys (<name>.jwk of every service) and
openhr-<name>-service-key (<name>.pem), and in dev openhr-dev-postgres and a self-signed
openhr-edge-tls for localhost. In prod, create openhr-edge-tls from your certificate
(kubectl create secret tls openhr-edge-tls --cert=… --key=…)."""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import secrets
import sys
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from deploy.k8s.envoy_config import deployed_services
from services.common.service_auth import EDGE_NAME, ensure_service_key


def secret(name: str, data: dict[str, str | bytes], kind: str = "Opaque") -> dict:
    encoded = {
        key: base64.b64encode(value if isinstance(value, bytes) else value.encode()).decode()
        for key, value in data.items()
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "openhr"}},
        "type": kind,
        "data": encoded,
    }


def service_key_secrets(names: list[str]) -> list[dict]:
    with tempfile.TemporaryDirectory() as directory:
        key_dir = Path(directory)
        for name in names:
            ensure_service_key(key_dir, name)
        public = {f"{name}.jwk": (key_dir / f"{name}.jwk").read_text() for name in names}
        private = [
            secret(f"openhr-{name}-service-key", {f"{name}.pem": (key_dir / f"{name}.pem").read_bytes()})
            for name in names
        ]
    return [secret("openhr-service-public-keys", public), *private]


def self_signed_tls(host: str = "localhost") -> dict:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return secret(
        "openhr-edge-tls",
        {"tls.crt": certificate.public_bytes(serialization.Encoding.PEM), "tls.key": pem_key},
        kind="kubernetes.io/tls",
    )


def generate(env: str, database_url: str = "", redis_url: str = "", only: str = "") -> list[dict]:
    documents: list[dict] = []
    if only in ("", "service-keys"):
        # The edge ("envoy") signs its rate-limit calls with a key of its own.
        documents += service_key_secrets([*deployed_services(), EDGE_NAME])
    if only == "service-keys":
        return documents
    if env == "dev":
        password = secrets.token_urlsafe(24)
        documents.append(secret("openhr-dev-postgres", {"password": password}))
        database_url = database_url or f"postgresql://openhr:{password}@postgres:5432/openhr"
        redis_url = redis_url or "redis://redis:6379/0"
        documents.append(self_signed_tls())
    if not (database_url and redis_url):
        raise ValueError("--database-url and --redis-url are required outside dev")
    documents.append(
        secret(
            "openhr-secrets",
            {
                "DATABASE_URL": database_url,
                "REDIS_URL": redis_url,
                "OPENHR_DATA_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
                "OPENHR_LOOKUP_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
                "OPENHR_GITHUB_CLIENT_SECRET": "",
                "OPENHR_GOOGLE_CLIENT_SECRET": "",
                "OPENHR_GITHUB_TOKEN": "",
                "OPENHR_LLM_API_KEY": "",
            },
        )
    )
    return documents


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.k8s.secrets", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", choices=["dev", "prod"], default="dev")
    parser.add_argument("--database-url", default="")
    parser.add_argument("--redis-url", default="")
    parser.add_argument("--only", choices=["service-keys"], help="only the service keys (rotation)")
    args = parser.parse_args(argv)
    try:
        documents = generate(args.env, args.database_url, args.redis_url, args.only or "")
    except ValueError as exc:
        parser.error(str(exc))
    # JSON is YAML: one document per Secret.
    sys.stdout.write("".join(f"---\n{json.dumps(document, indent=2)}\n" for document in documents))
    return 0


if __name__ == "__main__":
    sys.exit(main())
