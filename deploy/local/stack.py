"""The whole mesh on one machine: embedded Postgres and Redis (unless DATABASE_URL / REDIS_URL
point elsewhere), a local SMTP sink writing a Maildir (unless OPENHR_SMTP_HOST names a mail
server), migrations, every service, the edge's REST body validator and Envoy, supervised by
honcho.

    python -m deploy.local.stack run       # what `make run` does
    python -m deploy.local.stack migrate   # start Postgres if embedded, run all migrations

The same definitions start the stack for the test suites (tests/conftest.py)."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import threading
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from deploy import db_roles
from deploy.local.infra import EmbeddedPostgres, LocalRedis, PortInUseError, port_in_use
from edge.envoy.render import render
from services.common.devkeys import ensure_keys
from services.common.edge_rates import EdgeRates
from services.common.migrations import upgrade_to_head
from services.common.service_auth import EDGE_NAME, ensure_service_key
from services.common.settings import DATA_DIR, REPO_ROOT, ServiceSettings

GEN_DIR = REPO_ROOT / "gen"
DESCRIPTOR = GEN_DIR / "openhr.binpb"
# The browser app as `make web` builds it; the edge serves it when it is there.
WEB_DIST = REPO_ROOT / "edge" / "web" / "dist"
DOCS_DIST = REPO_ROOT / "edge" / "docs" / "dist"
OAUTH_PROVIDERS = ("github", "google")


def oauth_providers(env: Mapping[str, str]) -> list[str]:
    """The sign-in providers identity is configured for (a client id is set): the page shows their buttons."""
    return [name for name in OAUTH_PROVIDERS if env.get(f"OPENHR_{name.upper()}_CLIENT_ID")]


def default_web_root(env: Mapping[str, str] = os.environ) -> Path | None:
    """OPENHR_WEB_ROOT, else edge/web/dist once built; "" or no build: no web app."""
    given = env.get("OPENHR_WEB_ROOT")
    if given is not None:
        return Path(given) if given else None
    return WEB_DIST if (WEB_DIST / "index.html").exists() else None


def built_docs_root() -> Path | None:
    """The API reference page (/docs) once built (make docs)."""
    return DOCS_DIST if (DOCS_DIST / "index.html").exists() else None


@dataclass(frozen=True)
class ServiceDef:
    """A service of the mesh: its module, its ports and the env vars that set them."""

    name: str
    port: int
    metrics_port: int
    migrations: bool
    # What `python -m` runs; default "services.<name>" (edge helpers live under edge/).
    module: str = ""
    # Stores user data (UserDataService): identity's export and erasure call it.
    user_data: bool = False

    def __post_init__(self) -> None:
        if not self.module:
            object.__setattr__(self, "module", f"services.{self.name}")

    @property
    def port_env(self) -> str:
        return f"{self.name.upper()}_PORT"

    @property
    def metrics_env(self) -> str:
        return f"{self.name.upper()}_METRICS_PORT"

    @property
    def addr_env(self) -> str:
        return f"{self.name.upper()}_ADDR"

    @property
    def directory(self) -> Path:
        return REPO_ROOT.joinpath(*self.module.split("."))


# Started in this order, all before Envoy; a service's peers come before it. "validation"
# (the REST body validator Envoy's ext_proc filter calls) is an Envoy cluster like the others.
# Every service verifies tokens against identity's JWKS, fetched through Envoy on first use.
SERVICES = (
    ServiceDef("identity", 50060, 9460, migrations=True),
    ServiceDef("validation", 50069, 9469, migrations=False, module="edge.validation"),
    ServiceDef("enrichment", 50064, 9464, migrations=True, user_data=True),
    ServiceDef("profile", 50061, 9461, migrations=True, user_data=True),
    ServiceDef("messaging", 50063, 9463, migrations=True, user_data=True),
    ServiceDef("matching", 50062, 9462, migrations=True, user_data=True),
)


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    return int(env.get(name) or default)


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    return float(env.get(name) or default)


@dataclass
class StackConfig:
    data_dir: Path
    edge_host: str = "127.0.0.1"
    edge_port: int = 8080
    admin_port: int = 9901
    pg_port: int = 54329
    redis_port: int = 63799
    database_url: str | None = None  # None: the embedded Postgres
    redis_url: str | None = None  # None: the local redis-server
    ports: dict[str, int] = field(default_factory=dict)
    metrics_ports: dict[str, int] = field(default_factory=dict)
    cors_origins: list[str] = field(default_factory=list)
    envoy_workers: int = 0  # 0: one fewer than the machine's cores
    trusted_hops: int = 0  # load balancers in front of Envoy that append X-Forwarded-For
    # Seconds Envoy waits for identity's rate-limit answer (then lets the request go on) and for
    # the REST body validator (then fails the request): tight, every edge request waits for them.
    rate_limit_timeout: float = 0.25
    validation_timeout: float = 0.5
    smtp_host: str | None = None  # None: the local SMTP sink (aiosmtpd, Maildir in data_dir/mail)
    smtp_port: int = 2525
    public_url: str | None = None  # None: the edge URL
    web_root: Path | None = None  # the built browser app the edge serves (None: none)
    oauth_providers: list[str] = field(default_factory=list)  # sign-in buttons the page shows
    docs_root: Path | None = field(default_factory=built_docs_root)  # the API reference page (/docs)
    # What Envoy's jwt_authn requires (the services read the same variables).
    jwt_issuer: str = ServiceSettings.model_fields["jwt_issuer"].default
    jwt_audience: str = ServiceSettings.model_fields["jwt_audience"].default
    # Envoy's JSON access log (every edge request with its request id). Default: a file in
    # data_dir/logs (Envoy buffers it and flushes every 10 s); "/dev/stdout" sends it through the
    # supervisor's output with the services' lines, at a cost per request.
    access_log: str = ""
    # Envoy's per-address and per-user limits (OPENHR_RATE_IP_PER_MIN / OPENHR_RATE_USER_PER_MIN).
    edge_rates: EdgeRates = field(default_factory=EdgeRates)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> StackConfig:
        return cls(
            data_dir=Path(env.get("OPENHR_DATA_DIR") or DATA_DIR),
            edge_host=env.get("OPENHR_EDGE_HOST") or "127.0.0.1",
            edge_port=_int(env, "OPENHR_EDGE_PORT", 8080),
            admin_port=_int(env, "OPENHR_ENVOY_ADMIN_PORT", 9901),
            pg_port=_int(env, "OPENHR_PG_PORT", 54329),
            redis_port=_int(env, "OPENHR_REDIS_PORT", 63799),
            database_url=env.get("DATABASE_URL") or None,
            redis_url=env.get("REDIS_URL") or None,
            ports={s.name: _int(env, s.port_env, s.port) for s in SERVICES},
            metrics_ports={s.name: _int(env, s.metrics_env, s.metrics_port) for s in SERVICES},
            cors_origins=[o for o in (env.get("OPENHR_CORS_ORIGINS") or "").split(",") if o],
            envoy_workers=_int(env, "OPENHR_ENVOY_CONCURRENCY", 0),
            trusted_hops=_int(env, "OPENHR_EDGE_TRUSTED_HOPS", 0),
            rate_limit_timeout=_float(env, "OPENHR_EDGE_RATELIMIT_TIMEOUT", cls.rate_limit_timeout),
            validation_timeout=_float(env, "OPENHR_EDGE_VALIDATION_TIMEOUT", cls.validation_timeout),
            smtp_host=env.get("OPENHR_SMTP_HOST") or None,
            smtp_port=_int(env, "OPENHR_SMTP_PORT", 2525),
            public_url=env.get("OPENHR_PUBLIC_URL") or None,
            web_root=default_web_root(env),
            oauth_providers=oauth_providers(env),
            jwt_issuer=env.get("OPENHR_JWT_ISSUER") or cls.jwt_issuer,
            jwt_audience=env.get("OPENHR_JWT_AUDIENCE") or cls.jwt_audience,
            access_log=env.get("OPENHR_EDGE_ACCESS_LOG") or "",
            edge_rates=EdgeRates.from_env(env),
        )

    @property
    def postgres(self) -> EmbeddedPostgres:
        return EmbeddedPostgres(data_dir=self.data_dir / "postgres", port=self.pg_port)

    @property
    def redis(self) -> LocalRedis:
        return LocalRedis(data_dir=self.data_dir / "redis", port=self.redis_port)

    @property
    def effective_database_url(self) -> str:
        return self.database_url or self.postgres.url

    @property
    def effective_redis_url(self) -> str:
        return self.redis_url or self.redis.url

    @property
    def envoy_concurrency(self) -> int:
        return self.envoy_workers or max(1, (os.cpu_count() or 2) - 1)

    @property
    def edge_url(self) -> str:
        return f"http://{self.edge_host}:{self.edge_port}"

    @property
    def jwks_url(self) -> str:
        """Identity's JWKS as the services fetch it: through Envoy, on this machine."""
        host = "127.0.0.1" if self.edge_host in ("0.0.0.0", "::", "") else self.edge_host
        return f"http://{host}:{self.edge_port}/.well-known/jwks.json"

    @property
    def service_keys(self) -> Path:
        """OPENHR_SERVICE_KEYS as the services read it (each creates its pair there locally)."""
        return Path(os.environ.get("OPENHR_SERVICE_KEYS") or self.data_dir / "service-keys")

    @property
    def maildir(self) -> Path:
        """Where the local SMTP sink delivers (when no OPENHR_SMTP_HOST is set)."""
        return self.data_dir / "mail"

    def database_url_for(self, service: str) -> str:
        """A service's DATABASE_URL: in the embedded Postgres its own login role; a given
        DATABASE_URL as it is (production gives each service its own, see deploy/db_roles.py)."""
        if not self.owns_postgres:
            return self.effective_database_url
        return db_roles.service_url(self.effective_database_url, service)

    @property
    def owns_postgres(self) -> bool:
        """Whether Postgres is the embedded one this stack starts (whose superuser it is)."""
        return not self.database_url or self.database_url == self.postgres.url

    def process_env(self, name: str) -> dict[str, str]:
        """The environment of one process: what every service gets, and its own database role."""
        env = self.service_env()
        if any(s.name == name and s.migrations for s in SERVICES):
            env["DATABASE_URL"] = self.database_url_for(name)
        return env

    def service_env(self) -> dict[str, str]:
        """The environment every service process gets."""
        env = {
            "DATABASE_URL": self.effective_database_url,
            "REDIS_URL": self.effective_redis_url,
            "OPENHR_DATA_DIR": str(self.data_dir),
            "OPENHR_JWKS": self.jwks_url,
            "OPENHR_SMTP_HOST": self.smtp_host or "127.0.0.1",
            "OPENHR_SMTP_PORT": str(self.smtp_port),
            "OPENHR_PUBLIC_URL": self.public_url or self.edge_url,
            "PYTHONPATH": f"{REPO_ROOT}:{GEN_DIR / 'python'}",
            "PYTHONUNBUFFERED": "1",
            "OPENHR_USER_DATA_PEERS": ",".join(s.name for s in SERVICES if s.user_data),
        }
        for service in SERVICES:
            env[service.port_env] = str(self.ports[service.name])
            env[service.metrics_env] = str(self.metrics_ports[service.name])
            env[service.addr_env] = f"127.0.0.1:{self.ports[service.name]}"
        return env

    @property
    def access_log_path(self) -> str:
        return self.access_log or str(self.data_dir / "logs" / "envoy-access.log")

    def envoy_config_path(self) -> Path:
        """Renders the edge config for the services of this stack; returns its path."""
        path = self.data_dir / "envoy.yaml"
        Path(self.access_log_path).parent.mkdir(parents=True, exist_ok=True)
        ensure_service_key(self.service_keys, EDGE_NAME)
        path.write_text(
            render(
                listen_address=self.edge_host,
                listen_port=self.edge_port,
                admin_address="127.0.0.1",
                admin_port=self.admin_port,
                descriptor_path=str(DESCRIPTOR),
                clusters=[{"name": s.name, "host": "127.0.0.1", "port": self.ports[s.name]} for s in SERVICES],
                cors_allowed_origins=self.cors_origins or ["regex:^https?://(localhost|127\\.0\\.0\\.1)(:[0-9]+)?$"],
                jwt_issuer=self.jwt_issuer,
                jwt_audience=self.jwt_audience,
                trusted_hops=self.trusted_hops,
                rate_limit_timeout=f"{self.rate_limit_timeout}s",
                validation_timeout=f"{self.validation_timeout}s",
                service_keys=self.service_keys,
                edge_rates=self.edge_rates,
                access_log_path=self.access_log_path,
                web_root=self.web_root,
                oauth_providers=self.oauth_providers,
                docs_root=self.docs_root,
            )
        )
        return path

    def commands(self) -> dict[str, list[str]]:
        """Process name -> argv, in start order."""
        python = sys.executable
        commands: dict[str, list[str]] = {}
        if self.redis_url is None:
            commands["redis"] = [
                python,
                "-m",
                "deploy.local.infra",
                "redis",
                "start",
                "--data-dir",
                str(self.redis.data_dir),
                "--port",
                str(self.redis_port),
            ]
        if self.smtp_host is None:
            commands["mail"] = [
                python,
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                f"127.0.0.1:{self.smtp_port}",
                "-c",
                "aiosmtpd.handlers.Mailbox",
                str(self.maildir),
            ]
        for service in SERVICES:
            commands[service.name] = [python, "-m", service.module]
        commands["envoy"] = [
            str(Path(python).with_name("envoy")),
            "-c",
            str(self.envoy_config_path()),
            "--use-dynamic-base-id",
            "--log-level",
            "warn",
            # On one machine Envoy shares the cores with every Python service: one core fewer
            # than the machine has (measured on 2 cores: +8 % REST throughput, bench/results).
            "--concurrency",
            str(self.envoy_concurrency),
        ]
        return commands

    def ports_in_use(self) -> list[str]:
        """Names of the ports this stack needs that something else holds."""
        wanted = {"OPENHR_EDGE_PORT": self.edge_port, "OPENHR_ENVOY_ADMIN_PORT": self.admin_port}
        if self.redis_url is None:
            wanted["OPENHR_REDIS_PORT"] = self.redis_port
        if self.smtp_host is None:
            wanted["OPENHR_SMTP_PORT"] = self.smtp_port
        for service in SERVICES:
            wanted[service.port_env] = self.ports[service.name]
            wanted[service.metrics_env] = self.metrics_ports[service.name]
        return [f"{name}={port}" for name, port in wanted.items() if port_in_use("127.0.0.1", port)]


def migrate(database_url: str) -> None:
    for service in SERVICES:
        if service.migrations:
            upgrade_to_head(service.directory, database_url)


def prepare_database(config: StackConfig) -> None:
    """Migrations as the owner; in the embedded Postgres also each service's login role
    (deploy/db_roles.py: the service connects as it, never as the owner)."""
    migrate(config.effective_database_url)
    if config.owns_postgres:
        db_roles.provision(config.effective_database_url, [s.name for s in SERVICES if s.migrations])


def edge_ready(config: StackConfig) -> bool:
    """Envoy is live, sees every cluster healthy and (with jwt_authn) has identity's JWKS."""
    admin = f"http://127.0.0.1:{config.admin_port}"
    try:
        with urllib.request.urlopen(f"{admin}/clusters", timeout=1) as response:
            clusters = response.read().decode()
        with urllib.request.urlopen(f"{admin}/stats?filter=jwt_authn.jwks_fetch_success$", timeout=1) as response:
            jwks_fetches = response.read().decode().split()
    except OSError:
        return False
    flags = [line for line in clusters.splitlines() if "::health_flags::" in line]
    has_jwks = not jwks_fetches or jwks_fetches[-1] != "0"  # no such counter: no jwt_authn
    return bool(flags) and all(line.endswith("::healthy") for line in flags) and has_jwks


def wait_until_ready(config: StackConfig, timeout: float = 120.0) -> bool:
    """Polls Envoy's admin API only: Envoy health-checks every service over gRPC already.

    The supervisor must not open gRPC channels itself: honcho forks its children from this
    process, and a fork while a gRPC core thread holds a lock can leave the child hung before
    it runs (seen in CI: a service that never started)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if edge_ready(config):
            return True
        time.sleep(0.5)
    return False


def _announce_when_ready(config: StackConfig, manager) -> None:
    if wait_until_ready(config):
        print(
            f"\n  OpenHR is up.  Edge (REST + grpc-web + gRPC): {config.edge_url}\n"
            + (f"  Web app: {config.edge_url}/\n" if config.web_root else "  Web app: not built (make web)\n")
            + f"  Try:  TOKEN=$(make -s token USER=you@example.com)\n"
            f"        curl -H \"Authorization: Bearer $TOKEN\" '{config.edge_url}/v1/skills:search?query=pyth'\n"
            f"  Sign up:  curl -X POST {config.edge_url}/v1/auth/signup"
            f' -d \'{{"email": "you@example.com", "password": "<8 or more characters>"}}\'\n'
            + (f"  Mail (verification and reset links): {config.maildir}/new\n" if config.smtp_host is None else "")
            + "  Ctrl-C stops everything.\n",
            flush=True,
        )
    else:
        print("\n  OpenHR did not become healthy within 120 s; see the logs above.\n", flush=True)
        manager.terminate()


def run(config: StackConfig) -> int:
    from honcho.manager import Manager

    busy = config.ports_in_use()
    if busy:
        print(
            f"error: port(s) already in use: {', '.join(busy)}; stop what holds them or set these variables",
            file=sys.stderr,
        )
        return 2
    config.data_dir.mkdir(parents=True, exist_ok=True)
    ensure_keys(config.data_dir / "dev-keys")
    postgres = None if config.database_url else config.postgres
    if postgres is not None:
        postgres.start()
    try:
        prepare_database(config)
        manager = Manager()
        for name, argv in config.commands().items():
            env = {**os.environ, **config.process_env(name)}
            manager.add_process(name, shlex.join(argv), env=env, cwd=str(REPO_ROOT))
        threading.Thread(target=_announce_when_ready, args=(config, manager), daemon=True).start()
        manager.loop()
        # Ctrl-C / SIGTERM is how a user stops the stack: that is a clean exit.
        return 0 if manager.returncode in (None, 0, 130, 143) else manager.returncode
    finally:
        if postgres is not None:
            postgres.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["run", "migrate"])
    args = parser.parse_args(argv)
    config = StackConfig.from_env()
    try:
        if args.command == "migrate":
            postgres = None if config.database_url else config.postgres
            if postgres is not None:
                postgres.start()
            prepare_database(config)
            return 0
        return run(config)
    except PortInUseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
