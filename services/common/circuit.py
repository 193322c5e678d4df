"""A circuit breaker for calls to a third party we cannot control (an LLM, GitHub's API).

After `failures` failures in a row the circuit opens: calls are refused at once (`CircuitOpen`) instead of
each waiting for its timeout, for `reset_after` seconds. Then it is half-open: one trial call goes through
(others are still refused while it runs); its success closes the circuit, its failure opens it again.

Not `purgatory` or `aiobreaker`: purgatory reads the wall clock inside its state objects (tests could not move
time, only wait), and lets every concurrent call through while half-open; aiobreaker has not been released
since 2021. This is the small part of them we need, with an injectable clock and Prometheus metrics.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from enum import IntEnum

from prometheus_client import Counter, Gauge

CIRCUIT_STATE = Gauge("openhr_circuit_state", "Circuit breaker state: 0 closed, 1 half-open, 2 open.", ["circuit"])
CIRCUIT_OPENED = Counter("openhr_circuit_opened_total", "Times a circuit breaker opened from closed.", ["circuit"])


class State(IntEnum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitOpen(Exception):
    """Raised instead of calling while the circuit is open (or its half-open trial is running)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"circuit {name} is open")
        self.name = name


class CircuitBreaker:
    """Use `async with breaker.guard(): await call()`: an exception inside counts as a failure (and is
    re-raised), a normal exit as a success, a cancellation as neither. For one event loop (not thread-safe)."""

    def __init__(
        self, name: str, *, failures: int = 5, reset_after: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if failures < 1 or reset_after <= 0:
            raise ValueError("failures must be >= 1 and reset_after > 0")
        self.name = name
        self._threshold, self._reset_after, self._clock = failures, reset_after, clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_running = False
        CIRCUIT_STATE.labels(name).set(State.CLOSED)

    @property
    def state(self) -> State:
        if self._opened_at is None:
            return State.CLOSED
        if self._clock() - self._opened_at >= self._reset_after:
            return State.HALF_OPEN
        return State.OPEN

    @asynccontextmanager
    async def guard(self) -> AsyncIterator[None]:
        state = self.state
        if state == State.OPEN or (state == State.HALF_OPEN and self._trial_running):
            raise CircuitOpen(self.name)
        trial = state == State.HALF_OPEN
        if trial:
            self._trial_running = True
            CIRCUIT_STATE.labels(self.name).set(State.HALF_OPEN)
        try:
            yield
        except Exception:
            self._record_failure(trial)
            raise
        except BaseException:
            # Cancelled: says nothing about the third party; let the next call be the trial.
            if trial:
                self._trial_running = False
            raise
        else:
            self._record_success()

    def _record_success(self) -> None:
        self._failures, self._opened_at, self._trial_running = 0, None, False
        CIRCUIT_STATE.labels(self.name).set(State.CLOSED)

    def _record_failure(self, trial: bool) -> None:
        self._trial_running = False
        self._failures += 1
        if trial or self._failures >= self._threshold:
            if self._opened_at is None:
                CIRCUIT_OPENED.labels(self.name).inc()
            self._opened_at = self._clock()
            CIRCUIT_STATE.labels(self.name).set(State.OPEN)
