"""The heavy clients of one warm API instance, built once on first use and then reused."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from visitlens.adapters.jwt_keys import KeyRing
from visitlens.adapters.postgres import Database
from visitlens.auth.service import AuthService
from visitlens.config import Settings
from visitlens.stack.endpoints import database_dsns


@dataclass(slots=True)
class ApiServices:
    settings: Settings
    db: Database
    keys: KeyRing
    auth: AuthService


class LazyServices:
    """Creates :class:`ApiServices` on the first request (not at import) behind a lock."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._services: ApiServices | None = None
        self._lock = asyncio.Lock()

    async def __call__(self) -> ApiServices:
        if self._services is None:
            async with self._lock:
                if self._services is None:
                    self._services = self._build()
        return self._services

    def _build(self) -> ApiServices:
        settings = self._settings
        _, app_dsn = database_dsns(settings)
        db = Database(app_dsn, settings.database)
        keys = KeyRing.load(settings.keys_dir, settings.auth, settings.env)
        return ApiServices(settings, db, keys, AuthService(db, keys, settings.auth))

    async def close(self) -> None:
        if self._services is not None:
            await self._services.db.close()
            self._services = None
