"""Report routes of the `api` function: series, heatmap, demographics, dwell, visit list, CSV
export (its totals are the API's), and the live monitor (Server-Sent Events)."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Self
from uuid import UUID

from pydantic import BaseModel, Field, model_validator
from starlette.responses import Response

from visitlens.auth.principal import Principal, Role
from visitlens.http.api.scope import tenant_tx
from visitlens.http.api.services import ApiServices
from visitlens.http.router import Ctx, Route
from visitlens.pagination import decode_cursor, encode_cursor
from visitlens.reports import queries
from visitlens.reports.queries import Granularity, Range
from visitlens.reports.stats import freshness
from visitlens.schemas import Input
from visitlens.tenancy import audit
from visitlens.validation import Day

MAX_DAYS = 400
MAX_HOURLY_DAYS = 62


class ReportQuery(Input):
    start: Day = Field(description="first local date (the site's time zone), inclusive")
    end: Day = Field(description="last local date, inclusive")
    site_id: UUID | None = Field(default=None, description="one site; default: every visible site")

    @model_validator(mode="after")
    def _range(self) -> Self:
        if self.end < self.start:
            raise ValueError("end must not be before start")
        if (self.end - self.start).days >= MAX_DAYS:
            raise ValueError(f"at most {MAX_DAYS} days per query")
        return self


class SeriesQuery(ReportQuery):
    granularity: Granularity = "day"

    @model_validator(mode="after")
    def _hourly(self) -> Self:
        if self.granularity == "hour" and (self.end - self.start).days >= MAX_HOURLY_DAYS:
            raise ValueError(f"hourly series cover at most {MAX_HOURLY_DAYS} days")
        return self


class VisitQuery(ReportQuery):
    is_new: bool | None = None
    min_dwell_s: float | None = Field(default=None, ge=0)
    limit: int = Field(default=50, ge=1, le=500)
    cursor: str | None = Field(default=None, max_length=200)


class Bucket(BaseModel):
    start: datetime = Field(description="start of the bucket, local time of the site(s)")
    visits: int
    new_visits: int
    returning_visits: int
    unique_visitors: int
    avg_dwell_s: float | None


class Totals(BaseModel):
    visits: int
    new_visits: int
    returning_visits: int
    unique_visitors: int | None = Field(
        description="distinct visitors over the whole range: exact for up to 93 days (a quarter) or one "
        "whole period; null for longer ranges (distinct counts do not add up: see the buckets)"
    )
    avg_dwell_s: float | None


class Freshness(BaseModel):
    """How current the statistics behind a report are."""

    pending_hours: int = Field(description="hours with visit changes not yet aggregated")
    newest_aggregated_visit_at: datetime | None = Field(
        description="the newest visit change the statistics include"
    )


class SeriesOut(BaseModel):
    freshness: Freshness
    granularity: str
    buckets: list[Bucket]
    totals: Totals


class HeatmapOut(BaseModel):
    freshness: Freshness
    days: list[str]
    visits: list[list[int]] = Field(description="7 rows (Mon..Sun) x 24 local hours")


class DemographicsOut(BaseModel):
    freshness: Freshness
    visits: int
    gender: dict[str, int]
    age_bands: dict[str, int]


class DwellBucket(BaseModel):
    label: str
    visits: int


class DwellOut(BaseModel):
    freshness: Freshness
    visits: int
    avg_dwell_s: float | None
    buckets: list[DwellBucket]


class VisitOut(BaseModel):
    id: UUID
    site_id: UUID
    customer_id: UUID | None = Field(description="null after the person was erased")
    started_at: datetime
    ended_at: datetime
    local_start: datetime
    is_new: bool
    sighting_count: int
    dwell_s: float


class VisitPage(BaseModel):
    items: list[VisitOut]
    next_cursor: str | None


def report_range(principal: Principal, query: ReportQuery) -> Range:
    """The sites a caller may see: all for admins, their own for managers."""
    if query.site_id is not None:
        principal.require_site(query.site_id)
        return Range(query.start, query.end, [query.site_id])
    if principal.sees_all_sites():
        return Range(query.start, query.end, None)
    return Range(query.start, query.end, sorted(principal.site_ids))


async def visit_series(ctx: Ctx[ApiServices]) -> SeriesOut:
    query = ctx.query(SeriesQuery)
    async with tenant_tx(ctx, ctx.params["tenant_id"]) as conn:
        result = await queries.series(conn, report_range(ctx.principal, query), query.granularity)
        result["freshness"] = await freshness(conn)
    return SeriesOut.model_validate(result)


async def visit_series_csv(ctx: Ctx[ApiServices]) -> Response:
    """The series as CSV, with a totals row equal to the API's ``totals``; the export is audited."""
    tenant_id: UUID = ctx.params["tenant_id"]
    query = ctx.query(SeriesQuery)
    async with tenant_tx(ctx, tenant_id) as conn:
        result = await queries.series(conn, report_range(ctx.principal, query), query.granularity)
        result["freshness"] = await freshness(conn)
        await audit.record(
            conn, ctx.principal, "report.export", "report", "visits.csv", tenant_id,
            {"granularity": query.granularity, "start": query.start.isoformat(),
             "end": query.end.isoformat(), "site_id": str(query.site_id) if query.site_id else None,
             "rows": len(result["buckets"])},
        )  # fmt: skip
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    columns = ["visits", "new_visits", "returning_visits", "unique_visitors", "avg_dwell_s"]
    writer.writerow(["bucket_start", *columns])
    for bucket in result["buckets"]:
        writer.writerow([bucket["start"].isoformat(), *(bucket[c] for c in columns)])
    totals = result["totals"]
    writer.writerow(["total", *("" if totals[c] is None else totals[c] for c in columns)])
    filename = f"visits-{query.granularity}-{query.start}-{query.end}.csv"
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{filename}"'},
    )


async def visit_heatmap(ctx: Ctx[ApiServices]) -> HeatmapOut:
    query = ctx.query(ReportQuery)
    async with tenant_tx(ctx, ctx.params["tenant_id"]) as conn:
        result = await queries.heatmap(conn, report_range(ctx.principal, query))
        result["freshness"] = await freshness(conn)
    return HeatmapOut.model_validate(result)


async def visit_demographics(ctx: Ctx[ApiServices]) -> DemographicsOut:
    query = ctx.query(ReportQuery)
    async with tenant_tx(ctx, ctx.params["tenant_id"]) as conn:
        result = await queries.demographics(conn, report_range(ctx.principal, query))
        result["freshness"] = await freshness(conn)
    return DemographicsOut.model_validate(result)


async def visit_dwell(ctx: Ctx[ApiServices]) -> DwellOut:
    query = ctx.query(ReportQuery)
    async with tenant_tx(ctx, ctx.params["tenant_id"]) as conn:
        result = await queries.dwell(conn, report_range(ctx.principal, query))
        result["freshness"] = await freshness(conn)
    return DwellOut.model_validate(result)


async def list_visits(ctx: Ctx[ApiServices]) -> VisitPage:
    query = ctx.query(VisitQuery)
    after = decode_cursor(query.cursor) if query.cursor else None
    async with tenant_tx(ctx, ctx.params["tenant_id"]) as conn:
        rows = await queries.visit_page(
            conn, report_range(ctx.principal, query), is_new=query.is_new,
            min_dwell_s=query.min_dwell_s, limit=query.limit, after=after,
        )  # fmt: skip
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    cursor = encode_cursor(rows[-1]["started_at"], rows[-1]["id"]) if more and rows else None
    return VisitPage(items=[VisitOut.model_validate(dict(r)) for r in rows], next_cursor=cursor)


ADMIN, MANAGER = Role.TENANT_ADMIN, Role.SITE_MANAGER
R = "/v1/tenants/{tenant_id:uuid}/reports"


def routes() -> list[Route]:
    from visitlens.http.routes.monitor import MonitorEvent, monitor

    return [
        Route.build("GET", f"{R}/visits", visit_series, tag="reports", roles=(ADMIN, MANAGER),
                    summary="Visits by hour/day/week/month (site's local time): new vs returning, "
                    "unique visitors, dwell", query=SeriesQuery, response=SeriesOut),
        Route.build("GET", f"{R}/visits.csv", visit_series_csv, tag="reports",
                    roles=(ADMIN, MANAGER), summary="The same series as CSV (totals row equals "
                    "the API's totals; audited)", query=SeriesQuery),
        Route.build("GET", f"{R}/heatmap", visit_heatmap, tag="reports", roles=(ADMIN, MANAGER),
                    summary="Visits by day of week x local hour", query=ReportQuery,
                    response=HeatmapOut),
        Route.build("GET", f"{R}/demographics", visit_demographics, tag="reports",
                    roles=(ADMIN, MANAGER), summary="Visits by gender and age band when known",
                    query=ReportQuery, response=DemographicsOut),
        Route.build("GET", f"{R}/dwell", visit_dwell, tag="reports", roles=(ADMIN, MANAGER),
                    summary="Dwell-time distribution", query=ReportQuery, response=DwellOut),
        Route.build("GET", "/v1/tenants/{tenant_id:uuid}/visits", list_visits, tag="reports",
                    roles=(ADMIN, MANAGER), summary="Visits, newest first, with filters",
                    query=VisitQuery, response=VisitPage),
        Route.build("GET", "/v1/tenants/{tenant_id:uuid}/monitor", monitor, tag="reports",
                    roles=(ADMIN, MANAGER), summary="Live monitor: new and extended visits as "
                    "Server-Sent Events (resumes with Last-Event-ID)", response=MonitorEvent),
    ]  # fmt: skip
