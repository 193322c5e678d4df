"""Domain errors and their one mapping to gRPC status codes with google.rpc details.

Domain code raises these; the error interceptor turns them into a status with
`google.rpc.ErrorInfo` (reason from openhr.common.v1.ErrorReason) and, for bad input,
`google.rpc.BadRequest` naming each field. Nothing else (stack traces, SQL) reaches a client."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from openhr.common.v1 import common_pb2

DOMAIN = "openhr.dev"


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


@dataclass
class DomainError(Exception):
    message: str
    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    reason: int = common_pb2.ERROR_REASON_UNSPECIFIED
    violations: list[FieldViolation] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    # Response metadata sent with the status (REST: response headers), e.g. retry-after.
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def to_status(self) -> status_pb2.Status:
        details: list[any_pb2.Any] = []
        info = error_details_pb2.ErrorInfo(
            reason=common_pb2.ErrorReason.Name(self.reason), domain=DOMAIN, metadata=self.metadata
        )
        details.append(_pack(info))
        if self.violations:
            bad = error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                    for v in self.violations
                ]
            )
            details.append(_pack(bad))
        return status_pb2.Status(code=self.code.value[0], message=self.message, details=details)

    def renamed(self, rename: Callable[[str], str]) -> DomainError:
        """The same error naming its fields by `rename` (REST callers: JSON names, see
        field_paths.json_path), in its violations and in a message that lists them."""
        if not self.violations:
            return self
        violations = [FieldViolation(rename(v.field), v.description) for v in self.violations]
        message = _listing(violations) if self.message == _listing(self.violations) else self.message
        return dataclasses.replace(self, message=message, violations=violations)


def _pack(message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _listing(violations: list[FieldViolation]) -> str:
    return "invalid request: " + "; ".join(f"{v.field}: {v.description}" for v in violations)


def invalid_argument(*violations: FieldViolation) -> DomainError:
    """One error naming every bad field; the message names them too, for REST clients."""
    return DomainError(
        _listing(list(violations)),
        grpc.StatusCode.INVALID_ARGUMENT,
        common_pb2.ERROR_REASON_INVALID_FIELD,
        list(violations),
    )


def invalid_field(name: str, description: str) -> DomainError:
    return invalid_argument(FieldViolation(name, description))


def not_found(what: str) -> DomainError:
    return DomainError(f"{what} not found", grpc.StatusCode.NOT_FOUND, common_pb2.ERROR_REASON_NOT_FOUND)


def already_exists(what: str) -> DomainError:
    return DomainError(f"{what} already exists", grpc.StatusCode.ALREADY_EXISTS, common_pb2.ERROR_REASON_ALREADY_EXISTS)


def permission_denied(message: str) -> DomainError:
    return DomainError(message, grpc.StatusCode.PERMISSION_DENIED, common_pb2.ERROR_REASON_FORBIDDEN)


def unauthenticated(message: str) -> DomainError:
    return DomainError(message, grpc.StatusCode.UNAUTHENTICATED, common_pb2.ERROR_REASON_UNAUTHENTICATED)


def failed_precondition(message: str) -> DomainError:
    return DomainError(message, grpc.StatusCode.FAILED_PRECONDITION, common_pb2.ERROR_REASON_FAILED_PRECONDITION)


def unavailable(message: str = "a dependency is unavailable, retry later") -> DomainError:
    return DomainError(message, grpc.StatusCode.UNAVAILABLE, common_pb2.ERROR_REASON_DEPENDENCY_UNAVAILABLE)


def unimplemented() -> DomainError:
    return DomainError("not implemented yet", grpc.StatusCode.UNIMPLEMENTED)


def internal() -> DomainError:
    return DomainError("internal error", grpc.StatusCode.INTERNAL)
