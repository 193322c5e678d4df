"""Wiring of the enrichment service: settings, database, Redis, the embedding model, the LLM,
peers, servicers, background work (jobs, profile embeddings, the outbox relay)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import grpc
from pydantic import Field, SecretStr, field_validator

from openhr.common.v1 import user_data_pb2, user_data_pb2_grpc
from openhr.enrichment.v1 import enrichment_pb2, enrichment_pb2_grpc
from openhr.profile.v1 import profile_pb2_grpc
from services.common.cache import connect_redis, ping
from services.common.circuit import CircuitBreaker
from services.common.clients import channel
from services.common.consumer import EventConsumer
from services.common.db import Database
from services.common.event_auth import EventSigner, EventVerifier
from services.common.outbox import OutboxRelay
from services.common.retention import EventRetention
from services.common.server import ServiceSpec, service_name
from services.common.settings import DATA_DIR, ServiceSettings
from services.common.user_data import UserDataApi
from services.enrichment import handlers, store
from services.enrichment.api import MAX_EMBED_TEXTS, EnrichmentApi, EnrichmentInternalApi, SkillsApi, export_user
from services.enrichment.embedder import Embedder
from services.enrichment.encoder import Encoder
from services.enrichment.github import ETagCache, GitHubClient
from services.enrichment.job_events import JobNotifications
from services.enrichment.jobs import JobRunner, JobSettings
from services.enrichment.llm import Llm, LlmSettings
from services.enrichment.models import DEFAULT_MODEL, spec_for
from services.enrichment.narratives import TextWriter
from services.enrichment.profile_embeddings import ProfileEmbeddings
from services.enrichment.profiles import ProfileReader
from services.enrichment.skill_matching import SkillNormalizer
from services.enrichment.taxonomy import default_taxonomy


class EnrichmentSettings(ServiceSettings, LlmSettings):
    port: int = Field(50064, validation_alias="ENRICHMENT_PORT")
    metrics_port: int = Field(9464, validation_alias="ENRICHMENT_METRICS_PORT")
    profile_addr: str = Field("127.0.0.1:50061", validation_alias="PROFILE_ADDR")
    # The embedding model (services/enrichment/models.py). Changing it re-embeds every profile
    # in the background; the old model's vectors stay until the new ones exist.
    model: str = Field(DEFAULT_MODEL, validation_alias="ENRICHMENT_MODEL")
    # Micro-batches encoded at once, and single-threaded model runs per micro-batch (its texts
    # split by length into that many chunks, run at once: one core each).
    embed_workers: int = Field(1, ge=1, validation_alias="ENRICHMENT_EMBED_WORKERS")
    embed_threads: int = Field(os.cpu_count() or 1, ge=1, validation_alias="ENRICHMENT_EMBED_THREADS")
    embed_cache_size: int = Field(10_000, ge=0, validation_alias="ENRICHMENT_EMBED_CACHE_SIZE")
    # Where the exported ONNX graphs and the taxonomy's vectors are kept between starts.
    model_cache: Path = Field(DATA_DIR / "models", validation_alias="ENRICHMENT_MODEL_CACHE")
    # Seconds between passes looking for profiles without vectors of the configured model.
    reembed_interval: float = Field(30.0, gt=0, validation_alias="ENRICHMENT_REEMBED_INTERVAL")
    # GitHub's REST API (the same variable identity reads) and an optional token for its higher
    # rate limit (public data only: no scope needed).
    github_api_url: str = Field("https://api.github.com", validation_alias="OPENHR_GITHUB_API_URL")
    github_token: SecretStr = Field(SecretStr(""), validation_alias="OPENHR_GITHUB_TOKEN")
    github_timeout: float = Field(10.0, validation_alias="OPENHR_GITHUB_TIMEOUT")
    # A rate-limit wait up to this many seconds is slept through; a longer one reschedules the job.
    github_max_wait: float = Field(10.0, validation_alias="OPENHR_GITHUB_MAX_WAIT")
    # Repositories an import analyses (the best ranked by stars, forks and recent activity).
    github_max_repositories: int = Field(20, ge=1, le=50, validation_alias="OPENHR_GITHUB_MAX_REPOSITORIES")
    job_concurrency: int = Field(2, ge=1, validation_alias="OPENHR_JOB_CONCURRENCY")
    job_lease_seconds: float = Field(30.0, gt=0, validation_alias="OPENHR_JOB_LEASE_SECONDS")
    job_poll_seconds: float = Field(1.0, gt=0, validation_alias="OPENHR_JOB_POLL_SECONDS")
    job_max_attempts: int = Field(4, ge=1, validation_alias="OPENHR_JOB_MAX_ATTEMPTS")
    job_retry_base_seconds: float = Field(5.0, gt=0, validation_alias="OPENHR_JOB_RETRY_BASE_SECONDS")

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        spec_for(value)
        return value


def build(settings: EnrichmentSettings) -> ServiceSpec:
    db = Database.for_service(settings, store.SCHEMA)
    redis = connect_redis(settings.redis_url)
    keys = Path(settings.service_keys)
    relay = OutboxRelay(db, redis, store.SCHEMA, EventSigner(keys, "enrichment"))
    taxonomy = default_taxonomy()
    # Embeddings: one model per replica, run off the event loop in micro-batches.
    embedder = Embedder(
        spec_for(settings.model),
        lambda: Encoder(settings.model, settings.model_cache, settings.embed_threads),
        workers=settings.embed_workers,
        max_batch=MAX_EMBED_TEXTS,
        cache_size=settings.embed_cache_size,
    )
    normalizer = SkillNormalizer(taxonomy, embedder, settings.model_cache)
    profiles = ProfileEmbeddings(db, embedder, backfill_interval=settings.reembed_interval)
    consumer = EventConsumer(
        redis,
        "profile",
        "enrichment",
        f"enrichment-{socket.gethostname()}-{os.getpid()}",
        profiles.on_profile_event,
        verifier=EventVerifier.from_dir(keys),
    )
    # Texts: the LLM caches its answers in the same Redis; without it (or the LLM) a template writes them.
    llm = Llm(settings, redis)
    writer = TextWriter(llm)
    # The profile service: the caller's profile (reads, which may be retried) and, for jobs that
    # apply accepted suggestions, MergeEnrichedSkills.
    profile = channel(settings.profile_addr, idempotent_services=["openhr.profile.v1.ProfileService"])
    github = GitHubClient(
        settings.github_api_url,
        token=settings.github_token.get_secret_value(),
        cache=ETagCache(redis, "token" if settings.github_token.get_secret_value() else "anonymous"),
        timeout=settings.github_timeout,
        max_wait=settings.github_max_wait,
        breaker=CircuitBreaker("github"),
    )
    runner = JobRunner(
        db,
        {
            "github": handlers.github_handler(github, taxonomy, settings.github_max_repositories),
            "resume": handlers.resume_handler(taxonomy),
            "apply": handlers.apply_handler(db, lambda: profile_pb2_grpc.ProfileInternalServiceStub(profile)),
        },
        JobSettings(
            concurrency=settings.job_concurrency,
            lease_seconds=settings.job_lease_seconds,
            poll_seconds=settings.job_poll_seconds,
            max_attempts=settings.job_max_attempts,
            retry_base_seconds=settings.job_retry_base_seconds,
        ),
    )
    notifications = JobNotifications(settings.database_url)

    def register(server: grpc.aio.Server) -> list[str]:
        enrichment_pb2_grpc.add_SkillsServiceServicer_to_server(SkillsApi(taxonomy, normalizer), server)
        enrichment_pb2_grpc.add_EnrichmentInternalServiceServicer_to_server(
            EnrichmentInternalApi(db, normalizer, embedder, writer), server
        )
        enrichment_pb2_grpc.add_EnrichmentServiceServicer_to_server(
            EnrichmentApi(db, runner, notifications, ProfileReader(profile), writer, settings.stream_heartbeat),
            server,
        )
        user_data_pb2_grpc.add_UserDataServiceServicer_to_server(
            UserDataApi("enrichment", db, export_user, store.delete_user), server
        )
        return [
            service_name(enrichment_pb2, "SkillsService"),
            service_name(enrichment_pb2, "EnrichmentInternalService"),
            service_name(enrichment_pb2, "EnrichmentService"),
            service_name(user_data_pb2, "UserDataService"),
        ]

    async def close() -> None:
        await github.aclose()
        await llm.close()
        await profile.close()
        await redis.aclose()
        await db.close()

    return ServiceSpec(
        name="enrichment",
        port=settings.port,
        register=register,
        # NOT_SERVING until the model is loaded (seconds, off the loop). Until the taxonomy's
        # vectors are loaded too, NormalizeSkill answers from names, aliases and typos only.
        checks={"postgres": db.ping, "redis": lambda: ping(redis), "embedding_model": embedder.check},
        background=[
            embedder.run,
            normalizer.load,
            relay.run,
            consumer.run,
            profiles.run_backfill,
            runner.run,
            notifications.run,
            EventRetention(db, store.SCHEMA, settings.event_retention).run,
        ],
        cleanup=[close],
        metrics_port=settings.metrics_port,
    )
