"""The enrichment service's gRPC servicers: the skills taxonomy, embeddings, jobs and their
suggestions, generated texts."""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import re
import uuid

from google.protobuf import json_format, timestamp_pb2

from openhr.enrichment.v1 import enrichment_pb2, enrichment_pb2_grpc
from services.common import errors
from services.common.auth import current_principal
from services.common.cancellation import raise_if_cancelled
from services.common.db import Database, Tx
from services.common.errors import FieldViolation
from services.common.skills import MAX_SKILL_NAME, category_enum, category_id
from services.enrichment import store
from services.enrichment.embedder import Embedder
from services.enrichment.job_events import JobNotifications
from services.enrichment.jobs import JobRunner
from services.enrichment.narratives import MatchFacts, Source, Text, TextWriter
from services.enrichment.profiles import ProfileReader
from services.enrichment.resume import ResumeError, check_pdf
from services.enrichment.skill_matching import SkillNormalizer
from services.enrichment.suggestions import MAX_REVIEW
from services.enrichment.taxonomy import Normalization, SkillTaxonomy

MAX_QUERY = 100
MAX_LIMIT = 50
DEFAULT_LIMIT = 10
MAX_BATCH = 200
MAX_EMBED_TEXTS = 64
MAX_EMBED_CHARS = 8000
DEFAULT_EMBEDDINGS_PAGE, MAX_EMBEDDINGS_PAGE = 500, 1000
SERVICE = "enrichment"


def _check_name(name: str, field: str) -> None:
    if not name.strip():
        raise errors.invalid_field(field, "is required")
    if len(name) > MAX_SKILL_NAME:
        raise errors.invalid_field(field, f"must be at most {MAX_SKILL_NAME} characters")


def _normalized(result: Normalization) -> enrichment_pb2.NormalizeSkillResponse:
    if result.skill is None:
        return enrichment_pb2.NormalizeSkillResponse(name=result.name, custom=True)
    return enrichment_pb2.NormalizeSkillResponse(
        name=result.skill.name,
        taxonomy_id=result.skill.id,
        category=category_enum(result.skill.category),
        confidence=result.confidence,
    )


def _check_texts(texts) -> None:
    if not texts:
        raise errors.invalid_field("texts", "is required: 1-64 texts")
    if len(texts) > MAX_EMBED_TEXTS:
        raise errors.invalid_field("texts", f"at most {MAX_EMBED_TEXTS} texts")
    violations = []
    for i, text in enumerate(texts):
        if not text.strip():
            violations.append(FieldViolation(f"texts[{i}]", "is empty"))
        elif len(text) > MAX_EMBED_CHARS:
            violations.append(FieldViolation(f"texts[{i}]", f"must be at most {MAX_EMBED_CHARS} characters"))
    if violations:
        raise errors.invalid_argument(*violations)


class SkillsApi(enrichment_pb2_grpc.SkillsServiceServicer):
    def __init__(self, taxonomy: SkillTaxonomy, normalizer: SkillNormalizer) -> None:
        self._taxonomy, self._normalizer = taxonomy, normalizer

    async def SearchSkills(self, request, context):
        violations = []
        if not request.query.strip():
            violations.append(FieldViolation("query", "is required"))
        elif len(request.query) > MAX_QUERY:
            violations.append(FieldViolation("query", f"must be at most {MAX_QUERY} characters"))
        if not 0 <= request.limit <= MAX_LIMIT:
            violations.append(FieldViolation("limit", f"must be 1-{MAX_LIMIT}"))
        if request.category not in enrichment_pb2.SkillCategory.DESCRIPTOR.values_by_number:
            violations.append(FieldViolation("category", f"unknown SkillCategory value {request.category}"))
        if violations:
            raise errors.invalid_argument(*violations)
        category = category_id(request.category) or None  # None: every category
        hits = self._taxonomy.search(request.query, request.limit or DEFAULT_LIMIT, category)
        return enrichment_pb2.SearchSkillsResponse(
            skills=[
                enrichment_pb2.SkillSuggestion(
                    taxonomy_id=hit.skill.id,
                    name=hit.skill.name,
                    category=category_enum(hit.skill.category),
                    matched=hit.matched,
                    score=hit.score,
                )
                for hit in hits
            ]
        )

    async def NormalizeSkill(self, request, context):
        _check_name(request.name, "name")
        (result,) = await self._normalizer.normalize([request.name])
        return _normalized(result)


class EnrichmentInternalApi(enrichment_pb2_grpc.EnrichmentInternalServiceServicer):
    """Internal RPCs: embeddings, skill normalization in bulk, match narratives."""

    def __init__(self, db: Database, normalizer: SkillNormalizer, embedder: Embedder, writer: TextWriter) -> None:
        self._db, self._normalizer, self._embedder, self._writer = db, normalizer, embedder, writer

    async def EmbedTexts(self, request, context):
        _check_texts(request.texts)
        if request.model_id and request.model_id != self._embedder.model_id:
            raise errors.invalid_field(
                "model_id", f"unknown model {request.model_id!r}: this service embeds with {self._embedder.model_id}"
            )
        vectors = await self._embedder.embed(list(request.texts))
        return enrichment_pb2.EmbedTextsResponse(
            model_id=self._embedder.model_id,
            dimensions=self._embedder.dimensions,
            embeddings=[enrichment_pb2.Embedding(values=vector) for vector in vectors.tolist()],
        )

    async def ListProfileEmbeddings(self, request, context):
        if not 0 <= request.page_size <= MAX_EMBEDDINGS_PAGE:
            raise errors.invalid_field("page_size", f"must be 1-{MAX_EMBEDDINGS_PAGE}")
        model_id = request.model_id or self._embedder.model_id
        size = request.page_size or DEFAULT_EMBEDDINGS_PAGE
        after = _page_after(request.page_token)
        async with self._db.transaction(None) as tx:
            await store.enter_paging(tx)
            rows = await store.page_vectors(tx, model_id, after, size + 1)
        users: dict[str, enrichment_pb2.StoredProfileEmbedding] = {}
        for row in rows:
            user_id = str(row["user_id"])
            stored = users.setdefault(
                user_id,
                enrichment_pb2.StoredProfileEmbedding(
                    user_id=user_id, model_id=model_id, dimensions=row["dimensions"], profile_version=0
                ),
            )
            stored.profile_version = max(stored.profile_version, row["profile_version"])
            getattr(stored, f"{row['kind']}_embedding").extend(row["embedding"])
        page = list(users.values())
        return enrichment_pb2.ListProfileEmbeddingsResponse(
            embeddings=page[:size], next_page_token=page[size - 1].user_id if len(page) > size else ""
        )

    async def GenerateMatchNarrative(self, request, context):
        text = await self._writer.match_narrative(_match_facts(request))
        return enrichment_pb2.GenerateMatchNarrativeResponse(
            narrative=text.text, source=text.source.value, text_source=_TEXT_SOURCES[text.source]
        )

    async def BatchNormalizeSkills(self, request, context):
        if len(request.names) > MAX_BATCH:
            raise errors.invalid_field("names", f"at most {MAX_BATCH}")
        for i, name in enumerate(request.names):
            _check_name(name, f"names[{i}]")
        results = await self._normalizer.normalize(list(request.names))
        return enrichment_pb2.BatchNormalizeSkillsResponse(results=[_normalized(result) for result in results])


# --- Jobs and the review of their suggestions (services/enrichment/jobs.py) -----------------

_KINDS = {
    enrichment_pb2.JOB_KIND_GITHUB: "github",
    enrichment_pb2.JOB_KIND_RESUME: "resume",
    enrichment_pb2.JOB_KIND_APPLY: "apply",
}
_KIND_ENUMS = {name: value for value, name in _KINDS.items()}
_JOB_STATES = {
    "queued": enrichment_pb2.JOB_STATE_QUEUED,
    "running": enrichment_pb2.JOB_STATE_RUNNING,
    "succeeded": enrichment_pb2.JOB_STATE_SUCCEEDED,
    "failed": enrichment_pb2.JOB_STATE_FAILED,
}
_SUGGESTION_STATES = {
    "pending": enrichment_pb2.SUGGESTION_STATE_PENDING,
    "accepted": enrichment_pb2.SUGGESTION_STATE_ACCEPTED,
    "rejected": enrichment_pb2.SUGGESTION_STATE_REJECTED,
    "applied": enrichment_pb2.SUGGESTION_STATE_APPLIED,
    "not_applied": enrichment_pb2.SUGGESTION_STATE_NOT_APPLIED,
}
_SUGGESTION_STATE_NAMES = {value: name for name, value in _SUGGESTION_STATES.items()}
MAX_REQUEST_ID = 100
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20
_GITHUB_LOGIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$")


def _timestamp(value: datetime.datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _now() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.GetCurrentTime()
    return stamp


def suggestion_proto(row) -> enrichment_pb2.EnrichmentSuggestion:
    return enrichment_pb2.EnrichmentSuggestion(
        suggestion_id=str(row["suggestion_id"]),
        job_id=str(row["job_id"]),
        source=_KIND_ENUMS[row["source"]],
        name=row["name"],
        taxonomy_id=row["taxonomy_id"],
        category=category_enum(row["category"]),
        proficiency=row["proficiency"],
        confidence=round(row["confidence"], 3),
        evidence=row["evidence"],
        state=_SUGGESTION_STATES[row["state"]],
        note=row["note"],
        update_time=_timestamp(row["updated_at"]),
    )


def job_proto(row, suggestions=()) -> enrichment_pb2.EnrichmentJob:
    job = enrichment_pb2.EnrichmentJob(
        job_id=str(row["job_id"]),
        kind=_KIND_ENUMS[row["kind"]],
        state=_JOB_STATES[row["state"]],
        progress_percent=row["progress"],
        stage=row["stage"],
        error_message=row["error_message"],
        failure_reason=row["failure_reason"],
        attempts=row["attempts"],
        github_username=row["github_login"],
        create_time=_timestamp(row["created_at"]),
        update_time=_timestamp(row["updated_at"]),
        skills=[
            enrichment_pb2.FoundSkill(
                name=s["name"],
                taxonomy_id=s["taxonomy_id"],
                proficiency=s["proficiency"],
                evidence=s["evidence"],
                confidence=round(s["confidence"], 3),
                suggestion_id=str(s["suggestion_id"]),
            )
            for s in suggestions
        ],
    )
    result = row["result"] or {}
    if "github" in result:
        json_format.ParseDict(result["github"], job.github, ignore_unknown_fields=True)
    if "resume" in result:
        json_format.ParseDict(result["resume"], job.resume, ignore_unknown_fields=True)
    return job


async def export_user(tx: Tx, user_id: str) -> dict:
    """The user's enrichment data (UserDataService): jobs and suggestions as this API answers them."""
    data = await store.export_user(tx, user_id)
    return data | {
        "jobs": [job_proto(row) for row in data["jobs"]],
        "suggestions": [suggestion_proto(row) for row in data["suggestions"]],
    }


def _page_after(token: str) -> str | None:
    """The user id a ListProfileEmbeddings page token continues after."""
    if not token:
        return None
    try:
        return str(uuid.UUID(token))
    except ValueError:
        raise errors.invalid_field("page_token", "is not a token this service issued") from None


def _job_id(value: str, field: str = "job_id") -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise errors.invalid_field(field, "must be a job id (UUID)") from None


def _suggestion_ids(values) -> list[str]:
    if not values:
        raise errors.invalid_field("suggestion_ids", "at least one id is required")
    if len(values) > MAX_REVIEW:
        raise errors.invalid_field("suggestion_ids", f"at most {MAX_REVIEW} ids per call")
    ids = []
    for i, value in enumerate(values):
        try:
            ids.append(str(uuid.UUID(value)))
        except ValueError:
            raise errors.invalid_field(f"suggestion_ids[{i}]", "must be a suggestion id (UUID)") from None
    return list(dict.fromkeys(ids))


def _page_token(after: tuple | None) -> str:
    if after is None:
        return ""
    raw = json.dumps([after[0].isoformat(), str(after[1])]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _parse_page_token(token: str) -> tuple | None:
    if not token:
        return None
    try:
        created, job_id = json.loads(base64.urlsafe_b64decode(token.encode()))
        return datetime.datetime.fromisoformat(created), uuid.UUID(job_id)
    except (ValueError, TypeError):
        raise errors.invalid_field("page_token", "is not a token from a previous page") from None


def _resume_violation(exc: ResumeError) -> errors.DomainError:
    error = errors.invalid_field("resume_pdf", exc.message)
    error.metadata["reason"] = exc.reason
    return error


class EnrichmentApi(enrichment_pb2_grpc.EnrichmentServiceServicer):
    """The caller's jobs and suggestions, and drafted texts. Jobs run in the background
    (JobRunner); `profiles` reads profiles as the caller (a GitHub job without a login takes the
    one on the caller's profile); `writer` drafts texts (LLM or template)."""

    def __init__(
        self,
        db: Database,
        runner: JobRunner,
        notifications: JobNotifications,
        profiles: ProfileReader,
        writer: TextWriter,
        heartbeat_seconds: float,
    ) -> None:
        self._db, self._runner, self._notifications = db, runner, notifications
        self._profiles, self._writer, self._heartbeat = profiles, writer, heartbeat_seconds

    async def _read_job(self, user_id: str, job_id: str) -> enrichment_pb2.EnrichmentJob:
        async with self._db.transaction(user_id) as tx:
            row = await store.get_job(tx, job_id)
            if row is None:
                raise errors.not_found("job")
            suggestions = await store.job_suggestions(tx, job_id) if row["state"] == "succeeded" else []
        return job_proto(row, suggestions)

    async def CreateEnrichmentJob(self, request, context):
        user_id = current_principal().user_id
        if len(request.request_id) > MAX_REQUEST_ID:
            raise errors.invalid_field("request_id", f"must be at most {MAX_REQUEST_ID} characters")
        request_id = request.request_id or None
        if request.kind == enrichment_pb2.JOB_KIND_GITHUB:
            if request.resume_pdf:
                raise errors.invalid_field("resume_pdf", "is for JOB_KIND_RESUME jobs only")
            login = request.github_username.strip()
            if login and not _GITHUB_LOGIN.match(login):
                raise errors.invalid_field("github_username", "is not a valid GitHub username")
            if not login:
                login = await self._profiles.my_github_login()
                if not login:
                    raise errors.invalid_field(
                        "github_username", "is required: your profile names no GitHub account (links.github_username)"
                    )
            fields = {"github_login": login}
        elif request.kind == enrichment_pb2.JOB_KIND_RESUME:
            if request.github_username:
                raise errors.invalid_field("github_username", "is for JOB_KIND_GITHUB jobs only")
            if not request.resume_pdf:
                raise errors.invalid_field("resume_pdf", "is required: a PDF of at most 5 MiB")
            try:
                await asyncio.to_thread(check_pdf, request.resume_pdf)
            except ResumeError as exc:
                raise _resume_violation(exc) from None
            fields = {"document": request.resume_pdf}
        elif request.kind == enrichment_pb2.JOB_KIND_APPLY:
            raise errors.invalid_field("kind", "JOB_KIND_APPLY jobs start by accepting suggestions")
        else:
            raise errors.invalid_field("kind", "must be JOB_KIND_GITHUB or JOB_KIND_RESUME")
        async with self._db.transaction(user_id) as tx:
            row, created = await store.insert_job(
                tx, user_id=user_id, kind=_KINDS[request.kind], request_id=request_id, **fields
            )
        if created:
            self._runner.wake()
        return enrichment_pb2.CreateEnrichmentJobResponse(job=job_proto(row))

    async def GetEnrichmentJob(self, request, context):
        job = await self._read_job(current_principal().user_id, _job_id(request.job_id))
        return enrichment_pb2.GetEnrichmentJobResponse(job=job)

    async def WatchEnrichmentJob(self, request, context):
        user_id, job_id = current_principal().user_id, _job_id(request.job_id)
        # Watch before reading, so that no change between the two is missed.
        async with self._notifications.watch(job_id) as changed:
            sent = None
            while True:
                raise_if_cancelled()  # the client went away
                changed.clear()
                job = await self._read_job(user_id, job_id)
                if job != sent:
                    yield enrichment_pb2.WatchEnrichmentJobResponse(job=job)
                    sent = job
                    if job.state in (enrichment_pb2.JOB_STATE_SUCCEEDED, enrichment_pb2.JOB_STATE_FAILED):
                        return
                try:
                    await asyncio.wait_for(changed.wait(), self._heartbeat)
                except TimeoutError:
                    yield enrichment_pb2.WatchEnrichmentJobResponse(heartbeat=_now())

    async def ListEnrichmentJobs(self, request, context):
        if not 0 <= request.page_size <= MAX_PAGE_SIZE:
            raise errors.invalid_field("page_size", f"must be 1-{MAX_PAGE_SIZE}")
        size = request.page_size or DEFAULT_PAGE_SIZE
        after = _parse_page_token(request.page_token)
        user_id = current_principal().user_id
        async with self._db.transaction(user_id) as tx:
            rows = await store.list_jobs(tx, user_id, size + 1, after)
        more = len(rows) > size
        rows = rows[:size]
        last = (rows[-1]["created_at"], rows[-1]["job_id"]) if more else None
        return enrichment_pb2.ListEnrichmentJobsResponse(
            jobs=[job_proto(r) for r in rows], next_page_token=_page_token(last)
        )

    async def ListEnrichmentSuggestions(self, request, context):
        source = None
        if request.source:
            if request.source not in (enrichment_pb2.JOB_KIND_GITHUB, enrichment_pb2.JOB_KIND_RESUME):
                raise errors.invalid_field("source", "must be JOB_KIND_GITHUB or JOB_KIND_RESUME")
            source = _KINDS[request.source]
        state = None
        if request.state:
            if request.state not in _SUGGESTION_STATE_NAMES:
                raise errors.invalid_field("state", f"unknown SuggestionState value {request.state}")
            state = _SUGGESTION_STATE_NAMES[request.state]
        user_id = current_principal().user_id
        async with self._db.transaction(user_id) as tx:
            rows = await store.list_suggestions(tx, user_id, source, state)
        return enrichment_pb2.ListEnrichmentSuggestionsResponse(suggestions=[suggestion_proto(r) for r in rows])

    async def AcceptEnrichmentSuggestions(self, request, context):
        ids = _suggestion_ids(request.suggestion_ids)
        user_id = current_principal().user_id
        async with self._db.transaction(user_id) as tx:
            rows = await store.review_suggestions(
                tx, user_id, ids, "accepted", ("pending", "rejected", "not_applied")
            )
            if len(rows) != len(ids):
                raise errors.not_found("suggestion")
            # One queued apply job takes every accepted suggestion when it runs.
            job = await store.queued_job(tx, user_id, "apply")
            if job is None and any(r["state"] == "accepted" for r in rows):
                job, _ = await store.insert_job(tx, user_id=user_id, kind="apply", request_id=None)
        if job is not None:
            self._runner.wake()
        return enrichment_pb2.AcceptEnrichmentSuggestionsResponse(
            suggestions=[suggestion_proto(r) for r in rows], job=job_proto(job) if job is not None else None
        )

    async def RejectEnrichmentSuggestions(self, request, context):
        ids = _suggestion_ids(request.suggestion_ids)
        user_id = current_principal().user_id
        async with self._db.transaction(user_id) as tx:
            rows = await store.review_suggestions(tx, user_id, ids, "rejected", ("pending", "accepted", "not_applied"))
            if len(rows) != len(ids):
                raise errors.not_found("suggestion")
        return enrichment_pb2.RejectEnrichmentSuggestionsResponse(suggestions=[suggestion_proto(r) for r in rows])

    async def DraftText(self, request, context):
        if request.purpose == enrichment_pb2.TEXT_PURPOSE_PROFILE_SUMMARY:
            if request.profile_id:
                raise errors.invalid_field("profile_id", "is only for TEXT_PURPOSE_FIRST_MESSAGE")
            text = await self._writer.profile_summary(await self._profiles.mine())
        elif request.purpose == enrichment_pb2.TEXT_PURPOSE_FIRST_MESSAGE:
            if not request.profile_id:
                raise errors.invalid_field("profile_id", "is required for TEXT_PURPOSE_FIRST_MESSAGE")
            sender = await self._profiles.mine()
            recipient = await self._profiles.visible(request.profile_id)
            if recipient.user_id == sender.user_id:
                raise errors.invalid_field("profile_id", "is your own profile")
            text = await self._writer.first_message(sender, recipient)
        else:
            raise errors.invalid_field("purpose", "must be TEXT_PURPOSE_PROFILE_SUMMARY or TEXT_PURPOSE_FIRST_MESSAGE")
        return _draft(request.purpose, text)


_TEXT_SOURCES = {Source.LLM: enrichment_pb2.TEXT_SOURCE_LLM, Source.TEMPLATE: enrichment_pb2.TEXT_SOURCE_TEMPLATE}


def _draft(purpose: int, text: Text) -> enrichment_pb2.DraftTextResponse:
    return enrichment_pb2.DraftTextResponse(purpose=purpose, text=text.text, source=_TEXT_SOURCES[text.source])


def _match_facts(request: enrichment_pb2.GenerateMatchNarrativeRequest) -> MatchFacts:
    """The request's facts, or INVALID_ARGUMENT naming every field out of its limits."""
    facts = MatchFacts(
        viewer_summary=request.viewer_summary,
        candidate_summary=request.candidate_summary,
        shared_skills=tuple(request.shared_skills),
        complementary_skills=tuple(request.complementary_skills),
        factor_scores=dict(request.factor_scores),
        factor_details=dict(request.factor_details),
        candidate_name=request.candidate_name,
    )
    violations = facts.violations()
    if violations:
        raise errors.invalid_argument(*violations)
    return facts
