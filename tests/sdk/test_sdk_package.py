"""The Python SDK is an installable package: its wheel (built from pyproject.toml, as `make sdk`
does) holds `sdk` and the generated `openhr_client`, declares what they need, and imports from
where it is installed alone, away from the repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from services.common.settings import REPO_ROOT


def test_the_sdk_wheel_installs_and_its_client_imports(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a copy: building writes build/ and *.egg-info beside the sources
    skip = shutil.ignore_patterns(".venv*", "node_modules", ".data", ".git", "build")
    shutil.copytree(REPO_ROOT, source, ignore=skip)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), "."],
        cwd=source, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("openhr_sdk-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "sdk/channel.py" in names and "openhr_client/openhr/profile/v1/__init__.py" in names
    assert not any(name.startswith(("services/", "deploy/", "tests/", "edge/")) for name in names)
    assert "Requires-Dist: betterproto2[grpcio]==0.10.0" in metadata and "Requires-Dist: grpcio" in metadata

    site = tmp_path / "site"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    # Only the installed copy is on the path (its dependencies come from this venv's site-packages).
    env = {**os.environ, "PYTHONPATH": str(site)}
    probe = (
        "import openhr_client, sdk;"
        "from openhr_client.openhr.profile.v1 import GetMyProfileRequest, ProfileServiceStub;"
        "from sdk import authenticated_channel;"
        "print(openhr_client.__file__, sdk.__file__)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(site / "openhr_client" / "__init__.py"), str(site / "sdk" / "__init__.py")]
