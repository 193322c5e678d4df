"""Channels to peer services. Outgoing calls carry the request id and, to a public RPC, the
caller's token (on-behalf-of) or, when no user is calling, this service's own service token;
to an internal RPC always the service token (services.common.service_auth: internal RPCs take
nothing else). They get a deadline when the caller set none, and retry only idempotent methods."""

from __future__ import annotations

import json
from collections.abc import Iterable

import grpc

from services.common import auth
from services.common.logging import current_request_id
from services.common.service_auth import ServiceTokenIssuer, is_internal

DEFAULT_TIMEOUT = 5.0
# This process's service identity (set by services.common.server.Service); None: none.
_service_identity: ServiceTokenIssuer | None = None


def set_service_identity(issuer: ServiceTokenIssuer | None) -> None:
    global _service_identity
    _service_identity = issuer


def _outgoing_metadata(metadata: grpc.aio.Metadata | None, method: str) -> grpc.aio.Metadata:
    out = grpc.aio.Metadata(*(metadata or ()))
    request_id = current_request_id()
    if request_id and "x-request-id" not in out:
        out.add("x-request-id", request_id)
    if "authorization" not in out:
        principal = auth.optional_principal()
        if principal is not None and principal.user_id and not is_internal(method):
            out.add("authorization", f"Bearer {principal.token}")
        elif _service_identity is not None:  # internal RPCs take service tokens only
            out.add("authorization", f"Bearer {_service_identity.token()}")
    return out


class _ForwardContext(grpc.aio.UnaryUnaryClientInterceptor, grpc.aio.UnaryStreamClientInterceptor):
    async def _forward(self, continuation, details, request):
        method = details.method.decode() if isinstance(details.method, bytes) else details.method
        details = details._replace(
            metadata=_outgoing_metadata(details.metadata, method),
            timeout=details.timeout if details.timeout is not None else DEFAULT_TIMEOUT,
        )
        return await continuation(details, request)

    async def intercept_unary_unary(self, continuation, client_call_details, request):
        return await self._forward(continuation, client_call_details, request)

    async def intercept_unary_stream(self, continuation, client_call_details, request):
        return await self._forward(continuation, client_call_details, request)


def _service_config(idempotent_services: Iterable[str]) -> str:
    """gRPC retry policy for services whose methods are all safe to repeat."""
    names = [{"service": s} for s in idempotent_services]
    if not names:
        return json.dumps({})
    return json.dumps(
        {
            "methodConfig": [
                {
                    "name": names,
                    "retryPolicy": {
                        "maxAttempts": 3,
                        "initialBackoff": "0.05s",
                        "maxBackoff": "0.5s",
                        "backoffMultiplier": 2,
                        "retryableStatusCodes": ["UNAVAILABLE"],
                    },
                }
            ]
        }
    )


def channel(target: str, *, idempotent_services: Iterable[str] = ()) -> grpc.aio.Channel:
    options = [
        ("grpc.service_config", _service_config(idempotent_services)),
        ("grpc.enable_retries", 1),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
    ]
    return grpc.aio.insecure_channel(target, options=options, interceptors=[_ForwardContext()])
