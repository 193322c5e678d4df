"""Serving a service: grpc.aio server with the kit's interceptor, health (NOT_SERVING while
a dependency is down), reflection, metrics, background tasks and a graceful SIGTERM drain."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.common import clients
from services.common.auth import TokenVerifier
from services.common.cache import connect_redis
from services.common.cancellation import raise_if_cancelled
from services.common.event_auth import EventVerifier
from services.common.interceptors import ServerInterceptor
from services.common.metrics import DEPENDENCY_UP, serve_metrics
from services.common.revocations import Revocations
from services.common.service_auth import ServiceTokenIssuer, ServiceTokenVerifier, ensure_service_key
from services.common.settings import ServiceSettings

log = structlog.get_logger("server")
MAX_METADATA_BYTES = 96 * 1024
Check = Callable[[], Awaitable[object]]
# The health service name Kubernetes liveness probes ask for (deploy/k8s); readiness asks for "".
LIVENESS_SERVICE = "openhr.liveness"


def service_name(module, service: str) -> str:
    """The full name of a service of a generated `_pb2` module: (profile_pb2, "ProfileService") ->
    "openhr.profile.v1.ProfileService", what `register` returns for health and reflection."""
    return module.DESCRIPTOR.services_by_name[service].full_name


@dataclass
class ServiceSpec:
    """What a service plugs into the runtime."""

    name: str
    port: int
    # Adds the servicers to the server; returns the full names of the services added.
    register: Callable[[grpc.aio.Server], Iterable[str]]
    # Dependency name -> a check that raises when it is unreachable.
    checks: dict[str, Check] = field(default_factory=dict)
    # Long-running coroutines (outbox relay, consumers), cancelled on shutdown.
    background: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # Called after the server stopped (close pools).
    cleanup: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # Full method names callable without a token.
    public_methods: frozenset[str] = frozenset()
    # Full method names counted in metrics but not logged when they succeed.
    quiet_methods: frozenset[str] = frozenset()
    metrics_port: int = 0
    # Read identity's UserDeleted events from Redis (REDIS_URL) and refuse the tokens of deleted
    # accounts (services/common/revocations.py); off only for a process without user tokens or Redis.
    revocations: bool = True


class Service:
    def __init__(self, spec: ServiceSpec, settings: ServiceSettings) -> None:
        self.spec, self.settings = spec, settings
        self.health = health.aio.HealthServicer()
        self._service_names: list[str] = []
        self._tasks: list[asyncio.Task] = []
        self._stopping = asyncio.Event()
        verifier = TokenVerifier(settings.jwks, settings.jwt_issuer, settings.jwt_audience)
        # Service identity: this service's key signs its calls that act for no user; every
        # service's public key verifies such calls to this service's internal RPCs.
        key_dir = Path(settings.service_keys)
        if settings.env == "local":
            ensure_service_key(key_dir, spec.name)
        clients.set_service_identity(ServiceTokenIssuer.from_dir(key_dir, spec.name))
        self._revocations_redis = connect_redis(settings.redis_url) if spec.revocations else None
        self.revocations = (
            Revocations(self._revocations_redis, EventVerifier.from_dir(key_dir))
            if self._revocations_redis is not None
            else None
        )
        interceptor = ServerInterceptor(
            verifier,
            spec.public_methods,
            service_verifier=ServiceTokenVerifier(key_dir),
            quiet_methods=spec.quiet_methods,
            revocations=self.revocations,
        )
        self.server = grpc.aio.server(
            interceptors=[interceptor],
            options=[
                ("grpc.so_reuseport", 0),
                ("grpc.keepalive_time_ms", 30_000),
                ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
                ("grpc.max_receive_message_length", 8 * 1024 * 1024),
                # Above Envoy's 60 KiB of request headers: what the edge let through (a long
                # query string travels on as x-envoy-original-path) reaches the handler, which
                # answers bad input with a 400 rather than gRPC core with RESOURCE_EXHAUSTED.
                ("grpc.max_metadata_size", MAX_METADATA_BYTES),
                ("grpc.absolute_max_metadata_size", MAX_METADATA_BYTES),
            ],
        )
        self.port = 0

    async def _set_health(self, status: int) -> None:
        for name in ("", *self._service_names):
            await self.health.set(name, status)

    async def check_dependencies(self) -> bool:
        healthy = True
        for name, check in self.spec.checks.items():
            try:
                await asyncio.wait_for(check(), timeout=max(1.0, self.settings.health_interval))
                DEPENDENCY_UP.labels(name).set(1)
            except Exception as exc:
                DEPENDENCY_UP.labels(name).set(0)
                log.warning("dependency unreachable", dependency=name, error=type(exc).__name__)
                healthy = False
        return healthy

    async def _watch_health(self) -> None:
        serving = None
        while True:
            raise_if_cancelled()
            healthy = await self.check_dependencies()
            if healthy != serving:
                serving = healthy
                status = (
                    health_pb2.HealthCheckResponse.SERVING if healthy else health_pb2.HealthCheckResponse.NOT_SERVING
                )
                await self._set_health(status)
                log.info("health", serving=healthy)
            await asyncio.sleep(self.settings.health_interval)

    async def _load_revocations(self) -> None:
        """Before serving: the deletions of the last token lifetime (Redis down: from now on)."""
        if self.revocations is None:
            return
        try:
            await asyncio.wait_for(self.revocations.backfill(), timeout=10)
        except Exception as exc:
            log.warning("revocations not loaded, reading new ones only", error=type(exc).__name__)

    async def start(self) -> int:
        await self._load_revocations()
        self._service_names = list(self.spec.register(self.server))
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        # Liveness: SERVING whenever the server answers at all, whatever its dependencies (a
        # Postgres outage must make replicas unready, not restart them); NOT_SERVING on shutdown.
        await self.health.set(LIVENESS_SERVICE, health_pb2.HealthCheckResponse.SERVING)
        reflection.enable_server_reflection(
            [*self._service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
            self.server,
        )
        address = f"{self.settings.grpc_host}:{self.spec.port}"
        self.port = self.server.add_insecure_port(address)
        if self.port == 0:
            raise OSError(f"cannot listen on {address}: port in use?")
        await self.server.start()
        serve_metrics(self.spec.metrics_port, self.settings.grpc_host)
        self._tasks = [asyncio.create_task(self._watch_health(), name="health")]
        if self.revocations is not None:
            self._tasks.append(asyncio.create_task(self.revocations.run(), name="revocations"))
        self._tasks += [
            asyncio.create_task(job(), name=getattr(job, "__qualname__", "job")) for job in self.spec.background
        ]
        log.info("listening", address=f"{self.settings.grpc_host}:{self.port}", services=self._service_names)
        return self.port

    async def stop(self) -> None:
        """NOT_SERVING first (so Envoy and Kubernetes stop routing here), then drain and stop."""
        await self.health.enter_graceful_shutdown()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.server.stop(self.settings.shutdown_grace)
        for cleanup in self.spec.cleanup:
            await cleanup()
        if self._revocations_redis is not None:
            await self._revocations_redis.aclose()
        log.info("stopped")

    def request_stop(self) -> None:
        self._stopping.set()

    async def serve_until_signal(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        await self.start()
        await self._stopping.wait()
        log.info("shutting down", grace_seconds=self.settings.shutdown_grace)
        await self.stop()
