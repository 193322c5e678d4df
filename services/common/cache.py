"""The Redis client every service uses (hiredis parser, bounded timeouts)."""

from __future__ import annotations

from redis.asyncio import Redis


def connect_redis(url: str, *, timeout: float | None = None) -> Redis:
    """`timeout`: one bound for connecting and for each command (default 2 s / 5 s)."""
    return Redis.from_url(
        url,
        socket_timeout=timeout or 5,
        socket_connect_timeout=timeout or 2,
        health_check_interval=30,
    )


async def ping(redis: Redis) -> None:
    if not await redis.ping():
        raise ConnectionError("redis did not answer PING")
