"""The errors the edge answers itself (a missing or bad token, a rate limit, an unknown path),
built by the services' own errors.DomainError, so they carry the details common.proto promises
(google.rpc.ErrorInfo with its ErrorReason, google.rpc.RetryInfo for limits) in one shape:

- REST: the google.rpc.Status JSON body (local_reply_config's body_format), details included;
- gRPC and grpc-web: grpc-status, grpc-message and grpc-status-details-bin (the serialized
  Status, base64) of a trailers-only answer. grpc-message is the Status' message, as gRPC
  clients that read the details (grpcio-status, connect) require.

Envoy cannot build a protobuf at request time: every answer is rendered once here, with a
fixed message per case (jwt_authn's reason picks the case, see envoy.yaml.j2)."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import grpc
from google.protobuf import duration_pb2, json_format
from google.rpc import error_details_pb2

from openhr.common.v1 import common_pb2
from services.common import errors

# Identity's limits are one-minute fixed windows: the exact wait is in retry-after (REST, gRPC
# metadata); RetryInfo says the least a client must wait before it tries again.
RATE_LIMIT_RETRY_DELAY_SECONDS = 1
RATE_LIMITED_MESSAGE = "too many requests: retry after the seconds in retry-after"
NOT_FOUND_MESSAGE = "not found: no such route (the API is described at /openapi.json)"
# jwt_authn's failure text (its metadata jwt_failure.message) -> what we tell the client; any
# other failure (bad signature, issuer, audience, malformed) is an invalid token.
MISSING_TOKEN = "missing access token: send 'authorization: Bearer <token>'"
TOKEN_FAILURES = {
    "Jwt is missing": MISSING_TOKEN,
    "Jwt is expired": "access token expired: refresh it",
    "Jwt not yet valid": "access token not valid yet",
}
INVALID_TOKEN = "invalid access token"


@dataclass(frozen=True)
class LocalReply:
    """One error the edge answers: its HTTP status for REST, its Status for every transport."""

    http_status: int
    grpc_code: int
    message: str
    json_details: list[dict]  # google.rpc.Status.details in the proto3 JSON mapping
    status_details_bin: str  # the whole Status, serialized, base64 (grpc-status-details-bin)


def _reply(http_status: int, error: errors.DomainError, *extra) -> LocalReply:
    status = error.to_status()
    for detail in extra:
        status.details.add().Pack(detail)
    printed = json_format.MessageToDict(status, always_print_fields_with_no_presence=True)
    return LocalReply(
        http_status,
        status.code,
        status.message,
        printed["details"],
        base64.b64encode(status.SerializeToString()).decode().rstrip("="),
    )


def unauthenticated(message: str) -> LocalReply:
    return _reply(401, errors.unauthenticated(message))


def token_replies() -> list[tuple[str | None, LocalReply]]:
    """(jwt_authn's failure text or None for any other, the reply), most specific first."""
    known = [(text, unauthenticated(message)) for text, message in TOKEN_FAILURES.items()]
    return [*known, (None, unauthenticated(INVALID_TOKEN))]


def rate_limited() -> LocalReply:
    error = errors.DomainError(
        RATE_LIMITED_MESSAGE, grpc.StatusCode.RESOURCE_EXHAUSTED, common_pb2.ERROR_REASON_RATE_LIMITED
    )
    retry = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=RATE_LIMIT_RETRY_DELAY_SECONDS))
    return _reply(429, error, retry)


def not_found() -> LocalReply:
    return _reply(
        404, errors.DomainError(NOT_FOUND_MESSAGE, grpc.StatusCode.NOT_FOUND, common_pb2.ERROR_REASON_NOT_FOUND)
    )


def values() -> dict:
    """The template's view: LOCAL_REPLIES = {token: [(failure text, reply)], rate_limited, not_found}."""
    return {"token": token_replies(), "rate_limited": rate_limited(), "not_found": not_found()}
