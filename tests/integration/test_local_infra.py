"""Integration tests for deploy/local/infra.py: real PostgreSQL 18 + pgvector and Redis binaries."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
import redis

from deploy.local.infra import (
    EmbeddedPostgres,
    LocalRedis,
    PortInUseError,
    free_port,
    port_in_use,
)
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(120)

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def pg_dir(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Data dir for a cluster. As root the cluster runs as ``openhr-pg``, which must be able
    to traverse pytest's 0700 temp dirs: grant traverse-only (o+x) up to pytest-of-<user>
    (pytest resets that one to 0700 on its next session)."""
    if os.geteuid() == 0:
        stop_at = tmp_path_factory.getbasetemp().parent
        for d in [tmp_path, *tmp_path.parents]:
            d.chmod(d.stat().st_mode | stat.S_IXOTH)
            if d == stop_at:
                break
    return tmp_path / "pg" / "data"


@pytest.fixture
def listening_socket() -> Iterator[int]:
    """A port held by an unrelated listener."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


async def _pg_create_and_query(url: str) -> tuple[str, int, str]:
    conn = await asyncpg.connect(url)
    try:
        version = await conn.fetchval("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        await conn.execute("CREATE TABLE items (id int PRIMARY KEY, embedding vector(3))")
        await conn.execute("CREATE INDEX items_embedding_hnsw ON items USING hnsw (embedding vector_cosine_ops)")
        await conn.executemany(
            "INSERT INTO items VALUES ($1, $2::vector)",
            [(1, "[1,0,0]"), (2, "[0,1,0]"), (3, "[0,0,1]")],
        )
        nearest, plan = await _pg_nearest(conn)
        return version, nearest, plan
    finally:
        await conn.close()


async def _pg_nearest(conn: asyncpg.Connection) -> tuple[int, str]:
    query = "SELECT id FROM items ORDER BY embedding <=> '[0.1,0.9,0]'::vector LIMIT 1"
    async with conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")  # make the planner use the HNSW index
        plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + query))
        nearest = await conn.fetchval(query)
    return nearest, plan


async def _pg_after_restart(url: str) -> tuple[int, int]:
    conn = await asyncpg.connect(url)
    try:
        count = await conn.fetchval("SELECT count(*) FROM items")
        nearest, _ = await _pg_nearest(conn)
        return count, nearest
    finally:
        await conn.close()


def test_postgres_pgvector_survives_restart(pg_dir: Path) -> None:
    pg = EmbeddedPostgres(pg_dir, free_port())
    try:
        pg.start()
        assert pg.is_running()
        pg.start()  # idempotent
        assert pg.url == f"postgresql://openhr@127.0.0.1:{pg.port}/openhr"
        assert pg.async_url.startswith("postgresql+asyncpg://openhr@127.0.0.1:")

        version, nearest, plan = asyncio.run(_pg_create_and_query(pg.url))
        assert version.startswith("0.8.")
        assert nearest == 2
        assert "items_embedding_hnsw" in plan

        pg.stop()
        assert not pg.is_running()
        assert not port_in_use(pg.host, pg.port)
        pg.stop()  # idempotent

        pg.start()
        assert asyncio.run(_pg_after_restart(pg.url)) == (3, 2)
        if os.geteuid() == 0:
            assert pg_dir.stat().st_uid != 0  # run by the openhr-pg service user
    finally:
        pg.stop()
    assert not pg.is_running()


async def _socket_query(socket_dir: Path, port: int) -> int:
    conn = await asyncpg.connect(host=str(socket_dir), port=port, user="openhr", database="openhr")
    try:
        return await conn.fetchval("SELECT 1")
    finally:
        await conn.close()


def test_postgres_starts_from_a_deep_directory(pg_dir: Path) -> None:
    """A clone deep in the file system: the data dir's path is far longer than a Unix socket
    path may be (~107 characters), yet the cluster starts and answers on its socket and TCP."""
    deep = pg_dir.parent / ("a-rather-long-directory-name-" * 3) / ("and-another-one-below-it-" * 3) / "data"
    assert len(str(deep)) > 150
    pg = EmbeddedPostgres(deep, free_port())
    try:
        pg.start()
        assert len(str(pg.socket_dir)) < 40
        assert (pg.socket_dir / f".s.PGSQL.{pg.port}").is_socket()
        assert asyncio.run(_socket_query(pg.socket_dir, pg.port)) == 1
        assert asyncio.run(_pg_create_and_query(pg.url))[0].startswith("0.8.")
    finally:
        pg.stop()
    assert not pg.socket_dir.exists()


def test_postgres_port_in_use(pg_dir: Path, listening_socket: int) -> None:
    pg = EmbeddedPostgres(pg_dir, listening_socket)
    with pytest.raises(PortInUseError, match=rf"PostgreSQL port {listening_socket}\b.*OPENHR_PG_PORT"):
        pg.start()
    assert not (pg_dir / "PG_VERSION").exists()  # fails before initdb


def test_redis_stream_roundtrip_and_persistence(tmp_path: Path) -> None:
    server = LocalRedis(tmp_path / "redis", free_port())
    try:
        server.start()
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        client = redis.Redis.from_url(server.url)
        assert client.ping()
        entry_id = client.xadd("events", {"kind": "hired", "who": "ada"})
        assert client.xrange("events") == [(entry_id, {b"kind": b"hired", b"who": b"ada"})]
        client.close()

        server.stop()
        assert not server.is_running()
        server.start()  # AOF replay
        client = redis.Redis.from_url(server.url)
        assert client.xrange("events") == [(entry_id, {b"kind": b"hired", b"who": b"ada"})]
        client.close()
    finally:
        server.stop()
    assert not port_in_use(server.host, server.port)


def test_redis_port_in_use(tmp_path: Path, listening_socket: int) -> None:
    with pytest.raises(PortInUseError, match=rf"Redis port {listening_socket}\b.*OPENHR_REDIS_PORT"):
        LocalRedis(tmp_path / "redis", listening_socket).start()


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "deploy.local.infra", *args]


def _cli_env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }


def test_cli_port_in_use_exits_2_without_traceback(tmp_path: Path, listening_socket: int) -> None:
    result = subprocess.run(
        _cli(
            "redis",
            "start",
            "--data-dir",
            str(tmp_path / "redis"),
            "--port",
            str(listening_socket),
        ),
        check=False,
        capture_output=True,
        text=True,
        env=_cli_env(),
        timeout=30,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert str(listening_socket) in result.stderr and "OPENHR_REDIS_PORT" in result.stderr


def test_cli_redis_foreground_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        _cli("redis", "start", "--data-dir", str(tmp_path / "redis"), "--port", str(port)),
        stdout=subprocess.PIPE,
        text=True,
        env=_cli_env(),
    )
    try:
        assert proc.stdout is not None
        assert "redis ready" in proc.stdout.readline()
        assert redis.Redis(port=port).ping()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        wait_until(lambda: not port_in_use("127.0.0.1", port), message="redis-server still holds its port")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
