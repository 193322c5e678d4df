"""Wiring of the identity service: settings, secrets, database, keys, mail, the servicer."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import grpc
from envoy.service.ratelimit.v3 import rls_pb2_grpc
from pydantic import Field, SecretStr

from openhr.identity.v1 import identity_pb2, identity_pb2_grpc
from services.common import surface
from services.common.cache import connect_redis
from services.common.db import Database
from services.common.event_auth import EventSigner
from services.common.outbox import OutboxRelay
from services.common.retention import EventRetention
from services.common.server import ServiceSpec
from services.common.settings import DATA_DIR, ServiceSettings
from services.identity import store
from services.identity.accounts import Accounts
from services.identity.api import IdentityApi, PrivacyApi, RateLimitApi
from services.identity.crypto import Box, load_secrets
from services.identity.keys import KeyRing
from services.identity.mail import Mailer
from services.identity.oauth import build_oauth
from services.identity.passwords import Passwords
from services.identity.privacy import Peers, Privacy
from services.identity.ratelimit import METHODS as RATE_LIMIT_METHODS
from services.identity.ratelimit import SERVICE as RATE_LIMIT_SERVICE
from services.identity.ratelimit import Counters, EdgeLimits, Limits, LoginGuard
from services.identity.retention import ExpiredSecretsPurge
from services.identity.validation import load_common_passwords

SERVICE = identity_pb2.DESCRIPTOR.services_by_name["IdentityService"].full_name
PUBLIC_METHODS = surface.identity_public_paths()
# ExportMyData and DeleteMe need the user's token (not public; Envoy's jwt_authn requires it too).
PRIVACY_SERVICE = identity_pb2.DESCRIPTOR.services_by_name["PrivacyService"].full_name
KEY_DIR = DATA_DIR / "identity-keys"


class IdentitySettings(ServiceSettings):
    port: int = Field(50060, validation_alias="IDENTITY_PORT")
    metrics_port: int = Field(9460, validation_alias="IDENTITY_METRICS_PORT")
    # The kit's interceptor verifies ChangePassword's token against this file, which the service
    # itself keeps current (services/identity/keys.py says why not OPENHR_JWKS over HTTP).
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
    # Rate limits (services/identity/ratelimit.py): sign-in / sign-up per minute per address, failed
    # sign-ins per account. (Per address and per user for every request: Envoy, services/common/edge_rates.py.)
    rate_login_ip_per_min: int = Field(10, ge=1, validation_alias="OPENHR_RATE_LOGIN_IP_PER_MIN")
    rate_signup_ip_per_min: int = Field(5, ge=1, validation_alias="OPENHR_RATE_SIGNUP_IP_PER_MIN")
    rate_login_failures: int = Field(5, ge=1, validation_alias="OPENHR_RATE_LOGIN_FAILURES")
    rate_login_failure_window: float = Field(900.0, gt=0, validation_alias="OPENHR_RATE_LOGIN_FAILURE_WINDOW")
    # Seconds a rate-limit count waits for Redis before failing open: below the edge's
    # OPENHR_EDGE_RATELIMIT_TIMEOUT, so identity answers before Envoy gives up on it.
    rate_redis_timeout: float = Field(0.2, gt=0, validation_alias="OPENHR_RATE_REDIS_TIMEOUT")
    # Sign-in with GitHub / Google (services/identity/oauth.py): a provider without a client id is off.
    github_client_id: str = Field("", validation_alias="OPENHR_GITHUB_CLIENT_ID")
    github_client_secret: SecretStr = Field(SecretStr(""), validation_alias="OPENHR_GITHUB_CLIENT_SECRET")
    github_authorize_url: str = Field(
        "https://github.com/login/oauth/authorize", validation_alias="OPENHR_GITHUB_AUTHORIZE_URL"
    )
    github_token_url: str = Field(
        "https://github.com/login/oauth/access_token", validation_alias="OPENHR_GITHUB_TOKEN_URL"
    )
    github_api_url: str = Field("https://api.github.com", validation_alias="OPENHR_GITHUB_API_URL")
    google_client_id: str = Field("", validation_alias="OPENHR_GOOGLE_CLIENT_ID")
    google_client_secret: SecretStr = Field(SecretStr(""), validation_alias="OPENHR_GOOGLE_CLIENT_SECRET")
    google_authorize_url: str = Field(
        "https://accounts.google.com/o/oauth2/v2/auth", validation_alias="OPENHR_GOOGLE_AUTHORIZE_URL"
    )
    google_token_url: str = Field("https://oauth2.googleapis.com/token", validation_alias="OPENHR_GOOGLE_TOKEN_URL")
    google_userinfo_url: str = Field(
        "https://openidconnect.googleapis.com/v1/userinfo", validation_alias="OPENHR_GOOGLE_USERINFO_URL"
    )
    # Comma list of the redirect URIs StartOAuth accepts; empty: OPENHR_PUBLIC_URL + /auth/callback.
    oauth_redirect_uris: str = Field("", validation_alias="OPENHR_OAUTH_REDIRECT_URIS")
    # Where a first GitHub sign-in creates the user's profile (ProfileService.CreateProfile).
    profile_addr: str = Field("127.0.0.1:50061", validation_alias="PROFILE_ADDR")
    # Comma list of the services that store user data (UserDataService): ExportMyData and
    # DeleteMe call each at <NAME>_ADDR.
    user_data_peers: str = Field("profile,enrichment,messaging,matching", validation_alias="OPENHR_USER_DATA_PEERS")
    enrichment_addr: str = Field("127.0.0.1:50064", validation_alias="ENRICHMENT_ADDR")
    messaging_addr: str = Field("127.0.0.1:50063", validation_alias="MESSAGING_ADDR")
    matching_addr: str = Field("127.0.0.1:50062", validation_alias="MATCHING_ADDR")


def peer_addresses(settings: IdentitySettings) -> dict[str, str]:
    """Service name -> address of every user data peer (PROFILE_ADDR, MATCHING_ADDR, ...)."""
    known = {
        "profile": settings.profile_addr,
        "enrichment": settings.enrichment_addr,
        "messaging": settings.messaging_addr,
        "matching": settings.matching_addr,
    }
    addresses = {}
    for name in filter(None, (part.strip() for part in settings.user_data_peers.split(","))):
        variable = f"{name.upper()}_ADDR"
        address = known.get(name) or os.environ.get(variable, "")
        if not address:
            raise ValueError(f"OPENHR_USER_DATA_PEERS names {name!r} but {variable} is not set")
        addresses[name] = address
    return addresses


def build(settings: IdentitySettings) -> ServiceSpec:
    local = settings.env == "local"
    secrets = load_secrets(
        settings.data_key.get_secret_value(), settings.lookup_key.get_secret_value(), local=local, key_dir=KEY_DIR
    )
    box = Box(secrets.data_key)
    db = Database.for_service(settings, store.SCHEMA)
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
    # Rate-limit counters: short timeouts, every edge request waits for them.
    redis = connect_redis(settings.redis_url, timeout=settings.rate_redis_timeout)
    counters = Counters(redis)
    limits = Limits(
        login_ip_per_min=settings.rate_login_ip_per_min,
        signup_ip_per_min=settings.rate_signup_ip_per_min,
        login_failures=settings.rate_login_failures,
        login_failure_window=settings.rate_login_failure_window,
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
        login_guard=LoginGuard(counters, limits),
    )

    oauth = build_oauth(settings, db, box, accounts)
    peers = Peers(peer_addresses(settings))
    # The outbox relay (UserDeleted) gets a connection of its own: the counters' has a short timeout.
    events_redis = connect_redis(settings.redis_url)
    relay = OutboxRelay(db, events_redis, store.SCHEMA, EventSigner(Path(settings.service_keys), "identity"))

    def register(server: grpc.aio.Server) -> list[str]:
        identity_pb2_grpc.add_IdentityServiceServicer_to_server(
            IdentityApi(accounts, keys, oauth, secrets.lookup_key), server
        )
        identity_pb2_grpc.add_PrivacyServiceServicer_to_server(PrivacyApi(Privacy(db, box, peers)), server)
        rls_pb2_grpc.add_RateLimitServiceServicer_to_server(RateLimitApi(EdgeLimits(counters, limits)), server)
        return [SERVICE, PRIVACY_SERVICE, RATE_LIMIT_SERVICE]

    async def close() -> None:
        await oauth.close()
        await mailer.drain()
        await peers.close()
        await redis.aclose()
        await events_redis.aclose()
        await db.close()

    return ServiceSpec(
        name="identity",
        port=settings.port,
        register=register,
        checks={"postgres": db.ping},
        background=[
            keys.run,
            relay.run,
            ExpiredSecretsPurge(db).run,
            EventRetention(db, store.SCHEMA, settings.event_retention).run,
        ],
        cleanup=[close],
        # Envoy's rate-limit calls carry no token and come with every edge request: not logged.
        public_methods=PUBLIC_METHODS,
        quiet_methods=RATE_LIMIT_METHODS,
        metrics_port=settings.metrics_port,
    )
