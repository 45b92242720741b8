"""The ports: what the kernel needs from the world, as Protocols. Adapters implement them
(``visitlens.adapters``); the composition root (``visitlens.wiring``) plugs one into each use-case;
tests plug in the in-memory fakes of ``tests/fakes.py``.

The kernel (contracts, identity, persons, staff, reports, retention, tenancy, auth, vision) imports
this module and never a driver: no asyncpg, pymilvus, minio, starlette or jwt below this line
(an import-linter contract in ``make lint`` keeps it so).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol, TypeVar, overload
from uuid import UUID

from visitlens.vision.types import Floats

_T = TypeVar("_T")


class PersonKind(StrEnum):
    CUSTOMER = "customer"
    STAFF = "staff"


@dataclass(frozen=True, slots=True)
class DbScope:
    """What row-level security sees in one transaction; built only from a verified principal."""

    tenant_id: UUID | None
    system_admin: bool = False
    actor_id: UUID | None = None

    @classmethod
    def none(cls) -> DbScope:
        """No tenant: every tenant-scoped table looks empty."""
        return cls(tenant_id=None)


class Row(Protocol):
    """One result row of the database port, read by column name."""

    def __getitem__(self, key: str, /) -> Any: ...
    @overload
    def get(self, key: str) -> Any | None: ...
    @overload
    def get(self, key: str, default: _T) -> Any | _T: ...
    def keys(self) -> Iterable[str]: ...
    def items(self) -> Iterable[tuple[str, Any]]: ...


class Connection(Protocol):
    """A statement runner inside one unit of work (a PostgreSQL transaction in production).

    Only the read models and the management store speak SQL through it; the write-side use-cases
    (ingest, enrolment, merge, erasure, purge) have narrower ports of their own below."""

    async def fetch(self, query: str, *args: Any) -> Sequence[Row]: ...
    async def fetchrow(self, query: str, *args: Any) -> Row | None: ...
    async def fetchval(self, query: str, *args: Any) -> Any: ...
    async def execute(self, query: str, *args: Any) -> str: ...
    def transaction(self) -> Any:
        """A nested unit (a savepoint): an async context manager."""
        ...


class Transactions(Protocol):
    """Units of work scoped by row-level security: everything in one commits or nothing does."""

    def transaction(self, scope: DbScope) -> AbstractAsyncContextManager[Connection]: ...
    async def fetchval_unscoped(self, query: str, *args: Any) -> Any:
        """One statement outside any tenant scope (the look-ups made before a tenant is known)."""
        ...


@dataclass(frozen=True, slots=True)
class GalleryRow:
    """One stored view (an embedding) of a person."""

    view_id: UUID
    tenant_id: UUID
    person_id: UUID
    kind: PersonKind
    embedding: Floats


@dataclass(frozen=True, slots=True)
class Hit:
    view_id: UUID
    person_id: UUID
    kind: PersonKind
    similarity: float


@dataclass(frozen=True, slots=True)
class Nearest:
    """A stored view near a query vector, without its person: for a caller that reads whose
    each view is from the database in the same breath (ingest)."""

    view_id: UUID
    similarity: float


class Gallery(Protocol):
    """The vector gallery of one embedding model, partitioned by tenant (Milvus in production).

    Every call names its tenant; nothing here reaches across tenants."""

    model_id: str
    dim: int

    async def search(
        self, tenant_id: UUID, vectors: Floats, top_k: int, kind: PersonKind | None = None
    ) -> list[list[Hit]]:
        """Top-k views per query vector within the tenant (and kind, if given), best first."""
        ...

    async def nearest_views(
        self, tenant_id: UUID, vectors: Floats, top_k: int
    ) -> list[list[Nearest]]:
        """Top-k views per query vector within the tenant, best first: :meth:`search` without
        asking the gallery for each view's person (the database says whose a view is, and
        whether it is still kept)."""
        ...

    async def insert(self, rows: Sequence[GalleryRow]) -> None: ...
    async def delete_person(self, tenant_id: UUID, person_id: UUID) -> int: ...
    async def delete_views(self, tenant_id: UUID, view_ids: Sequence[UUID]) -> int: ...
    def discard_views(self, tenant_id: UUID, view_ids: Sequence[UUID]) -> None:
        """Views their person no longer keeps (replaced by better ones): deleted soon, off the
        caller's path, together with others. Until then a search may still return them; they
        are views of a person who exists, so a match through one is still that person (ingest,
        which reads whose each hit is from the database, ignores them at once). A delete lost
        with its instance leaves such a view until the person is erased."""
        ...


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: str
    modified: datetime | None


class ObjectStore(Protocol):
    """Buckets of immutable objects (S3: MinIO in production, SeaweedFS embedded).

    Errors are the kernel's: an absent object is :class:`~visitlens.errors.NotFound`, anything the
    store could not do now is :class:`~visitlens.errors.TransientError`."""

    async def put(self, bucket: str, key: str, data: bytes, content_type: str) -> None: ...
    async def read(self, bucket: str, key: str, limit: int | None = None) -> bytes:
        """The object's bytes; PayloadTooLarge past ``limit`` bytes."""
        ...

    async def presign_put(self, bucket: str, key: str, ttl: timedelta) -> str:
        """A URL that lets its holder PUT this one key until ``ttl`` runs out (no request made)."""
        ...

    async def delete(self, bucket: str, keys: Sequence[str]) -> None:
        """Deletes every key (an absent one is fine); TransientError if any could not be."""
        ...

    async def list(self, bucket: str, prefix: str) -> list[StoredObject]: ...
    async def bucket_exists(self, bucket: str) -> bool: ...


class Clock(Protocol):
    def now(self) -> datetime:
        """An aware UTC instant."""
        ...


class SystemClock:
    """The real clock (the only one outside tests)."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class TokenCodec(Protocol):
    """Signs and verifies the platform's access tokens (JWT with a rotating key ring)."""

    def encode(self, claims: dict[str, Any]) -> str: ...
    def decode(self, token: str, *, token_type: str) -> dict[str, Any]:
        """The verified claims; Unauthenticated for anything else."""
        ...

    def jwks(self) -> dict[str, list[dict[str, Any]]]: ...


class PasswordHasher(Protocol):
    """A slow password hash (argon2id), never on the event loop."""

    async def verify(self, password_hash: str | None, password: str) -> bool: ...
    async def hash(self, password: str) -> str: ...
    def needs_rehash(self, password_hash: str) -> bool: ...


class VisitChanges(Protocol):
    """Wakes a tenant's live-monitor streams when one of its visits changes."""

    async def subscribe(self, tenant_id: UUID) -> asyncio.Event: ...
    def unsubscribe(self, tenant_id: UUID, wake: asyncio.Event) -> None: ...


class EventPublisher(Protocol):
    """Sends CloudEvents onward (the Knative Broker, K_SINK, in production)."""

    async def publish(self, events: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]]) -> None:
        """Each (attributes, data) pair, in order; logs and drops what it could not deliver."""
        ...
