"""A real Envoy for edge tests that start their own: the binary, config validation, readiness."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

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
