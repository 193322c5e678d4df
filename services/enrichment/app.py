"""Wiring of the enrichment service: settings, database, Redis, the LLM, peers, servicers, background work."""

from __future__ import annotations

import grpc
from pydantic import Field, SecretStr

from openhr.enrichment.v1 import enrichment_pb2, enrichment_pb2_grpc
from openhr.profile.v1 import profile_pb2_grpc
from services.common.cache import connect_redis, ping
from services.common.circuit import CircuitBreaker
from services.common.clients import channel
from services.common.db import Database
from services.common.outbox import OutboxRelay
from services.common.retention import EventRetention
from services.common.server import ServiceSpec, service_name
from services.common.settings import ServiceSettings
from services.enrichment import handlers, store
from services.enrichment.api import EnrichmentApi, EnrichmentInternalApi, SkillsApi
from services.enrichment.github import ETagCache, GitHubClient
from services.enrichment.job_events import JobNotifications
from services.enrichment.jobs import JobRunner, JobSettings
from services.enrichment.llm import Llm, LlmSettings
from services.enrichment.narratives import TextWriter
from services.enrichment.profiles import ProfileReader
from services.enrichment.taxonomy import default_taxonomy


class EnrichmentSettings(ServiceSettings, LlmSettings):
    port: int = Field(50064, validation_alias="ENRICHMENT_PORT")
    metrics_port: int = Field(9464, validation_alias="ENRICHMENT_METRICS_PORT")
    profile_addr: str = Field("127.0.0.1:50061", validation_alias="PROFILE_ADDR")
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


def build(settings: EnrichmentSettings) -> ServiceSpec:
    db = Database.for_service(settings, store.SCHEMA)
    redis = connect_redis(settings.redis_url)
    relay = OutboxRelay(db, redis, store.SCHEMA)
    taxonomy = default_taxonomy()
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
        enrichment_pb2_grpc.add_SkillsServiceServicer_to_server(SkillsApi(taxonomy), server)
        enrichment_pb2_grpc.add_EnrichmentInternalServiceServicer_to_server(
            EnrichmentInternalApi(taxonomy, writer), server
        )
        enrichment_pb2_grpc.add_EnrichmentServiceServicer_to_server(
            EnrichmentApi(db, runner, notifications, ProfileReader(profile), writer, settings.stream_heartbeat),
            server,
        )
        return [
            service_name(enrichment_pb2, "SkillsService"),
            service_name(enrichment_pb2, "EnrichmentInternalService"),
            service_name(enrichment_pb2, "EnrichmentService"),
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
        checks={"postgres": db.ping, "redis": lambda: ping(redis)},
        background=[
            relay.run,
            runner.run,
            notifications.run,
            EventRetention(db, store.SCHEMA, settings.event_retention).run,
        ],
        cleanup=[close],
        metrics_port=settings.metrics_port,
    )
