"""A throwaway mesh for the test suites and benchmarks: embedded Postgres + pgvector, Redis, an SMTP sink (aiosmtpd
writing a Maildir), migrations, every service as its own process and Envoy, all on free ports with data in a fresh
folder.

Tests start it once per session (tests/conftest.py) and isolate themselves by data (fresh
users), not by restarting servers. Tests that break infrastructure start their own copy."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from deploy.local.infra import EmbeddedPostgres, LocalRedis, free_port, port_in_use
from deploy.local.stack import (
    SERVICES,
    StackConfig,
    default_web_root,
    oauth_providers,
    prepare_database,
    wait_until_ready,
)
from services.common.devkeys import mint_token, user_id_for
from services.common.edge_rates import EdgeRates
from services.common.settings import REPO_ROOT, ServiceSettings

ISSUER = ServiceSettings.model_fields["jwt_issuer"].default
AUDIENCE = ServiceSettings.model_fields["jwt_audience"].default
# A throwaway mesh serves a whole test suite (or a benchmark) from one address and a few users:
# the rate limits (Envoy's, services/common/edge_rates.py, and identity's, services/identity/ratelimit.py)
# are lifted unless `extra_env` sets them (tests/edge/test_rate_limits.py runs a mesh of its own with small ones).
UNLIMITED_RATES = {
    "OPENHR_RATE_IP_PER_MIN": "1000000000",
    "OPENHR_RATE_USER_PER_MIN": "1000000000",
    "OPENHR_RATE_LOGIN_IP_PER_MIN": "1000000000",
    "OPENHR_RATE_SIGNUP_IP_PER_MIN": "1000000000",
    "OPENHR_RATE_LOGIN_FAILURES": "1000000000",
}
# Tests follow requests through the services' logs by request id: every RPC's line, which services
# write at DEBUG when it succeeded quickly (services/common/interceptors.py). A bench overrides it.
TEST_LOGGING = {"OPENHR_LOG_LEVEL": "DEBUG"}
# Throwaway meshes share one model cache (the exported ONNX graphs and the taxonomy's vectors,
# services/enrichment/models.py), so only the first test session on a machine computes it.
SHARED_MODEL_CACHE = {"ENRICHMENT_MODEL_CACHE": str(REPO_ROOT / ".data" / "models")}

# Enrichment jobs: a short lease, so a test that kills a worker mid-job sees another take the job
# over within seconds, and short retry backoffs (production: 30 s and 5 s).
TEST_JOB_TIMINGS = {"OPENHR_JOB_LEASE_SECONDS": "4", "OPENHR_JOB_RETRY_BASE_SECONDS": "0.2"}

# A test machine shares its cores with the whole mesh, and a starved process answers seconds
# late: where production waits briefly (every edge request waits for these), a throwaway mesh
# waits long enough that load shows up as slowness, never as a failure or a fail-open answer.
EDGE_TIMEOUT = 10.0  # OPENHR_EDGE_RATELIMIT_TIMEOUT and OPENHR_EDGE_VALIDATION_TIMEOUT (0.25 / 0.5 s)
GENEROUS_TIMEOUTS = {"OPENHR_RATE_REDIS_TIMEOUT": "5"}  # below EDGE_TIMEOUT, as 0.2 s is below 0.25 s


@dataclass
class Mesh:
    config: StackConfig
    postgres: EmbeddedPostgres
    redis: LocalRedis
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    # Added to every process's environment (e.g. the URLs of local OAuth provider stand-ins).
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def edge_url(self) -> str:
        return self.config.edge_url

    @property
    def edge_target(self) -> str:
        return f"127.0.0.1:{self.config.edge_port}"

    def target(self, service: str) -> str:
        return f"127.0.0.1:{self.config.ports[service]}"

    @property
    def key_dir(self) -> Path:
        return self.config.data_dir / "dev-keys"

    @property
    def maildir(self) -> Path:
        """The SMTP sink's Maildir: read it with the stdlib `mailbox.Maildir`."""
        return self.config.maildir

    def token(self, email: str | None = None, **kwargs) -> str:
        """An access token for a user (a fresh one unless an email is given)."""
        email = email or f"user-{uuid.uuid4().hex[:12]}@example.com"
        return mint_token(user_id_for(email), issuer=ISSUER, audience=AUDIENCE, key_dir=self.key_dir, **kwargs)

    def log(self, name: str) -> str:
        path = self.config.data_dir / "logs" / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start_process(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        logs = self.config.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with open(logs / f"{name}.log", "ab") as out:
            process = subprocess.Popen(
                argv,
                cwd=REPO_ROOT,
                env={
                    **os.environ,
                    **UNLIMITED_RATES,
                    **TEST_LOGGING,
                    **TEST_JOB_TIMINGS,
                    **SHARED_MODEL_CACHE,
                    **GENEROUS_TIMEOUTS,
                    **self.config.process_env(name),
                    **self.extra_env,
                    **(env or {}),
                },
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.processes[name] = process
        return process

    def start_replica(self, service: str, name: str, env: dict[str, str] | None = None, timeout: float = 60) -> str:
        """Another process of `service` on free ports, sharing the mesh's Postgres and Redis
        (e.g. a second messaging replica); returns its gRPC target once it is SERVING."""
        definition = next(s for s in SERVICES if s.name == service)
        port = free_port()
        ports = {definition.port_env: str(port), definition.metrics_env: str(free_port())}
        own = self.config.process_env(service)  # the service's database role, not the owner's
        process = self.start_process(name, [sys.executable, "-m", definition.module], {**own, **ports, **(env or {})})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and process.poll() is None:
            if serving(port):
                return f"127.0.0.1:{port}"
            time.sleep(0.2)
        raise RuntimeError(f"{name} did not start:\n{self.log(name)[-3000:]}")

    def stop_process(self, name: str, timeout: float = 15) -> int:
        process = self.processes.pop(name)
        process.terminate()
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()

    def stop(self, *, remove_data: bool = False) -> None:
        for name in reversed(list(self.processes)):
            self.stop_process(name)
        self.redis.stop()
        self.postgres.stop()
        if remove_data:
            shutil.rmtree(self.config.data_dir, ignore_errors=True)


def config_on_free_ports(data_dir: Path) -> StackConfig:
    """A stack config on free ports, with Postgres and Redis given by URL (started by us)."""
    pg_port, redis_port = free_port(), free_port()
    config = StackConfig(
        data_dir=data_dir,
        edge_port=free_port(),
        admin_port=free_port(),
        pg_port=pg_port,
        redis_port=redis_port,
        ports={s.name: free_port() for s in SERVICES},
        metrics_ports={s.name: free_port() for s in SERVICES},
        smtp_port=free_port(),
        rate_limit_timeout=EDGE_TIMEOUT,
        validation_timeout=EDGE_TIMEOUT,
        access_log="/dev/stdout",  # into the envoy process's log file, which tests read
    )
    config.database_url = config.postgres.url
    config.redis_url = config.redis.url
    return config


def start_mesh(data_dir: Path, extra_env: dict[str, str] | None = None) -> Mesh:
    """`extra_env` is added to every process's environment (e.g. OPENHR_GITHUB_* of a stand-in)."""
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    config = config_on_free_ports(data_dir)
    # The edge serves the built browser app (tests/web drives it) with the sign-in buttons of
    # the providers this mesh's identity is configured for.
    config.web_root = default_web_root()
    config.oauth_providers = oauth_providers({**os.environ, **(extra_env or {})})
    config.edge_rates = EdgeRates.from_env({**UNLIMITED_RATES, **(extra_env or {})})
    mesh = Mesh(config=config, postgres=config.postgres, redis=config.redis, extra_env=dict(extra_env or {}))
    try:
        mesh.postgres.start()
        mesh.redis.start()
        prepare_database(config)
        from services.common.devkeys import ensure_keys

        ensure_keys(mesh.key_dir)
        for name, argv in config.commands().items():
            if name == "envoy":  # its access log on disk within 0.2 s (default 10 s): tests read it
                argv = [*argv, "--file-flush-interval-msec", "200"]
            mesh.start_process(name, argv)
            if name in config.ports:
                _wait_serving(mesh, name)
            elif name == "mail":
                _wait_listening(mesh, name, config.smtp_port)
        if not wait_until_ready(config, timeout=60):
            raise RuntimeError("the mesh did not become ready:\n" + _tails(mesh))
    except BaseException:
        mesh.stop()
        raise
    return mesh


def serving(port: int, timeout: float = 1.0) -> bool:
    """The service on `port` answers its gRPC health check with SERVING."""
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
        return response.status == health_pb2.HealthCheckResponse.SERVING
    except grpc.RpcError:
        return False


def _wait_serving(mesh: Mesh, name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if serving(mesh.config.ports[name]):
            return
        if mesh.processes[name].poll() is not None:
            break
        time.sleep(0.2)
    raise RuntimeError(f"{name} did not start:\n{mesh.log(name)[-3000:]}")


def _wait_listening(mesh: Mesh, name: str, port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_in_use("127.0.0.1", port):
            return
        if mesh.processes[name].poll() is not None:
            break
        time.sleep(0.1)
    raise RuntimeError(f"{name} did not start:\n{mesh.log(name)[-3000:]}")


def _tails(mesh: Mesh) -> str:
    return "\n".join(f"--- {name}\n{mesh.log(name)[-1500:]}" for name in mesh.processes)
