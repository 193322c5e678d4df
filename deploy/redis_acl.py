"""Production Redis users: one ACL user per service with only the keys and commands it uses.

A service reaches Redis as its own user (`REDIS_URL=rediss://<service>:<password>@host:6380/0`):
identity alone touches the rate-limit counters (`rl:*`), each service appends only to its own
event stream, and nobody may FLUSHALL, KEYS, CONFIG or read what it has no use for. Redis 6.2
key patterns grant read and write alike, so a consumer can also write to the streams it reads:
events carry their producer's signature (services/common/event_auth.py) for that reason. On
Redis >= 7 prefer `%R~events.identity` for the streams a service only reads.

    python -m deploy.redis_acl > users.acl    # passwords from REDIS_PASSWORD_<SERVICE>

prints the ACL file (`aclfile` in redis.conf) with SHA-256 password hashes; the default user
must then be disabled (`user default off`), which the file's last line does."""

from __future__ import annotations

import hashlib
import os
import sys

# Every user: authenticate, select its database, answer health checks. Nothing else by default.
_BASE = ("on", "resetkeys", "resetchannels", "-@all", "+auth", "+hello", "+ping", "+select")
# Every service reads identity's UserDeleted events (services/common/revocations.py).
_REVOCATIONS = ("~events.identity", "+xread", "+xrange")
# A consumer group (services/common/consumer.py) on a stream, with its dead letters.
_CONSUMER = ("+xgroup|create", "+xreadgroup", "+xack", "+xautoclaim", "+xpending", "+xadd")

SERVICE_RULES: dict[str, tuple[str, ...]] = {
    "identity": (
        *_REVOCATIONS,
        # Rate limits: the counters' Lua script (services/identity/ratelimit.py) runs with the
        # caller's rights, so its commands are granted too.
        "~rl:*",
        "+evalsha",
        "+eval",
        "+script|load",
        "+incrby",
        "+pexpire",
        "+pttl",
        "+decr",
        "+del",
        # Its outbox relay publishes to events.identity.
        "+xadd",
    ),
    "profile": (
        *_REVOCATIONS,
        # Its outbox relay and its WatchMyProfile fan-out.
        "~events.profile",
        "+xadd",
        # MatchCreated from matching.
        "~events.matching",
        "~events.matching.dead",
        *_CONSUMER,
    ),
    "enrichment": (*_REVOCATIONS, "~events.enrichment", "+xadd"),
    "messaging": (
        *_REVOCATIONS,
        # Its outbox relay (events.messaging, events.messaging.live) and its live fan-out.
        "~events.messaging",
        "~events.messaging.live",
        # MatchCreated from matching, ProfileChanged from profile.
        "~events.matching",
        "~events.matching.dead",
        "~events.profile",
        "~events.profile.dead",
        *_CONSUMER,
        # Presence and typing (services/messaging/presence.py, typing.py).
        "~messaging:*",
        "+get",
        "+set",
        "+del",
        "+exists",
        "+expire",
        "+zadd",
        "+zrem",
        "+zcard",
        "+zcount",
        "+zremrangebyscore",
    ),
}


def rules(service: str) -> tuple[str, ...]:
    return (*_BASE, *SERVICE_RULES[service])


def acl_file(passwords: dict[str, str]) -> str:
    lines = [
        " ".join(("user", name, *rules(name), "#" + hashlib.sha256(passwords[name].encode()).hexdigest()))
        for name in SERVICE_RULES
    ]
    return "\n".join([*lines, "user default off", ""])


def main() -> int:
    missing = [name for name in SERVICE_RULES if not os.environ.get(f"REDIS_PASSWORD_{name.upper()}")]
    if missing:
        print(f"set REDIS_PASSWORD_{missing[0].upper()} (and the others: {', '.join(missing)})", file=sys.stderr)
        return 2
    sys.stdout.write(acl_file({name: os.environ[f"REDIS_PASSWORD_{name.upper()}"] for name in SERVICE_RULES}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
