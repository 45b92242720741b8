"""The heavy clients of one warm API instance, built once on first use and then reused."""

from __future__ import annotations

from dataclasses import dataclass

from visitlens.adapters.jwt_keys import KeyRing
from visitlens.adapters.postgres import Database
from visitlens.auth.service import AuthService
from visitlens.auth.wiring import build_auth
from visitlens.config import Settings
from visitlens.runtime.lazy import Lazy


@dataclass(slots=True)
class ApiServices:
    settings: Settings
    db: Database
    keys: KeyRing
    auth: AuthService


def lazy_api_services(settings: Settings) -> Lazy[ApiServices]:
    return Lazy(lambda: ApiServices(settings, *build_auth(settings)))
