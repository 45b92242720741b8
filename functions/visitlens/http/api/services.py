"""What one warm API instance's handlers use (``visitlens.wiring`` builds it once, on first use)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from visitlens.auth.service import AuthService
from visitlens.config import Settings
from visitlens.http import health
from visitlens.ports import ObjectStore, TokenCodec, Transactions, VisitChanges


class LoginThrottle(Protocol):
    """Limits sign-in attempts per address and per account (RateLimited, 429, past them)."""

    def client_address(self, peer: str | None, forwarded_for: str | None) -> str: ...
    async def check(self, address: str, account: str | None) -> None: ...


@dataclass(slots=True)
class ApiServices:
    settings: Settings
    db: Transactions
    checks: Mapping[str, health.Check]
    keys: TokenCodec
    auth: AuthService
    presigner: ObjectStore
    """Signs snapshot upload URLs for the address edge workers reach (no request is made)."""
    store: ObjectStore
    """Reads snapshots for the console (the platform's own address of the object store)."""
    logins: LoginThrottle
    feed: VisitChanges
    """Wakes the live monitor's streams when a visit of their tenant changes."""
