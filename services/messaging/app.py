"""Wiring of the messaging service: settings, database, Redis, consumers (MatchCreated opens
conversations, ProfileChanged keeps names and avatars), the live fan-out, servicers and
background work (outbox relay, digest mails)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import grpc
from pydantic import Field

from openhr.common.v1 import user_data_pb2, user_data_pb2_grpc
from openhr.events.v1 import events_pb2
from openhr.messaging.v1 import messaging_pb2, messaging_pb2_grpc
from services.common.cache import connect_redis, ping
from services.common.consumer import EventConsumer
from services.common.db import Database
from services.common.event_auth import EventSigner, EventVerifier
from services.common.outbox import OutboxRelay
from services.common.retention import EventRetention
from services.common.server import ServiceSpec, service_name
from services.common.settings import ServiceSettings
from services.common.user_data import UserDataApi
from services.messaging import chat, store
from services.messaging.api import MessagingApi, MessagingInternalApi
from services.messaging.digest import DigestSender
from services.messaging.presence import Presence
from services.messaging.stream import EventStreams, live_fanout
from services.messaging.typing import Typing


class MessagingSettings(ServiceSettings):
    port: int = Field(50063, validation_alias="MESSAGING_PORT")
    metrics_port: int = Field(9463, validation_alias="MESSAGING_METRICS_PORT")
    # Events a StreamEvents call may queue before it is disconnected (with its cursor) as too slow.
    stream_queue: int = Field(256, validation_alias="OPENHR_STREAM_QUEUE")
    # Newest events kept per user for reconnects; an older cursor gets a resync event.
    stream_keep_events: int = Field(5000, validation_alias="OPENHR_STREAM_KEEP_EVENTS")
    # Seconds a typing indicator lasts without a refresh.
    typing_ttl: float = Field(5.0, validation_alias="OPENHR_TYPING_TTL")
    # At most one presence broadcast per user and replica in this many seconds.
    presence_throttle: float = Field(5.0, validation_alias="OPENHR_PRESENCE_THROTTLE")
    # Seconds between two digest mails to one user (and the digest loop's period / 4).
    digest_interval: float = Field(3600.0, validation_alias="OPENHR_DIGEST_INTERVAL")
    smtp_host: str = Field("127.0.0.1", validation_alias="OPENHR_SMTP_HOST")
    smtp_port: int = Field(2525, validation_alias="OPENHR_SMTP_PORT")
    smtp_from: str = Field("OpenHR <no-reply@openhr.localhost>", validation_alias="OPENHR_SMTP_FROM")
    public_url: str = Field("http://127.0.0.1:8080", validation_alias="OPENHR_PUBLIC_URL")


def build(settings: MessagingSettings) -> ServiceSpec:
    db = Database.for_service(settings, store.SCHEMA)
    redis = connect_redis(settings.redis_url)
    keys = Path(settings.service_keys)
    relay = OutboxRelay(db, redis, store.SCHEMA, EventSigner(keys, "messaging"))
    verifier = EventVerifier.from_dir(keys)
    live = live_fanout(redis, settings.stream_queue, verifier)
    presence = Presence(db, redis, ttl=3 * settings.stream_heartbeat, throttle=settings.presence_throttle)
    typing = Typing(db, redis, ttl=settings.typing_ttl)
    streams = EventStreams(
        db, live, presence, heartbeat=settings.stream_heartbeat, keep_events=settings.stream_keep_events
    )
    digests = DigestSender(
        db,
        host=settings.smtp_host,
        port=settings.smtp_port,
        sender=settings.smtp_from,
        public_url=settings.public_url,
        interval=settings.digest_interval,
    )
    consumer_name = f"messaging-{socket.gethostname()}-{os.getpid()}"

    async def on_matching_event(event: events_pb2.Event) -> None:
        """MatchCreated: the two users get their conversation (once per match)."""
        if event.WhichOneof("payload") != "match_created":
            return
        match = event.match_created
        user_ids = sorted(set(match.user_ids))
        if len(user_ids) != 2:
            return  # not a pair: nothing to open
        await chat.open_conversation(db, match.match_id, user_ids, event_id=event.event_id)

    async def on_profile_event(event: events_pb2.Event) -> None:
        """ProfileChanged: messaging's copy of the name and avatar people chat under."""
        if event.WhichOneof("payload") != "profile_changed":
            return
        profile = event.profile_changed.profile
        async with db.transaction(profile.user_id) as tx:
            await store.upsert_person(
                tx,
                user_id=profile.user_id,
                profile_id=profile.profile_id,
                display_name=profile.display_name,
                avatar_url=profile.avatar_url,
                version=profile.version,
            )

    matches = EventConsumer(redis, "matching", "messaging", consumer_name, on_matching_event, verifier=verifier)
    profiles = EventConsumer(redis, "profile", "messaging", consumer_name, on_profile_event, verifier=verifier)

    def register(server: grpc.aio.Server) -> list[str]:
        messaging_pb2_grpc.add_MessagingServiceServicer_to_server(MessagingApi(db, streams, typing, presence), server)
        messaging_pb2_grpc.add_MessagingInternalServiceServicer_to_server(MessagingInternalApi(db), server)
        user_data_pb2_grpc.add_UserDataServiceServicer_to_server(
            UserDataApi("messaging", db, store.export_user, store.delete_user), server
        )
        return [
            service_name(messaging_pb2, "MessagingService"),
            service_name(messaging_pb2, "MessagingInternalService"),
            service_name(user_data_pb2, "UserDataService"),
        ]

    async def close() -> None:
        typing.close()
        await redis.aclose()
        await db.close()

    return ServiceSpec(
        name="messaging",
        port=settings.port,
        register=register,
        checks={"postgres": db.ping, "redis": lambda: ping(redis)},
        background=[
            relay.run,
            live.run,
            matches.run,
            profiles.run,
            digests.run,
            EventRetention(db, store.SCHEMA, settings.event_retention).run,
        ],
        cleanup=[close],
        metrics_port=settings.metrics_port,
    )
