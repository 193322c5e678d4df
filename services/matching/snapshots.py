"""Ranked results kept in Redis: pages of one ListMatches come from the same snapshot (stable
paging while the read model changes underneath), and the last ranking per viewer and filters
answers, marked stale, while candidates cannot be generated.

A page token names the viewer's snapshot and an offset; another user's token finds nothing."""

from __future__ import annotations

import base64
import binascii
import hashlib
import uuid

from redis.asyncio import Redis

from openhr.matching.v1 import matching_pb2
from services.common import errors

PREFIX = "matching:"


def filters_key(request: matching_pb2.ListMatchesRequest) -> str:
    """The request without its paging fields, hashed: same filters, same key."""
    filters = matching_pb2.ListMatchesRequest()
    filters.CopyFrom(request)
    filters.ClearField("page_size")
    filters.ClearField("page_token")
    return hashlib.sha256(filters.SerializeToString(deterministic=True)).hexdigest()[:32]


def page_token(snapshot_id: str, offset: int) -> str:
    return base64.urlsafe_b64encode(f"{snapshot_id}:{offset}".encode()).decode().rstrip("=")


def parse_page_token(token: str) -> tuple[str, int]:
    try:
        snapshot_id, offset = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode().split(":")
        return str(uuid.UUID(snapshot_id)), int(offset)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise errors.invalid_field("page_token", "is not a token this service issued") from None


class Snapshots:
    def __init__(self, redis: Redis, *, ttl_seconds: int, last_ttl_seconds: int = 7 * 24 * 3600) -> None:
        self._redis, self._ttl, self._last_ttl = redis, ttl_seconds, last_ttl_seconds

    async def save(self, user_id: str, key: str, cards: list[matching_pb2.MatchCard]) -> str:
        snapshot_id = str(uuid.uuid4())
        data = matching_pb2.ListMatchesResponse(matches=cards).SerializeToString()
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(f"{PREFIX}snapshot:{user_id}:{snapshot_id}", data, ex=self._ttl)
            pipe.set(f"{PREFIX}last:{user_id}:{key}", snapshot_id.encode() + b"|" + data, ex=self._last_ttl)
            await pipe.execute()
        return snapshot_id

    async def load(self, user_id: str, snapshot_id: str) -> list[matching_pb2.MatchCard] | None:
        data = await self._redis.get(f"{PREFIX}snapshot:{user_id}:{snapshot_id}")
        return None if data is None else list(matching_pb2.ListMatchesResponse.FromString(data).matches)

    async def last(self, user_id: str, key: str) -> tuple[str, list[matching_pb2.MatchCard]] | None:
        """The newest ranking for these filters, re-saved as a snapshot for paging."""
        data = await self._redis.get(f"{PREFIX}last:{user_id}:{key}")
        if data is None:
            return None
        cards = list(matching_pb2.ListMatchesResponse.FromString(data.split(b"|", 1)[1]).matches)
        return await self.save(user_id, key, cards), cards

    async def forget(self, user_id: str) -> None:
        """Drops every cached ranking of the user (their data was erased)."""
        keys = [key async for key in self._redis.scan_iter(match=f"{PREFIX}*:{user_id}:*", count=500)]
        if keys:
            await self._redis.delete(*keys)
