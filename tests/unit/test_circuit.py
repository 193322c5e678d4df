"""The kit's circuit breaker (services/common/circuit.py), on a clock the tests move."""

from __future__ import annotations

import asyncio

import pytest

from services.common.circuit import CIRCUIT_OPENED, CircuitBreaker, CircuitOpen, State


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Boom(Exception):
    """The guarded call's failure."""


async def _fail(breaker: CircuitBreaker) -> None:
    with pytest.raises(Boom):
        async with breaker.guard():
            raise Boom


async def _succeed(breaker: CircuitBreaker) -> None:
    async with breaker.guard():
        pass  # a call that succeeds


async def _held_call(breaker: CircuitBreaker, finish: asyncio.Event) -> asyncio.Task:
    """A call that has passed the guard and runs until `finish` is set."""
    started = asyncio.Event()

    async def call() -> None:
        async with breaker.guard():
            started.set()
            await finish.wait()

    task = asyncio.create_task(call())
    await started.wait()
    return task


def _opened(name: str) -> float:
    return CIRCUIT_OPENED.labels(name)._value.get()


async def test_opens_after_failures_in_a_row_and_refuses_without_calling() -> None:
    clock = Clock()
    breaker = CircuitBreaker("unit-open", failures=3, reset_after=30, clock=clock)
    await _fail(breaker)
    await _fail(breaker)
    await _succeed(breaker)  # a success resets the count
    for _ in range(2):
        await _fail(breaker)
    assert breaker.state == State.CLOSED
    await _fail(breaker)
    assert breaker.state == State.OPEN
    assert _opened("unit-open") == 1
    called = False
    with pytest.raises(CircuitOpen):
        async with breaker.guard():
            called = True
    assert not called
    clock.now += 29.9
    with pytest.raises(CircuitOpen):
        await _succeed(breaker)


async def test_half_open_lets_one_trial_through_which_closes_or_reopens_it() -> None:
    clock = Clock()
    breaker = CircuitBreaker("unit-half", failures=1, reset_after=10, clock=clock)
    await _fail(breaker)
    clock.now += 10
    assert breaker.state == State.HALF_OPEN
    await _fail(breaker)  # the trial fails: open again, for another full period
    assert breaker.state == State.OPEN
    clock.now += 9
    assert breaker.state == State.OPEN
    clock.now += 1
    finish = asyncio.Event()
    task = await _held_call(breaker, finish)
    with pytest.raises(CircuitOpen):  # one trial at a time
        await _succeed(breaker)
    finish.set()
    await task
    assert breaker.state == State.CLOSED
    await _succeed(breaker)


async def test_a_cancelled_trial_counts_for_nothing() -> None:
    clock = Clock()
    breaker = CircuitBreaker("unit-cancel", failures=1, reset_after=5, clock=clock)
    await _fail(breaker)
    clock.now += 5
    task = await _held_call(breaker, asyncio.Event())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.state == State.HALF_OPEN
    await _succeed(breaker)  # the next call is the trial
    assert breaker.state == State.CLOSED


def test_settings_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker("unit-bad", failures=0)
    with pytest.raises(ValueError):
        CircuitBreaker("unit-bad", reset_after=0)
