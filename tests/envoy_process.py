"""A real Envoy for edge tests that start their own: the binary, config validation, readiness,
and an Envoy rendered from the edge template in front of given ports."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from deploy.local.ephemeral import EDGE_TIMEOUT
from deploy.local.infra import free_port
from deploy.local.stack import DESCRIPTOR
from edge.envoy.render import render
from services.common.service_auth import EDGE_NAME, ensure_service_key
from tests.waiting import wait_until

ENVOY = Path(sys.executable).with_name("envoy")


def assert_valid(config: Path) -> None:
    """`envoy --mode validate` accepts the rendered config."""
    result = subprocess.run(
        [str(ENVOY), "--mode", "validate", "-c", str(config), "--use-dynamic-base-id"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0 and f"configuration '{config}' OK" in out, out[-3000:]


def cluster_healthy(admin: str, cluster: str) -> bool:
    """Envoy's admin at `admin` (http://host:port) sees every host of `cluster` healthy."""
    clusters = httpx.get(f"{admin}/clusters", timeout=2).text
    return any(
        line.startswith(f"{cluster}::") and line.endswith("::health_flags::healthy") for line in clusters.splitlines()
    )


@dataclass(frozen=True)
class RunningEnvoy:
    process: subprocess.Popen
    port: int
    admin_port: int
    work_dir: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def access_log(self) -> Path:
        return self.work_dir / "access.log"

    def output(self) -> str:
        return (self.work_dir / "envoy.out").read_text(errors="replace")[-3000:]

    def wait_until(self, ready: Callable[[], bool]) -> None:
        """Polls `ready` (an HTTP error counts as not yet); fails with Envoy's output when Envoy
        exits or does not get ready."""

        def check() -> bool:
            if self.process.poll() is not None:
                pytest.fail(f"envoy exited {self.process.returncode}:\n{self.output()}")
            with contextlib.suppress(httpx.HTTPError):
                return ready()
            return False

        wait_until(check, message=lambda: f"envoy not ready:\n{self.output()}")

    def live(self) -> bool:
        return httpx.get(f"{self.admin}/ready", timeout=1).text.strip() == "LIVE"


@contextlib.contextmanager
def running_envoy(
    ports: dict[str, int],
    work_dir: Path,
    *,
    extra_args: Sequence[str] = (),
    service_keys: Path | None = None,
    **values: Any,
) -> Iterator[RunningEnvoy]:
    """An Envoy rendered from the edge template for the services at `ports` (name -> loopback
    port; e.g. a mesh's, or ports that refuse connections), with template `values` on top
    (`descriptor_path` defaults to the built contracts, the rate-limit and validation deadlines
    to a test mesh's generous ones), config and logs in `work_dir`. Started, not waited for
    (see `wait_until`); stopped on exit. `service_keys`: the mesh's, where the edge's key
    (created if missing) signs its rate-limit calls."""
    port, admin_port = free_port(), free_port()
    config = work_dir / "envoy.yaml"
    values.setdefault("descriptor_path", str(DESCRIPTOR))
    values.setdefault("rate_limit_timeout", f"{EDGE_TIMEOUT}s")
    values.setdefault("validation_timeout", f"{EDGE_TIMEOUT}s")
    if service_keys is not None:
        ensure_service_key(service_keys, EDGE_NAME)
        values["service_keys"] = service_keys
    config.write_text(
        render(
            listen_address="127.0.0.1",
            listen_port=port,
            admin_address="127.0.0.1",
            admin_port=admin_port,
            clusters=[{"name": name, "host": "127.0.0.1", "port": p} for name, p in ports.items()],
            access_log_path=str(work_dir / "access.log"),
            **values,
        )
    )
    with (work_dir / "envoy.out").open("wb") as out:
        process = subprocess.Popen(
            [str(ENVOY), "-c", str(config), "--use-dynamic-base-id", "--log-level", "warn", *extra_args],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield RunningEnvoy(process, port, admin_port, work_dir)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
