"""The heavy clients of one warm API instance, built once on first use and then reused."""

from __future__ import annotations

from dataclasses import dataclass

from minio import Minio

from visitlens.adapters.jwt_keys import KeyRing
from visitlens.adapters.postgres import Database
from visitlens.auth.service import AuthService
from visitlens.auth.wiring import build_auth
from visitlens.config import Settings
from visitlens.http.ratelimit import LoginLimiter
from visitlens.runtime.lazy import Lazy


@dataclass(slots=True)
class ApiServices:
    settings: Settings
    db: Database
    keys: KeyRing
    auth: AuthService
    presigner: Minio
    """Signs snapshot upload URLs for the address edge workers reach (no request is made)."""
    store: Minio
    """Reads snapshots for the console (the platform's own address of the object store)."""
    logins: LoginLimiter


def lazy_api_services(settings: Settings) -> Lazy[ApiServices]:
    def build() -> ApiServices:
        from visitlens.stack import s3
        from visitlens.stack.endpoints import s3_endpoint

        internal = s3_endpoint(settings)
        return ApiServices(
            settings,
            *build_auth(settings),
            s3.client(settings.s3, settings.s3.public_endpoint or internal),
            s3.client(settings.s3, internal),
            LoginLimiter(settings.http),
        )

    return Lazy(build)
