"""The database pool, key ring and auth service every function builds the same way."""

from __future__ import annotations

from visitlens.adapters.jwt_keys import KeyRing
from visitlens.adapters.passwords import OffLoopHasher
from visitlens.adapters.postgres import Database
from visitlens.auth.service import AuthService
from visitlens.config import Settings
from visitlens.stack.endpoints import database_dsns


def build_auth(settings: Settings) -> tuple[Database, KeyRing, AuthService]:
    _, app_dsn = database_dsns(settings)
    db = Database(app_dsn, settings.database)
    keys = KeyRing.load(settings.keys_dir, settings.auth, settings.env)
    hasher = OffLoopHasher(settings.http.password_hash_concurrency)
    return db, keys, AuthService(db, keys, settings.auth, hasher)
