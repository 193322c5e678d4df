"""The Redis client every service uses (hiredis parser, bounded timeouts)."""

from __future__ import annotations

from redis.asyncio import Redis


def connect_redis(url: str) -> Redis:
    return Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=30)


async def ping(redis: Redis) -> None:
    if not await redis.ping():
        raise ConnectionError("redis did not answer PING")
