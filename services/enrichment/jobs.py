"""Durable jobs: a worker loop claims due jobs from Postgres (enrichment.claim_job: FOR UPDATE
SKIP LOCKED, with a lease), runs each under its owner's id, and ends it as succeeded or failed.

- A lease is renewed while the job runs. A worker that dies stops renewing; once the lease
  expires another worker claims the job. Every write of a running job names the lease owner
  (store.py), so a worker that lost its lease changes nothing: a job never runs twice at once,
  and only one run's result is kept.
- `JobRetry` (a transient failure: GitHub down or rate limited, the profile service away) puts
  the job back in the queue with exponential backoff (or after the wait the failure names);
  after `max_attempts` runs it fails with the last reason. `JobFailed` fails it at once.
  Anything else is a bug: retried like a transient failure, then failed as "internal" with a
  message that says nothing of the cause.
- On shutdown the running jobs go back to the queue at once (the run does not count).
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import uuid
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass

import structlog

from services.common.cancellation import raise_if_cancelled
from services.common.db import Database, Tx
from services.enrichment import store

log = structlog.get_logger("jobs")

INTERNAL_MESSAGE = "the job failed unexpectedly; try again later"


class JobFailed(Exception):
    """A failure that another run would not fix. `message` is safe to show."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


class JobRetry(JobFailed):
    """A transient failure: run again later (after `after` seconds when the cause says so)."""

    def __init__(self, reason: str, message: str, after: float | None = None) -> None:
        super().__init__(reason, message)
        self.after = after


class LeaseLost(Exception):
    """This worker no longer holds the job's lease (another worker took it over)."""


@dataclass(frozen=True)
class JobSettings:
    concurrency: int = 2
    lease_seconds: float = 30.0
    poll_seconds: float = 1.0
    max_attempts: int = 4
    retry_base_seconds: float = 5.0
    retry_max_seconds: float = 900.0


@dataclass
class Outcome:
    """What a finished run stores: `result` (the job's findings) and `save`, which writes the
    rest (suggestions, imported data) in the transaction that ends the job."""

    result: dict
    save: Callable[[Tx], Awaitable[None]] | None = None


@dataclass(frozen=True)
class JobContext:
    job_id: str
    user_id: str
    kind: str
    github_login: str
    document: bytes | None
    attempts: int
    progress: Callable[[int, str], Awaitable[None]]


Handler = Callable[[JobContext], Awaitable[Outcome]]


def backoff(attempt: int, base: float, cap: float) -> float:
    """Exponential with full jitter in its upper half: base·2^(attempt-1)·[0.5, 1), at most cap."""
    return min(cap, base * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)


class JobRunner:
    def __init__(self, db: Database, handlers: dict[str, Handler], settings: JobSettings) -> None:
        self._db, self._handlers, self._settings = db, handlers, settings
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._wakeup = asyncio.Event()

    def wake(self) -> None:
        """A job was queued by this process: look now rather than at the next poll."""
        self._wakeup.set()

    async def run(self) -> None:
        """Runs `concurrency` slots until cancelled."""
        await asyncio.gather(*(self._slot() for _ in range(self._settings.concurrency)))

    async def _slot(self) -> None:
        while True:
            raise_if_cancelled()
            try:
                claimed = await self._claim()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away: try again at the next poll
                log.warning("job claim failed", error=type(exc).__name__)
                claimed = None
            if claimed is None:
                self._wakeup.clear()
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), self._settings.poll_seconds)
                continue
            await self._execute(*claimed)

    async def _claim(self) -> tuple[str, str] | None:
        async with self._db.transaction(None) as tx:
            return await store.claim_job(tx, self.worker_id, self._settings.lease_seconds)

    async def _execute(self, job_id: str, user_id: str) -> None:
        async with self._db.transaction(user_id) as tx:
            row = await store.leased_job(tx, job_id, self.worker_id)
        if row is None:
            return
        bound = log.bind(job_id=job_id, kind=row["kind"], attempt=row["attempts"])
        if row["attempts"] > self._settings.max_attempts:  # it kept killing its workers
            bound.error("job gave up after its workers stopped mid-run")
            await self._finish(job_id, user_id, failure=JobFailed("internal", INTERNAL_MESSAGE))
            return

        reported = [0]
        in_order = asyncio.Lock()

        async def progress(percent: int, stage: str) -> None:
            """Progress only moves forward, even when parallel parts of a job report it."""
            async with in_order:
                if percent < reported[0]:
                    return
                reported[0] = percent
                async with self._db.transaction(user_id) as tx:
                    if not await store.update_progress(tx, job_id, self.worker_id, percent, stage):
                        raise LeaseLost

        context = JobContext(
            job_id=job_id,
            user_id=user_id,
            kind=row["kind"],
            github_login=row["github_login"],
            document=row["document"],
            attempts=row["attempts"],
            progress=progress,
        )
        work = asyncio.create_task(self._handlers[row["kind"]](context))
        keeper = asyncio.create_task(self._keep_lease(job_id, user_id, work))
        try:
            outcome = await work
        except LeaseLost:
            bound.warning("job lease lost; another worker has it")
            return
        except asyncio.CancelledError:
            if asyncio.current_task().cancelling() == 0:  # the keeper cancelled the work
                bound.warning("job lease lost; another worker has it")
                return
            await asyncio.shield(self._release(job_id, user_id))
            raise
        except JobRetry as retry:
            await self._retry(job_id, user_id, row["attempts"], retry, bound)
            return
        except JobFailed as failure:
            bound.info("job failed", reason=failure.reason)
            await self._finish(job_id, user_id, failure=failure)
            return
        except Exception:
            bound.exception("job crashed")
            await self._retry(job_id, user_id, row["attempts"], JobRetry("internal", INTERNAL_MESSAGE), bound)
            return
        finally:
            keeper.cancel()
            with suppress(asyncio.CancelledError):
                await keeper
        await self._finish(job_id, user_id, outcome=outcome)
        bound.info("job succeeded")

    async def _keep_lease(self, job_id: str, user_id: str, work: asyncio.Task) -> None:
        """Renews the lease every third of its length; cancels the work when it is lost."""
        while True:
            await asyncio.sleep(self._settings.lease_seconds / 3)
            try:
                async with self._db.transaction(user_id) as tx:
                    held = await store.renew_lease(tx, job_id, self.worker_id, self._settings.lease_seconds)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # try again; the lease outlives a few misses
                log.warning("job lease renewal failed", job_id=job_id, error=type(exc).__name__)
                continue
            if not held:
                work.cancel()
                return

    async def _finish(
        self, job_id: str, user_id: str, *, outcome: Outcome | None = None, failure: JobFailed | None = None
    ) -> None:
        async with self._db.transaction(user_id) as tx:
            if failure is not None:
                await store.finish_job(
                    tx, job_id, self.worker_id, succeeded=False, reason=failure.reason, message=failure.message
                )
                return
            if not await store.finish_job(tx, job_id, self.worker_id, succeeded=True, result=outcome.result):
                return  # lease lost meanwhile: the other run's result is the one kept
            if outcome.save is not None:
                await outcome.save(tx)

    async def _retry(self, job_id: str, user_id: str, attempts: int, retry: JobRetry, bound) -> None:
        if attempts >= self._settings.max_attempts:
            bound.info("job failed after retries", reason=retry.reason)
            await self._finish(job_id, user_id, failure=retry)
            return
        delay = retry.after if retry.after is not None else self._delay(attempts)
        bound.info("job will be retried", reason=retry.reason, seconds=round(delay, 1))
        async with self._db.transaction(user_id) as tx:
            await store.requeue_job(
                tx, job_id, self.worker_id, delay=delay, stage=f"Waiting to retry: {retry.message}", undo_attempt=False
            )

    def _delay(self, attempts: int) -> float:
        return backoff(attempts, self._settings.retry_base_seconds, self._settings.retry_max_seconds)

    async def _release(self, job_id: str, user_id: str) -> None:
        try:
            async with self._db.transaction(user_id) as tx:
                await store.requeue_job(tx, job_id, self.worker_id, delay=0, stage="Queued", undo_attempt=True)
        except Exception as exc:  # the lease expires instead
            log.warning("job release failed", job_id=job_id, error=type(exc).__name__)
