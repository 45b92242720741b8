"""Routes of the `merge` and `erase` functions, and the clients of one warm instance."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, Field
from starlette.responses import JSONResponse, Response

from visitlens.auth.principal import Role
from visitlens.auth.service import AuthService
from visitlens.errors import NotFound
from visitlens.http import health
from visitlens.http.api.snapshots import read_snapshot, snapshot_response
from visitlens.http.router import Ctx, Route
from visitlens.pagination import Page, PageQuery, decode_cursor, encode_cursor
from visitlens.persons.erasure import Eraser
from visitlens.persons.merging import PersonMerger
from visitlens.persons.review import DuplicatesReview
from visitlens.ports import ObjectStore, Transactions
from visitlens.schemas import Input
from visitlens.tenancy import audit
from visitlens.validation import Instant

ADMIN = Role.TENANT_ADMIN


@dataclass(slots=True)
class PersonServices:
    """What the merge and erase functions' handlers use."""

    db: Transactions
    checks: Mapping[str, health.Check]
    auth: AuthService
    merger: PersonMerger
    eraser: Eraser
    store: ObjectStore
    raw_bucket: str
    review: DuplicatesReview


class MergeRequest(Input):
    kept_id: UUID = Field(description="the person that stays")
    merged_id: UUID = Field(description="the person merged into it and removed")


class PairRequest(Input):
    person_a: UUID
    person_b: UUID


class ErasureRequest(Input):
    customer_id: UUID


class Moved(BaseModel):
    visits: int
    sightings: int
    embeddings: int


class MergeOut(BaseModel):
    merge_id: UUID
    kept_id: UUID
    merged_id: UUID
    moved: Moved


class ErasureOut(BaseModel):
    receipt_id: UUID
    visits_anonymised: int
    sightings_deleted: int
    embeddings_deleted: int
    snapshots_deleted: int


async def merge(ctx: Ctx[PersonServices]) -> MergeOut:
    body = await ctx.body(MergeRequest)
    result = await ctx.services.merger.merge(
        ctx.principal, ctx.params["tenant_id"], body.kept_id, body.merged_id
    )
    return MergeOut.model_validate(result)


async def unmerge(ctx: Ctx[PersonServices]) -> MergeOut:
    result = await ctx.services.merger.unmerge(
        ctx.principal, ctx.params["tenant_id"], ctx.params["merge_id"]
    )
    return MergeOut.model_validate(result)


async def not_same(ctx: Ctx[PersonServices]) -> JSONResponse:
    body = await ctx.body(PairRequest)
    created = await ctx.services.merger.mark_distinct(
        ctx.principal, ctx.params["tenant_id"], body.person_a, body.person_b
    )
    return JSONResponse({"marked": True, "new": created}, status_code=201 if created else 200)


async def erase(ctx: Ctx[PersonServices]) -> ErasureOut:
    body = await ctx.body(ErasureRequest)
    result = await ctx.services.eraser.erase(
        ctx.principal, ctx.params["tenant_id"], body.customer_id
    )
    return ErasureOut.model_validate(result)


# --- auditing identity decisions ----------------------------------------------------------------


class CustomerQuery(PageQuery):
    seen_since: Instant | None = Field(default=None, description="last seen at or after")
    q: str | None = Field(
        default=None,
        pattern=r"^[0-9a-fA-F-]{1,36}$",
        description="the start of a customer id (as printed on a receipt or a report)",
    )


class CustomerOut(BaseModel):
    id: UUID
    first_seen_at: datetime
    last_seen_at: datetime
    visit_count: int
    views: int = Field(description="gallery views kept for this person")
    gender: str | None
    age_band: str | None
    created_at: datetime


class SightingOut(BaseModel):
    id: UUID
    site_id: UUID
    camera_id: UUID
    captured_at: datetime
    decision: str = Field(description="new_customer, returning_customer or staff")
    similarity: float | None = Field(description="the evidence for a link (None for new)")
    quality: float | None
    visit_id: UUID | None
    opened_visit: bool | None
    staff_id: UUID | None
    gender: str | None
    age_band: str | None
    has_snapshot: bool = Field(description="a snapshot is retained (GET .../snapshot)")


_CUSTOMERS = (
    "SELECT c.id, c.first_seen_at, c.last_seen_at, c.visit_count, c.gender, c.age_band, "
    "c.created_at, (SELECT count(*) FROM person_embeddings e WHERE e.customer_id = c.id) "
    "AS views FROM customers c"
)
"""A customer as ``CustomerOut`` shows it (with how many gallery views it keeps)."""


async def list_customers(ctx: Ctx[PersonServices]) -> Page[CustomerOut]:
    """Customers, newest first seen last (keyset by creation), with how many views they keep."""
    query = ctx.query(CustomerQuery)
    after = decode_cursor(query.cursor) if query.cursor else None
    scope = ctx.principal.db_scope(ctx.params["tenant_id"])
    async with ctx.services.db.transaction(scope) as conn:
        rows = await conn.fetch(
            f"{_CUSTOMERS} WHERE ($1::timestamptz IS NULL OR c.last_seen_at >= $1) "
            "AND ($2::timestamptz IS NULL OR (c.created_at, c.id) > ($2, $3)) "
            "AND ($5::text IS NULL OR starts_with(c.id::text, $5)) "
            "ORDER BY c.created_at, c.id LIMIT $4",
            query.seen_since, after[0] if after else None, after[1] if after else None,
            query.limit + 1, query.q.lower() if query.q else None,
        )  # fmt: skip
    items = [CustomerOut.model_validate(dict(r)) for r in rows[: query.limit]]
    cursor = encode_cursor(items[-1].created_at, items[-1].id) if len(rows) > query.limit else None
    return Page[CustomerOut](items=items, next_cursor=cursor)


async def get_customer(ctx: Ctx[PersonServices]) -> CustomerOut:
    scope = ctx.principal.db_scope(ctx.params["tenant_id"])
    async with ctx.services.db.transaction(scope) as conn:
        row = await conn.fetchrow(
            f"{_CUSTOMERS} WHERE c.id = $1",
            ctx.params["customer_id"],
        )
    if row is None:
        raise NotFound("no such customer in this tenant")
    return CustomerOut.model_validate(dict(row))


async def sighting_snapshot(ctx: Ctx[PersonServices]) -> Response:
    """One sighting's snapshot while retained (image/jpeg); each view is audited."""
    tenant_id: UUID = ctx.params["tenant_id"]
    sighting_id: UUID = ctx.params["sighting_id"]
    async with ctx.services.db.transaction(ctx.principal.db_scope(tenant_id)) as conn:
        row = await conn.fetchrow(
            "SELECT site_id, snapshot_key FROM sightings WHERE id = $1", sighting_id
        )
        if row is None:
            raise NotFound(f"sighting {sighting_id} not found")
        ctx.principal.require_site(row["site_id"])
        if row["snapshot_key"] is not None:
            await audit.record(
                conn, ctx.principal, "snapshot.view", "sighting", sighting_id, tenant_id
            )
    data = await read_snapshot(ctx.services.store, ctx.services.raw_bucket, row["snapshot_key"])
    return snapshot_response(data)


async def customer_sightings(ctx: Ctx[PersonServices]) -> Page[SightingOut]:
    """A person's sightings, oldest first: each identity decision and its similarity."""
    query = ctx.query(PageQuery)
    after = decode_cursor(query.cursor) if query.cursor else None
    scope = ctx.principal.db_scope(ctx.params["tenant_id"])
    async with ctx.services.db.transaction(scope) as conn:
        if not await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM customers WHERE id = $1)", ctx.params["customer_id"]
        ):
            raise NotFound("no such customer in this tenant")
        rows = await conn.fetch(
            "SELECT id, site_id, camera_id, captured_at, decision, similarity, quality, visit_id, "
            "opened_visit, staff_id, gender, age_band, snapshot_key IS NOT NULL AS has_snapshot "
            "FROM sightings WHERE customer_id = $1 "
            "AND ($2::timestamptz IS NULL OR (captured_at, id) > ($2, $3)) "
            "ORDER BY captured_at, id LIMIT $4",
            ctx.params["customer_id"], after[0] if after else None,
            after[1] if after else None, query.limit + 1,
        )  # fmt: skip
    items = [SightingOut.model_validate(dict(r)) for r in rows[: query.limit]]
    cursor = encode_cursor(items[-1].captured_at, items[-1].id) if len(rows) > query.limit else None
    return Page[SightingOut](items=items, next_cursor=cursor)


class PersonGlanceOut(BaseModel):
    id: UUID
    first_seen_at: datetime
    last_seen_at: datetime
    visit_count: int
    snapshot_sighting_id: UUID | None = Field(
        description="the newest sighting with a retained snapshot (GET .../sightings/{id}/"
        "snapshot), null once retention removed them all"
    )


class DuplicateOut(BaseModel):
    customer: PersonGlanceOut = Field(description="the newer customer, created by the pass")
    candidate: PersonGlanceOut = Field(description="the customer it scored closest to")
    similarity: float = Field(
        description="cosine similarity of the pass to the candidate: in the review band, at or "
        "above the base link threshold and below the gallery's open-set threshold"
    )
    created_at: datetime


async def list_duplicates(ctx: Ctx[PersonServices]) -> Page[DuplicateOut]:
    """Likely duplicates, newest first: merge them (POST .../merge) or mark them "not the same
    person" (POST .../not-same), which takes the pair off this list."""
    query = ctx.query(PageQuery)
    after = decode_cursor(query.cursor) if query.cursor else None
    pairs = await ctx.services.review.open_pairs(
        ctx.principal, ctx.params["tenant_id"], after, query.limit + 1
    )
    items = [DuplicateOut.model_validate(p, from_attributes=True) for p in pairs[: query.limit]]
    cursor = (
        encode_cursor(items[-1].created_at, items[-1].customer.id)
        if len(pairs) > query.limit
        else None
    )
    return Page[DuplicateOut](items=items, next_cursor=cursor)


P = "/v1/persons/{tenant_id:uuid}"
MERGE_ROUTES = [
    Route.build("GET", f"{P}/customers", list_customers, tag="persons", roles=(ADMIN,),
                query=CustomerQuery, response=Page[CustomerOut],
                summary="Customers with first/last seen, visit count and views (paginated)"),
    Route.build("GET", f"{P}/customers/{{customer_id:uuid}}", get_customer, tag="persons",
                roles=(ADMIN,), response=CustomerOut, summary="One customer"),
    Route.build("GET", f"{P}/sightings/{{sighting_id:uuid}}/snapshot", sighting_snapshot,
                tag="persons", roles=(ADMIN,), summary="A sighting's snapshot while retained "
                "(image/jpeg; 404 once purged; audited)"),
    Route.build("GET", f"{P}/customers/{{customer_id:uuid}}/sightings", customer_sightings,
                tag="persons", roles=(ADMIN,), query=PageQuery, response=Page[SightingOut],
                summary="A customer's sightings with each identity decision and its similarity"),
    Route.build("POST", f"{P}/merge", merge, tag="persons", roles=(ADMIN,), body=MergeRequest,
                response=MergeOut, summary="Merge one person into another (one transaction)"),
    Route.build("POST", f"{P}/merges/{{merge_id:uuid}}/undo", unmerge, tag="persons",
                roles=(ADMIN,), response=MergeOut, summary="Split a merge back out"),
    Route.build("POST", f"{P}/not-same", not_same, tag="persons", roles=(ADMIN,),
                body=PairRequest, summary="Mark two persons as different people (never merged)"),
    Route.build("GET", f"{P}/duplicates", list_duplicates, tag="persons", roles=(ADMIN,),
                query=PageQuery, response=Page[DuplicateOut],
                summary="Likely duplicates to review: passes that scored in the band just below "
                "the link threshold (paginated, newest first)"),
]  # fmt: skip
ERASE_ROUTES = [
    Route.build("POST", "/v1/erasure/{tenant_id:uuid}", erase, tag="persons", roles=(ADMIN,),
                body=ErasureRequest, response=ErasureOut,
                summary="Erase a person everywhere (right to erasure); visits stay as counts"),
]  # fmt: skip
