"""Password hashing: argon2id with pinned parameters, run in worker threads with bounded
concurrency so that the event loop keeps serving while a hash is computed.

Parameters are RFC 9106's second recommended option ("if much less memory is available"):
argon2id, t=3 passes, m=64 MiB, p=4 lanes, 16-byte salt, 32-byte tag. Measured on the project's
machines (2 cores): about 110 ms per hash, median of 20. Each hash in flight holds 64 MiB, so
at most CONCURRENCY run at once (the others wait): ~128 MiB at peak on a 2-core replica.
Hashes made with other parameters still verify and are re-hashed at the next sign-in."""

from __future__ import annotations

import asyncio
import os
import secrets

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

TIME_COST = 3
MEMORY_COST_KIB = 64 * 1024
PARALLELISM = 4
HASH_LEN = 32
SALT_LEN = 16
CONCURRENCY = max(2, os.cpu_count() or 2)


class Passwords:
    def __init__(self, concurrency: int = CONCURRENCY) -> None:
        self._hasher = PasswordHasher(
            time_cost=TIME_COST,
            memory_cost=MEMORY_COST_KIB,
            parallelism=PARALLELISM,
            hash_len=HASH_LEN,
            salt_len=SALT_LEN,
            type=Type.ID,
        )
        self._slots = asyncio.Semaphore(concurrency)
        # Verified instead of a real hash when an account has none (unknown email), so that
        # both answers take the same time.
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored: str | None, password: str) -> bool:
        """True when `password` matches `stored`; with no stored hash, spends the same time and
        answers False."""
        async with self._slots:
            return await asyncio.to_thread(self._verify, stored, password)

    def _verify(self, stored: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(stored or self._dummy, password) and stored is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        return self._hasher.check_needs_rehash(stored)
