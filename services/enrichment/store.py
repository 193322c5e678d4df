"""SQL of the enrichment schema (asyncpg, inside transactions opened with the caller's id)."""

from __future__ import annotations

import datetime
import uuid

import asyncpg

from services.common.db import Tx

SCHEMA = "enrichment"


# --- Jobs, suggestions and imported GitHub data (services/enrichment/jobs.py) ----------------
# A running job's writes name its lease owner: a worker that lost its lease changes nothing.
# Every change of a job notifies JOB_CHANNEL (delivered on commit) for WatchEnrichmentJob.

JOB_CHANNEL = "enrichment_jobs"
_JOB_COLUMNS = """job_id, user_id, kind, state, progress, stage, github_login, result, failure_reason,
    error_message, attempts, created_at, updated_at"""


async def _notify(tx: Tx, job_id) -> None:
    await tx.execute("SELECT pg_notify($1, $2)", JOB_CHANNEL, str(job_id))


async def insert_job(
    tx: Tx, *, user_id: str, kind: str, request_id: str | None, github_login: str = "", document: bytes | None = None
) -> tuple[asyncpg.Record, bool]:
    """(the job, created): with a request id already used by this user, the job it started."""
    row = await tx.fetchrow(
        f"""
        INSERT INTO enrichment.jobs (user_id, kind, request_id, github_login, document)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (user_id, request_id) DO NOTHING
        RETURNING {_JOB_COLUMNS}
        """,
        user_id,
        kind,
        request_id,
        github_login,
        document,
    )
    if row is not None:
        await _notify(tx, row["job_id"])
        return row, True
    existing = await tx.fetchrow(
        f"SELECT {_JOB_COLUMNS} FROM enrichment.jobs WHERE user_id = $1 AND request_id = $2", user_id, request_id
    )
    return existing, False


async def get_job(tx: Tx, job_id: str) -> asyncpg.Record | None:
    return await tx.fetchrow(f"SELECT {_JOB_COLUMNS} FROM enrichment.jobs WHERE job_id = $1", job_id)


async def list_jobs(tx: Tx, user_id: str, limit: int, after: tuple | None) -> list[asyncpg.Record]:
    """Newest first; `after` is the (created_at, job_id) of the last job of the previous page."""
    if after is None:
        return await tx.fetch(
            f"SELECT {_JOB_COLUMNS} FROM enrichment.jobs WHERE user_id = $1 "
            "ORDER BY created_at DESC, job_id DESC LIMIT $2",
            user_id,
            limit,
        )
    return await tx.fetch(
        f"SELECT {_JOB_COLUMNS} FROM enrichment.jobs WHERE user_id = $1 AND (created_at, job_id) < ($2, $3) "
        "ORDER BY created_at DESC, job_id DESC LIMIT $4",
        user_id,
        after[0],
        after[1],
        limit,
    )


async def queued_job(tx: Tx, user_id: str, kind: str) -> asyncpg.Record | None:
    return await tx.fetchrow(
        f"SELECT {_JOB_COLUMNS} FROM enrichment.jobs WHERE user_id = $1 AND kind = $2 AND state = 'queued' "
        "ORDER BY created_at LIMIT 1",
        user_id,
        kind,
    )


async def claim_job(tx: Tx, worker: str, lease_seconds: float) -> tuple[str, str] | None:
    """(job id, owner) of a due job now leased to `worker` (run in a transaction without a user)."""
    row = await tx.fetchrow("SELECT claimed_job, claimed_user FROM enrichment.claim_job($1, $2)", worker, lease_seconds)
    return (str(row["claimed_job"]), str(row["claimed_user"])) if row else None


async def leased_job(tx: Tx, job_id: str, worker: str) -> asyncpg.Record | None:
    """The job with its document, if `worker` holds its lease."""
    return await tx.fetchrow(
        f"SELECT {_JOB_COLUMNS}, document FROM enrichment.jobs "
        "WHERE job_id = $1 AND state = 'running' AND lease_owner = $2",
        job_id,
        worker,
    )


async def update_progress(tx: Tx, job_id: str, worker: str, progress: int, stage: str) -> bool:
    status = await tx.execute(
        "UPDATE enrichment.jobs SET progress = $3, stage = $4, updated_at = now() "
        "WHERE job_id = $1 AND state = 'running' AND lease_owner = $2",
        job_id,
        worker,
        progress,
        stage,
    )
    if status != "UPDATE 1":
        return False
    await _notify(tx, job_id)
    return True


async def renew_lease(tx: Tx, job_id: str, worker: str, lease_seconds: float) -> bool:
    status = await tx.execute(
        "UPDATE enrichment.jobs SET lease_expires_at = now() + make_interval(secs => $3) "
        "WHERE job_id = $1 AND state = 'running' AND lease_owner = $2",
        job_id,
        worker,
        lease_seconds,
    )
    return status == "UPDATE 1"


async def finish_job(
    tx: Tx,
    job_id: str,
    worker: str,
    *,
    succeeded: bool,
    result: dict | None = None,
    reason: str = "",
    message: str = "",
) -> bool:
    """Ends a leased job; the document goes whatever the outcome."""
    status = await tx.execute(
        """
        UPDATE enrichment.jobs
        SET state = $3, progress = CASE WHEN $3 = 'succeeded' THEN 100 ELSE progress END,
            stage = CASE WHEN $3 = 'succeeded' THEN 'Done' ELSE 'Failed' END,
            result = $4, failure_reason = $5, error_message = $6, document = NULL,
            lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
        WHERE job_id = $1 AND state = 'running' AND lease_owner = $2
        """,
        job_id,
        worker,
        "succeeded" if succeeded else "failed",
        result,
        reason,
        message,
    )
    if status != "UPDATE 1":
        return False
    await _notify(tx, job_id)
    return True


async def requeue_job(tx: Tx, job_id: str, worker: str, *, delay: float, stage: str, undo_attempt: bool) -> bool:
    """Back to the queue: to retry after `delay` seconds, or at once after a shutdown (which does
    not count as an attempt)."""
    status = await tx.execute(
        """
        UPDATE enrichment.jobs
        SET state = 'queued', stage = $3, run_after = now() + make_interval(secs => $4),
            attempts = attempts - $5::int, lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
        WHERE job_id = $1 AND state = 'running' AND lease_owner = $2
        """,
        job_id,
        worker,
        stage,
        delay,
        1 if undo_attempt else 0,
    )
    if status != "UPDATE 1":
        return False
    await _notify(tx, job_id)
    return True


_SUGGESTION_COLUMNS = """suggestion_id, job_id, source, name, taxonomy_id, category, proficiency, confidence,
    evidence, state, note, updated_at"""


async def refresh_suggestions(tx: Tx, *, user_id: str, source: str, job_id: str, skills: list[dict]) -> list:
    """An import's findings become the user's suggestions from `source`: one per skill, updated in
    place (a rejected or applied one keeps its state), and pending ones it no longer finds go."""
    rows = []
    for skill in skills:
        row = await tx.fetchrow(
            f"""
            INSERT INTO enrichment.suggestions (user_id, source, skill_key, job_id, name, taxonomy_id, category,
                                                proficiency, confidence, evidence)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
            ON CONFLICT (user_id, source, skill_key) DO UPDATE
            SET job_id = excluded.job_id, name = excluded.name, category = excluded.category,
                proficiency = excluded.proficiency, confidence = excluded.confidence,
                evidence = excluded.evidence, updated_at = now()
            RETURNING {_SUGGESTION_COLUMNS}
            """,
            user_id,
            source,
            skill["taxonomy_id"] or f"custom:{skill['name'].casefold()}",
            job_id,
            skill["name"],
            skill["taxonomy_id"],
            skill["category"],
            skill["proficiency"],
            skill["confidence"],
            skill["evidence"],
        )
        rows.append(row)
    await tx.execute(
        "DELETE FROM enrichment.suggestions WHERE user_id = $1 AND source = $2 AND job_id <> $3 AND state = 'pending'",
        user_id,
        source,
        job_id,
    )
    return rows


async def list_suggestions(tx: Tx, user_id: str, source: str | None, state: str | None) -> list:
    return await tx.fetch(
        f"""
        SELECT {_SUGGESTION_COLUMNS} FROM enrichment.suggestions
        WHERE user_id = $1 AND ($2::text IS NULL OR source = $2) AND ($3::text IS NULL OR state = $3)
        ORDER BY confidence DESC, name
        """,
        user_id,
        source,
        state,
    )


async def job_suggestions(tx: Tx, job_id: str) -> list:
    return await tx.fetch(
        f"SELECT {_SUGGESTION_COLUMNS} FROM enrichment.suggestions WHERE job_id = $1 ORDER BY confidence DESC, name",
        job_id,
    )


async def review_suggestions(tx: Tx, user_id: str, ids: list[str], state: str, from_states: tuple[str, ...]) -> list:
    """Moves the caller's suggestions among `ids` that are in `from_states` to `state`; returns
    every one of `ids` the caller owns, as it is now."""
    await tx.execute(
        "UPDATE enrichment.suggestions SET state = $3, note = '', updated_at = now() "
        "WHERE user_id = $1 AND suggestion_id = ANY($2::uuid[]) AND state = ANY($4::text[])",
        user_id,
        ids,
        state,
        list(from_states),
    )
    return await tx.fetch(
        f"SELECT {_SUGGESTION_COLUMNS} FROM enrichment.suggestions "
        "WHERE user_id = $1 AND suggestion_id = ANY($2::uuid[]) ORDER BY confidence DESC, name",
        user_id,
        ids,
    )


async def accepted_suggestions(tx: Tx, user_id: str) -> list:
    return await tx.fetch(
        f"SELECT {_SUGGESTION_COLUMNS} FROM enrichment.suggestions WHERE user_id = $1 AND state = 'accepted' "
        "ORDER BY confidence DESC, name",
        user_id,
    )


async def settle_suggestions(tx: Tx, user_id: str, ids: list[str], state: str, note: str = "") -> None:
    """Accepted suggestions an apply job handled: applied, or not applied with a note."""
    await tx.execute(
        "UPDATE enrichment.suggestions SET state = $3, note = $4, updated_at = now() "
        "WHERE user_id = $1 AND suggestion_id = ANY($2::uuid[]) AND state = 'accepted'",
        user_id,
        ids,
        state,
        note,
    )


async def save_github_import(tx: Tx, *, user_id: str, login: str, job_id: str, data: dict) -> None:
    await tx.execute(
        """
        INSERT INTO enrichment.github_imports (user_id, login, job_id, data) VALUES ($1, $2, $3, $4)
        ON CONFLICT (user_id) DO UPDATE
        SET login = excluded.login, job_id = excluded.job_id, data = excluded.data, imported_at = now()
        """,
        user_id,
        login,
        job_id,
        data,
    )


async def export_enrichment(tx: Tx, user_id: str) -> dict:
    """The caller's jobs (without documents), suggestions and imported GitHub data."""
    jobs = await tx.fetch(
        f"SELECT {_JOB_COLUMNS} FROM enrichment.jobs WHERE user_id = $1 ORDER BY created_at", user_id
    )
    suggestions = await tx.fetch(
        f"SELECT {_SUGGESTION_COLUMNS} FROM enrichment.suggestions WHERE user_id = $1 ORDER BY name", user_id
    )
    github = await tx.fetchrow(
        "SELECT login, job_id, data, imported_at FROM enrichment.github_imports WHERE user_id = $1", user_id
    )
    return {
        "jobs": [_plain(r) for r in jobs],
        "suggestions": [_plain(r) for r in suggestions],
        "github_import": _plain(github) if github else None,
    }


async def delete_enrichment(tx: Tx, user_id: str) -> int:
    """Erases the caller's jobs, suggestions and imported GitHub data; the number of rows."""
    total = 0
    for table in ("github_imports", "suggestions", "jobs"):
        status = await tx.execute(f"DELETE FROM enrichment.{table} WHERE user_id = $1", user_id)
        total += int(status.split()[-1])
    return total


def _plain(row: asyncpg.Record) -> dict:
    """A row as JSON-ready values (ids and times as strings)."""
    out = {}
    for key, value in row.items():
        if isinstance(value, uuid.UUID | datetime.datetime):
            value = str(value) if isinstance(value, uuid.UUID) else value.isoformat()
        out[key] = value
    return out
