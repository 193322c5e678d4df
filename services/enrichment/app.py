"""Wiring of the enrichment service: settings, database, Redis, servicers, background work."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import grpc
from pydantic import Field, field_validator

from openhr.common.v1 import user_data_pb2, user_data_pb2_grpc
from openhr.enrichment.v1 import enrichment_pb2, enrichment_pb2_grpc
from services.common.cache import connect_redis, ping
from services.common.consumer import EventConsumer
from services.common.db import Database
from services.common.migrations import app_role
from services.common.outbox import OutboxRelay
from services.common.server import ServiceSpec
from services.common.settings import DATA_DIR, ServiceSettings
from services.enrichment import store
from services.enrichment.api import MAX_EMBED_TEXTS, EnrichmentInternalApi, SkillsApi, UserDataApi
from services.enrichment.embedder import Embedder
from services.enrichment.models import DEFAULT_MODEL, Encoder, spec_for
from services.enrichment.profile_embeddings import ProfileEmbeddings
from services.enrichment.skill_matching import SkillNormalizer
from services.enrichment.taxonomy import default_taxonomy


class EnrichmentSettings(ServiceSettings):
    port: int = Field(50064, validation_alias="ENRICHMENT_PORT")
    metrics_port: int = Field(9464, validation_alias="ENRICHMENT_METRICS_PORT")
    # The embedding model (services/enrichment/models.py). Changing it re-embeds every profile
    # in the background; the old model's vectors stay until the new ones exist.
    model: str = Field(DEFAULT_MODEL, validation_alias="ENRICHMENT_MODEL")
    # Threads running the model at once (each takes a whole batch), and ONNX Runtime threads per run.
    embed_workers: int = Field(1, ge=1, validation_alias="ENRICHMENT_EMBED_WORKERS")
    embed_threads: int = Field(os.cpu_count() or 1, ge=1, validation_alias="ENRICHMENT_EMBED_THREADS")
    embed_cache_size: int = Field(10_000, ge=0, validation_alias="ENRICHMENT_EMBED_CACHE_SIZE")
    # Where the exported ONNX graphs and the taxonomy's vectors are kept between starts.
    model_cache: Path = Field(DATA_DIR / "models", validation_alias="ENRICHMENT_MODEL_CACHE")
    # Seconds between passes looking for profiles without vectors of the configured model.
    reembed_interval: float = Field(30.0, gt=0, validation_alias="ENRICHMENT_REEMBED_INTERVAL")

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        spec_for(value)
        return value


def _full_name(module, service: str) -> str:
    return module.DESCRIPTOR.services_by_name[service].full_name


def build(settings: EnrichmentSettings) -> ServiceSpec:
    db = Database(
        settings.database_url,
        app_role=app_role(store.SCHEMA),
        pool_size=settings.db_pool_size,
        application_name="enrichment",
    )
    redis = connect_redis(settings.redis_url)
    relay = OutboxRelay(db, redis, store.SCHEMA)
    taxonomy = default_taxonomy()
    model_cache = settings.model_cache
    embedder = Embedder(
        spec_for(settings.model),
        lambda: Encoder(settings.model, model_cache, settings.embed_threads),
        workers=settings.embed_workers,
        max_batch=MAX_EMBED_TEXTS,
        cache_size=settings.embed_cache_size,
    )
    normalizer = SkillNormalizer(taxonomy, embedder, model_cache)
    profiles = ProfileEmbeddings(db, embedder, backfill_interval=settings.reembed_interval)
    consumer = EventConsumer(
        redis, "profile", "enrichment", f"enrichment-{socket.gethostname()}-{os.getpid()}", profiles.on_profile_event
    )

    def register(server: grpc.aio.Server) -> list[str]:
        enrichment_pb2_grpc.add_SkillsServiceServicer_to_server(SkillsApi(taxonomy, normalizer), server)
        enrichment_pb2_grpc.add_EnrichmentInternalServiceServicer_to_server(
            EnrichmentInternalApi(normalizer, embedder), server
        )
        user_data_pb2_grpc.add_UserDataServiceServicer_to_server(UserDataApi(db), server)
        return [
            _full_name(enrichment_pb2, "SkillsService"),
            _full_name(enrichment_pb2, "EnrichmentInternalService"),
            _full_name(user_data_pb2, "UserDataService"),
        ]

    async def close() -> None:
        await redis.aclose()
        await db.close()

    return ServiceSpec(
        name="enrichment",
        port=settings.port,
        register=register,
        # NOT_SERVING until the model is loaded (seconds, off the loop). Until the taxonomy's
        # vectors are loaded too, NormalizeSkill answers from names, aliases and typos only.
        checks={"postgres": db.ping, "redis": lambda: ping(redis), "embedding_model": embedder.check},
        background=[embedder.run, normalizer.load, relay.run, consumer.run, profiles.run_backfill],
        cleanup=[close],
        metrics_port=settings.metrics_port,
    )
