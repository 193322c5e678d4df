"""`make token`: a valid token in local mode only."""

from __future__ import annotations

import os
import subprocess
import sys

from services.common.auth import TokenVerifier
from services.common.devkeys import user_id_for
from services.common.settings import REPO_ROOT


def _token_command(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.common.devkeys", "token", "Dev@Example.com"],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


async def test_local_token_verifies_against_the_local_jwks(tmp_path) -> None:
    result = _token_command({"OPENHR_ENV": "local", "OPENHR_DATA_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    verifier = TokenVerifier(str(tmp_path / "dev-keys" / "jwks.json"), "openhr-identity", "openhr")
    principal = await verifier.verify(result.stdout.strip())
    assert principal.user_id == user_id_for("dev@example.com")


def test_no_development_token_outside_local_mode(tmp_path) -> None:
    result = _token_command({"OPENHR_ENV": "production", "OPENHR_DATA_DIR": str(tmp_path)})
    assert result.returncode == 2
    assert result.stdout == ""
    assert not (tmp_path / "dev-keys").exists()
