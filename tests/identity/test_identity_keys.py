"""Signing keys: when a successor is due, what the JWKS publishes, lazy rotation that stays
single under concurrency (replicas), and what the service demands outside local mode."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import grpc
import jwt

from deploy.local.ephemeral import Mesh, serving
from deploy.local.infra import free_port
from openhr.identity.v1 import identity_pb2, identity_pb2_grpc
from services.common.db import Database
from services.common.settings import REPO_ROOT
from services.identity.crypto import Box
from services.identity.keys import (
    JWKS_MAX_AGE,
    PUBLISH_AHEAD,
    KeyRing,
    KeyRow,
    published_rows,
    signing_row,
    successor_due,
)
from services.identity.tokens import ACCESS_TTL
from tests.identity.support import login, sign_up
from tests.waiting import eventually

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
MONTH = timedelta(days=30)


def _row(kid: str, activates: timedelta, retired: timedelta | None = None) -> KeyRow:
    return KeyRow(kid, {"kid": kid}, b"", NOW + activates, NOW + retired if retired is not None else None)


def test_the_first_key_signs_at_once() -> None:
    assert successor_due([], NOW, MONTH) == NOW


def test_a_successor_is_published_ahead_when_the_key_is_old() -> None:
    young = [_row("a", -timedelta(days=29))]
    assert successor_due(young, NOW, MONTH) is None
    old = [_row("a", -timedelta(days=31))]
    assert successor_due(old, NOW, MONTH) == NOW + PUBLISH_AHEAD
    pending = [*old, _row("b", PUBLISH_AHEAD)]
    assert successor_due(pending, NOW, MONTH) is None, "one successor at a time"


def test_signing_and_publication_windows() -> None:
    rows = [
        _row("gone", -timedelta(days=60), -(ACCESS_TTL + timedelta(minutes=2))),
        _row("retired", -timedelta(days=31), -timedelta(minutes=5)),
        _row("current", -timedelta(minutes=5), PUBLISH_AHEAD),
        _row("next", PUBLISH_AHEAD),
    ]
    assert signing_row(rows, NOW).kid == "current"
    assert [r.kid for r in published_rows(rows, NOW)] == ["retired", "current", "next"]
    assert signing_row(rows, NOW + PUBLISH_AHEAD).kid == "next"


def _mesh_box(mesh: Mesh) -> Box:
    return Box(base64.b64decode((mesh.config.data_dir / "identity-keys" / "data.key").read_text()))


async def test_lazy_rotation_creates_one_successor_across_replicas(mesh: Mesh, rest, db, identity, tmp_path) -> None:
    account = await sign_up(rest)
    current = jwt.get_unverified_header(account.access_token)["kid"]
    await db.execute(
        "UPDATE identity.signing_keys SET activates_at = now() - interval '31 days' WHERE kid = $1", current
    )
    before = await db.fetchval("SELECT count(*) FROM identity.signing_keys")
    await asyncio.sleep(JWKS_MAX_AGE + 0.1)  # the service's key cache is older than a JWKS answer may be

    # Another replica, sharing the database and the data key, loads the keys at the same moment
    # as the service answers a burst of JWKS requests: both see a successor due.
    replica_db = Database(mesh.config.database_url, app_role="identity_app", pool_size=2)
    replica = KeyRing(replica_db, _mesh_box(mesh), rotate_after=MONTH, jwks_file=tmp_path / "jwks.json")
    try:
        _, *answers = await asyncio.gather(
            replica.load(),
            *(identity.GetJwks(identity_pb2.GetJwksRequest(), timeout=10) for _ in range(8)),
        )
    finally:
        await replica_db.close()
    assert await db.fetchval("SELECT count(*) FROM identity.signing_keys") == before + 1

    successor = await db.fetchrow("SELECT * FROM identity.signing_keys ORDER BY created_at DESC LIMIT 1")
    retired = await db.fetchval("SELECT retired_at FROM identity.signing_keys WHERE kid = $1", current)
    assert retired == successor["activates_at"]
    ahead = successor["activates_at"] - datetime.now(UTC)
    assert timedelta(minutes=9) < ahead <= PUBLISH_AHEAD
    for answer in answers:
        kids = [key["kid"] for key in json.loads(answer.data)["keys"]]
        assert current in kids and successor["kid"] in kids
    written = json.loads((tmp_path / "jwks.json").read_text())
    assert successor["kid"] in [key["kid"] for key in written["keys"]]

    # Until the successor activates, tokens are still signed with the current key.
    signed_in = await login(rest, account)
    assert jwt.get_unverified_header(signed_in.json()["tokens"]["accessToken"])["kid"] == current


def _identity_env(mesh: Mesh, tmp_path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENHR_", "IDENTITY_"))}
    env.update(
        {
            "PYTHONPATH": f"{REPO_ROOT}:{REPO_ROOT / 'gen' / 'python'}",
            "OPENHR_ENV": "production",
            "OPENHR_DATA_DIR": str(tmp_path),
            "DATABASE_URL": mesh.config.database_url,
            "IDENTITY_PORT": str(free_port()),
            "IDENTITY_METRICS_PORT": str(free_port()),
            "OPENHR_SMTP_PORT": str(mesh.config.smtp_port),
        }
    )
    env.update(extra)
    return env


def test_production_refuses_to_start_without_keys(mesh: Mesh, tmp_path) -> None:
    cases = [
        ({}, "OPENHR_DATA_KEY and OPENHR_LOOKUP_KEY must be set"),
        ({"OPENHR_DATA_KEY": "bm90IDMyIGJ5dGVz", "OPENHR_LOOKUP_KEY": "x" * 44}, "OPENHR_DATA_KEY must be base64"),
    ]
    for extra, message in cases:
        result = subprocess.run(
            [sys.executable, "-m", "services.identity"],
            cwd=REPO_ROOT,
            env=_identity_env(mesh, tmp_path, **extra),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2, result.stderr
        assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "identity-keys").exists(), "no key is generated outside local mode"


async def test_production_publishes_no_development_key(mesh: Mesh, tmp_path) -> None:
    """A production replica (keys from the environment) on the mesh's database."""
    key_dir = mesh.config.data_dir / "identity-keys"
    env = _identity_env(
        mesh,
        tmp_path,
        OPENHR_DATA_KEY=(key_dir / "data.key").read_text().strip(),
        OPENHR_LOOKUP_KEY=(key_dir / "lookup.key").read_text().strip(),
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.identity",
        cwd=REPO_ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    port = int(env["IDENTITY_PORT"])
    try:

        async def started() -> bool:
            assert process.returncode is None, "the production identity service exited"
            return await asyncio.to_thread(serving, port)

        await eventually(started, message="the production identity service is not SERVING")
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            answer = await identity_pb2_grpc.IdentityServiceStub(channel).GetJwks(
                identity_pb2.GetJwksRequest(), timeout=10
            )
        kids = [key["kid"] for key in json.loads(answer.data)["keys"]]
        assert kids and (mesh.key_dir / "kid").read_text() not in kids
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 15)
