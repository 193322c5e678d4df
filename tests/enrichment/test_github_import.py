"""A GitHub import against the GitHub stand-in: what it reads and suggests, the client's manners
(pagination, ETags, rate limits), and the review of its suggestions onto the profile."""

from __future__ import annotations

import grpc
import pytest
from redis.asyncio import Redis

from deploy.local.ephemeral import Mesh
from openhr.enrichment.v1 import enrichment_pb2
from openhr.profile.v1 import profile_pb2, profile_pb2_grpc
from services.common.circuit import CircuitBreaker, State
from services.common.service_auth import ServiceTokenIssuer
from services.enrichment.github import ETagCache, GitHubClient, GitHubNotFound, GitHubRateLimited, GitHubUnavailable
from tests.enrichment.jobs_client import create_profile, finished, jobs_stub, new_login, start_github
from tests.support.github_api import Repo, sample_repos
from tests.users import new_user

S = enrichment_pb2


@pytest.fixture(scope="module")
async def stub(mesh: Mesh):
    async with grpc.aio.insecure_channel(mesh.target("enrichment")) as channel:
        yield jobs_stub(channel)


@pytest.fixture
def github(oauth_provider):
    return oauth_provider.github_api


@pytest.fixture
async def client(oauth_provider, mesh: Mesh):
    redis = Redis.from_url(mesh.redis.url)
    client = GitHubClient(
        f"{oauth_provider.url}/github-api", cache=ETagCache(redis, "test"), backoff=0.01, max_wait=3.0
    )
    yield client
    await client.aclose()
    await redis.aclose()


async def _suggestions(stub, user, **fields) -> list:
    request = S.ListEnrichmentSuggestionsRequest(**fields)
    response = await stub.ListEnrichmentSuggestions(request, metadata=user.metadata)
    return list(response.suggestions)


async def test_an_import_ranks_repositories_and_suggests_skills_with_evidence(mesh: Mesh, stub, github) -> None:
    user, login = new_user(mesh), new_login()
    repos = sample_repos(24)
    repos.append(Repo("forked", stars=10_000, fork=True, language="Java", languages={"Java": 10**6}))
    github.account(login, repos)
    job = await finished(stub, user, (await start_github(stub, user, login)).job_id)
    assert job.state == S.JOB_STATE_SUCCEEDED, job.error_message
    assert job.github.login == login
    assert job.github.repository_count == 24  # the fork is not theirs
    analysed = [r.name for r in job.github.repositories]
    assert len(analysed) == 20
    assert analysed[0] == "project-00"  # most stars, forks and the newest push
    assert "forked" not in analysed
    shares = {row.language: row for row in job.github.languages}
    assert "Java" not in shares
    assert abs(sum(row.share for row in job.github.languages) - 1) < 1e-6

    found = {s.name: s for s in job.skills}
    for expected in ("Go", "Python", "TypeScript", "Rust", "React", "Kubernetes", "FastAPI", "Django"):
        assert expected in found, (expected, sorted(found))
    go = found["Go"]
    assert go.evidence.startswith(f"Go in 5 repositories, {shares['Go'].share * 100:.0f} % of bytes")
    assert 0.4 <= go.confidence <= 1 and 1 <= go.proficiency <= 5
    assert "dependency in" in found["Django"].evidence and "pyproject.toml" in found["Django"].evidence
    assert "topic of" in found["Kubernetes"].evidence
    suggestions = await _suggestions(stub, user)
    assert sorted(s.suggestion_id for s in suggestions) == sorted(s.suggestion_id for s in job.skills)
    assert all(s.state == S.SUGGESTION_STATE_PENDING and s.source == S.JOB_KIND_GITHUB for s in suggestions)


async def test_the_client_pages_through_link_headers(github, client) -> None:
    login = new_login()
    github.account(login, [Repo(f"r{i:03d}") for i in range(230)])
    repos = await client.paginate(f"users/{login}/repos")
    assert sorted(r["name"] for r in repos) == [f"r{i:03d}" for i in range(230)]
    assert github.requests[f"/users/{login}/repos"] == 3


async def test_the_client_revalidates_with_etags(github, client) -> None:
    login = new_login()
    github.account(login, [Repo("a", languages={"Go": 10})])
    first = await client.get(f"repos/{login}/a/languages")
    before = github.not_modified
    again = await client.get(f"repos/{login}/a/languages")
    assert again == first == {"Go": 10}
    assert github.not_modified == before + 1


async def test_the_client_waits_out_rate_limits_and_retries_failures(github, client) -> None:
    login = new_login()
    github.account(login, [])
    github.secondary_limit(login, times=1, retry_after=1)
    github.fail(login, times=2, status=503)
    assert (await client.get(f"users/{login}"))["login"] == login
    github.primary_limit(login, reset_in=1)
    assert (await client.get(f"users/{login}/repos")) == []
    with pytest.raises(GitHubNotFound):
        await client.get(f"users/{new_login('nobody')}")


async def test_the_circuit_opens_after_failures_and_spares_github(github, oauth_provider) -> None:
    login = new_login()
    github.account(login, [])
    github.fail(login, times=4, status=502)
    breaker = CircuitBreaker("github-test", failures=3, reset_after=60)
    client = GitHubClient(f"{oauth_provider.url}/github-api", backoff=0.01, retries=3, breaker=breaker)
    try:
        with pytest.raises(GitHubUnavailable):
            await client.get(f"users/{login}")
        assert github.requests_for(login) == 3  # the fourth attempt never left: the circuit is open
        assert breaker.state == State.OPEN
    finally:
        await client.aclose()


async def test_a_long_rate_limit_is_left_to_a_later_run(github, oauth_provider) -> None:
    login = new_login()
    github.account(login, [])
    github.primary_limit(login, reset_in=30)
    client = GitHubClient(f"{oauth_provider.url}/github-api", max_wait=1.0)
    try:
        with pytest.raises(GitHubRateLimited) as limited:
            await client.get(f"users/{login}")
        assert 25 <= limited.value.retry_after <= 32
    finally:
        await client.aclose()


async def _merge_as_service(mesh: Mesh, user_id: str, skills: list[tuple[str, int, int]]):
    issuer = ServiceTokenIssuer.from_dir(mesh.config.data_dir / "service-keys", "enrichment")
    async with grpc.aio.insecure_channel(mesh.target("profile")) as channel:
        return await profile_pb2_grpc.ProfileInternalServiceStub(channel).MergeEnrichedSkills(
            profile_pb2.MergeEnrichedSkillsRequest(
                user_id=user_id,
                skills=[profile_pb2.EnrichedSkill(name=n, proficiency=p, source=s) for n, p, s in skills],
            ),
            metadata=(("authorization", f"Bearer {issuer.token()}"),),
        )


async def test_accepted_skills_land_on_the_profile_and_a_rerun_adds_no_duplicates(
    mesh: Mesh, rest, stub, github
) -> None:
    user, login = new_user(mesh), new_login()
    profile = await create_profile(rest, user)
    base = f"/v1/profiles/{profile['profileId']}"
    manual = await rest.post(f"{base}/skills", json={"name": "Go", "proficiency": 1}, headers=user.headers)
    assert manual.status_code == 200
    github.account(login, sample_repos(8))
    job = await finished(stub, user, (await start_github(stub, user, login)).job_id)
    by_name = {s.name: s for s in await _suggestions(stub, user)}
    accept = [by_name[n].suggestion_id for n in ("Go", "Python", "React")]
    reject = [by_name["Rust"].suggestion_id]

    rejected = await stub.RejectEnrichmentSuggestions(
        S.RejectEnrichmentSuggestionsRequest(suggestion_ids=reject), metadata=user.metadata
    )
    assert [s.state for s in rejected.suggestions] == [S.SUGGESTION_STATE_REJECTED]
    accepted = await stub.AcceptEnrichmentSuggestions(
        S.AcceptEnrichmentSuggestionsRequest(suggestion_ids=accept), metadata=user.metadata
    )
    assert {s.state for s in accepted.suggestions} == {S.SUGGESTION_STATE_ACCEPTED}
    applied = await finished(stub, user, accepted.job.job_id)
    assert applied.kind == S.JOB_KIND_APPLY and applied.state == S.JOB_STATE_SUCCEEDED, applied.error_message

    skills = {s["name"]: s for s in (await rest.get(f"{base}/skills", headers=user.headers)).json()["skills"]}
    assert set(skills) == {"Go", "Python", "React"}
    assert skills["Go"]["source"] == "SKILL_SOURCE_MANUAL" and skills["Go"]["proficiency"] == 1
    assert skills["Python"]["source"] == "SKILL_SOURCE_GITHUB"
    states = {s.name: s.state for s in await _suggestions(stub, user)}
    assert states["Python"] == states["Go"] == S.SUGGESTION_STATE_APPLIED
    assert states["Rust"] == S.SUGGESTION_STATE_REJECTED

    rerun = await finished(stub, user, (await start_github(stub, user, login)).job_id)
    assert rerun.state == S.JOB_STATE_SUCCEEDED
    after = {s.name: s for s in await _suggestions(stub, user)}
    assert sorted(after) == sorted(by_name)
    assert after["Python"].suggestion_id == by_name["Python"].suggestion_id
    assert after["Python"].job_id == rerun.job_id != job.job_id
    assert after["Rust"].state == S.SUGGESTION_STATE_REJECTED
    again = await stub.AcceptEnrichmentSuggestions(
        S.AcceptEnrichmentSuggestionsRequest(suggestion_ids=accept), metadata=user.metadata
    )
    if again.job.job_id:
        await finished(stub, user, again.job.job_id)
    listed = (await rest.get(f"{base}/skills", headers=user.headers)).json()["skills"]
    assert sorted(s["name"] for s in listed) == ["Go", "Python", "React"]


async def test_a_merge_respects_the_100_skill_limit(mesh: Mesh, rest, stub, github) -> None:
    user, login = new_user(mesh), new_login()
    await create_profile(rest, user)
    filler = [(f"Custom skill {i}", 2, profile_pb2.SKILL_SOURCE_RESUME) for i in range(99)]
    response = await _merge_as_service(mesh, user.user_id, filler)
    assert len(response.skills) == 99
    github.account(login, sample_repos(4))
    await finished(stub, user, (await start_github(stub, user, login)).job_id)
    by_name = {s.name: s for s in await _suggestions(stub, user)}
    accepted = await stub.AcceptEnrichmentSuggestions(
        S.AcceptEnrichmentSuggestionsRequest(suggestion_ids=[by_name[n].suggestion_id for n in ("Go", "Python")]),
        metadata=user.metadata,
    )
    await finished(stub, user, accepted.job.job_id)
    states = sorted(s.state for s in await _suggestions(stub, user) if s.name in ("Go", "Python"))
    assert states == [S.SUGGESTION_STATE_APPLIED, S.SUGGESTION_STATE_NOT_APPLIED]
    note = next(s.note for s in await _suggestions(stub, user) if s.state == S.SUGGESTION_STATE_NOT_APPLIED)
    assert "100" in note
    over = await _merge_as_service(mesh, user.user_id, [("Yet another", 3, profile_pb2.SKILL_SOURCE_GITHUB)])
    assert [s.name for s in over.not_added] == ["Yet another"]


async def test_review_of_unknown_or_foreign_suggestions_is_refused(mesh: Mesh, stub, github) -> None:
    owner, stranger, login = new_user(mesh), new_user(mesh), new_login()
    github.account(login, sample_repos(1))
    await finished(stub, owner, (await start_github(stub, owner, login)).job_id)
    theirs = (await _suggestions(stub, owner))[0].suggestion_id
    for ids, code in (([theirs], grpc.StatusCode.NOT_FOUND), ([], grpc.StatusCode.INVALID_ARGUMENT), (["x"], None)):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.AcceptEnrichmentSuggestions(
                S.AcceptEnrichmentSuggestionsRequest(suggestion_ids=ids), metadata=stranger.metadata
            )
        assert refused.value.code() == (code or grpc.StatusCode.INVALID_ARGUMENT)
    assert (await _suggestions(stub, owner))[0].state == S.SUGGESTION_STATE_PENDING
