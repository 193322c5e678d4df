"""What each kind of job does (run by services/enrichment/jobs.py under the job owner's id):

- github: import the public data of a login and refresh the user's GitHub suggestions;
- resume: parse the uploaded PDF and refresh the résumé suggestions (the PDF is erased when
  the job ends, whatever the outcome);
- apply: add the user's accepted suggestions to their profile through the profile service's
  MergeEnrichedSkills, under this service's own token (no user is calling: a background job).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc

from openhr.profile.v1 import profile_pb2, profile_pb2_grpc
from services.common.db import Database, Tx
from services.enrichment import store
from services.enrichment.github import (
    GitHubClient,
    GitHubError,
    GitHubNotFound,
    GitHubRateLimited,
    GitHubUnavailable,
)
from services.enrichment.github_import import GitHubImporter
from services.enrichment.jobs import Handler, JobContext, JobFailed, JobRetry, Outcome
from services.enrichment.phrases import PhraseMatcher
from services.enrichment.resume import ResumeError, parse_resume
from services.enrichment.taxonomy import SkillTaxonomy

PROFILE_TIMEOUT = 10.0
SKILL_LIMIT_NOTE = "the profile already lists the most skills it can hold (100)"
_SOURCES = {"github": profile_pb2.SKILL_SOURCE_GITHUB, "resume": profile_pb2.SKILL_SOURCE_RESUME}
_TRANSIENT = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED)


def _save_suggestions(job: JobContext, source: str, skills: list[dict], extra: Callable | None = None):
    async def save(tx: Tx) -> None:
        await store.refresh_suggestions(tx, user_id=job.user_id, source=source, job_id=job.job_id, skills=skills)
        if extra is not None:
            await extra(tx)

    return save


def github_handler(client: GitHubClient, taxonomy: SkillTaxonomy, max_repositories: int) -> Handler:
    importer = GitHubImporter(client, taxonomy, max_repositories)

    async def run(job: JobContext) -> Outcome:
        try:
            imported = await importer.run(job.github_login, job.progress)
        except GitHubNotFound:
            raise JobFailed("github_user_not_found", f"GitHub has no public account {job.github_login!r}") from None
        except GitHubRateLimited as exc:
            raise JobRetry("rate_limited", exc.message, after=exc.retry_after) from None
        except GitHubUnavailable as exc:
            raise JobRetry("unavailable", exc.message) from None
        except GitHubError as exc:
            raise JobFailed("github_refused", exc.message) from None
        skills = [s.as_dict() for s in imported.skills]
        findings = imported.findings()

        async def save_import(tx: Tx) -> None:
            await store.save_github_import(
                tx, user_id=job.user_id, login=imported.login, job_id=job.job_id, data=findings
            )

        return Outcome(
            result={"github": findings, "skills": skills}, save=_save_suggestions(job, "github", skills, save_import)
        )

    return run


def resume_handler(taxonomy: SkillTaxonomy) -> Handler:
    matcher = PhraseMatcher(taxonomy)

    async def run(job: JobContext) -> Outcome:
        if not job.document:
            raise JobFailed("internal", "the résumé is gone; upload it again")
        await job.progress(10, "Reading the PDF")
        try:
            parsed = await asyncio.to_thread(parse_resume, job.document, matcher)
        except ResumeError as exc:
            raise JobFailed(exc.reason, exc.message) from None
        await job.progress(90, "Finding skills")
        skills = [s.as_dict() for s in parsed.skills]
        return Outcome(
            result={"resume": parsed.findings(), "skills": skills}, save=_save_suggestions(job, "resume", skills)
        )

    return run


def apply_handler(db: Database, profiles: Callable[[], profile_pb2_grpc.ProfileInternalServiceStub]) -> Handler:
    async def run(job: JobContext) -> Outcome:
        async with db.transaction(job.user_id) as tx:
            accepted = await store.accepted_suggestions(tx, job.user_id)
        if not accepted:
            return Outcome(result={"applied": 0, "not_applied": 0})
        await job.progress(30, "Adding skills to the profile")
        request = profile_pb2.MergeEnrichedSkillsRequest(
            user_id=job.user_id,
            skills=[
                profile_pb2.EnrichedSkill(name=s["name"], proficiency=s["proficiency"], source=_SOURCES[s["source"]])
                for s in accepted
            ],
        )
        try:
            response = await profiles().MergeEnrichedSkills(request, timeout=PROFILE_TIMEOUT)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _TRANSIENT:
                raise JobRetry("unavailable", "the profile service is unavailable") from None
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise JobFailed("profile_missing", "create your profile first, then accept again") from None
            raise JobFailed("profile_refused", "the profile did not take the skills") from None
        refused = {s.name for s in response.not_added}
        applied = [str(s["suggestion_id"]) for s in accepted if s["name"] not in refused]
        left_out = [str(s["suggestion_id"]) for s in accepted if s["name"] in refused]

        async def save(tx: Tx) -> None:
            await store.settle_suggestions(tx, job.user_id, applied, "applied")
            if left_out:
                await store.settle_suggestions(tx, job.user_id, left_out, "not_applied", SKILL_LIMIT_NOTE)

        return Outcome(result={"applied": len(applied), "not_applied": len(left_out)}, save=save)

    return run
