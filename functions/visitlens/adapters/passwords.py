"""Password hashing with argon2id (argon2-cffi's RFC 9106 low-memory profile)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from visitlens.validation import MIN_PASSWORD_LENGTH

__all__ = ["MIN_PASSWORD_LENGTH", "OffLoopHasher", "hash_password", "verify_password"]

_HASHER = PasswordHasher()

# Verified against when the user does not exist, so timing does not reveal which e-mails exist.
_DUMMY_HASH = _HASHER.hash("visitlens-timing-equaliser")

T = TypeVar("T")


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _HASHER.check_needs_rehash(password_hash)


class OffLoopHasher:
    """argon2 on a thread pool of its own, at most ``concurrency`` hashes at once.

    A request takes its permit (an asyncio semaphore) before its work is handed to the pool, so
    a burst of sign-ins waits as coroutines: it never holds the event loop's default executor,
    where readiness checks and the object store's calls run (the probe's 48 wrong passwords
    held every default thread, and ``/readyz`` answered 503 for 33 s)."""

    def __init__(self, concurrency: int) -> None:
        self._concurrency = concurrency
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="argon2")
        self._permits: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._permits is None or self._permits[0] is not loop:  # one per event loop
            self._permits = (loop, asyncio.Semaphore(self._concurrency))
        return self._permits[1]

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        async with self._semaphore():
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        return await self._run(verify_password, password_hash, password)

    async def hash(self, password: str) -> str:
        return await self._run(hash_password, password)

    def needs_rehash(self, password_hash: str) -> bool:
        return needs_rehash(password_hash)
