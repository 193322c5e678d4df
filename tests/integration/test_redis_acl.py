"""The production Redis users (deploy/redis_acl.py) on a real redis-server: each service signs
in with its own user and password through REDIS_URL and can do its work with the kit's real
code, and nothing more: only identity touches the rate-limit counters, nobody flushes."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import pytest
import redis
from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, NoPermissionError

from deploy.local.infra import LocalRedis, free_port
from deploy.redis_acl import SERVICE_RULES, acl_file, rules
from openhr.events.v1 import events_pb2
from services.common.cache import connect_redis, ping
from services.common.consumer import EventConsumer
from services.common.event_auth import EventSigner, EventVerifier
from services.common.outbox import new_event
from services.common.revocations import Revocations
from services.common.service_auth import ensure_service_key
from services.identity.ratelimit import Counters
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def server(tmp_path: Path):
    local = LocalRedis(data_dir=tmp_path / "redis", port=free_port())
    local.start()
    passwords = {name: secrets.token_urlsafe(16) for name in SERVICE_RULES}
    admin = redis.Redis(host=local.host, port=local.port)
    for name, password in passwords.items():
        admin.execute_command("ACL", "SETUSER", name, "reset", *rules(name), f">{password}")
    admin.close()
    yield local, passwords
    local.stop()


def _url(local: LocalRedis, user: str, password: str) -> str:
    return f"redis://{user}:{password}@{local.host}:{local.port}/0"


@pytest.fixture
async def clients(server):
    local, passwords = server
    opened = {name: connect_redis(_url(local, name, password)) for name, password in passwords.items()}
    yield opened
    for client in opened.values():
        await client.aclose()


async def test_a_wrong_password_is_refused(server) -> None:
    local, _ = server
    client = connect_redis(_url(local, "identity", "not-the-password"))
    with pytest.raises(AuthenticationError):
        await client.ping()
    await client.aclose()


async def test_identity_counts_and_publishes_and_nobody_else_touches_the_counters(clients: dict[str, Redis]) -> None:
    identity, profile = clients["identity"], clients["profile"]
    await ping(identity)
    counters = Counters(identity)
    assert [c.count for c in await counters.hit([("rl:ip:203.0.113.9:1", 60)], hits=2)] == [2]
    await identity.xadd("events.identity", {"event_id": "e", "data": b"x", "sig": b"s"})
    for other in (profile, clients["enrichment"]):
        with pytest.raises(NoPermissionError):
            await other.delete("rl:ip:203.0.113.9:1")
        with pytest.raises(NoPermissionError):
            await other.incrby("rl:ip:203.0.113.9:1", -2)
    for client in clients.values():
        with pytest.raises(NoPermissionError):
            await client.flushall()
        with pytest.raises(NoPermissionError):
            await client.keys("*")
    with pytest.raises(NoPermissionError):
        await identity.xadd("events.matching", {"data": b"x"})
    with pytest.raises(NoPermissionError):
        await profile.xadd("rl:anything", {"data": b"x"})
    await counters.clear("rl:ip:203.0.113.9:1")


async def test_profile_consumes_signed_events_and_every_service_reads_revocations(
    clients: dict[str, Redis], server, tmp_path: Path
) -> None:
    local, _ = server
    keys = tmp_path / "keys"
    for name in ("matching", "identity"):
        ensure_service_key(keys, name)
    verifier = EventVerifier.from_dir(keys)
    admin = Redis(host=local.host, port=local.port)  # plays matching and identity, which write them
    signed = new_event("matching", "u1")
    signed.match_created.user_ids.extend(["u1", "u2"])
    data = signed.SerializeToString()
    await admin.xadd("events.matching", {"event_id": "forged", "data": data})
    await admin.xadd(
        "events.matching",
        {"event_id": signed.event_id, "data": data, "sig": EventSigner(keys, "matching").sign("matching", data)},
    )
    deleted = new_event("identity", "00000000-0000-0000-0000-00000000000d")
    deleted.user_deleted.SetInParent()
    data = deleted.SerializeToString()
    await admin.xadd(
        "events.identity",
        {"event_id": deleted.event_id, "data": data, "sig": EventSigner(keys, "identity").sign("identity", data)},
    )

    handled: list[events_pb2.Event] = []

    async def handler(event: events_pb2.Event) -> None:
        handled.append(event)

    consumer = EventConsumer(clients["profile"], "matching", "profile", "p1", handler, verifier=verifier, block_ms=50)
    task = asyncio.create_task(consumer.run())
    try:
        async def settled() -> bool:
            return bool(handled) and await admin.xlen("events.matching.dead") == 1

        await eventually(settled, message="the signed event handled and the forged one dead-lettered")
        assert [e.event_id for e in handled] == [signed.event_id]
        assert await admin.xlen("events.matching.dead") == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await admin.aclose()

    for name in SERVICE_RULES:
        revocations = Revocations(clients[name], verifier)
        assert await revocations.backfill() == 1
        assert revocations.is_revoked(deleted.user_id)


def test_the_acl_file_holds_password_hashes_only() -> None:
    passwords = {name: f"pw-{name}" for name in SERVICE_RULES}
    text = acl_file(passwords)
    assert "pw-" not in text and text.splitlines()[-1] == "user default off"
    assert len(text.splitlines()) == len(SERVICE_RULES) + 1
