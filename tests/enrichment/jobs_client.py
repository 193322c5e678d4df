"""Helpers of the enrichment job suites: gRPC stubs straight to the enrichment service, a
profile for a fresh user, and the end of a job awaited on its WatchEnrichmentJob stream (the
service pushes every change: nothing polls)."""

from __future__ import annotations

import uuid

import grpc

from openhr.enrichment.v1 import enrichment_pb2, enrichment_pb2_grpc
from tests.users import User

DONE = (enrichment_pb2.JOB_STATE_SUCCEEDED, enrichment_pb2.JOB_STATE_FAILED)
WATCH_TIMEOUT = 120


def jobs_stub(channel: grpc.aio.Channel) -> enrichment_pb2_grpc.EnrichmentServiceStub:
    return enrichment_pb2_grpc.EnrichmentServiceStub(channel)


async def create_profile(rest, user: User, github: str = "") -> dict:
    body = {"displayName": "Jo Importer", "links": {"githubUsername": github}} if github else {"displayName": "Jo"}
    response = await rest.post("/v1/profiles", json=body, headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()["profile"]


async def start(stub, user: User, **fields) -> enrichment_pb2.EnrichmentJob:
    response = await stub.CreateEnrichmentJob(
        enrichment_pb2.CreateEnrichmentJobRequest(**fields), metadata=user.metadata, timeout=30
    )
    return response.job


async def start_github(stub, user: User, login: str, request_id: str = "") -> enrichment_pb2.EnrichmentJob:
    return await start(stub, user, kind=enrichment_pb2.JOB_KIND_GITHUB, github_username=login, request_id=request_id)


async def watch(stub, user: User, job_id: str) -> list[enrichment_pb2.EnrichmentJob]:
    """Every state the stream showed, until the job ended (heartbeats left out)."""
    seen = []
    call = stub.WatchEnrichmentJob(
        enrichment_pb2.WatchEnrichmentJobRequest(job_id=job_id), metadata=user.metadata, timeout=WATCH_TIMEOUT
    )
    async for message in call:
        if message.HasField("job"):
            seen.append(message.job)
    assert seen and seen[-1].state in DONE, seen[-1:] or "no job"
    return seen


async def finished(stub, user: User, job_id: str) -> enrichment_pb2.EnrichmentJob:
    return (await watch(stub, user, job_id))[-1]


def new_login(prefix: str = "dev") -> str:
    """A GitHub login no other test uses (the stand-in is shared by the session)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
