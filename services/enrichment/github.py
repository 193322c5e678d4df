"""An async client for GitHub's REST API (public data only), as GitHub asks clients to behave:

- conditional requests: every 200 answer's ETag and body are cached (Redis, a day); the next
  request for the URL sends If-None-Match and a 304 reuses the cached body (free of rate limit);
- pagination by the Link header (rel="next");
- primary rate limit: after an answer with x-ratelimit-remaining 0 no request is sent before
  x-ratelimit-reset; secondary limits: retry-after (or a minute when absent) is honoured. A
  wait up to `max_wait` seconds is slept through; a longer one raises `GitHubRateLimited` with
  the seconds to wait, so a job can be retried then instead of holding a worker;
- timeouts, retries with exponential backoff for transient failures (timeouts, connection
  errors, 5xx), and an optional circuit breaker around each request;
- an optional token (OPENHR_GITHUB_TOKEN) for the higher rate limit; never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import structlog
from redis.asyncio import Redis

from services.common.circuit import CircuitBreaker, CircuitOpen

log = structlog.get_logger("github")

ACCEPT = "application/vnd.github+json"
API_VERSION = "2022-11-28"
USER_AGENT = "openhr-enrichment"
ETAG_TTL_SECONDS = 86_400
# A secondary rate limit without retry-after: GitHub asks to wait at least a minute.
SECONDARY_LIMIT_WAIT = 60.0


class GitHubError(Exception):
    """`message` is safe to show to a user."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.message, self.status = message, status


class GitHubNotFound(GitHubError):
    """The login or repository does not exist (or is not public)."""


class GitHubUnavailable(GitHubError):
    """GitHub failed or could not be reached after the retries (or the circuit is open)."""


class GitHubRateLimited(GitHubError):
    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message, 429)
        self.retry_after = retry_after


class ETagCache:
    """ETag + body per URL in Redis. A cache failure never fails a request (it is only a cache)."""

    def __init__(self, redis: Redis, namespace: str) -> None:
        self._redis, self._namespace = redis, namespace

    def _key(self, url: str) -> str:
        return f"enrichment:github:etag:{self._namespace}:{hashlib.sha256(url.encode()).hexdigest()}"

    async def get(self, url: str) -> tuple[str, Any] | None:
        try:
            raw = await self._redis.get(self._key(url))
        except Exception as exc:  # Redis down: go without
            log.warning("etag cache read failed", error=type(exc).__name__)
            return None
        if raw is None:
            return None
        entry = json.loads(raw)
        return entry["etag"], entry["body"]

    async def put(self, url: str, etag: str, body: Any) -> None:
        try:
            await self._redis.set(self._key(url), json.dumps({"etag": etag, "body": body}), ex=ETAG_TTL_SECONDS)
        except Exception as exc:
            log.warning("etag cache write failed", error=type(exc).__name__)


def next_link(header: str) -> str | None:
    """The rel="next" URL of a Link header."""
    for part in header.split(","):
        url, _, params = part.partition(";")
        if any(p.strip().replace(" ", "") == 'rel="next"' for p in params.split(";")):
            return url.strip().strip("<>")
    return None


class GitHubClient:
    def __init__(
        self,
        api_url: str,
        *,
        token: str = "",
        cache: ETagCache | None = None,
        breaker: CircuitBreaker | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_wait: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        headers = {"accept": ACCEPT, "user-agent": USER_AGENT, "x-github-api-version": API_VERSION}
        if token:
            headers["authorization"] = f"Bearer {token}"
        self._http = httpx.AsyncClient(
            base_url=api_url.rstrip("/") + "/",
            headers=headers,
            timeout=timeout,
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=16),
        )
        self._cache, self._breaker = cache, breaker
        self._retries, self._backoff, self._max_wait, self._clock = retries, backoff, max_wait, clock
        # Epoch seconds before which no request is sent (a primary or secondary limit was hit).
        self._blocked_until = 0.0
        self.requests = 0  # sent, 304s included

    async def aclose(self) -> None:
        await self._http.aclose()

    async def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """The JSON body of a GET; `GitHubNotFound` for 404 (and 451, blocked)."""
        body, _ = await self._get(path, params)
        return body

    async def paginate(self, path: str, params: dict[str, Any] | None = None, *, limit: int = 1000) -> list[Any]:
        """Every item of a paginated list (per_page 100), following Link rel="next", up to `limit`."""
        items: list[Any] = []
        async for page in self._pages(path, {"per_page": 100, **(params or {})}):
            items.extend(page)
            if len(items) >= limit:
                return items[:limit]
        return items

    async def _pages(self, path: str, params: dict[str, Any]) -> AsyncIterator[list[Any]]:
        url: str | None = path
        query: dict[str, Any] | None = params
        while url:
            body, link = await self._get(url, query)
            if not isinstance(body, list):
                raise GitHubUnavailable("GitHub answered with an unexpected body")
            yield body
            url, query = next_link(link), None  # the next URL carries its query

    async def _get(self, path: str, params: dict[str, Any] | None) -> tuple[Any, str]:
        url = str(self._http.build_request("GET", path, params=params).url)
        cached = await self._cache.get(url) if self._cache else None
        for attempt in range(self._retries + 1):
            await self._respect_limits()
            try:
                response = await self._send(url, cached[0] if cached else None)
            except GitHubUnavailable:
                if attempt == self._retries:
                    raise
                await asyncio.sleep(self._backoff * 2**attempt * (0.5 + random.random()))
                continue
            if response is None:  # rate limited: wait (or raise) and try again
                continue
            if response.status_code == 304 and cached:
                return cached[1], response.headers.get("link", "")
            if response.status_code in (404, 410, 451):
                raise GitHubNotFound("not found on GitHub", response.status_code)
            if response.status_code >= 400:
                raise GitHubError(f"GitHub refused the request ({response.status_code})", response.status_code)
            try:
                body = response.json()
            except ValueError:
                raise GitHubUnavailable("GitHub answered with an unreadable body") from None
            etag = response.headers.get("etag")
            if etag and self._cache:
                await self._cache.put(url, etag, body)
            return body, response.headers.get("link", "")
        raise GitHubUnavailable("GitHub kept rate limiting the requests")

    async def _send(self, url: str, etag: str | None) -> httpx.Response | None:
        """One request. None when it was rate limited (the wait is recorded); GitHubUnavailable
        for a transient failure (counted by the breaker)."""
        headers = {"if-none-match": etag} if etag else {}
        guard = self._breaker.guard() if self._breaker else contextlib.nullcontext()
        try:
            async with guard:
                self.requests += 1
                try:
                    response = await self._http.get(url, headers=headers)
                except httpx.TimeoutException as exc:
                    raise GitHubUnavailable("GitHub did not answer in time") from exc
                except httpx.TransportError as exc:
                    raise GitHubUnavailable("GitHub could not be reached") from exc
                if response.status_code >= 500:
                    raise GitHubUnavailable(f"GitHub failed ({response.status_code})", response.status_code)
        except CircuitOpen as exc:
            raise GitHubUnavailable("GitHub is failing; retrying later") from exc
        self._note_limits(response)
        if response.status_code in (403, 429) and self._rate_limited(response):
            return None
        return response

    def _note_limits(self, response: httpx.Response) -> None:
        remaining, reset = response.headers.get("x-ratelimit-remaining"), response.headers.get("x-ratelimit-reset")
        if remaining == "0" and reset and reset.isdigit():
            self._blocked_until = max(self._blocked_until, float(reset))

    def _rate_limited(self, response: httpx.Response) -> bool:
        """Whether a 403/429 is a rate limit (else a plain refusal); records how long to wait."""
        retry_after = response.headers.get("retry-after", "")
        if retry_after.isdigit():
            self._blocked_until = max(self._blocked_until, self._clock() + float(retry_after))
            return True
        if response.headers.get("x-ratelimit-remaining") == "0":
            return True  # primary limit, reset noted
        text = response.text.lower()
        if "secondary rate limit" in text or "abuse" in text:
            self._blocked_until = max(self._blocked_until, self._clock() + SECONDARY_LIMIT_WAIT)
            return True
        return False

    async def _respect_limits(self) -> None:
        wait = self._blocked_until - self._clock()
        if wait <= 0:
            return
        if wait > self._max_wait:
            raise GitHubRateLimited("GitHub's rate limit is reached; the import continues later", wait)
        log.info("github rate limit, waiting", seconds=round(wait, 1))
        await asyncio.sleep(wait)
