"""Password hashing with argon2id (argon2-cffi's RFC 9106 low-memory profile)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
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
    """argon2 in worker threads, at most ``concurrency`` at once: a burst of logins costs CPU on
    the side, never the event loop (health checks and every other request stay fast)."""

    def __init__(self, concurrency: int) -> None:
        self._slots = threading.BoundedSemaphore(concurrency)

    def _run(self, fn: Callable[..., T], *args: Any) -> T:
        with self._slots:
            return fn(*args)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        return await asyncio.to_thread(self._run, verify_password, password_hash, password)

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._run, hash_password, password)

    def needs_rehash(self, password_hash: str) -> bool:
        return needs_rehash(password_hash)
