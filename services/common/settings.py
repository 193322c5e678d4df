"""Settings every service shares, read only from environment variables.

Defaults make `make run` work on a laptop. Each service subclasses `ServiceSettings` and adds
its own fields (its port, its peers' addresses)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]
# Local state of `make run`: the embedded database, Redis, the development signing key.
DATA_DIR = Path(os.environ.get("OPENHR_DATA_DIR") or REPO_ROOT / ".data")


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    # "local" enables the development signing key and `make token`; never in production.
    env: Literal["local", "production"] = Field("local", validation_alias="OPENHR_ENV")
    grpc_host: str = Field("127.0.0.1", validation_alias="OPENHR_GRPC_HOST")
    database_url: str = Field("postgresql://openhr@127.0.0.1:54329/openhr", validation_alias="DATABASE_URL")
    redis_url: str = Field("redis://127.0.0.1:63799/0", validation_alias="REDIS_URL")
    # A JWKS URL (http…) or file path used to verify access tokens.
    jwks: str = Field(str(DATA_DIR / "dev-keys" / "jwks.json"), validation_alias="OPENHR_JWKS")
    jwt_issuer: str = Field("openhr-identity", validation_alias="OPENHR_JWT_ISSUER")
    jwt_audience: str = Field("openhr", validation_alias="OPENHR_JWT_AUDIENCE")
    # Service identity (services/common/service_auth.py): every service's public key
    # (<name>.jwk) and this service's private key (<name>.pem); created locally when missing.
    service_keys: str = Field(str(DATA_DIR / "service-keys"), validation_alias="OPENHR_SERVICE_KEYS")
    log_level: str = Field("INFO", validation_alias="OPENHR_LOG_LEVEL")
    # Seconds in-flight RPCs get to finish on SIGTERM.
    shutdown_grace: float = Field(10.0, validation_alias="OPENHR_SHUTDOWN_GRACE")
    # Seconds between dependency checks that drive the health status.
    health_interval: float = Field(2.0, validation_alias="OPENHR_HEALTH_INTERVAL")
    # Seconds between heartbeats on idle server streams (well inside Envoy's stream idle timeout).
    stream_heartbeat: float = Field(15.0, validation_alias="OPENHR_STREAM_HEARTBEAT")
    db_pool_size: int = Field(10, validation_alias="OPENHR_DB_POOL_SIZE")
    # Seconds published outbox rows and processed inbox keys are kept (services/common/retention.py).
    event_retention: float = Field(7 * 86400.0, gt=0, validation_alias="OPENHR_EVENT_RETENTION")
    otlp_endpoint: str = Field("", validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT")
