"""Waiting on a condition, never on a clock: the one poll loop of the suites.

CI shares two cores with every process of the mesh, so "long enough" on an idle machine is too
short on a busy one. A test states what it waits for and a generous bound; the poll returns as
soon as the condition holds, so the bound costs nothing when the machine is idle."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")

WITHIN = 30.0  # seconds: generous, a starved machine reaches the condition late, not never
INTERVAL = 0.1


Message = str | Callable[[], str]


def _failure(message: Message, within: float, value: Any) -> AssertionError:
    text = message() if callable(message) else message
    return AssertionError(f"{text or 'condition not reached'} within {within:g} s (last: {value!r})")


async def eventually(
    check: Callable[[], T | Awaitable[T]], *, within: float = WITHIN, interval: float = INTERVAL, message: Message = ""
) -> T:
    """Polls `check` (a function or coroutine function) until it returns a truthy value, and
    returns that value. After `within` seconds: AssertionError with `message` (a string, or a
    function called then, e.g. for a log's tail) and the last value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise _failure(message, within, value)
        await asyncio.sleep(interval)


def wait_until(
    check: Callable[[], Any], *, within: float = WITHIN, interval: float = INTERVAL, message: Message = ""
) -> Any:
    """`eventually` for synchronous tests: polls `check` until it returns a truthy value."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise _failure(message, within, value)
        time.sleep(interval)
