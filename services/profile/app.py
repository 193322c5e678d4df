"""Wiring of the profile service: settings, database, Redis, peers, servicers, background work."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import grpc
from pydantic import Field

from openhr.common.v1 import user_data_pb2, user_data_pb2_grpc
from openhr.events.v1 import events_pb2
from openhr.profile.v1 import profile_pb2, profile_pb2_grpc
from services.common.cache import connect_redis, ping
from services.common.clients import channel
from services.common.consumer import EventConsumer, first_delivery
from services.common.db import Database
from services.common.event_auth import EventSigner, EventVerifier
from services.common.fanout import StreamFanout
from services.common.outbox import OutboxRelay
from services.common.retention import EventRetention
from services.common.server import ServiceSpec, service_name
from services.common.settings import ServiceSettings
from services.common.user_data import UserDataApi
from services.profile import store
from services.profile.api import ProfileApi, ProfileInternalApi
from services.profile.skills import SkillNormalizer


class ProfileSettings(ServiceSettings):
    port: int = Field(50061, validation_alias="PROFILE_PORT")
    metrics_port: int = Field(9461, validation_alias="PROFILE_METRICS_PORT")
    enrichment_addr: str = Field("127.0.0.1:50064", validation_alias="ENRICHMENT_ADDR")


def build(settings: ProfileSettings) -> ServiceSpec:
    db = Database.for_service(settings, store.SCHEMA)
    redis = connect_redis(settings.redis_url)
    enrichment = channel(settings.enrichment_addr, idempotent_services=["openhr.enrichment.v1.SkillsService"])
    normalizer = SkillNormalizer(enrichment)
    keys = Path(settings.service_keys)
    relay = OutboxRelay(db, redis, store.SCHEMA, EventSigner(keys, "profile"))
    verifier = EventVerifier.from_dir(keys)
    # Profile changes by owner, for WatchMyProfile streams on this replica.
    changes = StreamFanout(redis, "profile", key=lambda event: event.user_id, verifier=verifier)

    async def on_matching_event(event: events_pb2.Event) -> None:
        """MatchCreated: matched users may see each other's MATCHES_ONLY profiles."""
        if event.WhichOneof("payload") != "match_created":
            return
        first, second = event.match_created.user_ids
        async with db.transaction(first) as tx:
            if await first_delivery(tx, store.SCHEMA, event.event_id):
                await store.add_connection(tx, first, second)

    consumer = EventConsumer(
        redis,
        "matching",
        "profile",
        f"profile-{socket.gethostname()}-{os.getpid()}",
        on_matching_event,
        verifier=verifier,
    )

    def register(server: grpc.aio.Server) -> list[str]:
        profile_pb2_grpc.add_ProfileServiceServicer_to_server(
            ProfileApi(db, normalizer, changes, settings.stream_heartbeat), server
        )
        profile_pb2_grpc.add_ProfileInternalServiceServicer_to_server(ProfileInternalApi(db, normalizer), server)
        user_data_pb2_grpc.add_UserDataServiceServicer_to_server(
            UserDataApi("profile", db, store.export_user, store.delete_user), server
        )
        return [
            service_name(profile_pb2, "ProfileService"),
            service_name(profile_pb2, "ProfileInternalService"),
            service_name(user_data_pb2, "UserDataService"),
        ]

    async def close() -> None:
        await enrichment.close()
        await redis.aclose()
        await db.close()

    return ServiceSpec(
        name="profile",
        port=settings.port,
        register=register,
        checks={"postgres": db.ping, "redis": lambda: ping(redis)},
        background=[
            relay.run,
            consumer.run,
            changes.run,
            EventRetention(db, store.SCHEMA, settings.event_retention).run,
        ],
        cleanup=[close],
        metrics_port=settings.metrics_port,
    )
