"""Helpers of the enrichment suites: field violations of a gRPC error, ProfileEmbedded events."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import numpy as np
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from redis.asyncio import Redis

from deploy.local.ephemeral import Mesh
from openhr.events.v1 import events_pb2
from services.common.service_auth import ServiceTokenIssuer
from tests.waiting import eventually


def violations(error: grpc.aio.AioRpcError) -> list[str]:
    status = rpc_status.from_call(error)
    assert status is not None, "no google.rpc.Status details"
    found = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            found.extend(v.field for v in bad.field_violations)
    return found


async def enrichment_events(mesh: Mesh, user_id: str) -> list[events_pb2.ProfileEmbedded]:
    """Every ProfileEmbedded published for the user so far, in stream order."""
    redis = Redis.from_url(mesh.redis.url)
    try:
        entries = await redis.xrange("events.enrichment")
    finally:
        await redis.aclose()
    events = [events_pb2.Event.FromString(fields[b"data"]) for _id, fields in entries]
    return [e.profile_embedded for e in events if e.user_id == user_id and e.HasField("profile_embedded")]


async def wait_for_embedded(
    mesh: Mesh,
    user_id: str,
    condition: Callable[[events_pb2.ProfileEmbedded], bool],
    within: float = 60,
) -> events_pb2.ProfileEmbedded:
    """The first ProfileEmbedded of the user that meets `condition`, polling for `within` seconds."""

    async def found() -> events_pb2.ProfileEmbedded | None:
        return next((e for e in await enrichment_events(mesh, user_id) if condition(e)), None)

    return await eventually(found, within=within, message=f"a matching ProfileEmbedded for {user_id}")


def cosine(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def service_metadata(mesh: Mesh, name: str = "profile") -> tuple[tuple[str, str], ...]:
    """A peer service's token for enrichment's internal RPCs, which answer services only
    (services/common/surface.py INTERNAL_CALLERS: profile and matching; profile's key stands
    in for matching, which does not run yet)."""
    issuer = ServiceTokenIssuer.from_dir(mesh.config.service_keys, name)
    return (("authorization", f"Bearer {issuer.token()}"),)
