"""The server interceptor every service runs: request id, authentication, error mapping,
metrics and one log line per RPC: at DEBUG when it succeeded within SLOW_RPC_SECONDS (the
edge's access log has every request with its request id already, and a JSON line per read
cost the service ~10 % of its CPU), at INFO when slower, at WARNING when it failed.

It wraps the method handler rather than the call so that one code path covers unary and
server-streaming RPCs alike."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import asyncpg
import grpc
import structlog
from grpc_status import rpc_status
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from services.common import auth, errors, field_paths, service_auth
from services.common.metrics import RPC_HANDLED, RPC_LATENCY, RPC_STARTED
from services.common.revocations import Revocations

log = structlog.get_logger("rpc")

# A successful RPC slower than this is logged at INFO (faster ones at DEBUG).
SLOW_RPC_SECONDS = 0.5
# Infrastructure answers without a token: Kubernetes probes and grpcurl-style reflection.
PUBLIC_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")

# Failures of infrastructure, not of the request: the client may retry later.
_UNAVAILABLE_ERRORS = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    RedisConnectionError,
    RedisTimeoutError,
)


def as_domain_error(exc: BaseException) -> errors.DomainError:
    """What the client is told about an exception: its own message only for DomainError."""
    if isinstance(exc, errors.DomainError):
        return exc
    if isinstance(exc, _UNAVAILABLE_ERRORS):
        return errors.unavailable()
    if isinstance(exc, NotImplementedError):  # the generated base class of an RPC not served yet
        return errors.unimplemented()
    return errors.internal()


class _Undecodable:
    """Stands for a request whose bytes are no valid message (see _tolerant)."""


_UNDECODABLE = _Undecodable()


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """grpc.aio deserializes a request before any handler runs and answers a failure UNKNOWN,
    naming the exception class: this hands the handler a marker instead, which it answers
    INVALID_ARGUMENT (after authentication, like any other bad request)."""
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception:
            return _UNDECODABLE

    return deserialize


def _decoded(request: Any) -> Any:
    if request is _UNDECODABLE:
        raise errors.invalid_field("", "the request is not a valid protobuf message of this RPC")
    return request


class ServerInterceptor(grpc.aio.ServerInterceptor):
    """`public_methods` need no token; internal methods (service_auth.is_internal) take the token
    of a service they accept (`service_verifier`) and refuse users; every other method a user's.
    `quiet_methods` are counted but not logged (called for every edge request, e.g. the rate
    limit service). With `revocations`, the token of a deleted account is refused although it
    has not expired yet."""

    def __init__(
        self,
        verifier: auth.TokenVerifier,
        public_methods: frozenset[str] = frozenset(),
        *,
        service_verifier: service_auth.ServiceTokenVerifier | None = None,
        quiet_methods: frozenset[str] = frozenset(),
        revocations: Revocations | None = None,
    ) -> None:
        self._verifier = verifier
        self._revocations = revocations
        self._public_methods = public_methods
        self._service_verifier = service_verifier
        self._quiet_methods = quiet_methods

    def _requires_auth(self, method: str) -> bool:
        return method not in self._public_methods and not method.startswith(PUBLIC_PREFIXES)

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method: str = handler_call_details.method
        metadata = {k: v for k, v in (handler_call_details.invocation_metadata or ()) if isinstance(v, str)}
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(handler.unary_unary, method, metadata),
                request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(handler.unary_stream, method, metadata),
                request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        return handler  # client/bidi streaming: none in our contracts.

    async def _enter(self, method: str, metadata: dict[str, str], rpc_type: str) -> None:
        """Binds request id and caller to the RPC's context (grpc.aio runs each RPC in its own task)."""
        request_id = metadata.get("x-request-id") or str(uuid.uuid4())
        structlog.contextvars.bind_contextvars(request_id=request_id, rpc=method)
        service, _, name = method.strip("/").partition("/")
        RPC_STARTED.labels(service, name, rpc_type).inc()
        if self._requires_auth(method):
            token = auth.bearer_token(metadata)
            if token is None:
                raise errors.unauthenticated("missing access token: send 'authorization: Bearer <token>'")
            if service_auth.is_internal(method):
                await self._enter_internal(method, token)
                return
            principal = await self._verifier.verify(token)
            if self._revocations is not None and self._revocations.is_revoked(principal.user_id):
                raise errors.unauthenticated("account deleted")
            auth.set_principal(principal)
            structlog.contextvars.bind_contextvars(user_id=principal.user_id)

    async def _enter_internal(self, method: str, token: str) -> None:
        """Internal RPCs take the token of a service they name (surface.INTERNAL_CALLERS) only."""
        if self._service_verifier is None or not service_auth.is_service_token(token):
            await self._verifier.verify(token)  # a bad token stays UNAUTHENTICATED; a user's:
            raise errors.permission_denied("this RPC is internal: only services may call it")
        service = self._service_verifier.verify(token)
        if service not in service_auth.callers_of(method):
            raise errors.permission_denied(f"the {service} service may not call this RPC")
        auth.set_principal(auth.Principal(user_id="", token=token, service=service))
        structlog.contextvars.bind_contextvars(caller_service=service)

    def _exit(self, method: str, rpc_type: str, code: grpc.StatusCode, start: float) -> None:
        service, _, name = method.strip("/").partition("/")
        elapsed = time.perf_counter() - start
        RPC_HANDLED.labels(service, name, rpc_type, code.name).inc()
        RPC_LATENCY.labels(service, name, rpc_type).observe(elapsed)
        if method.startswith(PUBLIC_PREFIXES) or (method in self._quiet_methods and code == grpc.StatusCode.OK):
            return  # probes every few seconds, a rate-limit check per edge request: counted, not logged
        if code not in (grpc.StatusCode.OK, grpc.StatusCode.CANCELLED):
            log.warning("rpc", code=code.name, duration_ms=round(elapsed * 1000, 2))
        elif elapsed >= SLOW_RPC_SECONDS:
            log.info("rpc", code=code.name, duration_ms=round(elapsed * 1000, 2))
        else:
            log.debug("rpc", code=code.name, duration_ms=round(elapsed * 1000, 2))

    @asynccontextmanager
    async def _rpc(self, method: str, metadata: dict[str, str], rpc_type: str, context: grpc.aio.ServicerContext):
        """One RPC: context and auth on entry; every failure becomes a status; metrics and a log line on exit."""
        start, code = time.perf_counter(), grpc.StatusCode.OK
        try:
            await self._enter(method, metadata, rpc_type)
            yield
        except (asyncio.CancelledError, GeneratorExit):
            code = grpc.StatusCode.CANCELLED  # the client went away
            raise
        except grpc.aio.AbortError:
            code = context.code() or grpc.StatusCode.UNKNOWN
            raise
        except Exception as exc:
            error = as_domain_error(exc)
            if metadata.get(field_paths.TRANSCODED_HEADER) and (request := field_paths.request_message(method)):
                error = error.renamed(partial(field_paths.json_path, request))  # a REST caller: JSON names
            code = error.code
            if code == grpc.StatusCode.INTERNAL:
                log.error("unhandled error", exc_info=exc)
            status = rpc_status.to_status(error.to_status())
            await context.abort(status.code, status.details, (*status.trailing_metadata, *error.headers.items()))
        finally:
            self._exit(method, rpc_type, code, start)

    def _wrap_unary(self, behavior: Callable[[Any, Any], Awaitable[Any]], method: str, metadata: dict[str, str]):
        async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
            async with self._rpc(method, metadata, "unary", context):
                return await behavior(_decoded(request), context)

        return wrapper

    def _wrap_stream(self, behavior: Callable[[Any, Any], AsyncIterator[Any]], method: str, metadata: dict[str, str]):
        async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            async with self._rpc(method, metadata, "server_stream", context):
                async for response in behavior(_decoded(request), context):
                    yield response

        return wrapper
