"""Wiring of the matching service: settings, database, Redis, peers, servicers, background work."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Literal

import grpc
from pydantic import Field

from openhr.common.v1 import user_data_pb2, user_data_pb2_grpc
from openhr.enrichment.v1 import enrichment_pb2_grpc
from openhr.events.v1 import events_pb2
from openhr.matching.v1 import matching_pb2, matching_pb2_grpc
from openhr.profile.v1 import profile_pb2_grpc
from services.common.cache import connect_redis, ping
from services.common.clients import channel
from services.common.consumer import EventConsumer
from services.common.db import Database
from services.common.event_auth import EventSigner, EventVerifier
from services.common.fanout import StreamFanout
from services.common.outbox import OutboxRelay
from services.common.retention import EventRetention
from services.common.server import ServiceSpec, service_name
from services.common.settings import ServiceSettings
from services.common.user_data import UserDataApi
from services.matching import store
from services.matching.api import MatchingApi, MatchingInternalApi
from services.matching.candidates import Ranker
from services.matching.decisions import Decisions
from services.matching.explain import Narrator
from services.matching.feed import EVERYONE, MatchFeed
from services.matching.index import FaissIndex, PgVectorIndex, VectorIndex
from services.matching.ranking import Weights
from services.matching.readmodel import FEED_TOPIC, ReadModel, announce
from services.matching.snapshots import Snapshots

# Topics whose events feed the read model (services/matching/readmodel.py).
CONSUMED_TOPICS = ("profile", "enrichment", "identity", "messaging")


class MatchingSettings(ServiceSettings):
    port: int = Field(50062, validation_alias="MATCHING_PORT")
    metrics_port: int = Field(9462, validation_alias="MATCHING_METRICS_PORT")
    profile_addr: str = Field("127.0.0.1:50061", validation_alias="PROFILE_ADDR")
    enrichment_addr: str = Field("127.0.0.1:50064", validation_alias="ENRICHMENT_ADDR")
    # Which index generates candidates: "pgvector" (HNSW in Postgres) or "faiss" (in process).
    index: Literal["pgvector", "faiss"] = Field("pgvector", validation_alias="MATCHING_INDEX")
    # Only vectors of this model are stored and compared; its size is fixed by the schema.
    embedding_model: str = Field("all-MiniLM-L6-v2", validation_alias="MATCHING_EMBEDDING_MODEL")
    weight_skill_fit: float = Field(0.4, validation_alias="MATCHING_WEIGHT_SKILL_FIT")
    weight_timezone: float = Field(0.2, validation_alias="MATCHING_WEIGHT_TIMEZONE")
    weight_equity: float = Field(0.2, validation_alias="MATCHING_WEIGHT_EQUITY")
    weight_stage: float = Field(0.2, validation_alias="MATCHING_WEIGHT_STAGE")
    # Nearest neighbours fetched per direction before ranking.
    pool_size: int = Field(100, validation_alias="MATCHING_POOL_SIZE")
    # Ranked candidates kept per ListMatches snapshot (what paging can reach), and for how long.
    snapshot_size: int = Field(100, validation_alias="MATCHING_SNAPSHOT_SIZE")
    snapshot_ttl: int = Field(900, validation_alias="MATCHING_SNAPSHOT_TTL")
    hnsw_ef_search: int = Field(100, validation_alias="MATCHING_HNSW_EF_SEARCH")
    # How far an iterative HNSW scan goes to find enough candidates that pass the filters (pgvector's
    # own default, 20,000, leaves narrow filters short at 100,000 profiles: bench/results/matching_findings.md).
    hnsw_max_scan_tuples: int = Field(100_000, validation_alias="MATCHING_HNSW_MAX_SCAN_TUPLES")
    # Candidate generation slower than this serves the last ranking, marked stale.
    search_timeout_ms: int = Field(2000, validation_alias="MATCHING_SEARCH_TIMEOUT_MS")
    # "enrichment": narratives from enrichment's GenerateMatchNarrative (LLM or its template);
    # "template": this service's template only.
    narratives: Literal["enrichment", "template"] = Field("enrichment", validation_alias="MATCHING_NARRATIVES")
    narrative_timeout: float = Field(5.0, validation_alias="MATCHING_NARRATIVE_TIMEOUT")


DIMENSIONS = {"all-MiniLM-L6-v2": 384}


def build(settings: MatchingSettings) -> ServiceSpec:
    if settings.embedding_model not in DIMENSIONS:
        raise ValueError(f"MATCHING_EMBEDDING_MODEL: no schema for {settings.embedding_model!r}")
    db = Database.for_service(settings, store.SCHEMA)
    redis = connect_redis(settings.redis_url)
    profile_channel = channel(settings.profile_addr)
    enrichment_channel = channel(settings.enrichment_addr)
    enrichment = enrichment_pb2_grpc.EnrichmentInternalServiceStub(enrichment_channel)
    weights = Weights(
        settings.weight_skill_fit, settings.weight_timezone, settings.weight_equity, settings.weight_stage
    ).normalized()
    index: VectorIndex = (
        FaissIndex(db, settings.embedding_model, DIMENSIONS[settings.embedding_model])
        if settings.index == "faiss"
        else PgVectorIndex(settings.embedding_model, settings.hnsw_ef_search, settings.hnsw_max_scan_tuples)
    )
    ranker = Ranker(
        db,
        index,
        model_id=settings.embedding_model,
        weights=weights,
        pool_size=settings.pool_size,
        search_timeout_ms=settings.search_timeout_ms,
    )
    read_model = ReadModel(
        db,
        model_id=settings.embedding_model,
        dimensions=DIMENSIONS[settings.embedding_model],
        profiles=profile_pb2_grpc.ProfileInternalServiceStub(profile_channel),
        enrichment=enrichment,
    )
    snapshots = Snapshots(redis, ttl_seconds=settings.snapshot_ttl)
    narrator = Narrator(redis, enrichment if settings.narratives == "enrichment" else None, settings.narrative_timeout)

    keys = Path(settings.service_keys)
    relay = OutboxRelay(db, redis, store.SCHEMA, EventSigner(keys, "matching"))
    verifier = EventVerifier.from_dir(keys)

    def on_feed_change(event: events_pb2.Event) -> None:
        change = event.match_feed_changed
        user_id = change.updated_user_id or change.removed_user_id
        if user_id:
            index.changed(user_id)

    changes = StreamFanout(
        redis, FEED_TOPIC, key=lambda _event: EVERYONE, listener=on_feed_change, verifier=verifier
    )
    match_feed = MatchFeed(db, ranker, changes, settings.stream_heartbeat)
    consumer_name = f"matching-{socket.gethostname()}-{os.getpid()}"
    consumers = [
        EventConsumer(redis, topic, "matching", consumer_name, read_model.on_event, verifier=verifier)
        for topic in CONSUMED_TOPICS
    ]

    async def erase(tx, user_id: str) -> dict[str, int]:
        """Everything about the user: read model, decisions, matches, blocks, cached rankings."""
        deleted = await store.delete_user(tx, user_id)
        await announce(tx, user_id, removed=True)
        await snapshots.forget(user_id)
        return deleted

    def register(server: grpc.aio.Server) -> list[str]:
        matching_pb2_grpc.add_MatchingServiceServicer_to_server(
            MatchingApi(db, ranker, Decisions(db, ranker), snapshots, narrator, match_feed, settings.snapshot_size),
            server,
        )
        matching_pb2_grpc.add_MatchingInternalServiceServicer_to_server(
            MatchingInternalApi(db, ranker, read_model, index.reload), server
        )
        user_data_pb2_grpc.add_UserDataServiceServicer_to_server(
            UserDataApi("matching", db, store.export_user, erase), server
        )
        return [
            service_name(matching_pb2, "MatchingService"),
            service_name(matching_pb2, "MatchingInternalService"),
            service_name(user_data_pb2, "UserDataService"),
        ]

    async def close() -> None:
        await profile_channel.close()
        await enrichment_channel.close()
        await redis.aclose()
        await db.close()

    return ServiceSpec(
        name="matching",
        port=settings.port,
        register=register,
        checks={"postgres": db.ping, "redis": lambda: ping(redis), "index": index.check},
        background=[
            relay.run,
            changes.run,
            index.run,
            EventRetention(db, store.SCHEMA, settings.event_retention).run,
            *(c.run for c in consumers),
        ],
        cleanup=[close],
        metrics_port=settings.metrics_port,
    )
