"""The tenant gallery in Milvus: one collection per embedding model, tenant as the partition key.

Every search and delete carries ``tenant_id == "<tenant>"``; the only search without it is
:meth:`MilvusGallery.global_search`, which demands a system-admin principal. Embeddings of different
models never meet: the collection is chosen by model id and its dimension is checked.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar
from uuid import UUID

import grpc
import numpy as np
import numpy.typing as npt
from pymilvus import AsyncMilvusClient, DataType, MilvusClient
from pymilvus.exceptions import MilvusException
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from visitlens.adapters.metrics import GALLERY_SEARCH
from visitlens.auth.principal import Principal
from visitlens.config import MilvusSettings
from visitlens.errors import Forbidden, InvalidInput, TransientError, VisitlensError
from visitlens.identity.group_commit import GroupCommit
from visitlens.ports import GalleryRow, Hit, Nearest, PersonKind
from visitlens.vision.types import Floats

logger = logging.getLogger(__name__)

_SAFE = re.compile(r"[^a-z0-9_]")
GRPC_OPTIONS = {"grpc.keepalive_permit_without_calls": False}
COLLECTION_NOT_LOADED = 101
# What a Milvus call raises when the server is away. pymilvus wraps most gRPC failures in a
# MilvusException but lets some through as they are (a delete while the server is down raised
# grpc.aio.AioRpcError: the fault suite saw a 500 instead of a 503) — both are unavailability.
MILVUS_ERRORS = (MilvusException, grpc.RpcError)


def _code(error: BaseException) -> str:
    """A short reason for the logs: Milvus's error code or gRPC's status (never the message)."""
    if isinstance(error, MilvusException):
        return str(error.code)
    status = getattr(error, "code", None)
    return str(status().name) if callable(status) else type(error).__name__


"""Milvus's error code for a search or query on a released collection (``merr``
ErrCollectionNotLoaded, internal/util/merr/errors.go)."""
"""No keep-alive pings on an idle channel: pymilvus pings every 10 s by default, and a server with
gRPC's default ping policy (Milvus Lite) answers an idle client's pings with a "too many pings"
GOAWAY that breaks the channel. A dead idle channel is found by the next call instead."""


CONSISTENCY = "Bounded"
"""The consistency level of the collection and every search, for ingest's question "have we seen
this face?". Strong waits for the server's next time tick before answering (measured on Milvus
2.3.5: ~400 ms per search, against ~3 ms); so does Session as soon as this instance has written
anything (a busy ingest instance always has: ~45 events/s where it should do hundreds). Bounded
never waits: it may miss what was written within the server's graceful time (5 s), so each
instance also remembers the views it inserted itself for ``RECENT_S`` and merges them into its
searches (read-your-writes without waiting); other instances' views arrive within the graceful
time, shorter than any revisit the visit window cares about. Milvus Lite is always
read-your-writes."""

RECENT_S = 15.0
"""How long an instance merges its own inserted views into its searches: longer than the server's
graceful time (5 s), so no view of ours is ever invisible."""


DISCARD_EVERY_S = 1.0
"""How often an instance deletes the views it was told to discard, together, per tenant: a
delete that checks the tenant waits for the server's next time tick (measured on Milvus 2.3.5: a
filtered delete ~200 ms and 2.4 ms of server CPU per call, whatever the number of ids; by key
0.5 ms), so it is paid once a second off the answer's path, not once per event on it."""
DISCARD_CHUNK = 1000
DISCARD_BACKLOG = 100_000
"""Discarded views kept for a later delete while Milvus refuses them; past this, the oldest are
given up (logged): they stay findable as views of their living person until it is erased."""


PERSON_FIELDS = ["person_id", "kind"]
"""What :meth:`MilvusGallery.search` asks of each hit besides its key and distance;
:meth:`MilvusGallery.nearest_views` asks nothing more (measured on Milvus 2.3.5: decoding the
fields cost the client ~0.5 ms per call, a fifth of its search CPU)."""

_Found = tuple[UUID, float, dict[str, Any]]
"""One hit as Milvus gives it: view id, similarity, the fields asked for."""


class _Scored(Protocol):
    @property
    def view_id(self) -> UUID: ...
    @property
    def similarity(self) -> float: ...


_T = TypeVar("_T", bound=_Scored)
R = TypeVar("R")


def collection_name(model_id: str) -> str:
    return "faces_" + _SAFE.sub("_", model_id.lower())


def _tenant_filter(tenant_id: UUID) -> str:
    # A UUID renders as hex and dashes only: nothing can escape the string literal.
    return f'tenant_id == "{UUID(str(tenant_id))}"'


class _RecentViews:
    """One tenant's views this instance inserted lately, oldest first, with their vectors kept as
    one matrix: a search scores them with one product (stacking thousands of rows for every search
    took about a tenth of the ingest process's CPU under load, py-spy). The matrix is a window on
    a buffer with room to spare: appending writes only the new rows (copying the whole matrix on
    every insert call took ~4 % of the process's CPU at 175 events/s), expiring moves the
    window's start, and the live rows move to the front only when the buffer's end is reached
    (each row moves a bounded number of times)."""

    def __init__(self, dim: int) -> None:
        self.rows: list[GalleryRow] = []
        self._buffer = np.empty((64, dim), np.float32)
        self._times = np.empty(64, np.float64)
        self._start = 0

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def matrix(self) -> Floats:
        return self._buffer[self._start : self._start + len(self.rows)]

    @property
    def times(self) -> npt.NDArray[np.float64]:
        return self._times[self._start : self._start + len(self.rows)]

    def add(self, now: float, rows: Sequence[GalleryRow]) -> None:
        live, end = len(self.rows), self._start + len(self.rows)
        if end + len(rows) > len(self._buffer):  # to the front, in a larger buffer if need be
            size = max(len(self._buffer), 2 * (live + len(rows)))
            buffer = np.empty((size, self._buffer.shape[1]), np.float32)
            times = np.empty(size, np.float64)
            buffer[:live], times[:live] = self.matrix, self.times
            self._buffer, self._times, self._start, end = buffer, times, 0, live
        for n, row in enumerate(rows):
            self._buffer[end + n] = row.embedding
        self._times[end : end + len(rows)] = now
        self.rows.extend(rows)

    def expire(self, horizon: float) -> None:
        old = int(np.searchsorted(self.times, horizon, side="left"))
        if old:
            self._start += old
            del self.rows[:old]

    def keep(self, wanted: list[bool]) -> None:
        mask = np.asarray(wanted, bool)
        kept = int(mask.sum())
        self._buffer[:kept], self._times[:kept] = self.matrix[mask], self.times[mask]
        self._start = 0
        self.rows = [row for row, w in zip(self.rows, wanted, strict=True) if w]

    def of_kind(self, kind: PersonKind | None) -> tuple[list[GalleryRow], Floats]:
        if kind is None:
            return self.rows, self.matrix
        wanted = [row.kind is kind for row in self.rows]
        return [r for r, w in zip(self.rows, wanted, strict=True) if w], self.matrix[wanted]


class MilvusGallery:
    """The :class:`visitlens.ports.Gallery` of one embedding model in Milvus; one client per warm instance.

    Searches are grouped (:mod:`visitlens.identity.group_commit`): a tenant's search goes to Milvus
    at once while fewer than ``searches_per_filter`` of its searches are running; those arriving
    meanwhile go together as one multi-vector call when one returns.
    """

    def __init__(self, uri: str, settings: MilvusSettings, model_id: str, dim: int) -> None:
        self._uri = uri
        self._settings = settings
        self.model_id = model_id
        self.dim = dim
        self.collection = collection_name(model_id)
        self._client: AsyncMilvusClient | None = None
        self._lock = asyncio.Lock()
        self._searches: GroupCommit[tuple[str, bool], tuple[Floats, int], list[list[_Found]]] = (
            GroupCommit(
                self._search_group,
                max_items=settings.search_batch_max_requests,
                slots=settings.searches_per_filter,
            )
        )
        self._unflushed = 0
        self._flushing: asyncio.Task[None] | None = None
        self._recent: dict[UUID, _RecentViews] = {}
        self._discards: dict[UUID, dict[UUID, None]] = {}
        self._discarding: asyncio.Task[None] | None = None

    async def ping(self) -> None:
        """Milvus answers and the collection is there (a readiness check)."""
        client = await self.client()
        if not await client.has_collection(self.collection):
            raise TransientError(f"collection {self.collection} is missing")

    async def client(self) -> AsyncMilvusClient:
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    # synchronous gRPC set-up, once: off the event loop
                    await asyncio.to_thread(self._ensure_collection)
                    token = self._settings.token.get_secret_value() if self._settings.token else ""
                    self._client = AsyncMilvusClient(
                        uri=self._uri, token=token, db_name=self._settings.db_name,
                        timeout=self._settings.timeout_s, grpc_options=GRPC_OPTIONS,
                    )  # fmt: skip
        return self._client

    @retry(
        retry=retry_if_exception_type(TransientError),
        stop=stop_after_attempt(4),
        wait=wait_exponential_jitter(multiplier=0.2, max=2.0, jitter=0.2),
        reraise=True,
    )
    def _ensure_collection(self) -> None:
        """Create the collection and its index if missing (idempotent, synchronous, once).

        Retried: a gRPC channel the server just closed (a restart, or Milvus Lite's "too many
        pings" GOAWAY on an idle connection) fails the first connect."""
        token = self._settings.token.get_secret_value() if self._settings.token else ""
        try:
            sync = MilvusClient(
                uri=self._uri,
                token=token,
                db_name=self._settings.db_name,
                grpc_options=GRPC_OPTIONS,
            )
        except MILVUS_ERRORS as exc:
            raise TransientError(f"Milvus unavailable: {_code(exc)}") from exc
        try:
            if sync.has_collection(self.collection):
                described = sync.describe_collection(self.collection)
                vector = next(f for f in described["fields"] if f["name"] == "embedding")
                if int(vector["params"]["dim"]) != self.dim:
                    raise InvalidInput(
                        f"collection {self.collection} holds {vector['params']['dim']}-D vectors, "
                        f"model {self.model_id} gives {self.dim}-D"
                    )
                sync.load_collection(self.collection)
                return
            schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("view_id", DataType.VARCHAR, is_primary=True, max_length=36)
            schema.add_field("tenant_id", DataType.VARCHAR, max_length=36, is_partition_key=True)
            schema.add_field("person_id", DataType.VARCHAR, max_length=36)
            schema.add_field("kind", DataType.VARCHAR, max_length=8)
            schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=self.dim)
            index = MilvusClient.prepare_index_params()
            index.add_index(
                "embedding",
                index_type=self._settings.index_type,
                metric_type="IP",  # unit vectors: inner product is cosine
                params=dict(self._settings.index_params),
            )
            sync.create_collection(
                self.collection,
                schema=schema,
                index_params=index,
                num_partitions=self._settings.num_partitions,
                consistency_level=CONSISTENCY,
                properties={"visitlens.model_id": self.model_id},
            )
            logger.info("created collection %s (dim %d)", self.collection, self.dim)
        except MILVUS_ERRORS as exc:
            raise TransientError(f"Milvus unavailable: {_code(exc)}") from exc
        finally:
            sync.close()

    async def _loaded(self, call: Callable[[AsyncMilvusClient], Awaitable[R]]) -> R:
        """``call`` on the client; if Milvus says the collection is not loaded (a server that
        restarted loads nothing by itself: the fault suite's Milvus outage answered 503 for good
        without this), it is loaded and ``call`` made once more."""
        client = await self.client()
        try:
            return await call(client)
        except MilvusException as exc:
            if exc.code != COLLECTION_NOT_LOADED:
                raise
        async with self._lock:
            logger.warning("collection %s is not loaded (the server restarted?): loading it",
                           self.collection)  # fmt: skip
            await client.load_collection(self.collection)
        return await call(client)

    def _check(self, vectors: Floats) -> None:
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise InvalidInput(
                f"embeddings of {vectors.shape[-1]} values do not fit {self.model_id} "
                f"({self.dim}-D)",
                field="embedding",
            )
        norms = np.linalg.norm(vectors, axis=1)
        if np.any(np.abs(norms - 1) > 0.01):
            raise InvalidInput("embeddings must be L2-normalised", field="embedding")

    async def insert(self, rows: Sequence[GalleryRow]) -> None:
        if not rows:
            return
        self._check(np.stack([r.embedding for r in rows]))
        data = [
            {
                "view_id": str(r.view_id),
                "tenant_id": str(r.tenant_id),
                "person_id": str(r.person_id),
                "kind": r.kind.value,
                "embedding": r.embedding.astype(np.float32).tolist(),
            }
            for r in rows
        ]
        client = await self.client()
        try:
            await client.insert(self.collection, data)
        except MILVUS_ERRORS as exc:
            raise TransientError(f"Milvus insert failed: {_code(exc)}") from exc
        now = time.monotonic()
        by_tenant: dict[UUID, list[GalleryRow]] = {}
        for row in rows:
            by_tenant.setdefault(row.tenant_id, []).append(row)
        for tenant_id, own in by_tenant.items():
            self._recent.setdefault(tenant_id, _RecentViews(self.dim)).add(now, own)
        self._expire(now - RECENT_S)
        self._unflushed += len(rows)
        threshold = self._settings.flush_after_inserts
        if threshold and self._unflushed >= threshold and self._flushing is None:
            self._unflushed = 0
            self._flushing = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        try:
            await self.flush()
        except TransientError:
            logger.warning("background flush of %s failed; will retry later", self.collection)
        finally:
            self._flushing = None

    async def flush(self) -> None:
        """Seal the growing segment so its vectors are indexed."""
        client = await self.client()
        try:
            await client.flush(self.collection)
        except MILVUS_ERRORS as exc:
            raise TransientError(f"Milvus flush failed: {_code(exc)}") from exc

    async def search(
        self,
        tenant_id: UUID,
        vectors: Floats,
        top_k: int,
        kind: PersonKind | None = None,
    ) -> list[list[Hit]]:
        """Top-k views per query vector within ``tenant_id`` (and ``kind`` if given)."""
        expression = _tenant_filter(tenant_id)
        if kind is not None:
            expression += f' and kind == "{kind.value}"'
        hits = [[_hit(found) for found in per]
                for per in await self._search(vectors, top_k, expression, persons=True)]  # fmt: skip
        rows, matrix = self._recent_rows(tenant_id, kind)
        return _merged(hits, vectors, rows, matrix, top_k, _row_hit) if rows else hits

    async def nearest_views(
        self, tenant_id: UUID, vectors: Floats, top_k: int
    ) -> list[list[Nearest]]:
        """:meth:`search` without the people: only keys and distances cross the wire."""
        found = await self._search(vectors, top_k, _tenant_filter(tenant_id), persons=False)
        hits = [[Nearest(view_id, similarity) for view_id, similarity, _ in per] for per in found]
        rows, matrix = self._recent_rows(tenant_id, None)
        return _merged(hits, vectors, rows, matrix, top_k, _row_nearest) if rows else hits

    def _expire(self, horizon: float) -> None:
        """Forget views older than ``horizon`` for every tenant (a tenant that never searches
        again must not keep its rows for the instance's life)."""
        for tenant_id in list(self._recent):
            recent = self._recent[tenant_id]
            recent.expire(horizon)
            if not recent:
                del self._recent[tenant_id]

    def _recent_rows(
        self, tenant_id: UUID, kind: PersonKind | None
    ) -> tuple[list[GalleryRow], Floats]:
        """This instance's views inserted within ``RECENT_S`` (the server may not show them)."""
        recent = self._recent.get(tenant_id)
        if not recent:
            return [], np.empty((0, self.dim), np.float32)
        recent.expire(time.monotonic() - RECENT_S)
        return recent.of_kind(kind)

    def _forget(
        self, tenant_id: UUID, views: set[UUID] | None = None, person_id: UUID | None = None
    ) -> None:
        """Deleted views are no longer merged into searches."""
        recent = self._recent.get(tenant_id)
        if recent:
            recent.keep([
                (views is None or row.view_id not in views)
                and (person_id is None or row.person_id != person_id)
                for row in recent.rows
            ])  # fmt: skip

    async def global_search(
        self, principal: Principal, vectors: Floats, top_k: int
    ) -> list[list[Hit]]:
        """Across every tenant: for system administrators only, and logged."""
        if not principal.is_system_admin:
            raise Forbidden("a search across tenants is for system administrators only")
        logger.warning("global gallery search by %s", principal.subject)
        found = await self._search(vectors, top_k, "", persons=True)
        return [[_hit(f) for f in per] for per in found]

    async def _search(
        self, vectors: Floats, top_k: int, expression: str, *, persons: bool
    ) -> list[list[_Found]]:
        if len(vectors) == 0:
            return []
        self._check(vectors)
        return await self._searches.submit((expression, persons), (vectors, top_k))

    async def _search_group(
        self, key: tuple[str, bool], items: Sequence[tuple[Floats, int]]
    ) -> list[list[list[_Found]]]:
        """Searches with one filter (and the same fields asked) as one Milvus call: each its own
        top-k of the answer."""
        expression, persons = key
        try:
            hits = await self._milvus_search(
                np.concatenate([vectors for vectors, _ in items]),
                max(top_k for _, top_k in items),
                expression,
                PERSON_FIELDS if persons else [],
            )
        except VisitlensError:
            raise
        except Exception as exc:  # a supervision boundary: see below
            # Anything unexpected (a driver's changed result shape, a bug) is this group's
            # failure, answered to its waiters as a transient one, never a crash of the caller.
            logger.error("gallery search failed: %s", type(exc).__name__)
            raise TransientError(f"gallery search failed: {type(exc).__name__}") from exc
        out, start = [], 0
        for vectors, top_k in items:
            out.append([per[:top_k] for per in hits[start : start + len(vectors)]])
            start += len(vectors)
        return out

    async def _milvus_search(
        self, vectors: Floats, top_k: int, expression: str, fields: list[str]
    ) -> list[list[_Found]]:
        """One Milvus call, timed (``visitlens_gallery_search_seconds``)."""
        with GALLERY_SEARCH.time():
            return await self._milvus_search_call(vectors, top_k, expression, fields)

    async def _milvus_search_call(
        self, vectors: Floats, top_k: int, expression: str, fields: list[str]
    ) -> list[list[_Found]]:
        data = vectors.astype(np.float32).tolist()
        params = {"metric_type": "IP", "params": dict(self._settings.search_params)}
        try:
            results = await self._loaded(
                lambda client: client.search(
                    self.collection, data=data, filter=expression, limit=top_k,
                    output_fields=fields, search_params=params, anns_field="embedding",
                    consistency_level=CONSISTENCY,
                )
            )  # fmt: skip
        except MILVUS_ERRORS as exc:
            raise TransientError(f"Milvus search failed: {_code(exc)}") from exc
        return [
            [
                (
                    # Milvus Lite names the primary key; a Milvus server returns it as "id"
                    UUID(str(hit.get("view_id") or hit["id"])),
                    # float32 inner products of unit vectors can exceed 1 by an ulp
                    min(1.0, max(-1.0, float(hit["distance"]))),
                    hit.get("entity") or {},
                )
                for hit in per_query
            ]
            for per_query in results
        ]

    async def delete_person(self, tenant_id: UUID, person_id: UUID) -> int:
        """Delete every view of the person within the tenant; the number deleted."""
        expression = f'{_tenant_filter(tenant_id)} and person_id == "{UUID(str(person_id))}"'
        self._forget(tenant_id, person_id=person_id)
        return await self._delete(expression)

    async def delete_views(self, tenant_id: UUID, view_ids: Sequence[UUID]) -> int:
        """Delete these views if they belong to the tenant; the number deleted."""
        if not view_ids:
            return 0
        ids = ", ".join(f'"{UUID(str(v))}"' for v in view_ids)
        self._forget(tenant_id, views=set(view_ids))
        return await self._delete(f"{_tenant_filter(tenant_id)} and view_id in [{ids}]")

    def discard_views(self, tenant_id: UUID, view_ids: Sequence[UUID]) -> None:
        """Deleted within ``DISCARD_EVERY_S``, with every other view discarded meanwhile."""
        if not view_ids:
            return
        pending = self._discards.setdefault(tenant_id, {})
        pending.update(dict.fromkeys(view_ids))
        overflow = sum(len(v) for v in self._discards.values()) - DISCARD_BACKLOG
        if overflow > 0:
            for _ in range(min(overflow, len(pending))):
                del pending[next(iter(pending))]
            logger.warning("gave up deleting %d discarded gallery views", overflow)
        if self._discarding is None:
            self._discarding = asyncio.create_task(self._discard_loop())

    async def _discard_loop(self) -> None:
        try:
            while self._discards:
                await asyncio.sleep(DISCARD_EVERY_S)
                await self.delete_discarded()
        finally:
            self._discarding = None

    async def delete_discarded(self) -> None:
        """Delete the discarded views now (what failed is kept for the next round)."""
        pending, self._discards = self._discards, {}

        async def tenant(tenant_id: UUID, ids: list[UUID]) -> None:
            for lo in range(0, len(ids), DISCARD_CHUNK):
                chunk = ids[lo : lo + DISCARD_CHUNK]
                try:
                    await self._delete_owned(tenant_id, chunk)
                except VisitlensError:
                    logger.warning("could not delete %d discarded gallery views of tenant %s; "
                                   "will retry", len(chunk), tenant_id)  # fmt: skip
                    self._discards.setdefault(tenant_id, {}).update(dict.fromkeys(chunk))

        await asyncio.gather(*(tenant(t, list(ids)) for t, ids in pending.items()))

    async def _delete_owned(self, tenant_id: UUID, view_ids: Sequence[UUID]) -> int:
        """:meth:`delete_views` by primary key: which of ``view_ids`` are the tenant's is asked
        first (a primary-key look-up, Strong: views just inserted elsewhere are seen too), then
        those are deleted by key. A filtered delete would scan the tenant's every view for the
        ids instead — a million at a large tenant, once a second."""
        self._forget(tenant_id, views=set(view_ids))
        ids = ", ".join(f'"{UUID(str(v))}"' for v in view_ids)
        try:
            rows = await self._loaded(
                lambda client: client.query(
                    self.collection, filter=f"view_id in [{ids}]", output_fields=["tenant_id"],
                    consistency_level="Strong",
                )
            )  # fmt: skip
            owned = [row["view_id"] for row in rows if row["tenant_id"] == str(tenant_id)]
            if not owned:
                return 0
            client = await self.client()
            return _deleted_count(await client.delete(self.collection, ids=owned))
        except MILVUS_ERRORS as exc:
            raise TransientError(f"Milvus delete failed: {_code(exc)}") from exc

    async def _delete(self, expression: str) -> int:
        try:
            result = await self._loaded(
                lambda client: client.delete(self.collection, filter=expression)
            )
        except MILVUS_ERRORS as exc:
            raise TransientError(f"Milvus delete failed: {_code(exc)}") from exc
        return _deleted_count(result)

    async def close(self) -> None:
        if self._discarding is not None:
            self._discarding.cancel()
            self._discarding = None
        if self._discards and self._client is not None:
            await self.delete_discarded()  # nothing discarded is left behind by a clean stop
        if self._flushing is not None:
            self._flushing.cancel()
            self._flushing = None
        if self._client is not None:
            await self._client.close()
            self._client = None


def _hit(found: _Found) -> Hit:
    view_id, similarity, entity = found
    return Hit(view_id, UUID(entity["person_id"]), PersonKind(entity["kind"]), similarity)


def _row_hit(row: GalleryRow, similarity: float) -> Hit:
    return Hit(row.view_id, row.person_id, row.kind, similarity)


def _row_nearest(row: GalleryRow, similarity: float) -> Nearest:
    return Nearest(row.view_id, similarity)


def _merged(
    hits: list[list[_T]],
    vectors: Floats,
    rows: list[GalleryRow],
    matrix: Floats,
    top_k: int,
    make: Callable[[GalleryRow, float], _T],
) -> list[list[_T]]:
    """The server's hits with ``rows`` (their vectors: ``matrix``) scored by brute force, best
    first, each view once.

    Only the ``top_k`` best of ``rows`` per query can be among the ``top_k`` best of the union,
    so only those become hits (a busy instance holds thousands of recent rows: building a hit for
    each, per query, was half of ingest's CPU)."""
    scores = np.clip(vectors.astype(np.float32) @ matrix.T, -1.0, 1.0)
    k = min(top_k, len(rows))
    out: list[list[_T]] = []
    for n, per in enumerate(hits):
        row_scores = scores[n]
        best = np.argpartition(-row_scores, k - 1)[:k] if k < len(rows) else range(len(rows))
        seen = {hit.view_id for hit in per}
        union: list[_T] = [*per]
        union.extend(
            make(rows[j], float(row_scores[j])) for j in best if rows[j].view_id not in seen
        )
        union.sort(key=lambda h: h.similarity, reverse=True)
        out.append(union[:top_k])
    return out


def _deleted_count(result: object) -> int:
    """A Milvus server answers ``{"delete_count": n}``; other versions the deleted keys."""
    if isinstance(result, dict):
        return int(result.get("delete_count", 0))
    if isinstance(result, list | tuple):
        return len(result)
    return int(getattr(result, "delete_count", 0))
