"""`make run`'s supervisor (python -m deploy.local.stack run) as a new user meets it: it
prints the edge URL once everything is healthy, Ctrl-C stops it cleanly, a second run keeps
the data, and a busy port is named in a one-line error."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from deploy.local.infra import free_port
from deploy.local.stack import SERVICES
from services.common.devkeys import mint_token, user_id_for
from services.common.settings import REPO_ROOT

pytestmark = pytest.mark.timeout(240)


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        OPENHR_DATA_DIR=str(data_dir),
        OPENHR_EDGE_PORT=str(free_port()),
        OPENHR_ENVOY_ADMIN_PORT=str(free_port()),
        OPENHR_PG_PORT=str(free_port()),
        OPENHR_REDIS_PORT=str(free_port()),
        OPENHR_SMTP_PORT=str(free_port()),
    )
    for service in SERVICES:  # never collide with a `make run` on the default ports
        env[service.port_env] = str(free_port())
        env[service.metrics_env] = str(free_port())
    env.update(extra)
    return env


def _start(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "deploy.local.stack", "run"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for_banner(process: subprocess.Popen, timeout: float = 120) -> str:
    deadline, seen = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if "OpenHR is up" in line:
            return "".join(seen)
    raise AssertionError("no 'OpenHR is up' banner:\n" + "".join(seen[-40:]))


def _stop(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGINT)
    try:
        process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    return process.returncode


def test_run_serves_stops_cleanly_and_keeps_data() -> None:
    data_dir = REPO_ROOT / ".data" / f"test-run-{os.getpid()}"
    shutil.rmtree(data_dir, ignore_errors=True)
    env = _env(data_dir)
    edge = f"http://127.0.0.1:{env['OPENHR_EDGE_PORT']}"
    try:
        first = _start(env)
        try:
            banner = _wait_for_banner(first)
            assert edge in banner
            # honcho forks the services from the supervisor: a gRPC thread alive there at fork
            # time can hang a child before it starts (gRPC logs this line when it happens).
            assert "skipping fork() handlers" not in banner
            token = mint_token(
                user_id_for("run@example.com"),
                issuer="openhr-identity",
                audience="openhr",
                key_dir=data_dir / "dev-keys",
            )
            headers = {"authorization": f"Bearer {token}"}
            created = httpx.post(f"{edge}/v1/profiles", json={"displayName": "Persisted"}, headers=headers)
            assert created.status_code == 200, created.text
        finally:
            assert _stop(first) == 0
        assert not _port_open(int(env["OPENHR_PG_PORT"])), "Postgres must stop with the stack"

        second = _start(env)
        try:
            _wait_for_banner(second)
            again = httpx.get(f"{edge}/v1/profiles/me", headers=headers)
            assert again.status_code == 200 and again.json()["profile"]["displayName"] == "Persisted"
        finally:
            assert _stop(second) == 0
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_busy_port_is_named(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "deploy.local.stack", "run"],
            cwd=REPO_ROOT,
            env=_env(tmp_path, OPENHR_EDGE_PORT=str(port)),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2
    assert f"OPENHR_EDGE_PORT={port}" in result.stderr
    assert "Traceback" not in result.stderr
