"""Wiring of the identity service: settings, secrets, database, keys, mail, the servicer."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import grpc
from pydantic import Field, SecretStr

from edge.identity import store
from edge.identity.accounts import Accounts
from edge.identity.api import IdentityApi
from edge.identity.crypto import Box, load_secrets
from edge.identity.keys import KeyRing
from edge.identity.mail import Mailer
from edge.identity.passwords import Passwords
from edge.identity.validation import load_common_passwords
from openhr.identity.v1 import identity_pb2, identity_pb2_grpc
from services.common.db import Database
from services.common.migrations import app_role
from services.common.server import ServiceSpec
from services.common.settings import DATA_DIR, ServiceSettings

SERVICE = identity_pb2.DESCRIPTOR.services_by_name["IdentityService"].full_name
# How a caller gets a token in the first place; ChangePassword and ResendVerificationEmail need one.
PUBLIC_METHODS = frozenset(
    f"/{SERVICE}/{method}"
    for method in (
        "SignUp",
        "Login",
        "Refresh",
        "Logout",
        "VerifyEmail",
        "RequestPasswordReset",
        "ResetPassword",
        "GetJwks",
        "StartOAuth",
        "CompleteOAuth",
    )
)
KEY_DIR = DATA_DIR / "identity-keys"


class IdentitySettings(ServiceSettings):
    port: int = Field(50060, validation_alias="IDENTITY_PORT")
    metrics_port: int = Field(9460, validation_alias="IDENTITY_METRICS_PORT")
    # The kit's interceptor verifies ChangePassword's token against this file, which the service
    # itself keeps current (edge/identity/keys.py says why not OPENHR_JWKS over HTTP).
    jwks: str = Field(str(KEY_DIR / "jwks.json"), validation_alias="IDENTITY_JWKS_FILE")
    # base64 of 32 bytes (AES-256-GCM) / of >= 32 bytes (HMAC-SHA256); generated locally if unset.
    data_key: SecretStr = Field(SecretStr(""), validation_alias="OPENHR_DATA_KEY")
    lookup_key: SecretStr = Field(SecretStr(""), validation_alias="OPENHR_LOOKUP_KEY")
    signing_key_days: float = Field(30.0, gt=0, validation_alias="OPENHR_SIGNING_KEY_DAYS")
    # Where the links in verification and reset mails point (a page that calls the API).
    public_url: str = Field("http://127.0.0.1:8080", validation_alias="OPENHR_PUBLIC_URL")
    smtp_host: str = Field("127.0.0.1", validation_alias="OPENHR_SMTP_HOST")
    smtp_port: int = Field(2525, validation_alias="OPENHR_SMTP_PORT")
    smtp_from: str = Field("OpenHR <no-reply@openhr.localhost>", validation_alias="OPENHR_SMTP_FROM")


def build(settings: IdentitySettings) -> ServiceSpec:
    local = settings.env == "local"
    secrets = load_secrets(
        settings.data_key.get_secret_value(), settings.lookup_key.get_secret_value(), local=local, key_dir=KEY_DIR
    )
    box = Box(secrets.data_key)
    db = Database(
        settings.database_url,
        app_role=app_role(store.SCHEMA),
        pool_size=settings.db_pool_size,
        application_name="identity",
    )
    keys = KeyRing(
        db,
        box,
        rotate_after=timedelta(days=settings.signing_key_days),
        jwks_file=Path(settings.jwks),
        development_jwks=DATA_DIR / "dev-keys" / "jwks.json" if local else None,
    )
    mailer = Mailer(
        host=settings.smtp_host, port=settings.smtp_port, sender=settings.smtp_from, public_url=settings.public_url
    )
    accounts = Accounts(
        db,
        Passwords(),
        box,
        secrets.lookup_key,
        keys,
        mailer,
        load_common_passwords(),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )

    def register(server: grpc.aio.Server) -> list[str]:
        identity_pb2_grpc.add_IdentityServiceServicer_to_server(IdentityApi(accounts, keys), server)
        return [SERVICE]

    async def close() -> None:
        await mailer.drain()
        await db.close()

    return ServiceSpec(
        name="identity",
        port=settings.port,
        register=register,
        checks={"postgres": db.ping},
        background=[keys.run],
        cleanup=[close],
        public_methods=PUBLIC_METHODS,
        metrics_port=settings.metrics_port,
    )
