"""Durable enrichment jobs: idempotent start, progress on the stream, the caller's jobs only,
retries of transient failures, a failure named for the user, and a worker killed mid-job."""

from __future__ import annotations

import asyncio
import os
import signal
import threading

import asyncpg
import grpc
import pytest

from deploy.local.ephemeral import Mesh
from deploy.local.ephemeral import _wait_serving as wait_serving
from deploy.local.infra import free_port
from openhr.enrichment.v1 import enrichment_pb2
from tests.enrichment.jobs_client import create_profile, finished, jobs_stub, new_login, start_github, watch
from tests.support.github_api import Repo, sample_repos
from tests.users import new_user


@pytest.fixture(scope="module")
async def stub(mesh: Mesh):
    async with grpc.aio.insecure_channel(mesh.target("enrichment")) as channel:
        yield jobs_stub(channel)


@pytest.fixture
def github(oauth_provider):
    return oauth_provider.github_api



async def test_a_retried_start_returns_the_first_job(mesh: Mesh, stub, github) -> None:
    user, login = new_user(mesh), new_login()
    github.account(login, sample_repos(2))
    first = await start_github(stub, user, login, request_id="import-1")
    again = await start_github(stub, user, login, request_id="import-1")
    other = await start_github(stub, user, login, request_id="import-2")
    assert again.job_id == first.job_id
    assert other.job_id != first.job_id
    assert (await finished(stub, user, first.job_id)).state == enrichment_pb2.JOB_STATE_SUCCEEDED
    listed = await stub.ListEnrichmentJobs(enrichment_pb2.ListEnrichmentJobsRequest(), metadata=user.metadata)
    assert sorted(j.job_id for j in listed.jobs) == sorted([first.job_id, other.job_id])


async def test_the_stream_shows_progress_until_the_job_ends(mesh: Mesh, stub, github) -> None:
    user, login = new_user(mesh), new_login()
    account = github.account(login, sample_repos(6), gate=threading.Event())
    job = await start_github(stub, user, login)
    assert job.state == enrichment_pb2.JOB_STATE_QUEUED
    watching = asyncio.create_task(watch(stub, user, job.job_id))
    await asyncio.to_thread(account.entered.wait, 60)  # the worker is listing the repositories
    account.gate.set()
    seen = await watching
    assert seen[-1].state == enrichment_pb2.JOB_STATE_SUCCEEDED
    assert seen[-1].progress_percent == 100
    running = [j for j in seen if j.state == enrichment_pb2.JOB_STATE_RUNNING]
    assert running, "the stream showed no running state"
    assert [j.progress_percent for j in seen] == sorted(j.progress_percent for j in seen)
    assert any(j.stage.startswith("Reading repositories") for j in running)
    assert seen[-1].skills and all(s.suggestion_id for s in seen[-1].skills)


async def test_a_user_sees_only_their_own_jobs(mesh: Mesh, stub, github) -> None:
    owner, stranger, login = new_user(mesh), new_user(mesh), new_login()
    github.account(login, sample_repos(1))
    job = await start_github(stub, owner, login)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.GetEnrichmentJob(
            enrichment_pb2.GetEnrichmentJobRequest(job_id=job.job_id), metadata=stranger.metadata
        )
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as watched:
        await watch(stub, stranger, job.job_id)
    assert watched.value.code() == grpc.StatusCode.NOT_FOUND
    listed = await stub.ListEnrichmentJobs(enrichment_pb2.ListEnrichmentJobsRequest(), metadata=stranger.metadata)
    assert list(listed.jobs) == []
    await finished(stub, owner, job.job_id)


async def test_jobs_page_newest_first(mesh: Mesh, stub, github) -> None:
    user, login = new_user(mesh), new_login()
    github.account(login, [])
    ids = [(await start_github(stub, user, login)).job_id for _ in range(3)]
    first = await stub.ListEnrichmentJobs(enrichment_pb2.ListEnrichmentJobsRequest(page_size=2), metadata=user.metadata)
    second = await stub.ListEnrichmentJobs(
        enrichment_pb2.ListEnrichmentJobsRequest(page_size=2, page_token=first.next_page_token), metadata=user.metadata
    )
    assert [j.job_id for j in [*first.jobs, *second.jobs]] == ids[::-1]
    assert second.next_page_token == ""
    for job_id in ids:
        await finished(stub, user, job_id)


async def test_a_transient_github_failure_is_retried(mesh: Mesh, stub, github) -> None:
    user, login = new_user(mesh), new_login()
    github.account(login, sample_repos(2))
    github.fail(login, times=4, status=502)  # more than the client's own retries of one request
    job = await finished(stub, user, (await start_github(stub, user, login)).job_id)
    assert job.state == enrichment_pb2.JOB_STATE_SUCCEEDED
    assert job.attempts == 2


async def test_an_unknown_account_fails_with_a_reason_and_a_message(mesh: Mesh, stub) -> None:
    user, login = new_user(mesh), new_login("nobody")
    job = await finished(stub, user, (await start_github(stub, user, login)).job_id)
    assert job.state == enrichment_pb2.JOB_STATE_FAILED
    assert job.failure_reason == "github_user_not_found"
    assert login in job.error_message
    assert job.attempts == 1


async def test_the_login_defaults_to_the_profile_and_bad_input_is_refused(mesh: Mesh, rest, stub, github) -> None:
    user, login = new_user(mesh), new_login()
    github.account(login, sample_repos(1))
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await start_github(stub, user, "")
    assert missing.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "github_username" in missing.value.details()
    await create_profile(rest, user, github=login)
    job = await start_github(stub, user, "")
    assert job.github_username == login
    for fields in (
        {"kind": enrichment_pb2.JOB_KIND_GITHUB, "github_username": "-bad-"},
        {"kind": enrichment_pb2.JOB_KIND_APPLY},
        {"kind": enrichment_pb2.JOB_KIND_UNSPECIFIED},
        {"kind": enrichment_pb2.JOB_KIND_GITHUB, "github_username": login, "request_id": "x" * 101},
    ):
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await stub.CreateEnrichmentJob(enrichment_pb2.CreateEnrichmentJobRequest(**fields), metadata=user.metadata)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT, fields
    await finished(stub, user, job.job_id)


async def _lease_owner(mesh: Mesh, job_id: str) -> str | None:
    connection = await asyncpg.connect(mesh.config.effective_database_url)
    try:
        return await connection.fetchval("SELECT lease_owner FROM enrichment.jobs WHERE job_id = $1", job_id)
    finally:
        await connection.close()


async def test_a_worker_killed_mid_job_leaves_it_to_another_and_it_runs_once(
    mesh: Mesh, stub, github, oauth_provider
) -> None:
    """A second enrichment process joins; whichever worker holds the job is killed (SIGKILL: no
    clean release) while GitHub holds its request; the survivor takes the job over once the lease
    expires, and the job's suggestions exist once. Then both workers share a batch of jobs and
    each runs once (GitHub sees each account's repositories listed once)."""
    spare = "enrichment-spare"
    port, metrics = free_port(), free_port()
    mesh.start_process(
        spare,
        mesh.config.commands()["enrichment"],
        env={"ENRICHMENT_PORT": str(port), "ENRICHMENT_METRICS_PORT": str(metrics)},
    )
    try:
        user, login = new_user(mesh), new_login()
        account = github.account(login, [Repo("solo", language="Go", languages={"Go": 5000})], gate=threading.Event())
        job = await start_github(stub, user, login)
        await asyncio.to_thread(account.entered.wait, 60)
        owner = await _lease_owner(mesh, job.job_id)
        pid = int(owner.split(":")[1])
        victim = next(name for name, p in mesh.processes.items() if p.pid == pid)
        os.kill(pid, signal.SIGKILL)
        await asyncio.to_thread(mesh.processes.pop(victim).wait)
        if victim == "enrichment":  # the suite's own: back on its port for the rest of the session
            mesh.start_process("enrichment", mesh.config.commands()["enrichment"])
            await asyncio.to_thread(wait_serving, mesh, "enrichment")
        account.entered.clear()
        await asyncio.to_thread(account.entered.wait, 60)  # a surviving worker asks GitHub again
        account.gate.set()
        done = await finished(stub, user, job.job_id)
        assert done.state == enrichment_pb2.JOB_STATE_SUCCEEDED
        assert done.attempts == 2
        assert await _lease_owner(mesh, job.job_id) is None
        suggestions = await stub.ListEnrichmentSuggestions(
            enrichment_pb2.ListEnrichmentSuggestionsRequest(), metadata=user.metadata
        )
        assert [s.name for s in suggestions.suggestions] == ["Go"]

        logins = [new_login("batch") for _ in range(8)]
        for each in logins:
            github.account(each, [Repo("one", language="Rust", languages={"Rust": 900})])
        jobs = [await start_github(stub, user, each) for each in logins]
        ended = await asyncio.gather(*(finished(stub, user, j.job_id) for j in jobs))
        assert all(j.state == enrichment_pb2.JOB_STATE_SUCCEEDED and j.attempts == 1 for j in ended)
        assert [github.requests[f"/users/{each}/repos"] for each in logins] == [1] * len(logins)
    finally:
        if spare in mesh.processes:
            mesh.stop_process(spare)

