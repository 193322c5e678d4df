"""Chat completions from any OpenAI-compatible server (OpenAI, vLLM, Ollama, llama.cpp, …) through the
`openai` client, with what a third party on the request path needs around it: an overall timeout, no
retries (a failed call falls back to a template at once), a circuit breaker, a Redis cache of answers and
Prometheus counters of the tokens spent.

`complete` answers None whenever no LLM text can be had now (none configured, circuit open, error, timeout,
nothing left after cleaning): callers then write the text from a template.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable

import structlog
from openai import AsyncOpenAI
from prometheus_client import Counter, Histogram
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.common.circuit import CircuitBreaker, CircuitOpen
from services.enrichment.textsafety import plain_text

log = structlog.get_logger("llm")

OPENAI_URL = "https://api.openai.com/v1"
CACHE_PREFIX = "openhr:llm"
# A cache that does not answer within this is skipped (the LLM is called instead).
CACHE_TIMEOUT = 0.5

TOKENS = Counter(
    "openhr_llm_tokens_total", "Tokens an LLM server reported spending, for cost.", ["model", "purpose", "kind"]
)
CALLS = Counter(
    "openhr_llm_calls_total",
    "Requests for an LLM text, by outcome: ok, cached, not_configured, circuit_open, timeout, error, empty.",
    ["purpose", "outcome"],
)
LATENCY = Histogram(
    "openhr_llm_request_seconds",
    "Time of calls to the LLM server (not cache hits).",
    ["purpose"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60),
)


class LlmSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    # Unset with no API key: no LLM, every text comes from the templates. Unset with a key: OpenAI.
    llm_base_url: str = Field("", validation_alias="OPENHR_LLM_BASE_URL")
    llm_api_key: str = Field("", validation_alias="OPENHR_LLM_API_KEY")
    llm_model: str = Field("gpt-4o-mini", validation_alias="OPENHR_LLM_MODEL")
    # Seconds one completion may take, all included, before the template writes the text instead.
    llm_timeout: float = Field(10.0, gt=0, validation_alias="OPENHR_LLM_TIMEOUT")
    # Seconds an answer stays cached (0: no cache).
    llm_cache_ttl: int = Field(86_400, ge=0, validation_alias="OPENHR_LLM_CACHE_TTL")
    # Failures in a row that open the circuit, and seconds until it lets a trial call through.
    llm_breaker_failures: int = Field(5, ge=1, validation_alias="OPENHR_LLM_BREAKER_FAILURES")
    llm_breaker_reset: float = Field(30.0, gt=0, validation_alias="OPENHR_LLM_BREAKER_RESET")

    @property
    def llm_configured(self) -> bool:
        return bool(self.llm_base_url or self.llm_api_key)


def cache_key(purpose: str, model: str, messages: list[dict[str, str]], max_tokens: int, limit: int) -> str:
    """Purpose + model + a hash of everything sent: a changed prompt or profile is a new key."""
    digest = hashlib.sha256(json.dumps([messages, max_tokens, limit], sort_keys=True).encode()).hexdigest()
    return f"{CACHE_PREFIX}:{purpose}:{model}:{digest}"


class Llm:
    def __init__(
        self, settings: LlmSettings, redis: Redis | None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.model = settings.llm_model
        self._timeout = settings.llm_timeout
        self._ttl = settings.llm_cache_ttl
        self._redis = redis
        self._breaker = CircuitBreaker(
            "llm", failures=settings.llm_breaker_failures, reset_after=settings.llm_breaker_reset, clock=clock
        )
        self._client = (
            AsyncOpenAI(
                base_url=settings.llm_base_url or OPENAI_URL,
                # Local servers (Ollama, llama.cpp) take any key, but the client wants one.
                api_key=settings.llm_api_key or "none",
                timeout=settings.llm_timeout,
                max_retries=0,
            )
            if settings.llm_configured
            else None
        )

    @property
    def configured(self) -> bool:
        return self._client is not None

    async def complete(self, purpose: str, messages: list[dict[str, str]], max_tokens: int, limit: int) -> str | None:
        """The answer to `messages` as plain text of at most `limit` characters (textsafety.plain_text), from
        the cache or the server; None when there is none now."""
        if self._client is None:
            CALLS.labels(purpose, "not_configured").inc()
            return None
        key = cache_key(purpose, self.model, messages, max_tokens, limit)
        cached = await self._cached(key)
        if cached is not None:
            CALLS.labels(purpose, "cached").inc()
            return cached
        try:
            async with self._breaker.guard():
                with LATENCY.labels(purpose).time():
                    async with asyncio.timeout(self._timeout):
                        response = await self._client.chat.completions.create(
                            model=self.model, messages=messages, max_tokens=max_tokens, temperature=0.4
                        )
                answer = response.choices[0].message.content or ""
        except CircuitOpen:
            CALLS.labels(purpose, "circuit_open").inc()
            return None
        except TimeoutError:
            CALLS.labels(purpose, "timeout").inc()
            log.warning("llm timed out", purpose=purpose, seconds=self._timeout)
            return None
        except Exception as exc:  # whatever the third party or its client raise: the template takes over
            CALLS.labels(purpose, "error").inc()
            status = getattr(exc, "status_code", None)
            log.warning("llm failed", purpose=purpose, error=type(exc).__name__, status=status)
            return None
        if response.usage is not None:
            TOKENS.labels(self.model, purpose, "prompt").inc(response.usage.prompt_tokens)
            TOKENS.labels(self.model, purpose, "completion").inc(response.usage.completion_tokens)
            log.info(
                "llm answered",
                purpose=purpose,
                model=self.model,
                prompt_tokens=response.usage.prompt_tokens,
                completion_tokens=response.usage.completion_tokens,
            )
        text = plain_text(answer, limit)
        if not text:
            CALLS.labels(purpose, "empty").inc()
            return None
        CALLS.labels(purpose, "ok").inc()
        await self._store(key, text)
        return text

    async def _cached(self, key: str) -> str | None:
        if self._redis is None or not self._ttl:
            return None
        try:
            async with asyncio.timeout(CACHE_TIMEOUT):
                value = await self._redis.get(key)
        except (RedisError, TimeoutError) as exc:
            log.warning("llm cache unavailable", error=type(exc).__name__)
            return None
        return value.decode() if value is not None else None

    async def _store(self, key: str, text: str) -> None:
        if self._redis is None or not self._ttl:
            return
        try:
            async with asyncio.timeout(CACHE_TIMEOUT):
                await self._redis.set(key, text.encode(), ex=self._ttl)
        except (RedisError, TimeoutError) as exc:
            log.warning("llm cache unavailable", error=type(exc).__name__)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
