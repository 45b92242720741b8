"""Routes of the `merge` and `erase` functions, and the clients of one warm instance."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from pydantic import BaseModel, Field
from starlette.responses import JSONResponse

from visitlens.adapters.gallery import Gallery
from visitlens.adapters.postgres import Database
from visitlens.api.schemas import Input
from visitlens.auth.principal import Role
from visitlens.auth.service import AuthService
from visitlens.auth.wiring import build_auth
from visitlens.config import Settings
from visitlens.http.router import Ctx, Route
from visitlens.persons.erasure import Eraser
from visitlens.persons.merging import PersonMerger
from visitlens.runtime.lazy import Lazy

ADMIN = Role.TENANT_ADMIN


@dataclass(slots=True)
class PersonServices:
    db: Database
    auth: AuthService
    merger: PersonMerger
    eraser: Eraser


def lazy_person_services(settings: Settings) -> Lazy[PersonServices]:
    def build() -> PersonServices:
        from visitlens.stack import s3
        from visitlens.stack.endpoints import s3_endpoint

        db, _, auth = build_auth(settings)
        gallery = Gallery.for_settings(settings)
        client = s3.client(settings.s3, s3_endpoint(settings))
        return PersonServices(
            db, auth, PersonMerger(db, gallery), Eraser(db, gallery, client, settings.s3)
        )

    return Lazy(build)


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


P = "/v1/persons/{tenant_id:uuid}"
MERGE_ROUTES = [
    Route.build("POST", f"{P}/merge", merge, tag="persons", roles=(ADMIN,), body=MergeRequest,
                response=MergeOut, summary="Merge one person into another (one transaction)"),
    Route.build("POST", f"{P}/merges/{{merge_id:uuid}}/undo", unmerge, tag="persons",
                roles=(ADMIN,), response=MergeOut, summary="Split a merge back out"),
    Route.build("POST", f"{P}/not-same", not_same, tag="persons", roles=(ADMIN,),
                body=PairRequest, summary="Mark two persons as different people (never merged)"),
]  # fmt: skip
ERASE_ROUTES = [
    Route.build("POST", "/v1/erasure/{tenant_id:uuid}", erase, tag="persons", roles=(ADMIN,),
                body=ErasureRequest, response=ErasureOut,
                summary="Erase a person everywhere (right to erasure); visits stay as counts"),
]  # fmt: skip
