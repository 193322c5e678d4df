"""Rate limits: identity's implementation of Envoy's `envoy.service.ratelimit.v3.RateLimitService`
and the Redis counters behind it, which sign-in's per-account failure limit uses too.

The edge's limits per client address and per user are not here: Envoy keeps them itself
(local_ratelimit token buckets, services/common/edge_rates.py), so an ordinary request costs no
call. Envoy's global `ratelimit` filter asks ShouldRateLimit only for sign-in and sign-up (after
jwt_authn, on the transcoded gRPC path), with these descriptors (edge/envoy/envoy.yaml.j2):

    [auth=login,  remote_address=<client ip>]    Login                OPENHR_RATE_LOGIN_IP_PER_MIN  (10)
    [auth=signup, remote_address=<client ip>]    SignUp               OPENHR_RATE_SIGNUP_IP_PER_MIN  (5)

Each is a fixed one-minute window counted in Redis (one Lua script, one round trip for all the
descriptors of a request), shared by every edge replica. A request over a limit is refused by
Envoy: HTTP 429 (gRPC RESOURCE_EXHAUSTED) with `retry-after` (set here) and
`x-ratelimit-limit/-remaining/-reset` (Envoy's DRAFT_VERSION_03 headers, from the statuses
answered here). Every request counts, refused ones included. A fixed window lets a client spend
up to twice its limit across a window boundary; exactness within a window is what we keep.

Per account, sign-in counts failures by the email's keyed lookup hash (the address itself is
never a Redis key), known address or not: OPENHR_RATE_LOGIN_FAILURES (5) failures within
OPENHR_RATE_LOGIN_FAILURE_WINDOW seconds (900) of the first one lock that address's sign-in
until the window ends (RESOURCE_EXHAUSTED, `retry-after`); a successful sign-in clears the
count. Envoy cannot do this one: the email is in the body.

Redis down (documented in the README): sign-up's per-address limit fails OPEN (ShouldRateLimit
answers OK without counting; Envoy's filter also has failure_mode_deny: false for when identity
itself does not answer), sign-in fails CLOSED (Login answers UNAVAILABLE: an unthrottled sign-in
endpoint is what credential stuffing needs); the per-address and per-user limits in Envoy hold
either way. After a Redis error the counters are not tried again for a second, so an outage
costs no latency per request."""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import grpc
import structlog
from envoy.service.ratelimit.v3 import rls_pb2
from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from openhr.common.v1 import common_pb2
from services.common import errors

log = structlog.get_logger("ratelimit")

DOMAIN = "openhr"
SERVICE = rls_pb2.DESCRIPTOR.services_by_name["RateLimitService"].full_name
# Envoy calls it with its own service token (surface.INTERNAL_CALLERS: "envoy" only).
METHODS = frozenset({f"/{SERVICE}/ShouldRateLimit"})
WINDOW = 60.0
# After a Redis error, answer without Redis for this long (no connect attempt per request).
BACKOFF = 1.0
KEY_PREFIX = "rl"

DECISIONS = Counter(
    "openhr_rate_limit_decisions_total",
    "Rate-limit decisions by limit and outcome (ok, over_limit, redis_down).",
    ["limit", "outcome"],
)

# One round trip for every counter of a request: INCRBY each key, start its window (PEXPIRE)
# when the increment created it, and answer (count, milliseconds left) per key.
_SCRIPT = """
local out = {}
for i, key in ipairs(KEYS) do
  local hits = tonumber(ARGV[2 * i - 1])
  local count = redis.call('INCRBY', key, hits)
  if count == hits then
    redis.call('PEXPIRE', key, ARGV[2 * i])
  end
  local left = redis.call('PTTL', key)
  if left < 0 then
    redis.call('PEXPIRE', key, ARGV[2 * i])
    left = tonumber(ARGV[2 * i])
  end
  out[2 * i - 1] = count
  out[2 * i] = left
end
return out
"""


@dataclass(frozen=True)
class Limits:
    """Sign-ins and sign-ups per minute per client address, failed sign-ins per window per account."""

    login_ip_per_min: int = 10
    signup_ip_per_min: int = 5
    login_failures: int = 5
    login_failure_window: float = 900.0


@dataclass(frozen=True)
class Count:
    count: int
    reset_after: float  # seconds until the window ends


class CounterUnavailable(Exception):
    """Redis did not answer (or did within the back-off after a failure)."""


class Counters:
    """Windowed counters in Redis, with a short back-off after an error."""

    def __init__(self, redis: Redis, *, backoff: float = BACKOFF) -> None:
        self._redis = redis
        self._script = redis.register_script(_SCRIPT)
        self._backoff = backoff
        self._down_until = 0.0

    async def _call(self, coroutine):
        if time.monotonic() < self._down_until:
            coroutine.close()
            raise CounterUnavailable
        try:
            return await coroutine
        except (RedisError, OSError) as exc:
            self._down_until = time.monotonic() + self._backoff
            log.warning("rate-limit counters unavailable", error=type(exc).__name__)
            raise CounterUnavailable from exc

    async def hit(self, keys: Sequence[tuple[str, float]], hits: int = 1) -> list[Count]:
        """Adds `hits` to each (key, window seconds) and returns the counts. The window of a key
        starts with its first hit (callers put a window index in fixed-window keys)."""
        if not keys:
            return []
        args: list[int] = []
        for _, window in keys:
            args += [hits, max(1, math.ceil(window * 1000))]
        raw = await self._call(self._script(keys=[key for key, _ in keys], args=args))
        return [Count(int(raw[2 * i]), int(raw[2 * i + 1]) / 1000) for i in range(len(keys))]

    async def undo(self, key: str) -> None:
        await self._call(self._redis.decr(key))

    async def clear(self, key: str) -> None:
        await self._call(self._redis.delete(key))


def _fixed_window(name: str, value: str, now: float) -> tuple[str, float]:
    """The key of `value`'s current one-minute window and the seconds left in it."""
    index = int(now // WINDOW)
    if len(value) > 64:  # a claim we did not choose: bound the key
        value = hashlib.sha256(value.encode()).hexdigest()
    return f"{KEY_PREFIX}:{name}:{value}:{index}", (index + 1) * WINDOW - now


def _limit_of(entries: dict[str, str], limits: Limits) -> tuple[str, str, int] | None:
    """(limit name, counted value, requests per minute) of a descriptor; None: not limited."""
    if entries.keys() == {"auth", "remote_address"}:
        if entries["auth"] == "login":
            return "login_ip", entries["remote_address"], limits.login_ip_per_min
        if entries["auth"] == "signup":
            return "signup_ip", entries["remote_address"], limits.signup_ip_per_min
    return None


@dataclass(frozen=True)
class Verdict:
    """One counted descriptor: which limit, its requests per minute, the count in this window."""

    index: int  # of the descriptor in the request
    name: str
    limit: int
    count: int
    reset_after: float

    @property
    def over(self) -> bool:
        return self.count > self.limit


class EdgeLimits:
    """The edge's global limits (sign-in, sign-up per address): a request's descriptors counted in
    one round trip. Redis down: no verdicts (the request goes on: fail open)."""

    def __init__(self, counters: Counters, limits: Limits) -> None:
        self._counters, self._limits = counters, limits

    async def check(self, domain: str, descriptors: Sequence[dict[str, str]], hits: int) -> list[Verdict]:
        if domain != DOMAIN:
            return []
        now = time.time()
        counted: list[tuple[int, str, int, tuple[str, float]]] = []  # (index, name, limit, key)
        for i, entries in enumerate(descriptors):
            found = _limit_of(entries, self._limits)
            if found is not None:
                name, value, limit = found
                counted.append((i, name, limit, _fixed_window(name, value, now)))
        if not counted:
            return []
        try:
            counts = await self._counters.hit([key for *_, key in counted], max(1, hits))
        except CounterUnavailable:
            for _, name, _, _ in counted:
                DECISIONS.labels(name, "redis_down").inc()
            return []
        verdicts = [
            Verdict(i, name, limit, count.count, count.reset_after)
            for (i, name, limit, _), count in zip(counted, counts, strict=True)
        ]
        for verdict in verdicts:
            DECISIONS.labels(verdict.name, "over_limit" if verdict.over else "ok").inc()
        return verdicts


def rate_limited(message: str, retry_after: float) -> errors.DomainError:
    seconds = max(1, math.ceil(retry_after))
    return errors.DomainError(
        f"{message}: retry in {seconds} s",
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        common_pb2.ERROR_REASON_RATE_LIMITED,
        metadata={"retry_after": str(seconds)},
        headers={"retry-after": str(seconds)},
    )


class LoginGuard:
    """Failed sign-ins per account (by email lookup hash), fail-closed without Redis."""

    def __init__(self, counters: Counters, limits: Limits) -> None:
        self._counters = counters
        self._limit, self._window = limits.login_failures, limits.login_failure_window

    @asynccontextmanager
    async def attempt(self, lookup: bytes) -> AsyncIterator[None]:
        """Wraps one sign-in attempt: refused once the account's failures reached the limit.
        The attempt counts before the password is checked (so concurrent guesses cannot get
        past the limit); it stays counted if it fails with UNAUTHENTICATED, success clears the
        count and any other failure is not the caller's fault and is undone."""
        key = f"{KEY_PREFIX}:login_failures:{lookup.hex()}"
        try:
            (count,) = await self._counters.hit([(key, self._window)])
        except CounterUnavailable:
            DECISIONS.labels("login_account", "redis_down").inc()
            raise errors.unavailable("sign-in is temporarily unavailable, retry later") from None
        if count.count > self._limit:
            DECISIONS.labels("login_account", "over_limit").inc()
            raise rate_limited("too many failed sign-ins for this account", count.reset_after)
        DECISIONS.labels("login_account", "ok").inc()
        try:
            yield
        except errors.DomainError as exc:
            if exc.code != grpc.StatusCode.UNAUTHENTICATED:
                await self._forget(self._counters.undo(key))
            raise
        except BaseException:
            await self._forget(self._counters.undo(key))
            raise
        await self._forget(self._counters.clear(key))

    @staticmethod
    async def _forget(operation) -> None:
        try:
            await operation
        except CounterUnavailable:
            pass  # the count expires with its window anyway
