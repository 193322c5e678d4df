"""Stopping background loops reliably.

On Python 3.11, `asyncio.wait_for` returns the inner result and drops a cancel that arrives in
the same loop turn as that result (CPython gh-86296, fixed in 3.12). redis-py writes every
command through `wait_for`, so `task.cancel()` on a task in a Redis call can be lost: the task
reports `cancelling() == 1` and carries on (seen in CI: an event consumer read on forever and
hung its test). Every long-running background loop calls `raise_if_cancelled()` once per turn,
so a requested cancel is honoured at the latest one turn later."""

from __future__ import annotations

import asyncio


def raise_if_cancelled() -> None:
    """Raises CancelledError when the current task was asked to stop but carried on."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
