"""Heavy clients once per warm instance: built on first use (not at import), behind a lock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Lazy(Generic[T]):
    """``await lazy()`` builds the value once (in a worker thread, so model loading never blocks
    the event loop) and returns the same object afterwards."""

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._value: T | None = None
        self._lock = asyncio.Lock()

    async def __call__(self) -> T:
        if self._value is None:
            async with self._lock:
                if self._value is None:
                    self._value = await asyncio.to_thread(self._build)
        return self._value
