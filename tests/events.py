"""Publishing domain events into a test mesh as their producers do (the outbox relay's entry
format on `events.<topic>`, signed by the producer), for services whose producer does not run
yet (matching)."""

from __future__ import annotations

import uuid

from redis.asyncio import Redis

from deploy.local.ephemeral import Mesh
from openhr.events.v1 import events_pb2
from services.common.event_auth import SIGNATURE_FIELD, EventSigner, producer_of
from services.common.outbox import STREAM_MAXLEN, new_event, stream_name
from services.common.service_auth import ensure_service_key


def signed_entry(mesh: Mesh, topic: str, event: events_pb2.Event) -> dict:
    """The stream entry the topic's producer publishes, signed with its key in the mesh's
    OPENHR_SERVICE_KEYS (created for a producer that does not run yet, such as matching)."""
    producer = producer_of(topic)
    ensure_service_key(mesh.config.service_keys, producer)
    data = event.SerializeToString()
    signature = EventSigner(mesh.config.service_keys, producer).sign(topic, data)
    return {"event_id": event.event_id, "data": data, SIGNATURE_FIELD: signature}


async def publish(mesh: Mesh, topic: str, event: events_pb2.Event) -> None:
    """One entry, exactly as services/common/outbox.py's relay writes it."""
    redis = Redis.from_url(mesh.redis.url)
    try:
        await redis.xadd(stream_name(topic), signed_entry(mesh, topic, event), maxlen=STREAM_MAXLEN, approximate=True)
    finally:
        await redis.aclose()


def match_created(first_user_id: str, second_user_id: str, match_id: str | None = None) -> events_pb2.Event:
    """The MatchCreated the matching service emits when two users like each other."""
    event = new_event("matching", first_user_id)
    event.match_created.match_id = match_id or str(uuid.uuid4())
    event.match_created.user_ids.extend([first_user_id, second_user_id])
    event.match_created.score = 0.9
    return event


async def publish_match(mesh: Mesh, first_user_id: str, second_user_id: str) -> events_pb2.Event:
    event = match_created(first_user_id, second_user_id)
    await publish(mesh, "matching", event)
    return event
