"""Two messaging replicas on the session mesh: the mesh's own (behind Envoy) and a second one
started here on its own ports, sharing Postgres and Redis. Tests send through one and
receive through the other."""

from __future__ import annotations

import grpc
import pytest

from deploy.local.ephemeral import Mesh
from deploy.local.infra import free_port
from tests.messaging.support import DIGEST_INTERVAL


@pytest.fixture(scope="session")
def second_replica_metrics() -> int:
    """The metrics port of the second replica."""
    return free_port()


@pytest.fixture(scope="session")
def second_replica(mesh: Mesh, second_replica_metrics: int) -> str:
    """The target of a second messaging replica (small event log, fast digests and heartbeats)."""
    target = mesh.start_replica(
        "messaging",
        "messaging-b",
        {
            "OPENHR_DIGEST_INTERVAL": str(DIGEST_INTERVAL),
            "OPENHR_STREAM_KEEP_EVENTS": "5",
            "OPENHR_STREAM_HEARTBEAT": "1",
            "MESSAGING_METRICS_PORT": str(second_replica_metrics),
        },
    )
    yield target
    mesh.stop_process("messaging-b")


@pytest.fixture(scope="session")
async def channel_a(mesh: Mesh):
    async with grpc.aio.insecure_channel(mesh.target("messaging")) as channel:
        yield channel


@pytest.fixture(scope="session")
async def channel_b(second_replica: str):
    async with grpc.aio.insecure_channel(second_replica) as channel:
        yield channel



