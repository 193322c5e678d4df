"""The edge's request limits per client address and per user: one definition, rendered into
Envoy's `local_ratelimit` filter by edge/envoy/render.py (local stack, tests, deploy/k8s).

They are token buckets inside each Envoy replica (no call per request, nothing in Redis): a
bucket holds `per_min` requests and refills at `per_min` a minute, so a client gets at most
`per_min` in a burst and `per_min` a minute sustained, from each replica. With N edge replicas
behind a balancer a client's budget is up to N times that. Sign-in and sign-up per address and
failed sign-ins per account stay global, counted by identity in Redis
(services/identity/ratelimit.py)."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field


class EdgeRates(BaseModel):
    """Requests per minute; `EdgeRates()` holds the defaults."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    ip_per_min: int = Field(1000, ge=1, le=2**32 - 1, validation_alias="OPENHR_RATE_IP_PER_MIN")
    user_per_min: int = Field(100, ge=1, le=2**32 - 1, validation_alias="OPENHR_RATE_USER_PER_MIN")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> EdgeRates:
        """From a stack's or a manifest's environment (unset or empty: the default)."""
        return cls.model_validate({k: v for k, v in env.items() if k.startswith("OPENHR_RATE_") and v})
