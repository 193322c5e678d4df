"""`make token USER=<email>` (services/identity/devtoken.py): in local mode a token for the
account with that email when one exists, else a stand-alone development user, said clearly."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx

from deploy.local.ephemeral import Mesh
from deploy.local.infra import free_port
from services.common.devkeys import user_id_for
from services.common.settings import REPO_ROOT
from tests.identity.support import claims, new_email, sign_up


def _make_token(email: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.identity.devtoken", email],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": f"{REPO_ROOT}:{REPO_ROOT / 'gen' / 'python'}", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_a_token_for_an_account_names_the_account(mesh: Mesh, rest: httpx.AsyncClient) -> None:
    account = await sign_up(rest)
    result = _make_token(account.email.upper(), mesh.config.service_env())
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    token = result.stdout.strip()
    assert (await claims(rest, token))["sub"] == account.user_id
    export = await rest.get("/v1/me:export", headers={"authorization": f"Bearer {token}"})
    assert export.status_code == 200, export.text
    assert export.json()["data"]["identity"]["account"]["email"] == account.email


async def test_an_address_without_an_account_gets_a_development_user(mesh: Mesh, rest: httpx.AsyncClient) -> None:
    email = new_email("nobody")
    result = _make_token(email, mesh.config.service_env())
    assert result.returncode == 0, result.stderr
    assert "there is no account with this email" in result.stderr
    assert "stand-alone development user" in result.stderr
    assert (await claims(rest, result.stdout.strip()))["sub"] == user_id_for(email)


def test_without_a_database_it_says_so(tmp_path) -> None:
    unreachable = f"postgresql://openhr@127.0.0.1:{free_port()}/openhr"
    result = _make_token("dev@example.com", {"OPENHR_DATA_DIR": str(tmp_path), "DATABASE_URL": unreachable})
    assert result.returncode == 0, result.stderr
    assert "the database cannot be asked" in result.stderr
    assert result.stdout.count(".") == 2  # a JWT


def test_no_development_token_outside_local_mode(tmp_path) -> None:
    result = _make_token("dev@example.com", {"OPENHR_ENV": "production", "OPENHR_DATA_DIR": str(tmp_path)})
    assert result.returncode == 2
    assert result.stdout == ""
    assert not (tmp_path / "dev-keys").exists()
