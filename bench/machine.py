"""What the numbers were measured on: cores, CPU model, memory, load, and the versions that matter."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                kib = int(line.split()[1])
                return f"{kib / 1024 / 1024:.1f} GiB"
    return "unknown"


def _nproc() -> int:
    try:
        return int(subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout.strip())
    except (OSError, ValueError, subprocess.CalledProcessError):
        return os.cpu_count() or 0


def _envoy_version() -> str:
    envoy = Path(sys.executable).with_name("envoy")
    try:
        out = subprocess.run([str(envoy), "--version"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    # ".../envoy  version: <sha>/1.40.0/Clean/RELEASE/BoringSSL"
    text = out.strip().split("version:", 1)[-1].strip()
    parts = text.split("/")
    return parts[1] if len(parts) > 1 else text


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _commit() -> str:
    """The checked-out commit, '+changes' when the work tree differs from it (read-only git calls)."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True,
            timeout=10,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}+changes" if dirty else head


def describe() -> dict:
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _commit(),
        "nproc": _nproc(),
        "cpu_model": _cpu_model(),
        "memory": _memory(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "kernel": platform.release(),
        "python": platform.python_version(),
        "grpcio": _version("grpcio"),
        "protobuf": _version("protobuf"),
        "envoy": _envoy_version(),
        "fastapi": _version("fastapi"),
        "uvicorn": _version("uvicorn"),
        "uvloop": _version("uvloop"),
        "httptools": _version("httptools"),
        "asyncpg": _version("asyncpg"),
        "sqlalchemy": _version("SQLAlchemy"),
        "pyjwt": _version("PyJWT"),
        "httpx": _version("httpx"),
        "rapidfuzz": _version("RapidFuzz"),
    }


def markdown(machine: dict) -> str:
    return (
        f"- Date: {machine['date']}; code at commit {machine.get('commit', 'unknown')}\n"
        f"- Machine: {machine['nproc']} cores (`nproc`), {machine['cpu_model']}, {machine['memory']} RAM, "
        f"Linux {machine['kernel']}; load average at start {machine['load_average_at_start']}\n"
        f"- Versions: Python {machine['python']}, grpcio {machine['grpcio']}, protobuf {machine['protobuf']}, "
        f"Envoy {machine['envoy']}, FastAPI {machine['fastapi']}, uvicorn {machine['uvicorn']} "
        f"(uvloop {machine['uvloop']}, httptools {machine['httptools']}), asyncpg {machine['asyncpg']}, "
        f"SQLAlchemy {machine['sqlalchemy']}, PyJWT {machine['pyjwt']}, httpx {machine['httpx']}\n"
    )
