"""The read model rebuilt from scratch (a new deployment, a lost stream, a nightly recompute):
from the profile service's ListDiscoverableProfiles and the enrichment service's
ListProfileEmbeddings, as a service; the same rankings as before it was lost."""

from __future__ import annotations

import grpc
import pytest
from redis.asyncio import Redis

from deploy.local.ephemeral import Mesh
from openhr.matching.v1 import matching_pb2, matching_pb2_grpc
from tests.enrichment.support import service_metadata
from tests.matching.support import Member
from tests.waiting import eventually

TOPICS = ("profile", "enrichment", "identity", "messaging")


async def settled(mesh: Mesh) -> bool:
    """Every consumer group has read every event of the topics the read model follows."""
    redis = Redis.from_url(mesh.redis.url)
    try:
        for topic in TOPICS:
            stream = f"events.{topic}"
            if not await redis.exists(stream):
                continue
            last = (await redis.xinfo_stream(stream))["last-generated-id"]
            for group in await redis.xinfo_groups(stream):
                if group["pending"] or group["last-delivered-id"] != last:
                    return False
        return True
    finally:
        await redis.aclose()


async def rankings(matching, viewers: list[Member]) -> dict[str, list[tuple[str, float]]]:
    ranked = {}
    for me in viewers:
        page = await matching.ListMatches(matching_pb2.ListMatchesRequest(), metadata=me.user.metadata, timeout=30)
        ranked[me.user_id] = [(c.user_id, c.score) for c in page.matches]
    return ranked


async def test_a_lost_read_model_is_rebuilt_to_the_same_rankings(
    mesh: Mesh, matching, matching_channel, population, db
):
    viewers = population[:10]
    await eventually(lambda: settled(mesh), message="every event consumed")
    before = await rankings(matching, viewers)
    assert all(len(r) == 20 for r in before.values())

    await db.execute("DELETE FROM matching.vectors")
    await db.execute("DELETE FROM matching.candidates")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await rankings(matching, viewers[:1])
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    internal = matching_pb2_grpc.MatchingInternalServiceStub(matching_channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await internal.RebuildReadModel(matching_pb2.RebuildReadModelRequest(), metadata=viewers[0].user.metadata)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    rebuilt = await internal.RebuildReadModel(
        matching_pb2.RebuildReadModelRequest(), metadata=service_metadata(mesh, "matching"), timeout=120
    )
    assert rebuilt.profiles >= len(population) and rebuilt.embeddings >= len(population)
    assert await rankings(matching, viewers) == before
