"""PrivacyService through the REST edge: a signed-in user exports everything OpenHR holds about
them and deletes it; afterwards the deleted user's still-unexpired access token is refused by
every service (identity's UserDeleted event, services/common/revocations.py), also by a replica
started after the deletion, and the account cannot sign in again."""

from __future__ import annotations

import asyncio
import base64
import re
import sys
import uuid

import grpc
import pytest

from deploy.local.ephemeral import Mesh, serving
from deploy.local.infra import free_port
from openhr.events.v1 import events_pb2
from openhr.profile.v1 import profile_pb2, profile_pb2_grpc
from services.common import errors
from services.common.db import Database
from services.common.migrations import app_role
from services.identity import store
from services.identity.crypto import Box
from services.identity.privacy import Peers, Privacy
from tests.identity.support import Account, login, new_email, sign_up
from tests.waiting import eventually

PROFILE = {
    "displayName": "Dana Deleted",
    "role": "ROLE_TECHNICAL_COFOUNDER",
    "headline": "Will not stay long",
    "timezone": "Europe/Berlin",
}


async def _with_profile(rest) -> tuple[Account, dict]:
    account = await sign_up(rest, email=new_email("Erase"))
    created = await rest.post("/v1/profiles", json=PROFILE, headers=account.headers)
    assert created.status_code == 200, created.text
    profile = created.json()["profile"]
    added = await rest.post(
        f"/v1/profiles/{profile['profileId']}/skills", json={"name": "k8s", "proficiency": 4}, headers=account.headers
    )
    assert added.status_code == 200, added.text
    return account, profile


async def _get_my_profile(target: str, token: str) -> grpc.StatusCode:
    async with grpc.aio.insecure_channel(target) as channel:
        try:
            await profile_pb2_grpc.ProfileServiceStub(channel).GetMyProfile(
                profile_pb2.GetMyProfileRequest(), metadata=[("authorization", f"Bearer {token}")], timeout=10
            )
        except grpc.aio.AioRpcError as exc:
            assert exc.code() != grpc.StatusCode.UNAUTHENTICATED or exc.details() == "account deleted", exc.details()
            return exc.code()
    return grpc.StatusCode.OK


async def test_export_then_delete_everything(mesh: Mesh, rest, db) -> None:
    account, profile = await _with_profile(rest)

    exported = await rest.get("/v1/me:export", headers=account.headers)
    assert exported.status_code == 200, exported.text
    body = exported.json()
    assert body["exportTime"]
    identity, profile_section = body["data"]["identity"], body["data"]["profile"]
    assert identity["account"]["email"] == account.email
    assert identity["account"]["userId"] == account.user_id
    assert identity["account"]["emailVerified"] is False
    assert identity["account"]["createTime"]
    assert identity["providers"] == []
    assert len(identity["sessions"]) == 1 and identity["sessions"][0]["revokeTime"] is None
    assert "sign_up" in [row["event"] for row in identity["auditLog"]]
    assert profile_section["profile"]["profileId"] == profile["profileId"]
    assert profile_section["profile"]["displayName"] == "Dana Deleted"
    assert [skill["name"] for skill in profile_section["profile"]["skills"]]
    # One JSON mapping for every section: the proto3 one, as every other REST body; a skill's
    # category as enrichment names it.
    assert _not_proto3_json(body) == []
    assert {s["category"] for s in profile_section["profile"]["skills"]} == {"SKILL_CATEGORY_ENGINEERING"}
    assert set(body["data"]) == {"identity", "profile", "enrichment", "matching", "messaging"}
    assert profile_section["endorsementsGiven"] == [] and profile_section["endorsementsReceived"] == []
    # Secrets never leave: no hashes of any kind in the export.
    assert "hash" not in exported.text.lower() and account.refresh_token not in exported.text

    # Both RPCs need a token (Envoy's jwt_authn and the interceptor).
    assert (await rest.get("/v1/me:export")).status_code == 401
    assert (await rest.delete("/v1/me")).status_code == 401

    deleted = await rest.delete("/v1/me", headers=account.headers)
    assert deleted.status_code == 200, deleted.text

    # The token is still unexpired, but every service refuses it once the event arrived.
    async def refused_through_edge() -> bool:
        return (await rest.get("/v1/profiles/me", headers=account.headers)).status_code == 401

    async def refused_by_profile() -> bool:
        code = await _get_my_profile(mesh.target("profile"), account.access_token)
        return code == grpc.StatusCode.UNAUTHENTICATED

    async def refused_by_identity() -> bool:
        return await _status(rest.get("/v1/me:export", headers=account.headers)) == 401

    for refused in (refused_through_edge, refused_by_profile, refused_by_identity):
        await eventually(refused, message=f"{refused.__name__}: the deleted user's token works")

    # No way back in: the password, the refresh token.
    assert (await login(rest, account)).status_code == 401
    assert (await rest.post("/v1/auth/refresh", json={"refreshToken": account.refresh_token})).status_code == 401

    # Erased: the profile in its service; the account keeps its id (never reused), no PII.
    assert (
        await db.fetchval("SELECT count(*) FROM profile.profiles WHERE user_id = $1", uuid.UUID(account.user_id)) == 0
    )
    user = await db.fetchrow("SELECT * FROM identity.users WHERE user_id = $1", uuid.UUID(account.user_id))
    assert user["deleted_at"] is not None
    assert user["email_ciphertext"] is None and user["email_lookup"] is None and user["password_hash"] is None
    assert user["display_name"] == ""
    uid = uuid.UUID(account.user_id)
    assert await db.fetchval("SELECT count(*) FROM identity.one_time_tokens WHERE user_id = $1", uid) == 0
    assert (
        await db.fetchval("SELECT count(*) FROM identity.refresh_tokens WHERE user_id = $1 AND revoked_at IS NULL", uid)
        == 0
    )
    audit = await db.fetch("SELECT event, email_lookup FROM identity.audit_log WHERE user_id = $1", uid)
    assert "account_deleted" in [row["event"] for row in audit]
    assert all(row["email_lookup"] is None for row in audit)
    rows = await db.fetch("SELECT payload, published_at FROM identity.outbox WHERE topic = 'identity'")
    mine = [
        (event, row["published_at"])
        for row in rows
        if (event := events_pb2.Event.FromString(row["payload"])).user_id == account.user_id
    ]
    assert len(mine) == 1 and mine[0][0].WhichOneof("payload") == "user_deleted" and mine[0][1] is not None

    # The address is free again: signing up with it makes a new account with a new id.
    again = await sign_up(rest, email=account.email)
    assert again.user_id != account.user_id


_CAMEL = re.compile(r"^[a-z][A-Za-z0-9]*$")
_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


def _not_proto3_json(value, path: str = "") -> list[str]:
    """Where value strays from the proto3 JSON mapping: keys not lowerCamelCase, times not RFC 3339 `Z`."""
    if isinstance(value, dict):
        return [
            problem
            for key, item in value.items()
            for problem in ([] if _CAMEL.match(key) else [f"{path}.{key}: not camelCase"])
            + _not_proto3_json(item, f"{path}.{key}")
        ]
    if isinstance(value, list):
        return [problem for i, item in enumerate(value) for problem in _not_proto3_json(item, f"{path}[{i}]")]
    if isinstance(value, str) and _TIME.match(value) and not value.endswith("Z"):
        return [f"{path}: {value} is not RFC 3339 UTC"]
    return []


async def _status(request) -> int:
    return (await request).status_code


async def test_replica_started_after_the_deletion_refuses_the_token(mesh: Mesh, rest) -> None:
    account, _profile = await _with_profile(rest)
    assert (await rest.delete("/v1/me", headers=account.headers)).status_code == 200

    async def refused_through_edge() -> bool:
        return (await rest.get("/v1/profiles/me", headers=account.headers)).status_code == 401

    await eventually(refused_through_edge, message="the deleted user's token works")  # the event is on the stream
    port = free_port()
    name = f"profile-late-{port}"
    mesh.start_process(
        name,
        [sys.executable, "-m", "services.profile"],
        env={"PROFILE_PORT": str(port), "PROFILE_METRICS_PORT": str(free_port())},
    )
    try:
        await eventually(lambda: asyncio.to_thread(serving, port), message=lambda: mesh.log(name)[-2000:])
        target = f"127.0.0.1:{port}"
        # No poll: the replica read the deletions of the last 20 minutes before it served.
        assert await _get_my_profile(target, account.access_token) == grpc.StatusCode.UNAUTHENTICATED
        # A live user's token is still accepted there.
        live = await sign_up(rest)
        assert await _get_my_profile(target, live.access_token) == grpc.StatusCode.NOT_FOUND
    finally:
        mesh.stop_process(name)


@pytest.fixture
async def privacy(mesh: Mesh):
    """identity's Privacy in this process, on the mesh's database and keys."""
    database = Database(mesh.config.database_url, app_role=app_role(store.SCHEMA), pool_size=2)
    key = base64.b64decode((mesh.config.data_dir / "identity-keys" / "data.key").read_text())
    yield database, Box(key)
    await database.close()


async def test_delete_is_idempotent(mesh: Mesh, rest, db, privacy) -> None:
    """A deleted user has no token left to call DeleteMe again with: the second erasure is
    exercised on the servicer (without peers), as a retry after a lost answer would be."""
    database, box = privacy
    account = await sign_up(rest, email=new_email("Twice"))
    api = Privacy(database, box, Peers({}))
    assert await api.delete_user(account.user_id) is True
    assert await api.delete_user(account.user_id) is False
    uid = uuid.UUID(account.user_id)
    assert await db.fetchval("SELECT count(*) FROM identity.users WHERE user_id = $1", uid) == 1
    events = await db.fetchval(
        "SELECT count(*) FROM identity.audit_log WHERE user_id = $1 AND event = 'account_deleted'", uid
    )
    assert events == 1  # one erasure, one UserDeleted event


async def test_unavailable_peer_changes_nothing(mesh: Mesh, rest, db, privacy) -> None:
    database, box = privacy
    account = await sign_up(rest, email=new_email("Retry"))
    api = Privacy(database, box, Peers({"profile": f"127.0.0.1:{free_port()}"}))
    with pytest.raises(errors.DomainError) as refused:
        await api.delete_user(account.user_id)
    assert refused.value.code == grpc.StatusCode.UNAVAILABLE
    user = await db.fetchrow("SELECT * FROM identity.users WHERE user_id = $1", uuid.UUID(account.user_id))
    assert user["deleted_at"] is None and user["email_lookup"] is not None
    assert (await login(rest, account)).status_code == 200
